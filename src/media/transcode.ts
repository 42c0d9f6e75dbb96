import type { Logger } from '../node/logger.js';
import { FfmpegError, SegmentFormatError } from './errors.js';
import { lastLines, type MediaTools, runFfmpeg } from './ffmpeg.js';
import type { MediaMetrics } from './metrics.js';
import { analyzeTs, PTS_HZ, type TsAnalysis, type TsVideoFacts } from './mpegts.js';
import {
  defaultTranscodeOptions,
  type SegmentLimits,
  type TranscodeOptions,
  withDefaults,
} from './options.js';
import { type Profile, scaleFilter } from './profiles.js';

/** Highest frame rate a segment may have, frames/s: bounds the frames a forged timestamp span can hide. */
const MAX_FPS = 120;

/** AAC-LC, what ffmpeg's `aac` encoder writes and what HLS players expect. */
export const AAC_LC_CODEC = 'mp4a.40.2';

/** Facts about the segment as received, from the in-process probe. */
export interface SegmentFacts {
  bytes: number;
  /** Seconds. */
  duration: number;
  frames: number;
  fps: number;
  videoCodec: string;
  audioCodec: string | undefined;
  /** First video PTS, 90 kHz: renditions carry the same timeline. */
  startPts: number | undefined;
  width: number | undefined;
  height: number | undefined;
  /** Σ width × height over frames (H.264 only). */
  pixels: number | undefined;
  /** HLS `CODECS` value (H.264 only). */
  codecs: string | undefined;
}

/** One encoded rendition with facts read from its own bytes in-process (no second ffprobe run). */
export interface Rendition {
  profile: Profile;
  /** MPEG-TS bytes. */
  bytes: Buffer;
  width: number;
  height: number;
  fps: number;
  frames: number;
  /** Seconds. */
  duration: number;
  /** Σ width × height over frames: what the broadcaster pays for. */
  pixels: number;
  /** First video PTS, 90 kHz. Equal across renditions of one segment. */
  startPts: number | undefined;
  /** HLS `CODECS`, video then audio when present. */
  codecs: string;
  hasAudio: boolean;
}

export interface TranscodeResult {
  source: SegmentFacts;
  renditions: Rendition[];
  /** Wall time, ms: in-process probe, the ffmpeg run, whole call. */
  timings: { probeMs: number; ffmpegMs: number; totalMs: number };
}

/** What the orchestrator's pool, a remote transcoder or a local one all offer. */
export interface SegmentTranscoder {
  transcode(
    segment: Uint8Array,
    profiles: readonly Profile[],
    opts?: TranscodeCallOptions,
  ): Promise<TranscodeResult>;
}

export interface TranscodeCallOptions {
  signal?: AbortSignal | undefined;
  /**
   * The caller's `validateSegment` result for `segment`, under the same limits: the segment is not read a second
   * time (a pass over a megabyte per segment on the orchestrator's hot path).
   */
  analysis?: TsAnalysis | undefined;
}

export interface LocalTranscoderDeps {
  tools: MediaTools;
  logger?: Logger;
  metrics?: MediaMetrics;
}

/**
 * Transcodes segments with the local ffmpeg: one process per segment decodes it once and encodes every
 * rendition (split filter, one libx264 per output), stdin in, one pipe per rendition out (fd 3, 4, …), no temp
 * files. Timestamps are kept (`-copyts`, `-mpegts_copyts 1`), so rendition N of every profile starts at the
 * source's PTS (rounded to the output frame grid) and consecutive segments play back to back.
 */
export class LocalTranscoder implements SegmentTranscoder {
  readonly options: TranscodeOptions;
  private readonly log: Logger | undefined;

  constructor(
    options: Partial<TranscodeOptions>,
    private readonly deps: LocalTranscoderDeps,
  ) {
    this.options = withDefaults(defaultTranscodeOptions, options);
    this.log = deps.logger?.child({ module: 'transcode' });
  }

  /**
   * Validates then transcodes one MPEG-TS segment into every profile. Rejects with {@link SegmentFormatError}
   * (`SegmentFormatDidntMatchJobInputParams`, `details.reason`) for input we do not take or cannot decode,
   * {@link FfmpegError} `FfmpegTimeout` after `timeoutMs`, or the signal's reason when aborted.
   */
  async transcode(
    segment: Uint8Array,
    profiles: readonly Profile[],
    opts: TranscodeCallOptions = {},
  ): Promise<TranscodeResult> {
    const metrics = this.deps.metrics;
    const started = performance.now();
    try {
      const result = await this.run(segment, profiles, opts, started);
      metrics?.transcodeSeconds.observe({ outcome: 'ok' }, result.timings.totalMs / 1000);
      metrics?.transcodedPixels.inc(result.renditions.reduce((sum, r) => sum + r.pixels, 0));
      return result;
    } catch (err) {
      const outcome =
        err instanceof SegmentFormatError ? 'rejected' : opts.signal?.aborted ? 'aborted' : 'failed';
      metrics?.transcodeSeconds.observe({ outcome }, (performance.now() - started) / 1000);
      if (err instanceof SegmentFormatError) metrics?.rejectedSegments.inc({ reason: err.details.reason });
      throw err;
    }
  }

  private async run(
    segment: Uint8Array,
    profiles: readonly Profile[],
    opts: TranscodeCallOptions,
    started: number,
  ): Promise<TranscodeResult> {
    opts.signal?.throwIfAborted();
    if (profiles.length === 0) throw new RangeError('transcode needs at least one profile');
    const analysis = opts.analysis ?? validateSegment(segment, this.options.limits);
    const probeMs = performance.now() - started;
    const source = segmentFacts(analysis);
    const audio = analysis.audio === undefined ? 'none' : analysis.audio.codec === 'aac' ? 'copy' : 'aac';
    const args = buildTranscodeArgs(profiles, {
      ...this.options,
      audio,
      input: 'pipe:0',
      outputs: profiles.map((_, i) => `pipe:${3 + i}`),
    });

    let run: Awaited<ReturnType<typeof runFfmpeg>>;
    try {
      run = await runFfmpeg(this.deps.tools.ffmpeg, {
        args,
        input: segment,
        outputPipes: profiles.length,
        timeoutMs: this.options.timeoutMs,
        signal: opts.signal,
        // Renditions are smaller than the source at any sane bitrate; 8× covers upscaling a tiny source.
        maxOutputBytes: Math.max(8 * segment.length, 16 * 1024 * 1024),
      });
    } catch (err) {
      // A segment that passed the structural checks but that ffmpeg cannot decode is still the sender's input.
      if (err instanceof FfmpegError && err.code === 'FfmpegFailed') {
        throw new SegmentFormatError(
          'Undecodable',
          `ffmpeg could not decode it: ${lastLines(err.details.stderrTail ?? '', 2)}`,
          { stderrTail: err.details.stderrTail },
          err,
        );
      }
      throw err;
    }

    const renditions = profiles.map((profile, i) => {
      const bytes = run.outputs[i] ?? Buffer.alloc(0);
      return renditionFacts(profile, bytes, run.stderrTail);
    });
    const totalMs = performance.now() - started;
    this.log?.debug(
      { frames: source.frames, profiles: profiles.map((p) => p.name), ffmpegMs: Math.round(run.elapsedMs) },
      'segment transcoded',
    );
    return { source, renditions, timings: { probeMs, ffmpegMs: run.elapsedMs, totalMs } };
  }
}

/**
 * The structural checks, cheapest first, on the in-process probe. Throws {@link SegmentFormatError} with the
 * reason; returns the analysis for reuse.
 */
export function validateSegment(segment: Uint8Array, limits: SegmentLimits): TsAnalysis {
  if (segment.length === 0) throw new SegmentFormatError('Empty', 'the segment has no bytes', { bytes: 0 });
  if (segment.length > limits.maxBytes) {
    throw new SegmentFormatError(
      'TooLarge',
      `${segment.length} bytes is over the ${limits.maxBytes}-byte limit; cut shorter segments or lower the bitrate`,
      { bytes: segment.length, maxBytes: limits.maxBytes },
    );
  }
  const analysis = analyzeTs(segment);
  const video = analysis.video;
  if (!video) {
    throw new SegmentFormatError(
      'NoVideo',
      `no video stream (streams: ${analysis.streams.map((s) => s.codec).join(', ') || 'none'})`,
      { streams: analysis.streams.map((s) => s.codec) },
    );
  }
  if (!limits.videoCodecs.includes(video.codec)) {
    throw new SegmentFormatError(
      'UnsupportedCodec',
      `video codec ${video.codec} is not taken here; accepted: ${limits.videoCodecs.join(', ')}`,
      { codec: video.codec, accepted: [...limits.videoCodecs] },
    );
  }
  if (video.frames < limits.minFrames) {
    throw new SegmentFormatError(
      'TooFewFrames',
      `${video.frames} frame(s); at least ${limits.minFrames} are needed`,
      { frames: video.frames, minFrames: limits.minFrames },
    );
  }
  if (video.duration > limits.maxDuration) {
    throw new SegmentFormatError(
      'TooLong',
      `${video.duration.toFixed(3)} s is over the ${limits.maxDuration} s limit; cut shorter segments`,
      { duration: video.duration, maxDuration: limits.maxDuration },
    );
  }
  // Timestamps are the sender's word: a segment can claim 2 s and carry ten minutes of frames.
  if (video.frames > limits.maxDuration * MAX_FPS) {
    throw new SegmentFormatError(
      'TooLong',
      `${video.frames} frames is more than ${limits.maxDuration} s at ${MAX_FPS} fps; cut shorter segments`,
      { frames: video.frames, maxDuration: limits.maxDuration },
    );
  }
  checkTimestamps(video);
  if (!video.startsWithKeyframe) {
    throw new SegmentFormatError(
      'NoKeyframe',
      'the first picture is not a keyframe; cut segments at keyframes',
      {
        frames: video.frames,
      },
    );
  }
  return analysis;
}

/**
 * A segment's duration is billed from its own timestamps (issue 9 §2), so they must be there and make sense:
 * every picture timed, decode times only going up, no two pictures presented at once, and a span that agrees
 * with the frame count at the rate the timestamps themselves show (the median frame interval), within
 * {@link SPAN_SLACK_FRAMES} frames or {@link SPAN_SLACK_SHARE} of the count — room for dropped frames and
 * millisecond-rounded RTMP clocks, none for a segment whose span was stretched, squeezed or left out.
 */
function checkTimestamps(video: TsVideoFacts): void {
  const t = video.timestamps;
  if (t.missingPts > 0) {
    throw new SegmentFormatError(
      'MissingTimestamps',
      `${t.missingPts} of ${video.frames} pictures carry no presentation timestamp, so the segment's duration cannot be read; mux every picture with a PTS`,
      { frames: video.frames, missingPts: t.missingPts },
    );
  }
  if (t.dtsNotIncreasing > 0 || t.ptsBeforeDts > 0 || t.duplicatePts > 0) {
    throw new SegmentFormatError(
      'NonMonotonicTimestamps',
      `the timestamps do not run forward: ${t.dtsNotIncreasing} decode time(s) not after the previous picture's, ${t.duplicatePts} picture(s) presented at the same instant as another, ${t.ptsBeforeDts} presented before being decoded`,
      {
        frames: video.frames,
        dtsNotIncreasing: t.dtsNotIncreasing,
        duplicatePts: t.duplicatePts,
        ptsBeforeDts: t.ptsBeforeDts,
      },
    );
  }
  // One picture has no span to check; whether a single frame is taken at all is `minFrames`' call (default 2).
  if (video.frames < 2) return;
  const span = (video.duration * (video.frames - 1) * PTS_HZ) / video.frames;
  const fps = t.medianInterval > 0 ? PTS_HZ / t.medianInterval : 0;
  const atRate = t.medianInterval > 0 ? span / t.medianInterval + 1 : 0;
  const slack = Math.max(SPAN_SLACK_FRAMES, video.frames * SPAN_SLACK_SHARE);
  if (!(span > 0) || fps > MAX_FPS * 1.05 || Math.abs(atRate - video.frames) > slack) {
    throw new SegmentFormatError(
      'TimestampSpanMismatch',
      `${video.frames} pictures span ${(span / PTS_HZ).toFixed(3)} s, but at the ${fps.toFixed(2)} fps their timestamps show that span holds ${Math.round(atRate)}; the timestamps do not describe these frames`,
      { frames: video.frames, spanSeconds: span / PTS_HZ, fps, framesAtRate: Math.round(atRate) },
    );
  }
}

/** Frames a segment's span may disagree with its picture count by, at least. */
const SPAN_SLACK_FRAMES = 2;
/** Share of the picture count the span may disagree with it by. */
const SPAN_SLACK_SHARE = 0.25;

/** Facts about a segment as the in-process probe reads them. */
export function segmentFacts(analysis: TsAnalysis): SegmentFacts {
  const v = analysis.video;
  return {
    bytes: analysis.bytes,
    duration: v?.duration ?? 0,
    frames: v?.frames ?? 0,
    fps: v?.fps ?? 0,
    videoCodec: v?.codec ?? 'none',
    audioCodec: analysis.audio?.codec,
    startPts: v?.startPts,
    width: v?.width,
    height: v?.height,
    pixels: v?.pixels,
    codecs:
      v?.codecString &&
      (analysis.audio?.codec === 'aac' ? `${v.codecString},${AAC_LC_CODEC}` : v.codecString),
  };
}

/**
 * A rendition's facts read from its own bytes (frames, size, fps, Σ pixels, codecs), or undefined when the bytes
 * hold no decodable video. Shared by local and remote transcoding: figures a broadcaster pays for come from
 * the output itself, never from whoever produced it.
 */
export function readRendition(profile: Profile, bytes: Buffer): Rendition | undefined {
  let analysis: TsAnalysis | undefined;
  try {
    analysis = bytes.length > 0 ? analyzeTs(bytes) : undefined;
  } catch {
    analysis = undefined;
  }
  const v = analysis?.video;
  if (!v || v.frames === 0 || v.width === undefined || v.height === undefined) return undefined;
  const hasAudio = analysis?.audio !== undefined;
  return {
    profile,
    bytes,
    width: v.width,
    height: v.height,
    fps: Math.round(v.fps * 1000) / 1000,
    frames: v.frames,
    duration: v.duration,
    pixels: v.pixels ?? v.frames * v.width * v.height,
    startPts: v.startPts,
    codecs: hasAudio ? `${v.codecString},${AAC_LC_CODEC}` : (v.codecString ?? 'avc1.640028'),
    hasAudio,
  };
}

function renditionFacts(profile: Profile, bytes: Buffer, stderrTail: string): Rendition {
  const rendition = readRendition(profile, bytes);
  if (!rendition) {
    throw new SegmentFormatError(
      'Undecodable',
      `rendition ${profile.name} came out empty: ${lastLines(stderrTail, 2)}`,
      {
        profile: profile.name,
        bytes: bytes.length,
        stderrTail,
      },
    );
  }
  return rendition;
}

export interface TranscodeArgsOptions extends Pick<TranscodeOptions, 'preset' | 'threads' | 'audioBitrate'> {
  /** 'copy' for AAC sources, 'aac' to re-encode, 'none' when the source has no audio. */
  audio: 'copy' | 'aac' | 'none';
  /** ffmpeg input URL: `pipe:0` or a path. */
  input: string;
  /** One ffmpeg output URL per profile: `pipe:3`… or paths. */
  outputs: readonly string[];
}

/**
 * The ffmpeg command line of one multi-rendition transcode. Exported so the benchmark runs the very same
 * settings through a bare ffmpeg.
 */
export function buildTranscodeArgs(profiles: readonly Profile[], o: TranscodeArgsOptions): string[] {
  const n = profiles.length;
  const splits = profiles.map((_, i) => `[s${i}]`).join('');
  const chains = profiles.map((p, i) => `[s${i}]${scaleFilter(p)}[v${i}]`);
  const graph = [`[0:v:0]split=${n}${splits}`, ...chains].join(';');
  const args = [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'error',
    // Keep source timestamps: renditions align with the source and each other, segment after segment.
    '-copyts',
    // The fps filter already makes the output CFR; ffmpeg's own vsync would pad from t=0 under -copyts.
    '-vsync',
    'passthrough',
    '-f',
    'mpegts',
    '-i',
    o.input,
    '-filter_complex',
    graph,
  ];
  profiles.forEach((p, i) => {
    args.push('-map', `[v${i}]`);
    if (o.audio !== 'none') args.push('-map', '0:a:0');
    args.push(
      '-c:v',
      'libx264',
      '-preset',
      o.preset,
      '-b:v',
      String(p.bitrate),
      '-maxrate',
      String(p.bitrate),
      '-bufsize',
      String(2 * p.bitrate),
      '-g',
      String(Math.max(1, Math.round(p.gop * p.fps))),
    );
    if (p.h264Profile) args.push('-profile:v', p.h264Profile);
    if (o.threads > 0) args.push('-threads', String(o.threads));
    if (o.audio === 'copy') args.push('-c:a', 'copy');
    else if (o.audio === 'aac') args.push('-c:a', 'aac', '-b:a', String(o.audioBitrate));
    // Without this the mpegts muxer adds its 1.4 s mux delay on top of the copied timestamps.
    args.push('-mpegts_copyts', '1', '-f', 'mpegts', o.outputs[i] ?? `pipe:${3 + i}`);
  });
  return args;
}
