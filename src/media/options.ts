import type { TsCodec } from './mpegts.js';

/** What a segment must be for us to take it (THREATS.md 20: hostile input gets a clear error, never a hang). */
export interface SegmentLimits {
  /** Longest segment, seconds. @default 10 */
  maxDuration: number;
  /** Largest segment, bytes. @default 32 MiB (2 s at 128 Mb/s) */
  maxBytes: number;
  /** Fewest pictures: one frame has no frame rate and no duration to bill. @default 2 */
  minFrames: number;
  /** Video codecs decoded. @default ['h264', 'hevc'] */
  videoCodecs: readonly TsCodec[];
}

export const defaultSegmentLimits: Readonly<SegmentLimits> = Object.freeze({
  maxDuration: 10,
  maxBytes: 32 * 1024 * 1024,
  minFrames: 2,
  videoCodecs: Object.freeze(['h264', 'hevc'] as TsCodec[]),
});

export interface TranscodeOptions {
  limits: SegmentLimits;
  /** x264 preset: speed against compression; the same for every rendition. @default 'veryfast' */
  preset: 'ultrafast' | 'superfast' | 'veryfast' | 'faster' | 'fast' | 'medium' | 'slow';
  /** Threads per x264 encoder; 0 lets x264 choose (1.5 × cores). @default 0 */
  threads: number;
  /** AAC bitrate when the source audio is not AAC and must be re-encoded, bits/s. @default 96_000 */
  audioBitrate: number;
  /** Kill ffmpeg after this long, ms. @default 30_000 */
  timeoutMs: number;
}

export const defaultTranscodeOptions: Readonly<TranscodeOptions> = Object.freeze({
  limits: defaultSegmentLimits,
  preset: 'veryfast',
  threads: 0,
  audioBitrate: 96_000,
  timeoutMs: 30_000,
});

export interface SegmenterOptions {
  /** Target segment duration, seconds; segments are cut at the first keyframe at or after it. @default 2 */
  targetDuration: number;
  /** A segment growing past this without a keyframe fails the stream (a publisher with a huge GOP). @default 10 */
  maxDuration: number;
  /** A segment growing past this many bytes fails the stream. @default 32 MiB */
  maxBytes: number;
  /** Sequence number of the first segment. @default 0 */
  firstSeq: number;
}

export const defaultSegmenterOptions: Readonly<SegmenterOptions> = Object.freeze({
  targetDuration: 2,
  maxDuration: 10,
  maxBytes: 32 * 1024 * 1024,
  firstSeq: 0,
});

export interface RtmpServerOptions {
  /** Interface to listen on. @default '127.0.0.1' */
  host: string;
  /** TCP port; 0 picks a free one (read it back from `address()`). @default 1935 */
  port: number;
  /** Publishers at once; more are refused. @default 64 */
  maxPublishers: number;
  /** A client must complete the handshake and `publish` within this, ms. @default 10_000 */
  handshakeTimeoutMs: number;
  /** A publisher silent for this long is dropped, ms. @default 30_000 */
  idleTimeoutMs: number;
  /** Largest RTMP message accepted, bytes (one video frame). @default 16 MiB */
  maxMessageBytes: number;
}

export const defaultRtmpServerOptions: Readonly<RtmpServerOptions> = Object.freeze({
  host: '127.0.0.1',
  port: 1935,
  maxPublishers: 64,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  maxMessageBytes: 16 * 1024 * 1024,
});

export interface HttpPushOptions {
  /** URL prefix of `PUT {prefix}/:stream/:seq.ts`. @default '/live' */
  prefix: string;
  /** Largest body accepted, bytes; larger gets 413 before it is read. @default 32 MiB */
  maxBytes: number;
}

export const defaultHttpPushOptions: Readonly<HttpPushOptions> = Object.freeze({
  prefix: '/live',
  maxBytes: 32 * 1024 * 1024,
});

export interface HlsOptions {
  /** Live playlists list this many segments. @default 6 */
  windowSize: number;
  /**
   * Segments kept in memory after they leave the window, so a player that fetched the playlist just before
   * can still fetch them (RFC 8216 6.2.2). @default 4
   */
  keepAfterWindow: number;
}

export const defaultHlsOptions: Readonly<HlsOptions> = Object.freeze({
  windowSize: 6,
  keepAfterWindow: 4,
});

export { withDefaults } from '../node/options.js';
