import { defaultSelectionOptions, type SelectionOptions } from './options.js';

/** An orchestrator as selection sees it, after negotiation told its price. */
export interface SelectionCandidate {
  /** Key of its stats: the on-chain address (compared case-insensitively). */
  address: string;
  /** Total stake, LPT wei; undefined for a static `--orchestrators` entry, which the stake floor does not apply to. */
  stake: bigint | undefined;
  /** Quoted price, wei per pixel. */
  pricePerPixel: number;
}

/** What the broadcaster has observed of one orchestrator. */
export interface OrchestratorStats {
  /** EWMA of GetOrchestratorInfo / transcode latency, ms; undefined until the first sample. */
  latencyMs: number | undefined;
  /** Successes, decayed with `historyHalfLifeMs` up to `updatedMs`. */
  successes: number;
  /** Failures, decayed the same way. */
  failures: number;
  consecutiveFailures: number;
  /** Epoch ms until which it is not picked; 0 when not suspended. */
  suspendedUntilMs: number;
  /** Epoch ms the counts were last decayed to. */
  updatedMs: number;
}

export interface ScoredCandidate<C extends SelectionCandidate = SelectionCandidate> {
  candidate: C;
  /** In [0, latencyWeight + successWeight + priceWeight]; higher is better. */
  score: number;
  successRate: number;
}

export interface Selection<C extends SelectionCandidate = SelectionCandidate> {
  /** Best first, the top `warmSessions`: the orchestrators to keep sessions open with. */
  warm: C[];
  /** The next best after the warm ones: where a failed segment goes at once. */
  failover: C | undefined;
  /** Every eligible candidate, best first. */
  ranked: ScoredCandidate<C>[];
}

export interface SelectorDeps {
  /** Epoch ms; injectable so tests control time. @default Date.now */
  now?: () => number;
}

const emptyStats = (now: number): OrchestratorStats => ({
  latencyMs: undefined,
  successes: 0,
  failures: 0,
  consecutiveFailures: 0,
  suspendedUntilMs: 0,
  updatedMs: now,
});

/** Counts decayed to `now`: each halves every `halfLifeMs`. Pure. */
export function decayStats(stats: OrchestratorStats, now: number, halfLifeMs: number): OrchestratorStats {
  const dt = Math.max(0, now - stats.updatedMs);
  const f = halfLifeMs > 0 ? 0.5 ** (dt / halfLifeMs) : 1;
  return {
    ...stats,
    successes: stats.successes * f,
    failures: stats.failures * f,
    updatedMs: Math.max(now, stats.updatedMs),
  };
}

/**
 * Success rate with one success and one failure of prior (Laplace), so an orchestrator never tried scores
 * 0.5 rather than 0 or 1: new orchestrators get a chance without outranking proven ones. Pure.
 */
export function successRate(stats: OrchestratorStats | undefined): number {
  if (!stats) return 0.5;
  return (stats.successes + 1) / (stats.successes + stats.failures + 2);
}

/** Whether `c` passes the price ceiling and the stake floor. Pure. */
export function isEligible(
  c: SelectionCandidate,
  options: Pick<SelectionOptions, 'maxPricePerPixel' | 'minStake'>,
): boolean {
  return ineligibility(c, options) === undefined;
}

/**
 * Which of the price ceiling and the stake floor `c` fails, price first; undefined when it passes both. Pure.
 */
export function ineligibility(
  c: Pick<SelectionCandidate, 'pricePerPixel' | 'stake'>,
  options: Pick<SelectionOptions, 'maxPricePerPixel' | 'minStake'>,
): 'price' | 'stake' | undefined {
  // A non-finite or negative quote would poison the price normalisation of every other candidate.
  if (!Number.isFinite(c.pricePerPixel) || c.pricePerPixel < 0) return 'price';
  if (c.pricePerPixel > options.maxPricePerPixel) return 'price';
  return c.stake === undefined || c.stake >= options.minStake ? undefined : 'stake';
}

/** `(x − min) / (max − min)`, or 0 when every value is the same. */
function normalise(x: number, min: number, max: number): number {
  return max > min ? (x - min) / (max - min) : 0;
}

/**
 * Scores and ranks candidates, best first. Pure and deterministic given its inputs.
 *
 * `score = latencyWeight·(1 − L̂) + successWeight·S + priceWeight·(1 − P̂)` where L̂ and P̂ are the candidate's
 * latency EWMA and price min–max normalised across `candidates` (0 = best, 1 = worst) and S its decayed
 * success rate. A candidate without a latency sample takes the mean of those that have one. Ties go to the
 * higher stake, then the lower address, so two broadcasters with the same view pick the same orchestrator.
 * Filtering (price, stake, suspension) is the caller's: see {@link Selector.select}.
 */
export function rankCandidates<C extends SelectionCandidate>(
  candidates: readonly C[],
  stats: ReadonlyMap<string, OrchestratorStats>,
  options: Pick<SelectionOptions, 'latencyWeight' | 'successWeight' | 'priceWeight'>,
): ScoredCandidate<C>[] {
  const statsOf = (c: C) => stats.get(c.address.toLowerCase());
  const known = candidates.map((c) => statsOf(c)?.latencyMs).filter((l): l is number => l !== undefined);
  const meanLatency = known.length > 0 ? known.reduce((a, b) => a + b, 0) / known.length : 0;
  const latencies = candidates.map((c) => statsOf(c)?.latencyMs ?? meanLatency);
  const prices = candidates.map((c) => c.pricePerPixel);
  const [lMin, lMax] = [Math.min(...latencies), Math.max(...latencies)];
  const [pMin, pMax] = [Math.min(...prices), Math.max(...prices)];
  const scored = candidates.map((candidate, i) => {
    const rate = successRate(statsOf(candidate));
    const score =
      options.latencyWeight * (1 - normalise(latencies[i] as number, lMin, lMax)) +
      options.successWeight * rate +
      options.priceWeight * (1 - normalise(prices[i] as number, pMin, pMax));
    return { candidate, score, successRate: rate };
  });
  return scored.sort(compareScored);
}

function compareScored(a: ScoredCandidate, b: ScoredCandidate): number {
  if (a.score !== b.score) return b.score - a.score;
  const sa = a.candidate.stake ?? 0n;
  const sb = b.candidate.stake ?? 0n;
  if (sa !== sb) return sa > sb ? -1 : 1;
  const aa = a.candidate.address.toLowerCase();
  const ab = b.candidate.address.toLowerCase();
  return aa < ab ? -1 : aa > ab ? 1 : 0;
}

/**
 * Keeps per-orchestrator observations and picks where to send segments: the top `warmSessions` by score
 * and the next best for failover, among candidates under the price ceiling, above the stake floor and not
 * suspended. Stake only gates (the security floor); it does not raise the score, because stake-weighted
 * picking sends work to slow or costly orchestrators.
 */
export class Selector {
  readonly options: Readonly<SelectionOptions>;
  private readonly now: () => number;
  private readonly stats = new Map<string, OrchestratorStats>();

  constructor(options: Partial<SelectionOptions> = {}, deps: SelectorDeps = {}) {
    this.options = { ...defaultSelectionOptions, ...options };
    this.now = deps.now ?? Date.now;
  }

  /** Observations of `address`, decayed to now; undefined if never observed. */
  statsOf(address: string): OrchestratorStats | undefined {
    const s = this.stats.get(address.toLowerCase());
    return s && decayStats(s, this.now(), this.options.historyHalfLifeMs);
  }

  /** Folds a latency sample (ms) of GetOrchestratorInfo or a transcode into the EWMA. */
  recordLatency(address: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    const s = this.current(address);
    const a = this.options.latencyAlpha;
    s.latencyMs = s.latencyMs === undefined ? ms : a * ms + (1 - a) * s.latencyMs;
  }

  /** A segment (or negotiation) succeeded; clears the consecutive-failure run. Optionally records its latency. */
  recordSuccess(address: string, latencyMs?: number): void {
    const s = this.current(address);
    s.successes += 1;
    s.consecutiveFailures = 0;
    if (latencyMs !== undefined) this.recordLatency(address, latencyMs);
  }

  /** A segment failed or timed out; after `maxConsecutiveFailures` in a row, suspends for `suspensionMs`. */
  recordFailure(address: string): void {
    const s = this.current(address);
    s.failures += 1;
    s.consecutiveFailures += 1;
    if (s.consecutiveFailures >= this.options.maxConsecutiveFailures) {
      s.suspendedUntilMs = Math.max(s.suspendedUntilMs, this.now() + this.options.suspensionMs);
      // A fresh run is needed for the next suspension, so one more failure after it does not re-suspend at once.
      s.consecutiveFailures = 0;
    }
  }

  /** Excludes `address` from selection until `untilMs` (epoch ms). */
  suspend(address: string, untilMs: number): void {
    const s = this.current(address);
    s.suspendedUntilMs = Math.max(s.suspendedUntilMs, untilMs);
  }

  /** Whether `address` is suspended now. */
  isSuspended(address: string): boolean {
    return (this.stats.get(address.toLowerCase())?.suspendedUntilMs ?? 0) > this.now();
  }

  /**
   * Ranks eligible candidates and picks the warm set and the failover, see {@link rankCandidates}. Suspended
   * ones are left out unless `includeSuspended` (the caller's last resort when nobody else is left).
   */
  select<C extends SelectionCandidate>(
    candidates: readonly C[],
    k = this.options.warmSessions,
    opts: { includeSuspended?: boolean } = {},
  ): Selection<C> {
    const eligible = candidates.filter(
      (c) => isEligible(c, this.options) && (opts.includeSuspended === true || !this.isSuspended(c.address)),
    );
    const now = this.now();
    const snapshot = new Map<string, OrchestratorStats>();
    for (const [key, s] of this.stats) snapshot.set(key, decayStats(s, now, this.options.historyHalfLifeMs));
    const ranked = rankCandidates(eligible, snapshot, this.options);
    return {
      warm: ranked.slice(0, k).map((r) => r.candidate),
      failover: ranked[k]?.candidate,
      ranked,
    };
  }

  private current(address: string): OrchestratorStats {
    const key = address.toLowerCase();
    const now = this.now();
    const prev = this.stats.get(key);
    const s = prev ? decayStats(prev, now, this.options.historyHalfLifeMs) : emptyStats(now);
    this.stats.set(key, s);
    return s;
  }
}
