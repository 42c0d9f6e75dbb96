import type { TranscodeOptions } from '../media/options.js';

/** Options of {@link TranscoderPool}. */
export interface TranscoderPoolOptions {
  /**
   * Shared secret remote transcoders register with. Unset: remote registration is refused and only the
   * local transcoder works.
   */
  secret: string | undefined;
  /** Segments the orchestrator's own ffmpeg transcodes at once; 0 disables local transcoding. @default 1 */
  localCapacity: number;
  /** Options of the local transcoder (src/media). */
  local: Partial<TranscodeOptions>;
  /**
   * Longest one dispatch may take before the segment goes to another member, ms. Only bounds a member that
   * goes silent: a dropped stream or a reported failure re-dispatches at once. @default 20_000
   */
  taskTimeoutMs: number;
  /** Members one segment is tried on before it fails with `TranscodeFailed`. @default 3 */
  maxAttempts: number;
  /** Largest capacity a remote transcoder may announce (the .proto says 1–64). @default 64 */
  maxRemoteCapacity: number;
}

export const defaultTranscoderPoolOptions: Readonly<TranscoderPoolOptions> = Object.freeze({
  secret: undefined,
  localCapacity: 1,
  local: {},
  taskTimeoutMs: 20_000,
  maxAttempts: 3,
  maxRemoteCapacity: 64,
});

/**
 * How {@link ensureRegistered} gets a registration or cut change past the round lock: `registerOrchestrator`
 * reverts `CutsLocked` in the last `roundLockAmount` ppm of a round (THREATS.md 11), and a transaction checked
 * against the latest block can land in the next one, inside the window.
 */
export interface RegistrationRetryOptions {
  /** Attempts of `registerOrchestrator`, each in a later round than the one before. @default 3 */
  maxAttempts: number;
  /**
   * A change is sent only while the latest block is more than this many blocks before the lock window (a
   * transaction takes a block or two to land); otherwise it waits for the next round. Shrinks to fit rounds
   * whose unlocked part is shorter. @default 2
   */
  lockMarginBlocks: number;
  /** How often the round is read while waiting, ms. @default 500 */
  pollIntervalMs: number;
}

export const defaultRegistrationRetryOptions: Readonly<RegistrationRetryOptions> = Object.freeze({
  maxAttempts: 3,
  lockMarginBlocks: 2,
  pollIntervalMs: 500,
});
