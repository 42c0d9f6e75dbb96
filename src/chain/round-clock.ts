import { EventEmitter } from 'node:events';
import { sleep } from '../node/abort.js';
import type { Logger } from '../node/logger.js';
import type { ChainConnection, SignerConnection } from './client.js';
import type { StreamflowContracts } from './contracts.js';
import { ChainError } from './errors.js';
import { revertErrorName, waitForSuccess } from './tx.js';

export interface RoundStatus {
  readonly blockNumber: bigint;
  readonly round: bigint;
  readonly roundLength: bigint;
  readonly roundStartBlock: bigint;
  /** Blocks until the next round starts (1 on the round's last block). */
  readonly blocksLeft: bigint;
  readonly initialized: boolean;
  readonly locked: boolean;
}

export interface RoundClockOptions {
  /** How often to read the chain. @default 1_000 */
  pollIntervalMs?: number;
  /** Call `initializeRound()` when a round starts uninitialised (needs a signer). @default false */
  autoInitialize?: boolean;
}

export interface RoundClockDeps {
  conn: ChainConnection | SignerConnection;
  contracts: Pick<StreamflowContracts, 'roundsManager'>;
  logger?: Logger;
}

/**
 * Tells the current round and blocks left, emits `round` when a new round starts (and `initialized` once it
 * is), and optionally initialises rounds nobody else has. Start and stop are idempotent.
 */
export class RoundClock extends EventEmitter<{
  round: [RoundStatus];
  initialized: [RoundStatus];
  error: [unknown];
}> {
  private readonly options: Required<RoundClockOptions>;
  private readonly deps: RoundClockDeps;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private last: RoundStatus | undefined;
  private initializing: bigint | undefined;

  constructor(options: RoundClockOptions, deps: RoundClockDeps) {
    super();
    this.options = {
      pollIntervalMs: options.pollIntervalMs ?? 1_000,
      autoInitialize: options.autoInitialize ?? false,
    };
    if (this.options.autoInitialize && !('walletClient' in deps.conn)) {
      throw new TypeError('RoundClock: autoInitialize needs a signer connection');
    }
    this.deps = deps;
  }

  /** The last status read, if any. */
  get status(): RoundStatus | undefined {
    return this.last;
  }

  /** Reads the round status from the chain now. */
  async read(): Promise<RoundStatus> {
    const rm = this.deps.contracts.roundsManager;
    const [blockNumber, round, roundLength, roundStartBlock, initialized, locked] = await Promise.all([
      rm.read.blockNum(),
      rm.read.currentRound(),
      rm.read.roundLength(),
      rm.read.currentRoundStartBlock(),
      rm.read.currentRoundInitialized(),
      rm.read.currentRoundLocked(),
    ]);
    return {
      blockNumber,
      round,
      roundLength,
      roundStartBlock,
      blocksLeft: roundStartBlock + roundLength - blockNumber,
      initialized,
      locked,
    };
  }

  start(): void {
    if (this.controller) return;
    const controller = new AbortController();
    this.controller = controller;
    this.loop = this.run(controller.signal);
  }

  async stop(): Promise<void> {
    const controller = this.controller;
    if (!controller) return;
    controller.abort(new Error('round clock stopped'));
    await this.loop;
    this.controller = undefined;
    this.loop = undefined;
  }

  /** Sends `initializeRound()` unless someone beat us to it; returns whether this call initialised. */
  async initializeIfDue(status?: RoundStatus): Promise<boolean> {
    const conn = this.deps.conn;
    if (!('walletClient' in conn)) throw new TypeError('initializeIfDue needs a signer connection');
    const s = status ?? (await this.read());
    if (s.initialized || this.initializing === s.round) return false;
    this.initializing = s.round;
    const log = this.deps.logger?.child({ module: 'round-clock' });
    try {
      const rm = this.deps.contracts.roundsManager as StreamflowContracts<{
        public: SignerConnection['publicClient'];
        wallet: SignerConnection['walletClient'];
      }>['roundsManager'];
      const hash = await rm.write.initializeRound();
      await waitForSuccess(conn, hash, 'initializeRound');
      log?.info({ round: s.round }, 'round initialized');
      return true;
    } catch (err) {
      if (revertErrorName(err) === 'RoundAlreadyInitialized') return false;
      // Several nodes race to initialise a round: ours passed its gas estimate but was mined after another's.
      if (err instanceof ChainError && err.code === 'TX_REVERTED') {
        const now = await this.read().catch(() => undefined);
        if (now?.initialized && now.round === s.round) {
          log?.debug({ round: s.round }, 'another node initialised the round first');
          return false;
        }
      }
      this.initializing = undefined;
      throw err;
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const log = this.deps.logger?.child({ module: 'round-clock' });
    while (!signal.aborted) {
      try {
        const s = await this.read();
        const prev = this.last;
        this.last = s;
        if (!prev || s.round !== prev.round) this.emit('round', s);
        if (s.initialized && (!prev?.initialized || s.round !== prev.round)) this.emit('initialized', s);
        if (!s.initialized && this.options.autoInitialize) await this.initializeIfDue(s);
      } catch (err) {
        if (signal.aborted) break;
        log?.warn({ err }, 'round clock poll failed');
        if (this.listenerCount('error') > 0) this.emit('error', err);
      }
      try {
        await sleep(this.options.pollIntervalMs, signal);
      } catch {
        break;
      }
    }
  }
}

/**
 * Runs a staking write, initialising the round and trying once more when it reverted because a new round
 * began uninitialised in between (on a devnet, every transaction mines a block, so a set-up sequence can cross
 * a round boundary at any step).
 */
export async function withInitializedRound<T>(
  conn: SignerConnection,
  contracts: Pick<StreamflowContracts, 'roundsManager'>,
  write: () => Promise<T>,
): Promise<T> {
  const clock = new RoundClock({}, { conn, contracts });
  const before = await clock.read();
  if (!before.initialized) await clock.initializeIfDue(before);
  try {
    return await write();
  } catch (err) {
    if (revertErrorName(err) !== 'CurrentRoundNotInitialized') throw err;
    // Gas is estimated against the pending block: the revert can come from a round the latest block has not
    // reached yet. Wait for it to start, initialise it, then write again.
    for (let i = 0; i < 40; i++) {
      const s = await clock.read();
      if (!s.initialized) {
        await clock.initializeIfDue(s);
        break;
      }
      if (s.round > before.round) break;
      await sleep(250);
    }
    return write();
  }
}
