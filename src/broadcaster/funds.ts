import type { Address, Hex } from 'viem';
import type { ChainConnection, SignerConnection } from '../chain/client.js';
import { streamflowContracts } from '../chain/contracts.js';
import type { DeploymentManifest } from '../chain/manifest.js';
import { waitForSuccess } from '../chain/tx.js';
import { sleep } from '../node/abort.js';
import { type Logger, silentLogger } from '../node/logger.js';
import type { SenderFunds } from '../pm/types.js';

/** The broadcaster's TicketBroker balance as last read. */
export interface BrokerBalance {
  deposit: bigint;
  reserve: bigint;
  withdrawRound: bigint;
  /** The last initialised round. */
  round: bigint;
}

/**
 * The broadcaster's view of its own deposit and the round, read from the chain every `pollMs` (and after it
 * funds), so the sender checks face values against it synchronously.
 */
export class BrokerFunds implements SenderFunds {
  private last: BrokerBalance | undefined;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(
    private readonly options: { pollMs?: number },
    private readonly deps: {
      conn: ChainConnection;
      manifest: DeploymentManifest;
      address: Address;
      logger?: Logger;
    },
  ) {
    this.log = (deps.logger ?? silentLogger).child({ module: 'broadcaster-funds' });
  }

  get balance(): BrokerBalance | undefined {
    return this.last;
  }

  deposit(): bigint {
    return this.last?.deposit ?? 0n;
  }

  currentRound(): bigint | undefined {
    return this.last?.round;
  }

  async read(): Promise<BrokerBalance> {
    const c = streamflowContracts(this.deps.conn, this.deps.manifest);
    const [[deposit, reserve, withdrawRound], round] = await Promise.all([
      c.ticketBroker.read.getSenderInfo([this.deps.address]),
      // The round tickets are created in (see RecipientChain.currentRound), so params of the last initialised
      // round are not taken for expired while the next one waits to be initialised.
      c.roundsManager.read.lastInitializedRound(),
    ]);
    this.last = { deposit, reserve, withdrawRound, round };
    return this.last;
  }

  start(): void {
    if (this.controller) return;
    const controller = new AbortController();
    this.controller = controller;
    this.loop = (async () => {
      while (!controller.signal.aborted) {
        try {
          await this.read();
        } catch (err) {
          this.log.warn({ err }, 'reading the deposit failed');
        }
        await sleep(this.options.pollMs ?? 5_000, controller.signal).catch(() => undefined);
      }
    })();
  }

  async stop(): Promise<void> {
    this.controller?.abort();
    await this.loop;
  }
}

/**
 * Tops the broadcaster's deposit and reserve up to at least `deposit` and `reserve` wei (sending only the
 * difference), and cancels an unlock in progress, since an unlocking sender's tickets are refused.
 */
export async function ensureFunded(
  want: { deposit: bigint; reserve: bigint },
  deps: { conn: SignerConnection; manifest: DeploymentManifest; logger?: Logger },
): Promise<{ deposit: bigint; reserve: bigint; sent: bigint }> {
  const { conn, manifest } = deps;
  const log = (deps.logger ?? silentLogger).child({ module: 'broadcaster-funds' });
  const c = streamflowContracts(conn, manifest);
  const [deposit, reserve, withdrawRound] = await c.ticketBroker.read.getSenderInfo([conn.account.address]);
  const wait = (what: string) => (hash: Hex) => waitForSuccess(conn, hash, what);
  if (withdrawRound !== 0n) {
    await c.ticketBroker.write.cancelUnlock().then(wait('cancelUnlock'));
    log.info('unlock cancelled');
  }
  const addDeposit = want.deposit > deposit ? want.deposit - deposit : 0n;
  const addReserve = want.reserve > reserve ? want.reserve - reserve : 0n;
  if (addDeposit + addReserve > 0n) {
    await c.ticketBroker.write
      .fundDepositAndReserve([addDeposit, addReserve], { value: addDeposit + addReserve })
      .then(wait('fundDepositAndReserve'));
    log.info(
      { deposit: addDeposit.toString(), reserve: addReserve.toString() },
      'deposit and reserve funded',
    );
  }
  return { deposit: deposit + addDeposit, reserve: reserve + addReserve, sent: addDeposit + addReserve };
}
