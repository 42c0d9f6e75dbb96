import type { Address, Hex } from 'viem';
import type { Profile } from '../media/profiles.js';
import type { Rendition } from '../media/transcode.js';
import { sleep } from '../node/abort.js';
import { StreamflowError } from '../node/errors.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { withDefaults } from '../node/options.js';
import { UnsafeTicketParamsError } from '../pm/errors.js';
import { feeFor } from '../pm/ledger.js';
import { mulRatio } from '../pm/options.js';
import type { Sender } from '../pm/sender.js';
import type { TicketParams } from '../pm/types.js';
import { WireError } from '../rpc/errors.js';
import { expectedPixels, perPixel, renditionsFee } from '../rpc/pricing.js';
import type { DigestSigner } from '../rpc/signing.js';
import {
  OrchestratorClient,
  type OrchestratorOffer,
  type SourceFacts,
  sourceFactsOf,
  TranscodeRefused,
} from './client.js';
import type { DiscoveryFiltered, DiscoveryReport, OrchestratorCandidate } from './discovery.js';
import { BroadcasterError } from './errors.js';
import type { SelectionOptions } from './options.js';
import { ineligibility, type SelectionCandidate, Selector } from './selection.js';

/** Options of {@link JobManager}. */
export interface JobManagerOptions {
  /** Service asked for. @default 'transcode/h264' */
  service: string;
  /** Region asked for; empty: any. */
  region: string;
  /** Orchestrators sent each segment at once; the first valid result wins. @default 1 */
  redundancy: number;
  /** A transcode call taking longer fails over to the next orchestrator, ms. @default 10_000 */
  segmentTimeoutMs: number;
  /** GetOrchestratorInfo timeout, ms. @default 2_000 */
  infoTimeoutMs: number;
  /** Background re-discovery and re-negotiation period, ms. @default 30_000 */
  refreshMs: number;
  /**
   * Tickets are signed for this multiple of the expected fee: headroom for the orchestrator's own estimate.
   * Not an overpayment: the sender's session credit carries the difference to the next segment. @default 1.1
   */
  payMargin: number;
  /**
   * How long an orchestrator whose signed reply did not verify (`InvalidReceipt`, `RenditionMismatch`,
   * `InvalidSignature`) is left out, ms. @default 600_000
   */
  fraudSuspensionMs: number;
  /** Pause before asking orchestrators that were all busy again, ms. @default 150 */
  busyRetryMs: number;
  selection: Partial<SelectionOptions>;
}

export const defaultJobManagerOptions: Readonly<JobManagerOptions> = Object.freeze({
  service: 'transcode/h264',
  region: '',
  redundancy: 1,
  segmentTimeoutMs: 10_000,
  infoTimeoutMs: 2_000,
  refreshMs: 30_000,
  payMargin: 1.1,
  busyRetryMs: 150,
  fraudSuspensionMs: 600_000,
  selection: {},
});

export interface JobManagerDeps {
  sender: Sender;
  signer: DigestSigner & { address: Address };
  /**
   * Where orchestrators come from: chain discovery (with the report of what it left out, so a broadcaster
   * finding nobody says why) or a static list.
   */
  discover: (signal?: AbortSignal) => Promise<OrchestratorCandidate[] | DiscoveryReport>;
  logger?: Logger;
  now?: () => number;
}

/** One segment to transcode. */
export interface SegmentTask {
  streamId: string;
  seq: number;
  /** Seconds. */
  duration: number;
  bytes: Uint8Array;
  profiles: readonly Profile[];
}

export interface SegmentOutcome {
  renditions: Rendition[];
  orchestrator: Address;
  /** Orchestrators tried (1 when the first answered). */
  attempts: number;
  /** Fee of the renditions at the orchestrator's price, wei. */
  fee: bigint;
  latencyMs: number;
  receipt: { inputHash: Hex; signature: Hex };
  /** The segment as read before sending: what the playlists describe it by. */
  source: SourceFacts;
}

interface Offer extends SelectionCandidate {
  address: Address;
  client: OrchestratorClient;
  info: OrchestratorOffer;
  params: TicketParams;
  price: bigint;
}

/** Replies that prove the orchestrator cheated or is broken: its signed output does not verify. */
const PROVEN_FRAUD = new Set(['InvalidReceipt', 'RenditionMismatch', 'InvalidSignature']);

/** Refusals that fresh params (which come with them) cure: the same orchestrator is asked once more. */
const CURED_BY_NEW_PARAMS = new Set([
  'TicketParamsExpired',
  'InvalidRecipientRandHash',
  'InvalidTicketExpiry',
  'InsufficientCredit',
  'NonceAlreadySeen',
]);

/** Transport failures: the orchestrator did not answer (as opposed to answering with a refusal). */
const UNREACHABLE = new Set([
  'Unavailable',
  'Timeout',
  'Canceled',
  'ShuttingDown',
  'RpcFailed',
  'Unimplemented',
]);

/**
 * Why a candidate is not used: above the price ceiling, ticket params over the EV cap (or otherwise unsafe to
 * sign against), below the stake floor, no answer, a refusal, suspended, or left out by chain discovery.
 */
export type FilterReason =
  | 'price'
  | 'ticketEv'
  | 'ticketParams'
  | 'stake'
  | 'unreachable'
  | 'refused'
  | 'suspended';

/** Candidates left out at the last refresh, by reason. */
export interface FilterSummary {
  /** Orchestrators considered: discovery's candidates plus those it left out. */
  considered: number;
  /** Candidates selection may pick. */
  usable: number;
  /** Left out, by reason; the five the operator acts on are always present. */
  filtered: Record<FilterReason, number> & Partial<Omit<DiscoveryFiltered, 'stake'>>;
  /** Wire or params codes behind `ticketEv`, `ticketParams`, `unreachable` and `refused`, by code. */
  codes: Record<string, number>;
}

/** A negotiation failure as a {@link FilterReason}. */
function negotiationReason(err: unknown): FilterReason {
  if (err instanceof UnsafeTicketParamsError) {
    return err.code === 'ExpectedValueTooHigh' ? 'ticketEv' : 'ticketParams';
  }
  const code = err instanceof StreamflowError ? err.code : undefined;
  return code === undefined || UNREACHABLE.has(code) ? 'unreachable' : 'refused';
}

const REASON_LABEL: Record<string, string> = {
  price: 'price above the max price',
  ticketEv: 'ticket EV above the cap',
  ticketParams: 'unsafe ticket params',
  stake: 'stake below the floor',
  unreachable: 'unreachable',
  refused: 'refused',
  suspended: 'suspended',
  inactive: 'not in the active set',
  service: 'service not offered',
  region: 'region not served',
  noServiceUri: 'no service URI',
};

/**
 * The broadcaster's job negotiation: discovers orchestrators, negotiates with all of them at once (price,
 * ticket params, latency), keeps the offers fresh in the background, and for each segment pays with tickets,
 * sends, verifies, and on any error or timeout moves the same segment to the next orchestrator at once.
 */
export class JobManager {
  readonly options: JobManagerOptions;
  readonly selector: Selector;
  private readonly deps: JobManagerDeps;
  private readonly log: Logger;
  private readonly clients = new Map<string, OrchestratorClient>();
  private readonly offers = new Map<string, Offer>();
  private readonly candidates = new Map<string, OrchestratorCandidate>();
  /** Orchestrators caught cheating, lower-case address → epoch ms until which they are never used. */
  private readonly fraud = new Map<string, number>();
  /** Why the last negotiation with a service URI failed, until one succeeds. */
  private readonly failures = new Map<string, { reason: FilterReason; code: string }>();
  private lastFilter: FilterSummary | undefined;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private refreshing: Promise<void> | undefined;
  readonly stats = { segments: 0, failovers: 0, ticketsSent: 0, feesWei: 0n, failedSegments: 0 };

  constructor(options: Partial<JobManagerOptions>, deps: JobManagerDeps) {
    this.options = withDefaults(defaultJobManagerOptions, options);
    if (this.options.redundancy < 1) throw new RangeError('redundancy must be ≥ 1');
    this.deps = deps;
    this.log = (deps.logger ?? silentLogger).child({ module: 'broadcaster-jobs' });
    this.selector = new Selector(this.options.selection, deps.now ? { now: deps.now } : {});
  }

  /** Negotiates once (so a stream starts at once), then keeps refreshing in the background. Idempotent. */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.controller) return;
    const controller = new AbortController();
    this.controller = controller;
    await this.refresh(signal);
    this.loop = (async () => {
      while (!controller.signal.aborted) {
        await sleep(this.options.refreshMs, controller.signal).catch(() => undefined);
        if (controller.signal.aborted) break;
        await this.refresh(controller.signal).catch((err) => this.log.warn({ err }, 'refresh failed'));
      }
    })();
  }

  async stop(): Promise<void> {
    this.controller?.abort();
    await this.loop;
    await this.refreshing?.catch(() => undefined);
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    this.offers.clear();
  }

  /** Current offers, best first. */
  ranked(): { address: Address; serviceUri: string; pricePerPixel: bigint; score: number }[] {
    return this.selector.select([...this.offers.values()]).ranked.map((r) => ({
      address: r.candidate.info.address,
      serviceUri: r.candidate.info.serviceUri,
      pricePerPixel: r.candidate.price,
      score: r.score,
    }));
  }

  /** Discovers and negotiates with every candidate at once; one refresh at a time. */
  refresh(signal?: AbortSignal): Promise<void> {
    this.refreshing ??= this.doRefresh(signal).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async doRefresh(signal?: AbortSignal): Promise<void> {
    const discovered = await this.deps.discover(signal);
    const report = Array.isArray(discovered) ? { candidates: discovered, filtered: undefined } : discovered;
    const found = report.candidates;
    this.candidates.clear();
    for (const c of found) this.candidates.set(c.serviceUri, c);
    for (const [uri, client] of this.clients) {
      if (!this.candidates.has(uri)) {
        client.close();
        this.clients.delete(uri);
        this.failures.delete(uri);
      }
    }
    // An offer whose orchestrator discovery no longer finds would be sent segments over a closed client.
    for (const [key, o] of this.offers)
      if (!this.candidates.has(o.client.serviceUri)) this.offers.delete(key);
    const offers = await Promise.all(found.map((c) => this.negotiate(c, signal)));
    const summary = this.summarise(found, offers, report.filtered);
    this.lastFilter = summary;
    this.log.debug({ candidates: found.length, offers: this.offers.size }, 'orchestrators negotiated');
    if (summary.usable === 0) {
      const counts = Object.entries(summary.filtered)
        .filter(([, n]) => (n ?? 0) > 0)
        .map(([k, n]) => `${REASON_LABEL[k] ?? k}: ${n}`)
        .join(', ');
      this.log.warn(
        summary,
        summary.considered === 0
          ? 'no usable orchestrator: none found (no static list entry, or an empty orchestrator pool)'
          : `no usable orchestrator: all ${summary.considered} filtered out (${counts})`,
      );
    }
  }

  /** Why each candidate of the last refresh is or is not usable. */
  private summarise(
    found: readonly OrchestratorCandidate[],
    offers: readonly (Offer | undefined)[],
    discovery: DiscoveryFiltered | undefined,
  ): FilterSummary {
    const filtered: FilterSummary['filtered'] = {
      price: 0,
      ticketEv: 0,
      stake: discovery?.stake ?? 0,
      unreachable: 0,
      refused: 0,
      ticketParams: 0,
      suspended: 0,
    };
    let considered = found.length + (discovery?.stake ?? 0);
    for (const key of ['inactive', 'service', 'region', 'noServiceUri'] as const) {
      const n = discovery?.[key] ?? 0;
      considered += n;
      if (n > 0) filtered[key] = n;
    }
    const codes: Record<string, number> = {};
    let usable = 0;
    for (const [i, c] of found.entries()) {
      const offer = offers[i];
      let reason: FilterReason | undefined;
      if (!offer) {
        const failure = this.failures.get(c.serviceUri) ?? { reason: 'unreachable', code: 'Unknown' };
        reason = failure.reason;
        codes[failure.code] = (codes[failure.code] ?? 0) + 1;
      } else {
        reason =
          ineligibility(offer, this.selector.options) ??
          (this.selector.isSuspended(offer.address) || this.isFraud(offer.address) ? 'suspended' : undefined);
      }
      if (reason === undefined) usable++;
      else filtered[reason]++;
    }
    return { considered, usable, filtered, codes };
  }

  /**
   * Candidates left out at the last refresh, by reason (the broadcaster logs it at warn level when none is
   * left); undefined before the first refresh.
   */
  filterSummary(): FilterSummary | undefined {
    return this.lastFilter;
  }

  private async negotiate(c: OrchestratorCandidate, signal?: AbortSignal): Promise<Offer | undefined> {
    let client = this.clients.get(c.serviceUri);
    if (!client) {
      client = new OrchestratorClient(c.serviceUri, c.address, { signer: this.deps.signer });
      this.clients.set(c.serviceUri, client);
    }
    let quoted: bigint | undefined;
    try {
      const info = await client.getInfo(
        { service: this.options.service, region: this.options.region },
        { timeoutMs: this.options.infoTimeoutMs, ...(signal ? { signal } : {}) },
      );
      quoted = info.pricePerPixel;
      this.deps.sender.checkParams(info.params, {
        recipient: info.address,
        pricePerPixel: info.pricePerPixel,
      });
      const offer: Offer = {
        address: info.address,
        stake: c.stake,
        pricePerPixel: Number(info.pricePerPixel),
        client,
        info,
        params: info.params,
        price: info.pricePerPixel,
      };
      this.offers.set(info.address.toLowerCase(), offer);
      this.failures.delete(c.serviceUri);
      this.selector.recordLatency(info.address, info.latencyMs);
      return offer;
    } catch (err) {
      const code = err instanceof StreamflowError ? err.code : 'Unknown';
      // An offer above the price ceiling is out whatever else is wrong with it: that is what to tell the operator.
      const overPrice =
        quoted !== undefined &&
        ineligibility({ pricePerPixel: Number(quoted), stake: undefined }, this.selector.options) === 'price';
      this.failures.set(c.serviceUri, { reason: overPrice ? 'price' : negotiationReason(err), code });
      const key = (client.address ?? c.address)?.toLowerCase();
      if (key) {
        this.offers.delete(key);
        this.selector.recordFailure(key);
      }
      this.log.info(
        { serviceUri: c.serviceUri, code: (err as StreamflowError).code, err: (err as Error).message },
        'negotiation failed',
      );
      return undefined;
    }
  }

  /**
   * Transcodes one segment: the best `redundancy` orchestrators at once, then, on an error or timeout, the
   * next ones until a valid result comes back or every orchestrator was tried.
   * @throws BroadcasterError `NoOrchestrator` when none could transcode it
   */
  async transcode(task: SegmentTask, signal?: AbortSignal): Promise<SegmentOutcome> {
    // Read once: refuses a broken segment before paying anyone, and is what every rendition is checked against.
    const source = sourceFactsOf(task.bytes);
    const tried = new Set<string>();
    /** Orchestrators that answered `OrchestratorBusy`: healthy, asked again after a pause. */
    const busy = new Set<string>();
    const deadline = performance.now() + this.options.segmentTimeoutMs;
    let lastError: unknown;
    let refreshed = false;
    for (;;) {
      signal?.throwIfAborted();
      const pool = [...this.offers.values()].filter((o) => !tried.has(o.address.toLowerCase()));
      let picks = this.selector.select(pool, this.options.redundancy).warm;
      if (picks.length === 0 && refreshed) {
        // Nobody unsuspended is left: an orchestrator suspended for failing (e.g. while it restarted) is better
        // than publishing the source. Proven cheats stay out.
        const honest = pool.filter((o) => !this.isFraud(o.address));
        picks = this.selector.select(honest, this.options.redundancy, { includeSuspended: true }).warm;
      }
      if (picks.length === 0 && busy.size > 0 && performance.now() < deadline) {
        await sleep(this.options.busyRetryMs, signal);
        for (const b of busy) tried.delete(b);
        busy.clear();
        continue;
      }
      if (picks.length === 0) {
        // Everything known failed or is suspended: fresh negotiations may find an orchestrator back up (a
        // restarted one takes a second or two), until the segment's deadline.
        if (!refreshed || performance.now() < deadline) {
          if (refreshed) await sleep(this.options.busyRetryMs * 3, signal);
          refreshed = true;
          await this.refresh(signal).catch(() => undefined);
          // Whoever the refresh found answering may take the segment again (suspended ones stay out).
          tried.clear();
          continue;
        }
        this.stats.failedSegments++;
        throw new BroadcasterError(
          'NoOrchestrator',
          `no orchestrator could transcode segment ${task.seq} of ${task.streamId} (${tried.size} tried): ${(lastError as Error)?.message ?? 'none available'}`,
          { seq: task.seq, tried: tried.size },
          { cause: lastError },
        );
      }
      for (const p of picks) tried.add(p.address.toLowerCase());
      try {
        const outcome = await Promise.any(picks.map((p) => this.attempt(p, task, source, signal)));
        outcome.attempts = tried.size;
        if (tried.size > picks.length) this.stats.failovers++;
        this.stats.segments++;
        return outcome;
      } catch (err) {
        const errors = err instanceof AggregateError ? err.errors : [err];
        for (const [i, e] of errors.entries()) {
          const p = picks[i];
          if (p && e instanceof StreamflowError && e.code === 'OrchestratorBusy')
            busy.add(p.address.toLowerCase());
        }
        lastError = errors[errors.length - 1];
        signal?.throwIfAborted();
      }
    }
  }

  private async attempt(
    o: Offer,
    task: SegmentTask,
    source: SourceFacts,
    signal?: AbortSignal,
  ): Promise<SegmentOutcome> {
    const session = `${o.address.toLowerCase()}/${task.streamId}`;
    const { sender } = this.deps;
    for (let round = 0; ; round++) {
      const expected = feeFor(expectedPixels(task.profiles, task.duration), perPixel(o.price));
      const asked = mulRatio(expected, this.options.payMargin);
      let payment: ReturnType<Sender['createPayment']>;
      try {
        payment = sender.createPayment(o.params, asked, {
          recipient: o.address,
          session,
          pricePerPixel: o.price,
        });
      } catch (err) {
        // Params we will not sign against (expiring, face value above our deposit share ...): renegotiate.
        if (round > 0) throw err;
        const fresh = await this.negotiate(this.candidateFor(o), signal);
        if (!fresh) throw err;
        o = fresh;
        continue;
      }
      this.stats.ticketsSent += payment.tickets.length;
      try {
        const res = await o.client.transcode(
          {
            source,
            streamId: task.streamId,
            seq: task.seq,
            durationMs: task.duration * 1000,
            profiles: task.profiles,
            segment: task.bytes,
            payment,
          },
          { timeoutMs: this.options.segmentTimeoutMs, ...(signal ? { signal } : {}) },
        );
        if (res.params) o.params = res.params;
        const fee = renditionsFee(res.renditions, o.price);
        // The orchestrator debited the fee of what it returned, not our estimate: mirror that in our credit.
        sender.resetSession(session, sender.sessionCredit(session) + asked - fee);
        this.stats.feesWei += fee;
        this.selector.recordSuccess(o.address, res.latencyMs);
        return {
          renditions: res.renditions,
          orchestrator: o.address,
          attempts: 1,
          fee,
          latencyMs: res.latencyMs,
          receipt: res.receipt,
          source,
        };
      } catch (err) {
        if (signal?.aborted) throw err;
        const code = err instanceof StreamflowError ? err.code : 'Internal';
        if (err instanceof TranscodeRefused && err.params) o.params = err.params;
        // Tickets of a refused payment may or may not have been credited; start the session's count afresh
        // rather than assume a surplus the orchestrator does not hold.
        sender.resetSession(session);
        if (err instanceof TranscodeRefused && CURED_BY_NEW_PARAMS.has(code) && round === 0) {
          if (err.params) continue;
          // No params came with the refusal (e.g. a restarted orchestrator that does not know us yet): ask.
          const fresh = await this.negotiate(this.candidateFor(o), signal);
          if (fresh) {
            o = fresh;
            continue;
          }
        }
        if (PROVEN_FRAUD.has(code)) {
          // Signed output that does not check out is not bad luck: no more segments (or tickets) for a while.
          const until = Date.now() + this.options.fraudSuspensionMs;
          this.selector.suspend(o.address, until);
          this.fraud.set(o.address.toLowerCase(), until);
          this.offers.delete(o.address.toLowerCase());
        }
        // Busy is not a fault: the orchestrator is asked again once the others were tried.
        if (code !== 'OrchestratorBusy') this.selector.recordFailure(o.address);
        if (code === 'Unavailable' || code === 'ShuttingDown' || code === 'Canceled') {
          // A node that is gone stays out until a refresh finds it again.
          this.offers.delete(o.address.toLowerCase());
        }
        this.log[code === 'OrchestratorBusy' ? 'debug' : 'warn'](
          { orchestrator: o.address, seq: task.seq, code, err: (err as Error).message },
          'segment failed on an orchestrator; trying the next',
        );
        throw err instanceof WireError || err instanceof StreamflowError
          ? err
          : new WireError('Internal', String(err));
      }
    }
  }

  private isFraud(address: string): boolean {
    const key = address.toLowerCase();
    const until = this.fraud.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.fraud.delete(key);
    return false;
  }

  private candidateFor(o: Offer): OrchestratorCandidate {
    return (
      this.candidates.get(o.client.serviceUri) ?? {
        address: o.address,
        serviceUri: o.client.serviceUri,
        stake: o.stake,
        services: [],
        regions: [],
        source: 'static',
      }
    );
  }
}
