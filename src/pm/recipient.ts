import { createHmac, randomBytes } from 'node:crypto';
import secp256k1 from 'secp256k1';
import { type Address, bytesToHex, type Hex, hexToBytes } from 'viem';
import { sleep } from '../node/abort.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { ErrorBudget } from './error-budget.js';
import { PaymentError, type PaymentErrorCode } from './errors.js';
import { type PreparedTicket, TicketHasher, writeUint256 } from './hasher.js';
import { keccak256Into } from './keccak.js';
import { CreditLedger } from './ledger.js';
import type { PMMetrics } from './metrics.js';
import { NonceWindow } from './nonces.js';
import { defaultRecipientOptions, mulRatio, type RecipientOptions, withDefaults } from './options.js';
import { SenderMonitor, type SenderState } from './sender-monitor.js';
import type { PMStore } from './store.js';
import { isCanonicalSignature, type TicketDomain } from './ticket.js';
import {
  type Payment,
  type PaymentTicket,
  paymentTicket,
  type RecipientChain,
  type RoundInfo,
  type SignedTicket,
  type TicketParams,
} from './types.js';

const U256_MAX = (1n << 256n) - 1n;
const HASH_RE = /^0x[0-9a-fA-F]{64}$/;

/** The parts of the store the recipient writes. */
export type RecipientStore = Pick<
  PMStore,
  | 'insertWinningTickets'
  | 'isRandRetired'
  | 'saveNonceMarks'
  | 'loadNonceMarks'
  | 'pruneNonceMarks'
  | 'outstandingBySender'
>;

export interface RecipientInit extends Partial<RecipientOptions> {
  /** The orchestrator's address: tickets must name it as recipient. */
  address: Address;
  /** Chain id and TicketBroker: the EIP-712 domain tickets are signed under. */
  domain: TicketDomain;
}

export interface RecipientDeps {
  chain: RecipientChain;
  store: RecipientStore;
  /** 32 bytes from `loadOrCreateSecret`: derives every recipientRand. */
  secret: Uint8Array;
  logger?: Logger;
  metrics?: PMMetrics;
  /** Built from the chain when not given. */
  monitor?: SenderMonitor;
  /** Built when not given. */
  ledger?: CreditLedger;
  /** Woken when winning tickets are stored. */
  queue?: { notify(): void };
  now?: () => number;
}

/** Where a payment came from. */
export interface PaymentContext {
  /** The stream/session whose credit the tickets add to. */
  session: string;
  /**
   * Remote address (IP, no port) the payment came from. Errors of senders this recipient does not know yet
   * (never read from the chain) and of unauthenticated payments also count against this address, so a flood
   * from fresh sender keys, or over fresh connections, is refused all the same.
   */
  peer?: string;
  /**
   * Whether the caller checked that `payment.sender` signed the request carrying the payment. `false`: the
   * sender's name is unproven, so its errors count against `peer` only (a third party cannot get an honest
   * sender refused). Unset: errors count against the sender (and `peer` for unknown senders).
   */
  authenticated?: boolean;
}

export interface AcceptedWinner {
  ticketHash: Hex;
  senderNonce: bigint;
  faceValue: bigint;
}

export interface PaymentResult {
  /** Tickets accepted (valid, winning or not). */
  accepted: number;
  /** Expected value credited to the session, wei. */
  credited: bigint;
  /** The session's credit after this payment, wei. */
  balance: bigint;
  /** Winning tickets, stored durably before this result was returned. */
  winners: AcceptedWinner[];
  /** Tickets refused, each with `details.index`. They count against the sender's error budget. */
  errors: PaymentError[];
  /** Params for the next payment (absent when they cannot be issued; see `paramsError`). */
  params?: TicketParams;
  /** Why no params could be issued (e.g. `LowPMBalance`, `SenderUnlocking`). */
  paramsError?: Error;
}

/** Counters for tests and benchmarks; cheap enough for the hot path. */
export interface RecipientStats {
  /** Signature recoveries performed: the cost a flood of invalid tickets imposes (THREATS.md 10). */
  recoveries: number;
  /** Payments refused with `TooManyErrors` (over budget before, or during, their check). */
  refusedPayments: number;
  ticketsAccepted: number;
  winningTickets: number;
  paramsIssued: number;
}

/** Everything about one set of issued params, kept for the hot path. */
interface ParamsRecord {
  params: TicketParams;
  senderKey: string;
  senderBytes: Uint8Array;
  randHashKey: string;
  rand: bigint;
  prepared: PreparedTicket;
  /** signature (65) ‖ recipientRand (32): hashed to decide a win; the signature part is per ticket. */
  winBuf: Buffer;
  sig64: Buffer;
  winProbBytes: Uint8Array;
  ev: bigint;
  nonces: NonceWindow;
  retired: boolean;
}

const LOSE = 0;
const WIN = 1;

function lower(x: unknown): string {
  return typeof x === 'string' ? x.toLowerCase() : '';
}

/** a < b for two 32-byte big-endian numbers. */
function lessThan(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (x !== y) return x < y;
  }
  return false;
}

/** winProb = EV / faceValue as a fraction of 2^256, at most 2^256 − 1 (every ticket wins). */
export function winProbFor(expectedValue: bigint, faceValue: bigint): bigint {
  if (faceValue <= 0n) throw new RangeError('faceValue must be positive');
  const p = (expectedValue << 256n) / faceValue;
  return p > U256_MAX ? U256_MAX : p;
}

/**
 * The orchestrator side of probabilistic micropayments: issues ticket params per sender, validates
 * payments, credits sessions, stores winning tickets durably before answering, and rotates recipientRand
 * after each win. Validation of a payment whose params, sender and round are cached is synchronous apart
 * from the final params refresh; chain reads happen at most every `chainCacheMs`/`senderInfoTtlMs`.
 */
export class Recipient {
  readonly options: RecipientOptions;
  readonly address: Address;
  readonly domain: TicketDomain;
  readonly monitor: SenderMonitor;
  readonly ledger: CreditLedger;
  readonly stats: RecipientStats = {
    recoveries: 0,
    refusedPayments: 0,
    ticketsAccepted: 0,
    winningTickets: 0,
    paramsIssued: 0,
  };

  private readonly deps: RecipientDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly addressKey: string;
  private readonly hasher: TicketHasher;
  private readonly budget: ErrorBudget;
  private readonly hmacPrefix: Uint8Array;

  /** By recipientRandHash (lower-case). */
  private readonly records = new Map<string, ParamsRecord>();
  /** The params currently handed to each sender. */
  private readonly current = new Map<string, ParamsRecord>();
  /** Uncompressed public keys (64 bytes, no prefix) of senders whose signatures checked out. */
  private readonly pubkeys = new Map<string, Uint8Array>();
  /** Nonce floors loaded from the last checkpoint, for params first seen again after a restart. */
  private loadedMarks = new Map<string, bigint>();
  /** Block hash of each recent round start, to refuse tickets from a round that was reorganised away. */
  private readonly roundHashes = new Map<bigint, string>();

  private round: RoundInfo | undefined;
  private roundReadAt = 0;
  private gasPrice = 0n;
  private redeemGas = 0n;
  private gasReadAt = -Infinity;
  private chainRead: Promise<void> | undefined;

  private readonly digest = new Uint8Array(32);
  private readonly pub = new Uint8Array(65);
  private readonly addrHash = new Uint8Array(32);
  private readonly winHash = new Uint8Array(32);

  private status: 'idle' | 'started' | 'closing' | 'closed' = 'idle';
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(init: RecipientInit, deps: RecipientDeps) {
    const { address, domain, ...rest } = init;
    this.options = withDefaults(defaultRecipientOptions, rest);
    this.options.errorBudget = withDefaults(this.options.errorBudget, rest.errorBudget);
    if (this.options.ticketValidityRounds < this.options.paramsValidityRounds + 2) {
      throw new RangeError(
        'ticketValidityRounds must be ≥ paramsValidityRounds + 2, or an accepted winning ticket could expire ' +
          'before it can be redeemed',
      );
    }
    if (deps.secret.length !== 32) throw new RangeError('the recipient secret must be 32 bytes');
    this.address = address;
    this.addressKey = address.toLowerCase();
    this.domain = domain;
    this.deps = deps;
    this.log = (deps.logger ?? silentLogger).child({ module: 'pm-recipient' });
    this.now = deps.now ?? Date.now;
    this.hasher = new TicketHasher(domain);
    this.budget = new ErrorBudget(this.options.errorBudget);
    this.monitor =
      deps.monitor ??
      new SenderMonitor(
        { senderInfoTtlMs: this.options.senderInfoTtlMs },
        {
          chain: deps.chain,
          recipient: address,
          ...(deps.logger ? { logger: deps.logger } : {}),
          now: this.now,
        },
      );
    this.ledger = deps.ledger ?? new CreditLedger({}, { now: this.now });
    // HMAC input prefix: chain, broker and recipient, so one secret reused elsewhere yields other rands.
    this.hmacPrefix = new Uint8Array(8 + 20 + 20);
    new DataView(this.hmacPrefix.buffer).setBigUint64(0, BigInt(domain.chainId));
    this.hmacPrefix.set(hexToBytes(domain.verifyingContract), 8);
    this.hmacPrefix.set(hexToBytes(address), 28);
  }

  /**
   * Reads the round and gas data, restores pending amounts and nonce marks from the store, and starts the
   * maintenance loop (nonce checkpoints, sweeping expired params). Idempotent; a failed start stops what
   * started and rethrows.
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.status === 'started') return;
    if (this.status !== 'idle') throw new Error('Recipient: cannot restart after stop()');
    try {
      this.loadedMarks = this.deps.store.loadNonceMarks(this.now());
      this.monitor.setPending(this.deps.store.outstandingBySender());
      await this.refreshChain(signal);
      this.controller = new AbortController();
      this.loop = this.maintain(this.controller.signal);
      this.status = 'started';
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops the loop and writes a last nonce checkpoint. Idempotent. */
  async stop(): Promise<void> {
    if (this.status === 'closing' || this.status === 'closed') return;
    this.status = 'closing';
    this.controller?.abort(new Error('Recipient stopped'));
    await this.loop;
    this.checkpoint();
    this.status = 'closed';
  }

  private async maintain(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await sleep(this.options.nonceCheckpointMs, signal);
      } catch {
        return;
      }
      try {
        this.checkpoint();
        this.sweep();
        if (this.now() - this.roundReadAt >= this.options.chainCacheMs) await this.refreshChain(signal);
      } catch (err) {
        if (signal.aborted) return;
        this.log.warn({ err }, 'payment maintenance failed; retrying');
      }
    }
  }

  /** Writes the highest nonce seen under each live recipientRand, for replay protection across a crash. */
  checkpoint(): void {
    const marks = [];
    for (const rec of this.records.values()) {
      if (!rec.nonces.dirty) continue;
      rec.nonces.dirty = false;
      marks.push({
        recipientRandHash: rec.randHashKey,
        maxNonce: rec.nonces.max,
        expiresAt: rec.params.expiresAt,
      });
    }
    this.deps.store.saveNonceMarks(marks);
  }

  /** Drops expired params, idle sessions and budgets. */
  sweep(now = this.now()): void {
    const round = this.round?.round;
    for (const [key, rec] of this.records) {
      if (rec.params.expiresAt < now || (round !== undefined && rec.params.expirationRound < round)) {
        this.records.delete(key);
        if (this.current.get(rec.senderKey) === rec) this.current.delete(rec.senderKey);
      }
    }
    for (const [key, floor] of this.loadedMarks)
      if (this.records.has(key) || floor < 0n) this.loadedMarks.delete(key);
    this.deps.store.pruneNonceMarks(now);
    this.budget.sweep(now);
    this.ledger.sweep(now);
    this.monitor.sweep(this.options.senderInfoTtlMs * 10, now);
    if (this.pubkeys.size > 100_000) this.pubkeys.clear();
  }

  /**
   * Sets the current round, e.g. from a round watcher. A new round re-reads every sender (reserve shares
   * follow the active set) and makes the next params carry the new creation round.
   */
  setRound(info: RoundInfo): void {
    const prev = this.round;
    this.round = { round: info.round, blockHash: info.blockHash.toLowerCase() as Hex };
    this.roundReadAt = this.now();
    this.roundHashes.set(info.round, info.blockHash.toLowerCase());
    for (const r of this.roundHashes.keys()) {
      if (r + BigInt(this.options.ticketValidityRounds) + 2n < info.round) this.roundHashes.delete(r);
    }
    if (prev && prev.round !== info.round) this.monitor.invalidate();
  }

  /** Re-reads the round, gas price and redeem gas from the chain (concurrent calls share one read). */
  refreshChain(signal?: AbortSignal): Promise<void> {
    if (this.chainRead) return this.chainRead;
    const chain = this.deps.chain;
    this.chainRead = Promise.all([
      chain.currentRound(signal),
      chain.gasPrice(signal),
      chain.estimateRedeemGas(signal),
    ])
      .then(([round, gasPrice, redeemGas]) => {
        this.setRound(round);
        this.gasPrice = gasPrice;
        this.redeemGas = redeemGas;
        this.gasReadAt = this.now();
      })
      .finally(() => {
        this.chainRead = undefined;
      });
    return this.chainRead;
  }

  /** Changes the expected value per ticket (e.g. after a price change); new params follow at once. */
  setExpectedValue(wei: bigint): void {
    if (wei <= 0n) throw new RangeError('expected value must be positive');
    this.options.expectedValue = wei;
  }

  private async chainFresh(signal?: AbortSignal): Promise<RoundInfo> {
    const stale = this.now() - Math.min(this.roundReadAt, this.gasReadAt) >= this.options.chainCacheMs;
    if (!this.round || this.gasReadAt === -Infinity) await this.refreshChain(signal);
    else if (stale) {
      // In the background, bound to the recipient's life rather than to this request.
      this.refreshChain(this.controller?.signal).catch((err) => this.log.warn({ err }, 'chain read failed'));
    }
    if (!this.round) throw new Error('current round unknown');
    return this.round;
  }

  /**
   * Ticket params for `sender`: faceValue = redeem gas × gas price × txCostMultiplier, capped by the sender's
   * max float; winProb = expectedValue / faceValue. The same params are returned until a ticket under them
   * wins, the round changes, they near expiry, or the targets move by more than `reissueOnChangeBps`.
   * @throws PaymentError `SenderUnlocking`; `LowPMBalance` when max float cannot cover a ticket worth
   *   `redeemMargin` × the redemption cost; `RoundNotInitialized` before the first round is initialised
   */
  async ticketParams(sender: Address, signal?: AbortSignal): Promise<TicketParams> {
    const round = await this.chainFresh(signal);
    if (/^0x0{64}$/.test(round.blockHash)) {
      throw new PaymentError(
        'RoundNotInitialized',
        `Round ${round.round} has no block hash: no round has been initialised yet, so no ticket could be redeemed.`,
        { round: round.round },
      );
    }
    const key = sender.toLowerCase();
    const state = await this.senderState(sender, key, signal);
    if (state.withdrawRound !== 0n) {
      throw new PaymentError(
        'SenderUnlocking',
        `Sender ${key} is unlocking its deposit (withdraw round ${state.withdrawRound}); cancel the unlock to pay.`,
        { sender: key, withdrawRound: state.withdrawRound },
      );
    }
    const txCost = this.redeemGas * this.gasPrice;
    const target = mulRatio(txCost, this.options.txCostMultiplier);
    const maxFloat = this.monitor.maxFloat(key) ?? 0n;
    const faceValue = target < maxFloat ? target : maxFloat;
    const minFaceValue = mulRatio(txCost, this.options.redeemMargin);
    if (faceValue <= 0n || faceValue < minFaceValue) {
      throw new PaymentError(
        'LowPMBalance',
        // What the sender holds is not told (issue 9 §1: no balance in any text), only what a ticket needs.
        `The reserve of sender ${key} this orchestrator can claim (after its pending tickets) cannot pay a ` +
          `ticket worth ${minFaceValue} wei, the least that pays for its redemption. Fund the reserve.`,
        { sender: key, txCost, required: minFaceValue },
      );
    }
    const winProb = winProbFor(this.options.expectedValue, faceValue);
    const now = this.now();
    const cur = this.current.get(key);
    if (cur && this.reusable(cur, round, faceValue, winProb, now)) return cur.params;

    const params: Omit<TicketParams, 'recipientRandHash'> = {
      recipient: this.address,
      sender,
      faceValue,
      winProb,
      seed: bytesToHex(randomBytes(32)),
      creationRound: round.round,
      creationRoundBlockHash: round.blockHash,
      expirationRound: round.round + BigInt(this.options.paramsValidityRounds),
      expiresAt: now + this.options.paramsTtlMs,
    };
    const rand = this.deriveRand(params);
    const full: TicketParams = { ...params, recipientRandHash: bytesToHex(keccak256Into(rand)) };
    const rec = this.record(full, rand, -1n);
    this.current.set(key, rec);
    this.stats.paramsIssued++;
    return full;
  }

  private reusable(
    cur: ParamsRecord,
    round: RoundInfo,
    faceValue: bigint,
    winProb: bigint,
    now: number,
  ): boolean {
    const p = cur.params;
    if (cur.retired || p.creationRound !== round.round || p.expiresAt - now <= this.options.reissueBeforeMs)
      return false;
    const bps = BigInt(this.options.reissueOnChangeBps);
    const near = (a: bigint, b: bigint) => (a > b ? a - b : b - a) * 10_000n <= b * bps;
    return near(p.faceValue, faceValue) && near(p.winProb, winProb);
  }

  /** recipientRand = HMAC-SHA256(secret, chain ‖ broker ‖ recipient ‖ sender ‖ seed ‖ every param field). */
  private deriveRand(p: Omit<TicketParams, 'recipientRandHash'>): Uint8Array {
    const msg = new Uint8Array(this.hmacPrefix.length + 20 + 32 * 7 + 8);
    let o = 0;
    msg.set(this.hmacPrefix, o);
    o += this.hmacPrefix.length;
    msg.set(hexToBytes(p.sender), o);
    o += 20;
    msg.set(hexToBytes(p.seed), o);
    o += 32;
    writeUint256(msg, o, p.faceValue);
    o += 32;
    writeUint256(msg, o, p.winProb);
    o += 32;
    writeUint256(msg, o, p.creationRound);
    o += 32;
    msg.set(hexToBytes(p.creationRoundBlockHash), o);
    o += 32;
    writeUint256(msg, o, p.expirationRound);
    o += 32;
    o += 32; // reserved (zero): room for a price commitment without changing the layout
    new DataView(msg.buffer).setBigUint64(o, BigInt(p.expiresAt));
    return new Uint8Array(createHmac('sha256', this.deps.secret).update(msg).digest());
  }

  private record(params: TicketParams, rand: Uint8Array, floor: bigint): ParamsRecord {
    const norm: TicketParams = {
      ...params,
      recipientRandHash: params.recipientRandHash.toLowerCase() as Hex,
      seed: params.seed.toLowerCase() as Hex,
      creationRoundBlockHash: params.creationRoundBlockHash.toLowerCase() as Hex,
    };
    const winBuf = Buffer.alloc(97);
    winBuf.set(rand, 65);
    const winProbBytes = new Uint8Array(32);
    writeUint256(winProbBytes, 0, norm.winProb);
    const rec: ParamsRecord = {
      params: norm,
      senderKey: norm.sender.toLowerCase(),
      senderBytes: hexToBytes(norm.sender),
      randHashKey: norm.recipientRandHash,
      rand: BigInt(bytesToHex(rand)),
      prepared: this.hasher.prepare(paymentTicket(norm, 0n)),
      winBuf,
      sig64: winBuf.subarray(0, 64),
      winProbBytes,
      ev: (norm.faceValue * norm.winProb) >> 256n,
      nonces: new NonceWindow(this.options.nonceWindow, floor),
      retired: false,
    };
    this.records.set(rec.randHashKey, rec);
    return rec;
  }

  private refuse(code: PaymentErrorCode, message: string, details: Record<string, unknown>): never {
    throw new PaymentError(code, message, details);
  }

  /** Payment-level checks that need no chain read: shape, recipient, commitment. */
  private admit(payment: Payment, senderKey: string): ParamsRecord {
    const p = payment?.params;
    const tickets = payment?.tickets;
    if (!p || typeof p !== 'object' || !Array.isArray(tickets) || typeof payment.sender !== 'string') {
      this.refuse('InvalidPayment', 'Malformed payment: sender, params and tickets are required.', {
        sender: senderKey,
      });
    }
    if (tickets.length === 0 || tickets.length > this.options.maxTicketsPerPayment) {
      this.refuse(
        'InvalidPayment',
        `A payment carries 1 to ${this.options.maxTicketsPerPayment} tickets, not ${tickets.length}.`,
        { sender: senderKey, tickets: tickets.length },
      );
    }
    if (lower(p.recipient) !== this.addressKey) {
      this.refuse(
        'InvalidRecipient',
        `Tickets name recipient ${String(p.recipient)}, this is ${this.address}.`,
        {
          sender: senderKey,
          recipient: p.recipient,
        },
      );
    }
    const randKey = lower(p.recipientRandHash);
    let rec = this.records.get(randKey);
    if (rec) {
      const q = rec.params;
      if (
        rec.senderKey !== senderKey ||
        lower(p.sender) !== senderKey ||
        p.faceValue !== q.faceValue ||
        p.winProb !== q.winProb ||
        p.creationRound !== q.creationRound ||
        p.expirationRound !== q.expirationRound ||
        p.expiresAt !== q.expiresAt ||
        lower(p.seed) !== q.seed ||
        lower(p.creationRoundBlockHash) !== q.creationRoundBlockHash
      ) {
        this.badCommitment(senderKey, 'params differ from those committed to');
      }
    } else {
      rec = this.verifyUnknown(p, senderKey, randKey);
    }
    return rec;
  }

  /**
   * Whether params this recipient issued to this sender still take tickets: not retired by a win, not expired.
   * Refusals here are the ordinary race of segments in flight under one params set (one wins, the other's
   * params are retired; a round passes): they cost no signature recovery and are not charged to any budget, or
   * an honest broadcaster with two segments in flight would be refused for a while (found by the chaos tests).
   */
  private checkIssued(rec: ParamsRecord, senderKey: string, now: number): void {
    if (rec.retired)
      this.badCommitment(senderKey, 'recipientRand was revealed by a winning ticket; use the fresh params');
    this.checkExpiry(rec.params, senderKey, now);
  }

  /** Params not in memory (issued before a restart, or swept): re-derive the rand and check the commitment. */
  private verifyUnknown(p: TicketParams, senderKey: string, randKey: string): ParamsRecord {
    const wellFormed =
      typeof p.sender === 'string' &&
      p.sender.toLowerCase() === senderKey &&
      /^0x[0-9a-fA-F]{40}$/.test(p.sender) &&
      typeof p.faceValue === 'bigint' &&
      p.faceValue > 0n &&
      p.faceValue <= U256_MAX &&
      typeof p.winProb === 'bigint' &&
      p.winProb > 0n &&
      p.winProb <= U256_MAX &&
      typeof p.creationRound === 'bigint' &&
      p.creationRound >= 0n &&
      p.creationRound <= U256_MAX &&
      typeof p.expirationRound === 'bigint' &&
      p.expirationRound >= 0n &&
      p.expirationRound <= U256_MAX &&
      Number.isSafeInteger(p.expiresAt) &&
      p.expiresAt >= 0 &&
      HASH_RE.test(p.seed) &&
      HASH_RE.test(p.recipientRandHash) &&
      HASH_RE.test(p.creationRoundBlockHash);
    if (!wellFormed) this.badCommitment(senderKey, 'params are malformed or issued to another sender');
    const rand = this.deriveRand(p);
    if (bytesToHex(keccak256Into(rand)) !== randKey)
      this.badCommitment(senderKey, 'not a commitment of this orchestrator');
    if (this.deps.store.isRandRetired(randKey)) {
      this.badCommitment(senderKey, 'recipientRand was revealed by a winning ticket; use the fresh params');
    }
    return this.record(p, rand, this.loadedMarks.get(randKey) ?? -1n);
  }

  private badCommitment(senderKey: string, why: string): never {
    this.refuse(
      'InvalidRecipientRandHash',
      `Unknown or retired recipientRandHash: ${why}. Ask for fresh params.`,
      {
        sender: senderKey,
        reason: why,
      },
    );
  }

  private checkExpiry(p: TicketParams, senderKey: string, now: number): void {
    const round = this.round;
    if (!round) return; // start() reads the round; unreachable once started
    if (p.creationRound > round.round) {
      this.refuse(
        'InvalidTicketExpiry',
        `Creation round ${p.creationRound} is ahead of round ${round.round}.`,
        {
          sender: senderKey,
          creationRound: p.creationRound,
          currentRound: round.round,
        },
      );
    }
    const known = this.roundHashes.get(p.creationRound);
    if (known !== undefined && known !== p.creationRoundBlockHash) {
      this.refuse(
        'InvalidTicketExpiry',
        `Round ${p.creationRound} started at block ${known}, not ${p.creationRoundBlockHash} (reorganised).`,
        { sender: senderKey, creationRound: p.creationRound },
      );
    }
    if (round.round > p.expirationRound || now > p.expiresAt) {
      this.refuse('TicketParamsExpired', 'Ticket params expired; use the params of the last reply.', {
        sender: senderKey,
        expirationRound: p.expirationRound,
        expiresAt: p.expiresAt,
        currentRound: round.round,
      });
    }
    if (p.creationRound + BigInt(this.options.ticketValidityRounds) <= round.round) {
      this.refuse('InvalidTicketExpiry', `Tickets of round ${p.creationRound} can no longer be redeemed.`, {
        sender: senderKey,
        creationRound: p.creationRound,
        currentRound: round.round,
      });
    }
  }

  /**
   * The sender's chain data: read when never seen; when stale, the cached copy is used and a re-read starts
   * in the background, so no payment waits on the chain for a sender it already knows.
   */
  private async senderState(sender: Address, senderKey: string, signal?: AbortSignal): Promise<SenderState> {
    const state = this.monitor.get(senderKey);
    if (!state) return this.monitor.ensure(sender, signal);
    if (this.monitor.isStale(state)) {
      this.monitor
        .refresh(sender, this.controller?.signal)
        .catch((err) => this.log.warn({ err, sender: senderKey }, 'sender read failed'));
    }
    return state;
  }

  /** Sender-level checks against (cached) chain data. */
  private async checkSender(
    sender: Address,
    senderKey: string,
    rec: ParamsRecord,
    signal?: AbortSignal,
  ): Promise<void> {
    const state = await this.senderState(sender, senderKey, signal);
    if (state.withdrawRound !== 0n) {
      this.refuse(
        'SenderUnlocking',
        `Sender ${senderKey} is unlocking its deposit; cancel the unlock to pay.`,
        {
          sender: senderKey,
          withdrawRound: state.withdrawRound,
        },
      );
    }
    const coverage = this.monitor.coverage(senderKey) ?? 0n;
    if (rec.params.faceValue > coverage) {
      this.refuse(
        'LowPMBalance',
        `The deposit and claimable reserve of sender ${senderKey} cannot cover the face value ` +
          `${rec.params.faceValue}. Fund the deposit or reserve.`,
        { sender: senderKey, faceValue: rec.params.faceValue },
      );
    }
  }

  /**
   * Validates a payment, credits its expected value to the session, and stores its winning tickets durably
   * before returning. Payment-level problems throw a `PaymentError` (nothing credited); problems with single
   * tickets are returned in `errors` and the valid tickets still count. A sender (or, for unknown senders and
   * unauthenticated payments, a remote address) over its error budget gets `TooManyErrors` without any
   * signature being checked, and no payment costs more signature recoveries of invalid tickets than the budget
   * has left: the tickets after that are not looked at (one `TooManyErrors` entry in `errors`).
   */
  async receivePayment(payment: Payment, ctx: PaymentContext, signal?: AbortSignal): Promise<PaymentResult> {
    const now = this.now();
    const senderKey = lower(payment?.sender);
    const budgetKeys = this.budgetKeys(senderKey, ctx);
    const refusedUntil = Math.max(0, ...budgetKeys.map((k) => this.budget.refusedUntil(k, now) ?? 0));
    if (refusedUntil > 0) {
      this.stats.refusedPayments++;
      this.deps.metrics?.ticketsReceived.inc({ result: 'TooManyErrors' }, payment?.tickets?.length ?? 0);
      throw new PaymentError(
        'TooManyErrors',
        `Too many invalid tickets from ${senderKey}; refused until ${new Date(refusedUntil).toISOString()}.`,
        { sender: senderKey, refusedUntil },
      );
    }
    if (!this.round) await this.chainFresh(signal);
    let rec: ParamsRecord;
    let charged = true;
    try {
      rec = this.admit(payment, senderKey);
      charged = false;
      this.checkIssued(rec, senderKey, now);
      charged = true;
      await this.checkSender(payment.sender, senderKey, rec, signal);
    } catch (err) {
      if (err instanceof PaymentError) {
        this.deps.metrics?.ticketsReceived.inc({ result: err.code }, payment?.tickets?.length ?? 0);
        if (charged) this.charge(budgetKeys, senderKey, now, 1);
        await this.attachFreshParams(err, payment.sender, senderKey, signal);
      }
      throw err;
    }

    const tickets = payment.tickets;
    const errors: PaymentError[] = [];
    const winners: { signed: SignedTicket; expiresRound: bigint }[] = [];
    const accepted: AcceptedWinner[] = [];
    // Invalid tickets this payment may cost before its sender is over budget; the rest are not checked.
    const allowance = Math.min(...budgetKeys.map((k) => this.budget.remaining(k, now)));
    let invalid = 0;
    let ok = 0;
    for (let i = 0; i < tickets.length; i++) {
      if (invalid >= allowance) {
        this.stats.refusedPayments++;
        errors.push(
          new PaymentError(
            'TooManyErrors',
            `Too many invalid tickets from ${senderKey}; the ${tickets.length - i} after index ${i - 1} were not checked.`,
            { sender: senderKey, index: i, unchecked: tickets.length - i },
          ),
        );
        break;
      }
      const t = tickets[i] as PaymentTicket;
      const r = this.checkTicket(rec, t);
      if (r === LOSE) {
        ok++;
      } else if (r === WIN) {
        ok++;
        const ticketHash = bytesToHex(this.digest);
        winners.push({
          signed: {
            ticket: paymentTicket(rec.params, t.senderNonce),
            signature: bytesToHex(rec.winBuf.subarray(0, 65)),
            recipientRand: rec.rand,
            ticketHash,
          },
          expiresRound: rec.params.creationRound + BigInt(this.options.ticketValidityRounds),
        });
        accepted.push({ ticketHash, senderNonce: t.senderNonce, faceValue: rec.params.faceValue });
      } else {
        invalid++;
        errors.push(new PaymentError(r, ticketErrorMessage(r), { sender: senderKey, index: i }));
      }
    }

    if (winners.length > 0) {
      // Durable before the reply: the orchestrator acknowledges the segment only after this returns.
      this.deps.store.insertWinningTickets(winners, now);
      this.monitor.addPending(senderKey, rec.params.faceValue * BigInt(winners.length));
      // The rand will be revealed on chain: later tickets under it could be chosen to lose (THREATS.md 4).
      rec.retired = true;
      if (this.current.get(senderKey) === rec) this.current.delete(senderKey);
      this.stats.winningTickets += winners.length;
      this.deps.metrics?.winningTickets.inc(winners.length);
      this.deps.metrics?.winningFaceValue.inc(Number(rec.params.faceValue) * winners.length);
      this.log.info(
        { sender: senderKey, count: winners.length, faceValue: rec.params.faceValue.toString() },
        'winning tickets stored',
      );
      this.deps.queue?.notify();
    }
    this.stats.ticketsAccepted += ok;
    const credited = BigInt(ok) * rec.ev;
    const balance =
      ok > 0
        ? this.ledger.credit(senderKey, ctx.session, credited)
        : this.ledger.balance(senderKey, ctx.session);
    if (this.deps.metrics) {
      if (ok > 0) this.deps.metrics.ticketsReceived.inc({ result: 'accepted' }, ok);
      for (const e of errors) this.deps.metrics.ticketsReceived.inc({ result: e.code });
    }
    if (invalid > 0) this.charge(budgetKeys, senderKey, now, invalid);

    const result: PaymentResult = { accepted: ok, credited, balance, winners: accepted, errors };
    try {
      result.params = await this.ticketParams(payment.sender, signal);
    } catch (err) {
      result.paramsError = err as Error;
    }
    return result;
  }

  /**
   * Refusals that new params cure carry them in `details.params`, so the sender re-signs at once instead of
   * losing the segment (a round boundary expires every params). Only for senders already known: an unknown
   * one would cost a chain read per forged payment.
   */
  private async attachFreshParams(
    err: PaymentError,
    sender: Address,
    senderKey: string,
    signal?: AbortSignal,
  ) {
    const cured = ['TicketParamsExpired', 'InvalidRecipientRandHash', 'InvalidTicketExpiry'];
    if (!cured.includes(err.code) || !this.monitor.get(senderKey)) return;
    try {
      err.details.params = await this.ticketParams(sender, signal);
    } catch {
      // The refusal stands on its own; the sender asks for params again.
    }
  }

  /**
   * Whose error budget a payment's errors count against: its sender's (a new connection does not reset it), and
   * its remote address's when the sender is not known yet (fresh keys cost a chain read each) or the payment
   * is not authenticated; an unauthenticated payment never counts against the sender it names.
   */
  private budgetKeys(senderKey: string, ctx: PaymentContext): string[] {
    const keys: string[] = [];
    if (ctx.authenticated !== false) keys.push(`sender:${senderKey}`);
    if (ctx.peer !== undefined && (ctx.authenticated === false || !this.monitor.get(senderKey))) {
      keys.push(`peer:${ctx.peer}`);
    }
    if (keys.length === 0) keys.push(`sender:${senderKey}`);
    return keys;
  }

  private charge(budgetKeys: string[], senderKey: string, now: number, count: number): void {
    for (const key of budgetKeys) {
      if (this.budget.record(key, now, count)) {
        this.deps.metrics?.sendersRefused.inc();
        this.log.warn(
          { sender: senderKey, key, refuseMs: this.options.errorBudget.refuseMs },
          'error budget exceeded; refusing these payments for a while',
        );
      }
    }
  }

  /** The hot path: one ticket under checked params. Returns LOSE, WIN, or why it is refused. */
  private checkTicket(rec: ParamsRecord, t: PaymentTicket): typeof LOSE | typeof WIN | PaymentErrorCode {
    const n = t?.senderNonce;
    if (typeof n !== 'bigint' || n < 0n || n > U256_MAX) return 'InvalidSenderNonce';
    if (rec.nonces.has(n)) return 'NonceAlreadySeen';
    const buf = rec.winBuf;
    const sig = t.signature;
    if (typeof sig === 'string') {
      if (sig.length !== 132 || sig.charCodeAt(0) !== 48 || (sig.charCodeAt(1) | 0x20) !== 120)
        return 'InvalidSignature';
      if (buf.write(sig.slice(2), 0, 65, 'hex') !== 65) return 'InvalidSignature';
    } else if (sig instanceof Uint8Array && sig.length === 65) {
      buf.set(sig, 0);
    } else {
      return 'InvalidSignature';
    }
    if (!isCanonicalSignature(buf, 0)) return 'InvalidSignature';
    this.hasher.digest(rec.prepared, n, this.digest);
    this.stats.recoveries++;
    this.deps.metrics?.signatureRecoveries?.inc();
    try {
      secp256k1.ecdsaRecover(rec.sig64, (buf[64] as number) - 27, this.digest, false, this.pub);
    } catch {
      return 'InvalidSignature';
    }
    if (!this.signedBy(rec)) return 'InvalidSignature';
    rec.nonces.add(n);
    keccak256Into(buf, 0, 97, this.winHash, 0);
    return lessThan(this.winHash, rec.winProbBytes) ? WIN : LOSE;
  }

  /** Whether the key just recovered into `this.pub` is the sender's; caches the key once it matched. */
  private signedBy(rec: ParamsRecord): boolean {
    const pub = this.pub;
    const known = this.pubkeys.get(rec.senderKey);
    if (known) {
      for (let i = 0; i < 64; i++) if (pub[i + 1] !== known[i]) return false;
      return true;
    }
    keccak256Into(pub, 1, 64, this.addrHash, 0);
    const want = rec.senderBytes;
    for (let i = 0; i < 20; i++) if (this.addrHash[i + 12] !== want[i]) return false;
    this.pubkeys.set(rec.senderKey, pub.slice(1));
    return true;
  }
}

function ticketErrorMessage(code: PaymentErrorCode): string {
  switch (code) {
    case 'InvalidSenderNonce':
      return 'senderNonce must be a uint256.';
    case 'NonceAlreadySeen':
      return 'This senderNonce was already used under this recipientRand; count nonces up per params.';
    case 'InvalidSignature':
      return 'The signature is not a canonical 65-byte low-s signature of this ticket by its sender.';
    default:
      return code;
  }
}
