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
