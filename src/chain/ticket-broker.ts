import {
  type Address,
  type Hash,
  hexToBytes,
  keccak256,
  parseEventLogs,
  type TransactionReceipt,
  toFunctionSelector,
  toHex,
  zeroAddress,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import type { Logger } from '../node/logger.js';
import { signDigest, type TicketDomain, ticketHash } from '../pm/ticket.js';
import type {
  RecipientChain,
  RedeemResult,
  RoundInfo,
  SenderInfo,
  SignedTicket,
  TicketRedeemer,
} from '../pm/types.js';
import type { ChainConnection, SignerConnection } from './client.js';
import { streamflowContracts } from './contracts.js';
import { ChainError } from './errors.js';
import { bondingManagerAbi, ticketBrokerAbi } from './generated/index.js';
import type { DeploymentManifest } from './manifest.js';
import { describeError, revertErrorName, waitForSuccess } from './tx.js';

/** The EIP-712 domain tickets for this deployment are signed under. */
export function ticketDomain(manifest: DeploymentManifest): TicketDomain {
  return { chainId: manifest.chainId, verifyingContract: manifest.contracts.TicketBroker };
}

/**
 * Storage writes and transfers a paid ticket makes after the checks a refused one also runs: the used-ticket
 * flag (a new slot: EIP-2200 20,000 + EIP-2929 cold access 2,100), the sender's balance slot (2,900 warm
 * write) and the ETH value transfer to the Minter (9,000 + cold account 2,600). EVM constants, not a guess at
 * our contract; the fee credit, which is contract work, is estimated on the chain.
 */
const PAID_TICKET_WRITES_GAS = 22_100n + 2_900n + 11_600n;
const TX_BASE_GAS = 21_000n;

/**
 * What the payment engine reads from the chain, over the RoundsManager and TicketBroker. Redeem gas comes from
 * the gas real redemptions used (fed by `TicketBrokerRedeemer`); before the first one, from `eth_estimateGas`
 * on the live contracts: a batch redemption of one probe ticket to `recipient` that passes every check but the
 * sender's funds (signed by a throwaway key with no deposit), plus the fee credit the BondingManager would do for
 * it (estimated as a call from the TicketBroker), plus the writes a paid ticket adds.
 */
export class TicketBrokerChain implements RecipientChain {
  private readonly contracts;
  private readonly manifest: DeploymentManifest;
  private readonly recipient: Address | undefined;
  private observedGas: bigint | undefined;

  constructor(
    options: {
      manifest: DeploymentManifest;
      /** The orchestrator whose redemptions are estimated. */
      recipient?: Address;
    },
    private readonly deps: { conn: ChainConnection; logger?: Logger },
  ) {
    this.manifest = options.manifest;
    this.recipient = options.recipient;
    this.contracts = streamflowContracts(deps.conn, options.manifest);
  }

  /** The last initialised round (see `RecipientChain.currentRound`). */
  async currentRound(): Promise<RoundInfo> {
    const round = await this.contracts.roundsManager.read.lastInitializedRound();
    const blockHash = await this.contracts.roundsManager.read.blockHashForRound([round]);
    return { round, blockHash };
  }

  async senderInfo(sender: Address, recipient: Address): Promise<SenderInfo> {
    const [[deposit, reserve, withdrawRound], claimableReserve] = await Promise.all([
      this.contracts.ticketBroker.read.getSenderInfo([sender]),
      this.contracts.ticketBroker.read.claimableReserve([sender, recipient]),
    ]);
    return { deposit, reserve, claimableReserve, withdrawRound };
  }

  gasPrice(): Promise<bigint> {
    return this.deps.conn.publicClient.getGasPrice();
  }

  /** Records the gas a real redemption used per ticket; later estimates follow it (moving average). */
  observeRedeemGas(perTicket: bigint): void {
    this.observedGas = this.observedGas === undefined ? perTicket : (this.observedGas * 3n + perTicket) / 4n;
  }

  async estimateRedeemGas(): Promise<bigint> {
    if (this.observedGas !== undefined) return this.observedGas;
    const round = await this.currentRound();
    const rand = BigInt(keccak256(toHex('streamflow redeem gas probe')));
    const probeKey = generatePrivateKey();
    const probe = {
      recipient: this.recipient ?? zeroAddress,
      sender: privateKeyToAccount(probeKey).address,
      faceValue: 1n,
      winProb: 2n ** 256n - 1n,
      senderNonce: 0n,
      recipientRandHash: keccak256(toHex(rand, { size: 32 })),
      creationRound: round.round,
      creationRoundBlockHash: round.blockHash,
    };
    const sig = signDigest(ticketHash(probe, ticketDomain(this.manifest)), hexToBytes(probeKey));
    const pc = this.deps.conn.publicClient;
    const [checks, credit] = await Promise.all([
      pc.estimateContractGas({
        address: this.manifest.contracts.TicketBroker,
        abi: ticketBrokerAbi,
        functionName: 'batchRedeemWinningTickets',
        args: [[probe], [sig], [rand]],
        account: this.manifest.deployer,
      }),
      this.recipient
        ? pc
            .estimateContractGas({
              address: this.manifest.contracts.BondingManager,
              abi: bondingManagerAbi,
              functionName: 'updateOrchestratorWithFees',
              args: [this.recipient, 1n, round.round],
              account: this.manifest.contracts.TicketBroker,
            })
            .then((g) => g - TX_BASE_GAS)
            .catch(() => 0n)
        : Promise.resolve(0n),
    ]);
    return checks + credit + PAID_TICKET_WRITES_GAS;
  }
}

const selector = (sig: string) => toFunctionSelector(sig).toLowerCase();
/** Refusals that no later attempt can change. */
const PERMANENT = new Set(
  [
    'InvalidRecipientRand(bytes32)',
    'TicketExpired(uint256,uint256)',
    'InvalidCreationRoundBlockHash(uint256,bytes32)',
    'InvalidSignature()',
    'TicketDidNotWin()',
  ].map(selector),
);
const USED = selector('TicketUsed(bytes32)');

/** A redemption failure as the queue wants it (see `TicketRedeemer`): one line, and a code for the round gap. */
function redeemError(err: unknown): ChainError {
  // Between a round's first block and its initializeRound() nothing can be paid; that is a wait, not a fault.
  if (revertErrorName(err) === 'CurrentRoundNotInitialized') {
    return new ChainError(
      'ROUND_NOT_INITIALIZED',
      'the current round is not initialised yet; tickets are redeemed once it is',
      {},
      { cause: err },
    );
  }
  if (err instanceof ChainError) return err;
  return new ChainError('TX_FAILED', `batchRedeemWinningTickets: ${describeError(err)}`, {}, { cause: err });
}

/** Cashes winning tickets through `batchRedeemWinningTickets`, one transaction per batch. */
export class TicketBrokerRedeemer implements TicketRedeemer {
  private readonly contracts;

  constructor(
    options: { manifest: DeploymentManifest },
    private readonly deps: { conn: SignerConnection; chain?: TicketBrokerChain; logger?: Logger },
  ) {
    this.contracts = streamflowContracts(deps.conn, options.manifest);
  }

  async redeemBatch(tickets: readonly SignedTicket[], signal?: AbortSignal): Promise<RedeemResult[]> {
    signal?.throwIfAborted();
    let hash: Hash;
    let receipt: TransactionReceipt;
    try {
      hash = await this.contracts.ticketBroker.write.batchRedeemWinningTickets([
        tickets.map((t) => t.ticket),
        tickets.map((t) => t.signature),
        tickets.map((t) => t.recipientRand),
      ]);
      receipt = await waitForSuccess(
        this.deps.conn,
        hash,
        'batchRedeemWinningTickets',
        signal ? { signal } : {},
      );
    } catch (err) {
      throw redeemError(err);
    }
    const logs = parseEventLogs({ abi: ticketBrokerAbi, logs: receipt.logs });
    const paid = new Set<string>();
    const failed = new Map<string, string>();
    for (const log of logs) {
      if (log.eventName === 'WinningTicketRedeemed') paid.add(log.args.ticketHash.toLowerCase());
      if (log.eventName === 'TicketRedemptionFailed') {
        failed.set(log.args.ticketHash.toLowerCase(), log.args.errorSelector.toLowerCase());
      }
    }
    if (paid.size > 0) this.deps.chain?.observeRedeemGas(receipt.gasUsed / BigInt(paid.size));
    return tickets.map((t): RedeemResult => {
      const key = t.ticketHash.toLowerCase();
      if (paid.has(key)) return { status: 'redeemed', txHash: hash };
      const sel = failed.get(key);
      if (sel === USED) return { status: 'alreadyRedeemed' };
      if (sel && PERMANENT.has(sel))
        return { status: 'rejected', reason: `TicketBroker refused it (${sel})` };
      return {
        status: 'retry',
        reason: sel ? `TicketBroker refused it for now (${sel})` : 'no result in receipt',
      };
    });
  }
}
