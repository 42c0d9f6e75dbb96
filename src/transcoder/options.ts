import type { TranscodeOptions } from '../media/options.js';

/** Options of {@link RemoteTranscoder}. */
export interface RemoteTranscoderOptions {
  /** The orchestrator's RPC URL, e.g. `http://127.0.0.1:8935`. */
  orchestrator: string;
  /** The orchestrator's shared transcoder secret. */
  secret: string;
  /** Segments transcoded at once, 1–64. @default 1 */
  capacity: number;
  /** First reconnect delay, ms; doubles per failed attempt. @default 250 */
  backoffInitialMs: number;
  /** Longest reconnect delay, ms. @default 10_000 */
  backoffMaxMs: number;
  /** Options of the local ffmpeg transcoder (src/media). */
  transcode: Partial<TranscodeOptions>;
  /** Largest message sent or accepted, bytes. @default 64 MiB */
  maxMessageBytes: number;
}

export const defaultRemoteTranscoderOptions: Readonly<
  Omit<RemoteTranscoderOptions, 'orchestrator' | 'secret'>
> = Object.freeze({
  capacity: 1,
  backoffInitialMs: 250,
  backoffMaxMs: 10_000,
  transcode: {},
  maxMessageBytes: 64 * 1024 * 1024,
});
