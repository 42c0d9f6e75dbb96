import { isIP } from 'node:net';
import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { type Address, bytesToHex, type Hex, hexToBytes } from 'viem';
import { SegmentFormatError } from '../media/errors.js';
import type { TsAnalysis } from '../media/mpegts.js';
import { defaultSegmentLimits, type SegmentLimits } from '../media/options.js';
import { type Profile, validateProfiles } from '../media/profiles.js';
import { type SegmentTranscoder, segmentFacts, validateSegment } from '../media/transcode.js';
import { StreamflowError } from '../node/errors.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { ErrorBudget } from '../pm/error-budget.js';
import { InsufficientCreditError } from '../pm/errors.js';
import { feeFor } from '../pm/ledger.js';
import { defaultErrorBudgetOptions, type ErrorBudgetOptions } from '../pm/options.js';
import type { Recipient } from '../pm/recipient.js';
import type { TicketParams } from '../pm/types.js';
import { addressToBytes, renditionToProto, ticketParamsToProto, uintToBytes } from '../rpc/convert.js';
import { toWireErrorMessage, WireError } from '../rpc/errors.js';
import {
  type GetOrchestratorInfoRequest,
  type Orchestrator,
  type OrchestratorInfo,
  OrchestratorInfoSchema,
  type TranscodeReply,
  TranscodeReplySchema,
  type TranscodeRequest,
} from '../rpc/gen/streamflow/v1/orchestrator_pb.js';
import { type CheckedTranscodeRequest, checkInfoRequest, checkTranscodeRequest } from '../rpc/limits.js';
import { expectedPixels, perPixel, renditionsFee } from '../rpc/pricing.js';
import { type SignedTranscodeRequest, TranscodeRequestGuard } from '../rpc/request-auth.js';
import { PEER_HEADER } from '../rpc/server.js';
import {
  contentHash,
  type DigestSigner,
  orchestratorInfoDigest,
  receiptDigest,
  signWireDigest,
} from '../rpc/signing.js';
import type { OrchestratorMetrics } from './metrics.js';
import type { OrchestratorState } from './state.js';

/** What the job service advertises and charges. */
export interface JobServiceOptions {
  /** The URI in the ServiceRegistry; echoed (and signed) in every info reply. */
  serviceUri: string;
  /** Wei per output pixel. */
  pricePerPixel: bigint;
  /** Wei per output pixel for broadcasters asking for a region, by region name. */
  regionPrices: Readonly<Record<string, bigint>>;
  /** Service names offered, e.g. `transcode/h264`. */
  services: readonly string[];
  /** Region names served. */
  regions: readonly string[];
  /**
   * Segments one sender (`payment.sender`, authenticated) may have in work at once; more get
   * `OrchestratorBusy` for that sender only, so one sender cannot hold the whole pool. A broadcaster's
   * stream keeps at most 2 segments in flight by default (its `concurrency`), redundancy 1. @default 2
   */
  maxSegmentsPerSender?: number;
  /**
   * Debt a session may run up when a segment's renditions came out larger than the fee required before
   * work, as a share of that segment's expected fee; beyond it the renditions are withheld
   * (`InsufficientCredit`). Honest renditions exceed the estimate by a frame or two at most. @default 0.5
   */
  maxDebtShare?: number;
  /**
   * Refused request signatures tolerated per remote address before that address is refused
   * (`TooManyErrors`) without a signature check. @default pm's error budget (20 per minute, 5 min)
   */
  requestErrorBudget?: Partial<ErrorBudgetOptions>;
  /**
   * How long a sender whose request signature was valid stays known at the remote address it came from,
   * milliseconds. A known sender's requests are still verified (one signature recovery each) while that
   * address is refused for bad signatures, so an attacker behind the same NAT or loopback cannot lock an honest
   * broadcaster out; unknown senders from a refused address get `TooManyErrors` without a check. @default 3_600_000
   */
  knownSenderMs?: number;
  /** (remote address, sender) pairs remembered as known; the least recently seen is forgotten first. @default 10_000 */
  maxKnownSenders?: number;
}

/** Defaults of the optional {@link JobServiceOptions}. */
export const defaultJobServiceOptions = Object.freeze({
  maxSegmentsPerSender: 2,
  maxDebtShare: 0.5,
  requestErrorBudget: defaultErrorBudgetOptions,
  knownSenderMs: 3_600_000,
  maxKnownSenders: 10_000,
});

/** Checks a broadcaster's signed challenge; `ChallengeGuard` from src/rpc/challenge.ts. */
export interface ChallengeChecker {
  check(req: {
    broadcaster: Address;
    challenge: Hex;
    issuedAtMs: bigint;
    signature: Hex | Uint8Array;
    orchestrator: Address;
  }): Promise<Address>;
}

export interface JobServiceDeps {
  /** The orchestrator's on-chain address: what broadcasters trust. */
  address: Address;
  /** Signs info replies and receipts with the key of `address`. */
  signer: DigestSigner;
  recipient: Pick<Recipient, 'ticketParams' | 'receivePayment' | 'ledger'>;
  transcoder: SegmentTranscoder;
  /** Limits segments are checked against before any work; the transcoder's own, so it need not check again. */
  segmentLimits?: SegmentLimits;
  /** Segments the transcoder pool could take now. */
  capacityLeft: () => number;
  challenges: ChallengeChecker;
  /** Checks every `Transcode` request's signature; built with defaults when not given. */
  requests?: { check(req: SignedTranscodeRequest): Promise<{ sender: Address; segmentHash: Hex }> };
  state?: OrchestratorState;
  now?: () => number;
  logger?: Logger;
  metrics?: OrchestratorMetrics;
}

/** Broadcasters whose quoted price is remembered. */
const MAX_QUOTES = 100_000;

/** Codes a `Transcode` reply carries in `TranscodeReply.error` (with fresh params) rather than as an RPC error. */
function replyCode(err: StreamflowError): string {
  if (err instanceof SegmentFormatError) return 'SegmentFormatDidntMatchJobInputParams';
  if (err.code.startsWith('Ffmpeg')) return 'TranscodeFailed';
  return err.code;
}

/**
 * The orchestrator's side of job negotiation (issue 5 §1–2): `GetOrchestratorInfo` answers a signed, fresh
 * challenge with price, ticket params and capacity, all signed; `Transcode` takes the payment, checks that
 * the session's credit covers the segment's expected fee, transcodes on the pool, debits the fee of the
 * pixels actually returned and replies with the renditions and a signed receipt. Expected refusals
 * (`LowPMBalance`, `OrchestratorBusy`, `InsufficientCredit`, `SegmentFormatDidntMatchJobInputParams`, pm codes)
 * travel in the reply with fresh ticket params, so the broadcaster can pay again or move on at once.
 */
export class JobService {
  readonly options: JobServiceOptions;
  private readonly deps: JobServiceDeps;
  private readonly log: Logger;
  /** Price last quoted to each broadcaster (its region's), lower-case address → wei per pixel. */
  private readonly quoted = new Map<string, bigint>();
  /** Fee a session owed beyond its credit when a segment came out larger than expected, wei. */
  private readonly debts = new Map<string, bigint>();
  /** Segments in work per sender (lower-case address). */
  private readonly inFlight = new Map<string, number>();
  private readonly requests: NonNullable<JobServiceDeps['requests']>;
  /** Refused request signatures per remote address. */
  private readonly requestBudget: ErrorBudget;
  /**
   * `remote sender` (both lower-case) → when that sender's request signature from that address was last
   * valid, unix ms; in order of that time (re-inserted on each success), so the oldest come first.
   */
  private readonly knownSenders = new Map<string, number>();
  private readonly knownSenderMs: number;
  private readonly maxKnownSenders: number;
  private readonly now: () => number;
  private budgetSweptAt = 0;

  constructor(options: JobServiceOptions, deps: JobServiceDeps) {
    if (options.pricePerPixel < 0n) throw new RangeError('pricePerPixel must be ≥ 0');
    const perSender = options.maxSegmentsPerSender ?? defaultJobServiceOptions.maxSegmentsPerSender;
    if (!Number.isSafeInteger(perSender) || perSender < 1) {
      throw new RangeError(`maxSegmentsPerSender must be a positive integer, got ${perSender}`);
    }
    const share = options.maxDebtShare ?? defaultJobServiceOptions.maxDebtShare;
    if (!(share >= 0 && share <= 10)) throw new RangeError(`maxDebtShare must be within 0–10, got ${share}`);
    this.options = options;
    this.deps = deps;
    this.log = (deps.logger ?? silentLogger).child({ module: 'orchestrator-jobs' });
    this.now = deps.now ?? Date.now;
    this.requests = deps.requests ?? new TranscodeRequestGuard({}, { now: this.now });
    this.knownSenderMs = options.knownSenderMs ?? defaultJobServiceOptions.knownSenderMs;
    this.maxKnownSenders = options.maxKnownSenders ?? defaultJobServiceOptions.maxKnownSenders;
    if (!(this.knownSenderMs >= 0))
      throw new RangeError(`knownSenderMs must be ≥ 0, got ${this.knownSenderMs}`);
    if (!Number.isSafeInteger(this.maxKnownSenders) || this.maxKnownSenders < 0) {
      throw new RangeError(`maxKnownSenders must be a non-negative integer, got ${this.maxKnownSenders}`);
    }
    this.requestBudget = new ErrorBudget({
      ...defaultJobServiceOptions.requestErrorBudget,
      ...options.requestErrorBudget,
    });
  }

  /** Restores a session's debt after a restart (a negative stored balance). */
  restoreDebt(sender: string, session: string, wei: bigint): void {
    if (wei > 0n) this.debts.set(`${sender.toLowerCase()}/${session}`, wei);
  }

  /** Price for a broadcaster asking for `region` (empty: any). */
  priceFor(region: string): bigint {
    // Own properties only: a region named `constructor` or `__proto__` is a region, not a price.
    return Object.hasOwn(this.options.regionPrices, region)
      ? (this.options.regionPrices[region] as bigint)
      : this.options.pricePerPixel;
  }

  service(): Partial<ServiceImpl<typeof Orchestrator>> {
    return {
      getOrchestratorInfo: (req, ctx) => this.getOrchestratorInfo(req, ctx),
      transcode: (req, ctx) => this.transcode(req, ctx),
    };
  }

  async getOrchestratorInfo(req: GetOrchestratorInfoRequest, ctx: HandlerContext): Promise<OrchestratorInfo> {
    try {
      const info = await this.info(req, ctx);
      this.deps.metrics?.infoRequests.inc({ outcome: 'ok' });
      return info;
    } catch (err) {
      this.deps.metrics?.infoRequests.inc({
        outcome: err instanceof StreamflowError ? err.code : 'Internal',
      });
      throw err;
    }
  }

  private async info(req: GetOrchestratorInfoRequest, ctx: HandlerContext): Promise<OrchestratorInfo> {
    const checked = checkInfoRequest(req);
    const { address } = this.deps;
    const broadcaster = await this.deps.challenges
      .check({ ...checked, orchestrator: address })
      .catch((err: unknown) => {
        // A broadcaster with only a URL (a static list) learns which address to bind its challenge to; the
        // address is public (it is in the ServiceRegistry), so telling it costs nothing.
        if (err instanceof WireError)
          throw new WireError(err.code, err.message, { ...err.details, orchestrator: address });
        throw err;
      });
    if (checked.serviceId !== '' && !this.options.services.includes(checked.serviceId)) {
      throw new WireError(
        'ServiceNotOffered',
        `this orchestrator offers ${this.options.services.join(', ')}, not ${req.serviceId}`,
        { service: req.serviceId },
      );
    }
    if (req.region !== '' && this.options.regions.length > 0 && !this.options.regions.includes(req.region)) {
      throw new WireError(
        'RegionNotServed',
        `this orchestrator serves ${this.options.regions.join(', ')}, not ${req.region}`,
        { region: req.region },
      );
    }
    const price = this.priceFor(req.region);
    const params = await this.deps.recipient.ticketParams(broadcaster, ctx.signal).catch((err: unknown) => {
      if (err instanceof StreamflowError || ctx.signal.aborted) throw err;
      // A chain read failed (RPC outage, timeout): say so with a code the broadcaster can act on, not `Internal`.
      this.log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'ticket params need the chain',
      );
      throw new WireError(
        'ChainUnavailable',
        'this orchestrator cannot read the chain right now; try again shortly or use another orchestrator',
      );
    });
    const challenge = bytesToHex(req.challenge);
    const signature = await signWireDigest(
      this.deps.signer,
      orchestratorInfoDigest({
        address,
        serviceUri: this.options.serviceUri,
        pricePerPixel: price,
        ticketParams: params,
        services: this.options.services,
        regions: this.options.regions,
        challenge,
        broadcaster,
      }),
    );
    // Remembered once the quote is signed: the price its Transcode calls will be charged.
    const who = broadcaster.toLowerCase();
    this.quoted.delete(who);
    this.quoted.set(who, price);
    // Bounded: the oldest quotes go first (a forgotten one falls back to the default price).
    if (this.quoted.size > MAX_QUOTES) this.quoted.delete(this.quoted.keys().next().value as string);
    return create(OrchestratorInfoSchema, {
      address: addressToBytes(address),
      serviceUri: this.options.serviceUri,
      pricePerPixel: uintToBytes(price, 'pricePerPixel'),
      ticketParams: ticketParamsToProto(params),
      capacityLeft: Math.max(0, this.deps.capacityLeft()),
      services: [...this.options.services],
      regions: [...this.options.regions],
      challenge: req.challenge,
      signature: hexToBytes(signature),
    });
  }

  /**
   * Checks, in this order and before any work: the request's fields; the remote address's error budget; the
   * request signature by `payment.sender` (fresh, used once; docs/rpc.md "Sessions"); the sender's segments
   * in work; the payment; the segment's own timestamps; that the session's credit covers the expected fee
   * (never zero for a priced segment) and any debt. Then transcodes, debits the fee of the renditions
   * returned (a small overshoot becomes bounded debt of this authenticated session) and signs a receipt.
   * Unauthenticated requests are RPC errors (`InvalidRequestSignature`, `TooManyErrors`); refusals of an
   * authenticated sender travel in the reply with fresh params where there are any.
   */
  async transcode(req: TranscodeRequest, ctx: HandlerContext): Promise<TranscodeReply> {
    const started = performance.now();
    const job = checkTranscodeRequest(req);
    let profiles: Profile[];
    try {
      profiles = validateProfiles(job.profiles);
    } catch (err) {
      throw new WireError('InvalidMessage', `metadata.profiles: ${(err as Error).message}`, {
        field: 'metadata.profiles',
      });
    }
    const peer = ctx.requestHeader.get(PEER_HEADER) ?? undefined;
    const { sender: signer, segmentHash } = await this.authenticate(req, job, peer);
    const sender = signer.toLowerCase();
    const session = job.streamId;

    const inFlight = this.inFlight.get(sender) ?? 0;
    const perSender = this.options.maxSegmentsPerSender ?? defaultJobServiceOptions.maxSegmentsPerSender;
    if (inFlight >= perSender) {
      return this.refuse(
        new WireError(
          'OrchestratorBusy',
          `this sender already has ${inFlight} segment(s) in work here, the most one sender may; send the next when one is done, or use another orchestrator`,
          { reason: 'senderConcurrency', maxSegmentsPerSender: String(perSender) },
        ),
        undefined,
        job.seq,
      );
    }
    this.inFlight.set(sender, inFlight + 1);
    try {
      return await this.work(req, ctx, { ...job, profiles, sender, session, segmentHash, peer, started });
    } finally {
      const left = (this.inFlight.get(sender) ?? 1) - 1;
      if (left > 0) this.inFlight.set(sender, left);
      else this.inFlight.delete(sender);
    }
  }

  /**
   * The request signature, after the remote address's error budget: a flood of bad signatures costs a map
   * lookup per request once the budget is spent, and a new connection does not reset it. A sender known at
   * this address (a valid request signature from it within `knownSenderMs`) is still checked while the address
   * is refused: one recovery per request, and a forgery naming it fails the signature, so sharing an address
   * with a flooder does not lock an honest broadcaster out.
   */
  private async authenticate(
    req: TranscodeRequest,
    job: CheckedTranscodeRequest,
    peer: string | undefined,
  ): Promise<{ sender: Address; segmentHash: Hex }> {
    const now = this.now();
    const remote = remoteAddress(peer);
    if (now - this.budgetSweptAt > 60_000) {
      this.requestBudget.sweep(now);
      this.sweepKnownSenders(now);
      this.budgetSweptAt = now;
    }
    const known = `${remote} ${job.payment.sender.toLowerCase()}`;
    const until = this.requestBudget.refusedUntil(remote, now);
    if (until !== undefined && !this.isKnownSender(known, now)) {
      this.deps.metrics?.segments.inc({ outcome: 'TooManyErrors' });
      throw new WireError(
        'TooManyErrors',
        `too many badly signed requests from this address; refused until ${new Date(until).toISOString()}`,
        { refusedUntil: String(until) },
      );
    }
    try {
      const checked = await this.requests.check({
        orchestrator: this.deps.address,
        sender: job.payment.sender,
        streamId: job.streamId,
        seq: job.seq,
        segment: job.segment,
        metadata: { durationMs: job.durationMs, profiles: req.metadata?.profiles ?? [] },
        issuedAtMs: req.issuedAtMs,
        nonce: req.nonce,
        signature: req.signature,
      });
      this.rememberSender(`${remote} ${checked.sender.toLowerCase()}`, now);
      return checked;
    } catch (err) {
      const code = err instanceof StreamflowError ? err.code : 'Internal';
      this.deps.metrics?.segments.inc({ outcome: code });
      if (code === 'InvalidRequestSignature' && this.requestBudget.record(remote, now)) {
        this.log.warn({ remote }, 'remote address exceeded its budget of bad request signatures');
      }
      throw err;
    }
  }

  private isKnownSender(key: string, now: number): boolean {
    const seen = this.knownSenders.get(key);
    if (seen === undefined) return false;
    if (now - seen <= this.knownSenderMs) return true;
    this.knownSenders.delete(key);
    return false;
  }

  private rememberSender(key: string, now: number): void {
    if (this.maxKnownSenders === 0) return;
    this.knownSenders.delete(key);
    this.knownSenders.set(key, now);
    // Bounded: a host cycling through many signing keys pushes out the least recently seen pairs, not memory.
    for (const oldest of this.knownSenders.keys()) {
      if (this.knownSenders.size <= this.maxKnownSenders) break;
      this.knownSenders.delete(oldest);
    }
  }

  /** Forgets pairs not seen within `knownSenderMs`; they are in order of last sight, so it stops at the first fresh one. */
  private sweepKnownSenders(now: number): void {
    for (const [key, seen] of this.knownSenders) {
      if (now - seen <= this.knownSenderMs) break;
      this.knownSenders.delete(key);
    }
  }

  /** (remote address, sender) pairs known right now; for tests and the status page. */
  get knownSenderCount(): number {
    return this.knownSenders.size;
  }

  private async work(
    req: TranscodeRequest,
    ctx: HandlerContext,
    job: Omit<CheckedTranscodeRequest, 'profiles'> & {
      profiles: Profile[];
      sender: string;
      session: string;
      segmentHash: Hex;
      peer: string | undefined;
      started: number;
    },
  ): Promise<TranscodeReply> {
    const { payment, profiles, sender, session, peer, started } = job;
    const key = `${sender}/${session}`;
    const { recipient } = this.deps;
    const price = this.quoted.get(sender) ?? this.options.pricePerPixel;
    let params: TicketParams | undefined;
    try {
      if (payment.tickets.length > 0) {
        const paid = await recipient.receivePayment(
          payment,
          { session, ...(peer ? { peer } : {}) },
          ctx.signal,
        );
        params = paid.params;
        const refused = paid.errors[0];
        if (paid.accepted === 0 && refused) return this.refuse(refused, params, job.seq);
      } else if (price > 0n && recipient.ledger.balance(sender, session) <= 0n) {
        // Neither tickets nor credit: refused before the segment is even read.
        throw new InsufficientCreditError({ sender, session });
      }

      let analysis: TsAnalysis;
      try {
        analysis = validateSegment(req.segment, this.deps.segmentLimits ?? defaultSegmentLimits);
      } catch (err) {
        if (err instanceof SegmentFormatError) return this.refuse(err, params, job.seq);
        throw err;
      }
      const duration = segmentFacts(analysis).duration;
      let expected = feeFor(expectedPixels(profiles, duration), perPixel(price));
      // validateSegment guarantees a positive span; the floor makes "free" impossible even after rounding.
      if (price > 0n && expected < 1n) expected = 1n;
      const debt = this.debts.get(key) ?? 0n;
      recipient.ledger.require(sender, session, expected + debt);
      params ??= await recipient.ticketParams(payment.sender, ctx.signal).catch(() => undefined);

      const result = await this.deps.transcoder.transcode(req.segment, profiles, {
        signal: ctx.signal,
        analysis,
      });

      // The fee is what was returned, read from the renditions' own bytes; a segment that came out larger than
      // expected leaves a debt the next one must cover, never a free surplus.
      const fee = renditionsFee(result.renditions, price);
      // Re-read: another segment of the session may have settled the debt while this one was transcoding.
      const owed = fee + (this.debts.get(key) ?? 0n);
      const balance = recipient.ledger.balance(sender, session);
      const share = this.options.maxDebtShare ?? defaultJobServiceOptions.maxDebtShare;
      const maxDebt = (expected * BigInt(Math.round(share * 10_000))) / 10_000n;
      if (owed - balance > maxDebt) {
        // Far more output than the segment's own timestamps promised: the renditions are withheld, and the
        // credit required before work pays for the work done.
        const taken = expected + debt <= balance ? expected + debt : balance;
        recipient.ledger.debit(sender, session, taken);
        this.debts.delete(key);
        this.deps.state?.saveSession(sender, session, balance - taken, { segments: 0, fees: taken });
        throw new InsufficientCreditError({ sender, session, required: owed });
      }
      const taken = owed <= balance ? owed : balance;
      recipient.ledger.debit(sender, session, taken);
      if (owed > taken) this.debts.set(key, owed - taken);
      else this.debts.delete(key);
      this.deps.state?.saveSession(sender, session, balance - owed, { segments: 1, fees: fee });
      this.deps.metrics?.fees.inc(Number(fee));

      const byName = new Map(result.renditions.map((r) => [r.profile.name, r]));
      const ordered = profiles.map((p) => {
        const r = byName.get(p.name);
        if (!r) throw new WireError('TranscodeFailed', `rendition ${p.name} is missing from the result`);
        return r;
      });
      const receiptFields = {
        streamId: session,
        seq: job.seq,
        inputHash: job.segmentHash,
        renditions: ordered.map((r) => ({ profile: r.profile.name, hash: contentHash(r.bytes) })),
      };
      const signature = await signWireDigest(this.deps.signer, receiptDigest(receiptFields));
      this.deps.metrics?.segments.inc({ outcome: 'ok' });
      this.deps.metrics?.latency.observe((performance.now() - started) / 1000);
      this.log.debug(
        { sender, session, seq: job.seq, fee: fee.toString(), ms: Math.round(performance.now() - started) },
        'segment transcoded',
      );
      return create(TranscodeReplySchema, {
        result: {
          case: 'ok',
          value: {
            renditions: ordered.map(renditionToProto),
            receipt: {
              streamId: session,
              seq: job.seq,
              inputHash: hexToBytes(receiptFields.inputHash),
              renditions: receiptFields.renditions.map((r) => ({
                profile: r.profile,
                hash: hexToBytes(r.hash),
              })),
              signature: hexToBytes(signature),
            },
          },
        },
        ...(params ? { ticketParams: ticketParamsToProto(params) } : {}),
      });
    } catch (err) {
      if (ctx.signal.aborted || !(err instanceof StreamflowError) || err.code === 'InvalidMessage') throw err;
      const fresh = err.details as { params?: unknown } | undefined;
      const carried = fresh?.params as TicketParams | undefined;
      return this.refuse(err, params ?? carried, job.seq);
    }
  }

  private refuse(err: StreamflowError, params: TicketParams | undefined, seq: bigint): TranscodeReply {
    const code = replyCode(err);
    this.deps.metrics?.segments.inc({ outcome: code });
    this.log.info({ code, seq, err: err.message }, 'segment refused');
    // Fresh params travel in their own field; the rest of the facts go as strings.
    const { params: _params, ...details } = (err.details ?? {}) as Record<string, unknown>;
    const message = toWireErrorMessage(WireError.from(new StreamflowError(code, err.message, details)));
    return create(TranscodeReplySchema, {
      result: { case: 'error', value: message },
      ...(params ? { ticketParams: ticketParamsToProto(params) } : {}),
    });
  }
}

/**
 * The remote address of a peer id (`ip:port` from the RPC server, or a bare address): the error budget for
 * unauthenticated requests follows the address, not the connection.
 */
export function remoteAddress(peer: string | undefined): string {
  if (peer === undefined) return 'unknown';
  // The RPC server sends the bare address; an `ip:port` (older servers, tests) loses its port.
  if (isIP(peer) !== 0) return peer;
  const m = /^\[?(.+?)\]?:(\d{1,5})$/.exec(peer);
  return m?.[1] && isIP(m[1]) ? m[1] : peer;
}
