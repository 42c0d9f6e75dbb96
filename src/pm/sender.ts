import secp256k1 from 'secp256k1';
import { type Address, bytesToHex, getAddress, keccak256 } from 'viem';
import { type Logger, silentLogger } from '../node/logger.js';
import { type UnsafeTicketParamsCode, UnsafeTicketParamsError } from './errors.js';
import { type PreparedTicket, TicketHasher } from './hasher.js';
import type { PMMetrics } from './metrics.js';
import { defaultSenderOptions, expectedValueCap, type SenderOptions, withDefaults } from './options.js';
import { signDigestBytes, type TicketDomain, ticketExpectedValue } from './ticket.js';
import {
  type Payment,
  type PaymentTicket,
  paymentTicket,
  type SenderFunds,
  type TicketParams,
} from './types.js';

export interface SenderInit extends Partial<SenderOptions> {
  /** The broadcaster's 32-byte secp256k1 private key; its address is the ticket sender. */
  privateKey: Uint8Array;
  /** Chain id and TicketBroker the tickets are for. */
  domain: TicketDomain;
}

export interface SenderDeps {
  funds: SenderFunds;
  logger?: Logger;
  metrics?: PMMetrics;
  now?: () => number;
}

export interface CreatePaymentOptions {
  /** The orchestrator's address as the registry lists it; params naming another recipient are refused. */
  recipient?: Address;
  /**
   * Keep a running credit for this session, as the recipient's ledger does: the surplus of earlier payments
   * (Σ EV − Σ fees) reduces the tickets sent, so rounding up to whole tickets does not overpay forever. When
   * the surplus covers the fee the payment has no tickets; send none (the recipient refuses empty payments).
   */
  session?: string;
  /**
   * The orchestrator's quoted price, wei per pixel: without a hard `maxExpectedValue`, the EV cap follows it
   * ({@link expectedValueCap}). Unknown: the cap is `expectedValueFloor`.
   */
  pricePerPixel?: bigint;
}

interface RandState {
  next: bigint;
  prepared: PreparedTicket;
  expiresAt: number;
}

/**
 * The broadcaster side: checks the params an orchestrator offers, then signs enough tickets for a segment's
 * expected fee, with a nonce counter per recipientRandHash (starting at 1: proto3 cannot tell 0 from absent).
 */
export class Sender {
  readonly options: SenderOptions;
  readonly address: Address;
  readonly domain: TicketDomain;
  private readonly key: Uint8Array;
  private readonly deps: SenderDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly hasher: TicketHasher;
  private readonly rands = new Map<string, RandState>();
  private readonly credit = new Map<string, bigint>();
  private readonly digest = new Uint8Array(32);
  private readonly sig = new Uint8Array(65);

  constructor(init: SenderInit, deps: SenderDeps) {
    const { privateKey, domain, ...rest } = init;
    if (!secp256k1.privateKeyVerify(privateKey)) throw new RangeError('invalid sender private key');
    this.options = withDefaults(defaultSenderOptions, rest);
    this.key = new Uint8Array(privateKey);
    const pub = secp256k1.publicKeyCreate(this.key, false);
    this.address = getAddress(`0x${keccak256(pub.subarray(1)).slice(-40)}`);
    this.domain = domain;
    this.deps = deps;
    this.log = (deps.logger ?? silentLogger).child({ module: 'pm-sender' });
    this.now = deps.now ?? Date.now;
    this.hasher = new TicketHasher(domain);
  }

  private unsafe(code: UnsafeTicketParamsCode, message: string, details: Record<string, unknown>): never {
    this.deps.metrics?.paramsRefused.inc({ code });
    // Params expire at every round boundary in normal operation; the caller fetches fresh ones.
    this.log[code === 'TicketParamsExpiring' ? 'debug' : 'warn']({ code, ...details }, message);
    throw new UnsafeTicketParamsError(code, message, details);
  }

  /**
   * Checks params before signing against them and returns a ticket's expected value, wei.
   * @throws UnsafeTicketParamsError `InvalidTicketParams`, `InvalidRecipient`, `FaceValueTooHigh` (above
   *   deposit / depositMultiplier), `ExpectedValueTooHigh` (above {@link expectedValueCap}), `TicketParamsExpiring`
   */
  checkParams(params: TicketParams, opts: CreatePaymentOptions = {}): bigint {
    const recipient = params.recipient;
    if (opts.recipient !== undefined && recipient.toLowerCase() !== opts.recipient.toLowerCase()) {
      this.unsafe('InvalidRecipient', `Params pay ${recipient}, not the orchestrator ${opts.recipient}.`, {
        recipient,
        expected: opts.recipient,
      });
    }
    if (params.sender.toLowerCase() !== this.address.toLowerCase()) {
      this.unsafe('InvalidTicketParams', `Params were issued to ${params.sender}, not to ${this.address}.`, {
        recipient,
        sender: params.sender,
      });
    }
    if (params.faceValue <= 0n || params.winProb <= 0n) {
      this.unsafe('InvalidTicketParams', 'Params with a zero face value or win probability pay nothing.', {
        recipient,
        faceValue: params.faceValue,
        winProb: params.winProb,
      });
    }
    const deposit = this.deps.funds.deposit();
    const maxFaceValue =
      (deposit * 10_000n) / BigInt(Math.max(1, Math.round(this.options.depositMultiplier * 10_000)));
    if (params.faceValue > maxFaceValue) {
      this.unsafe(
        'FaceValueTooHigh',
        `Face value ${params.faceValue} wei exceeds this sender's limit of ${maxFaceValue} wei (deposit ${deposit} / ` +
          `${this.options.depositMultiplier}); fund the deposit or use another orchestrator.`,
        { recipient, faceValue: params.faceValue, maxFaceValue, deposit },
      );
    }
    const ev = ticketExpectedValue(params.faceValue, params.winProb);
    if (ev === 0n) {
      this.unsafe('InvalidTicketParams', 'Params whose tickets are worth 0 wei on average pay nothing.', {
        recipient,
      });
    }
    const cap = expectedValueCap(this.options, opts.pricePerPixel);
    if (ev > cap) {
      const why =
        this.options.maxExpectedValue !== undefined
          ? 'the configured maxExpectedValue'
          : opts.pricePerPixel === undefined || opts.pricePerPixel <= 0n
            ? 'the EV floor (price unknown)'
            : `${this.options.maxExpectedValueSegments} reference segments' fees at its price of ${opts.pricePerPixel} wei/pixel`;
      this.unsafe(
        'ExpectedValueTooHigh',
        `A ticket's expected value ${ev} wei exceeds this sender's cap of ${cap} wei (${why}); raise the cap ` +
          'or use another orchestrator.',
        {
          recipient,
          expectedValue: ev,
          maxExpectedValue: cap,
          ...(opts.pricePerPixel !== undefined ? { pricePerPixel: opts.pricePerPixel } : {}),
        },
      );
    }
    const left = params.expiresAt - this.now();
    const round = this.deps.funds.currentRound?.();
    if (left < this.options.minParamsLifetimeMs || (round !== undefined && round > params.expirationRound)) {
      this.unsafe('TicketParamsExpiring', 'Params expire too soon to sign against; ask for fresh ones.', {
        recipient,
        msLeft: left,
        expirationRound: params.expirationRound,
        currentRound: round,
      });
    }
    return ev;
  }

  /**
   * Signs tickets under `params` worth at least `expectedFeeWei` in expectation (Σ EV ≥ fee, at least one
   * ticket without a session): the fee of a segment is price × pixels of the renditions requested.
   * @throws UnsafeTicketParamsError as `checkParams`, or `TooManyTickets` when the fee needs more tickets than
   *   `maxTicketsPerPayment`
   */
  createPayment(params: TicketParams, expectedFeeWei: bigint, opts: CreatePaymentOptions = {}): Payment {
    const ev = this.checkParams(params, opts);
    const surplus = opts.session === undefined ? 0n : (this.credit.get(opts.session) ?? 0n);
    const need = expectedFeeWei - surplus;
    let count = need > 0n ? (need + ev - 1n) / ev : 0n;
    if (opts.session === undefined && count === 0n) count = 1n;
    if (count > BigInt(this.options.maxTicketsPerPayment)) {
      this.unsafe(
        'TooManyTickets',
        `A fee of ${expectedFeeWei} wei needs ${count} tickets of ${ev} wei; the limit is ${this.options.maxTicketsPerPayment}.`,
        { recipient: params.recipient, count, expectedValue: ev },
      );
    }
    const n = Number(count);
    const key = params.recipientRandHash.toLowerCase();
    let st = this.rands.get(key);
    if (!st) {
      st = {
        next: 1n,
        prepared: this.hasher.prepare(paymentTicket(params, 0n)),
        expiresAt: params.expiresAt,
      };
      this.rands.set(key, st);
    }
    const tickets: PaymentTicket[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const senderNonce = st.next++;
      this.hasher.digest(st.prepared, senderNonce, this.digest);
      tickets[i] = { senderNonce, signature: bytesToHex(signDigestBytes(this.digest, this.key, this.sig)) };
    }
    if (opts.session !== undefined) this.credit.set(opts.session, surplus + count * ev - expectedFeeWei);
    this.deps.metrics?.ticketsSent.inc(n);
    return { sender: this.address, params, tickets };
  }

  /** The session's running credit as this sender counts it (Σ EV sent − Σ fees), wei. */
  sessionCredit(session: string): bigint {
    return this.credit.get(session) ?? 0n;
  }

  /** Forgets a session's running credit (the stream ended, or the recipient reported another balance). */
  resetSession(session: string, credit?: bigint): void {
    if (credit === undefined) this.credit.delete(session);
    else this.credit.set(session, credit);
  }

  /** Forgets nonce counters of params expired at `now`. */
  sweep(now = this.now()): void {
    for (const [k, st] of this.rands) if (st.expiresAt < now) this.rands.delete(k);
  }
}
