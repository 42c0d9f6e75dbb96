import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../node/logger.js';
import { IngestError } from './errors.js';
import type { MediaTools } from './ffmpeg.js';
import { HlsDirectoryWriter, type HlsMediaFacts } from './hls.js';
import { analyzeTs } from './mpegts.js';
import { defaultTranscodeOptions, type TranscodeOptions } from './options.js';
import { type MediaProbe, probeMedia } from './probe.js';
import type { Profile } from './profiles.js';
import { type Segment, segmentSource } from './segmenter.js';
import { LocalTranscoder, type SegmentTranscoder, segmentFacts, type TranscodeResult } from './transcode.js';

export interface VodOptions {
  /** File path or URL ffmpeg can open. */
  input: string;
  /** Directory for `master.m3u8` and one folder per variant; created if missing. */
  outDir: string;
  profiles: readonly Profile[];
  /** Target segment duration, seconds. @default 2 */
  segmentDuration?: number;
  /** Segments transcoded at once. Each ffmpeg already uses every core, so more only helps remote transcoders. @default 1 */
  concurrency?: number;
  /**
   * Re-encode the source to H.264 with keyframes every `segmentDuration` before cutting: 'auto' does it when the
   * video codec is not one the transcoder takes, or when the source's keyframes turn out too far apart.
   * @default 'auto'
   */
  reencodeSource?: boolean | 'auto';
  /** Used for the local transcoder when `deps.transcoder` is not given. */
  transcode?: Partial<TranscodeOptions>;
  signal?: AbortSignal | undefined;
  /** Called after each segment is written. */
  onProgress?: (progress: VodProgress) => void;
}

export interface VodProgress {
  segmentsDone: number;
  /** Media seconds written so far. */
  secondsDone: number;
  /** Media seconds in the input, 0 when unknown. */
  totalSeconds: number;
  elapsedMs: number;
}

export interface VodDeps {
  tools: MediaTools;
  logger?: Logger;
  /** Who transcodes: the local ffmpeg by default; a broadcaster passes its orchestrator client. */
  transcoder?: SegmentTranscoder;
}

export interface VodRenditionSummary {
  name: string;
  width: number;
  height: number;
  fps: number;
  frames: number;
  pixels: number;
  bytes: number;
  /** bits/s over the whole output. */
  averageBitrate: number;
}

export interface VodSummary {
  input: string;
  outDir: string;
  master: string;
  segments: number;
  /** Media seconds. */
  duration: number;
  elapsedMs: number;
  /** Media seconds per wall second. */
  realtimeFactor: number;
  source: {
    codec: string;
    width: number | undefined;
    height: number | undefined;
    fps: number;
    reencoded: boolean;
  };
  renditions: VodRenditionSummary[];
}

/**
 * Local VOD: segments a file or URL, transcodes every segment into every profile and writes an HLS package
 * (master + source + one media playlist per rendition). No chain, no network beyond reading a URL input.
 */
export async function transcodeToHls(options: VodOptions, deps: VodDeps): Promise<VodSummary> {
  const log = deps.logger?.child({ module: 'vod' });
  const started = performance.now();
  const probe = await probeMedia(options.input, { signal: options.signal }, deps);
  if (!probe.video) {
    throw new IngestError('IngestFailed', `${options.input} has no video stream to transcode`, {
      input: options.input,
    });
  }
  const transcoder = deps.transcoder ?? new LocalTranscoder(options.transcode ?? {}, deps);
  const accepted = options.transcode?.limits?.videoCodecs ?? defaultTranscodeOptions.limits.videoCodecs;
  const mode = options.reencodeSource ?? 'auto';
  let reencode = mode === true || (mode === 'auto' && !accepted.includes(probe.video.codec as never));
  await mkdir(options.outDir, { recursive: true });
  try {
    return await run(options, deps, transcoder, probe, reencode, started);
  } catch (err) {
    if (
      !(mode === 'auto' && !reencode && err instanceof IngestError && err.code === 'KeyframeIntervalTooLong')
    ) {
      throw err;
    }
    log?.warn({ reason: err.message }, 'source keyframes too far apart; re-encoding the source');
    reencode = true;
    return run(options, deps, transcoder, probe, reencode, started);
  }
}

async function run(
  options: VodOptions,
  deps: VodDeps,
  transcoder: SegmentTranscoder,
  probe: MediaProbe,
  reencode: boolean,
  started: number,
): Promise<VodSummary> {
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  const writer = new HlsDirectoryWriter(
    options.outDir,
    options.profiles.map((p) => p.name),
  );
  const totals = new Map<string, VodRenditionSummary>();
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const inFlight: Array<{ segment: Segment; result: Promise<TranscodeResult> }> = [];
  let segments = 0;
  let seconds = 0;

  const settleOne = async () => {
    const head = inFlight.shift();
    if (!head) return;
    const result = await head.result;
    await writer.append(toSegmentSet(head.segment, result));
    for (const r of result.renditions) {
      const t = totals.get(r.profile.name) ?? {
        name: r.profile.name,
        width: r.width,
        height: r.height,
        fps: r.fps,
        frames: 0,
        pixels: 0,
        bytes: 0,
        averageBitrate: 0,
      };
      t.frames += r.frames;
      t.pixels += r.pixels;
      t.bytes += r.bytes.length;
      totals.set(r.profile.name, t);
    }
    segments++;
    seconds += head.segment.duration;
    options.onProgress?.({
      segmentsDone: segments,
      secondsDone: seconds,
      totalSeconds: probe.duration,
      elapsedMs: performance.now() - started,
    });
  };

  try {
    const source = segmentSource(
      {
        input: options.input,
        targetDuration: options.segmentDuration ?? 2,
        reencode,
        audio: probe.audio && probe.audio.codec !== 'aac' ? 'aac' : 'copy',
        signal,
      },
      deps,
    );
    for await (const segment of source) {
      const result = transcoder.transcode(segment.bytes, options.profiles, { signal });
      // Settled by settleOne in order; a rejection here must not count as unhandled meanwhile.
      result.catch(() => undefined);
      inFlight.push({ segment, result });
      if (inFlight.length >= concurrency) await settleOne();
    }
    while (inFlight.length > 0) await settleOne();
  } catch (err) {
    controller.abort(err);
    await Promise.allSettled(inFlight.map((f) => f.result));
    throw err;
  }
  await writer.finish();
  const elapsedMs = performance.now() - started;
  const first = writer.playlists.variants.get('source')?.facts;
  return {
    input: options.input,
    outDir: options.outDir,
    master: join(options.outDir, 'master.m3u8'),
    segments,
    duration: seconds,
    elapsedMs,
    realtimeFactor: elapsedMs > 0 ? seconds / (elapsedMs / 1000) : 0,
    source: {
      codec: reencode ? 'h264' : (probe.video?.codec ?? 'unknown'),
      width: first?.width,
      height: first?.height,
      fps: first?.fps ?? probe.video?.fps ?? 0,
      reencoded: reencode,
    },
    renditions: options.profiles.map((p) => {
      const t = totals.get(p.name);
      if (!t)
        return {
          name: p.name,
          width: 0,
          height: 0,
          fps: 0,
          frames: 0,
          pixels: 0,
          bytes: 0,
          averageBitrate: 0,
        };
      return { ...t, averageBitrate: seconds > 0 ? Math.round((t.bytes * 8) / seconds) : 0 };
    }),
  };
}

/** The HLS view of one transcoded segment. */
export function toSegmentSet(segment: Segment, result: TranscodeResult) {
  const source: HlsMediaFacts = {
    bytes: segment.bytes,
    width: result.source.width,
    height: result.source.height,
    fps: round3(result.source.fps),
    codecs: result.source.codecs,
  };
  const renditions: Record<string, HlsMediaFacts> = {};
  for (const r of result.renditions) renditions[r.profile.name] = r;
  return {
    seq: segment.seq,
    duration: segment.duration,
    discontinuity: segment.discontinuity,
    source,
    renditions,
  };
}

/** Facts of a segment that was not transcoded (e.g. a source-only package). */
export function sourceFacts(segment: Segment): HlsMediaFacts {
  return hlsSourceFacts(segment.bytes, segmentFacts(analyzeTs(segment.bytes)));
}

/** The HLS view of a source segment whose facts were already read. */
export function hlsSourceFacts(
  bytes: Uint8Array,
  f: { width: number | undefined; height: number | undefined; fps: number; codecs: string | undefined },
): HlsMediaFacts {
  return { bytes, width: f.width, height: f.height, fps: round3(f.fps), codecs: f.codecs };
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
