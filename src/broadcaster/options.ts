/** Options of {@link discoverOrchestrators} that are not part of the request. */
export interface DiscoveryOptions {
  /**
   * Orchestrators read from the chain at once. Bounds the burst a public RPC endpoint sees while keeping a
   * 1000-orchestrator pool to a few round trips' worth of wall time. @default 16
   */
  concurrency: number;
}

export const defaultDiscoveryOptions: Readonly<DiscoveryOptions> = Object.freeze({
  concurrency: 16,
});

/**
 * Options of the orchestrator {@link Selector}. The score is
 * `latencyWeight·(1 − L̂) + successWeight·S + priceWeight·(1 − P̂)`, see docs/selection.md.
 */
export interface SelectionOptions {
  /** Weight of observed latency in the score. @default 0.4 */
  latencyWeight: number;
  /** Weight of the (decayed) success rate in the score. @default 0.4 */
  successWeight: number;
  /** Weight of price in the score. @default 0.2 */
  priceWeight: number;
  /** Smoothing factor of the latency EWMA: share of the newest sample, in (0, 1]. @default 0.3 */
  latencyAlpha: number;
  /** Half-life of success and failure counts, ms: old history fades so a recovered orchestrator climbs back. @default 300_000 */
  historyHalfLifeMs: number;
  /** Consecutive failures after which an orchestrator is suspended. @default 3 */
  maxConsecutiveFailures: number;
  /** How long such a suspension lasts, ms. @default 30_000 */
  suspensionMs: number;
  /**
   * Highest price accepted, wei per pixel; candidates above it are never picked. It also bounds the ticket EV
   * accepted, since the sender's default EV cap follows the quoted price (src/pm/options.ts `expectedValueCap`).
   * @default Infinity
   */
  maxPricePerPixel: number;
  /** Security floor: least total stake (LPT wei) a chain-discovered orchestrator needs. @default 0n */
  minStake: bigint;
  /** Warm sessions kept open (the top k). @default 2 */
  warmSessions: number;
}

export const defaultSelectionOptions: Readonly<SelectionOptions> = Object.freeze({
  latencyWeight: 0.4,
  successWeight: 0.4,
  priceWeight: 0.2,
  latencyAlpha: 0.3,
  historyHalfLifeMs: 300_000,
  maxConsecutiveFailures: 3,
  suspensionMs: 30_000,
  maxPricePerPixel: Number.POSITIVE_INFINITY,
  minStake: 0n,
  warmSessions: 2,
});
