import type { Logger } from '../node/logger.js';
import { FfmpegError, ProbeError } from './errors.js';
import { lastLines, type MediaTools, runFfmpeg } from './ffmpeg.js';
import { analyzeTs } from './mpegts.js';

/** What ffprobe says about a file, URL or buffer, flattened to what we use. */
export interface MediaProbe {
  /** Container as ffprobe names it, e.g. `mpegts`, `mov,mp4,m4a,3gp,3g2,mj2`. */
  format: string;
  /** Seconds; 0 when unknown (live sources). */
  duration: number;
  /** Bytes, when known. */
  size: number | undefined;
  /** Container bitrate, bits/s, when known. */
  bitrate: number | undefined;
  video: ProbeVideo | undefined;
  audio: ProbeAudio | undefined;
}

export interface ProbeVideo {
  codec: string;
  profile: string | undefined;
  width: number;
  height: number;
  /** Average frame rate, frames/s. */
  fps: number;
  pixelFormat: string | undefined;
  /** Display aspect ratio, width / height, sample aspect applied. */
  displayAspect: number;
  /** Frame count: from the container, or counted when asked (`countFrames`). */
  frames: number | undefined;
  /** frames × width × height, when frames is known. */
  pixels: number | undefined;
  /** First timestamp, seconds. */
  startTime: number | undefined;
}

export interface ProbeAudio {
  codec: string;
  sampleRate: number;
  channels: number;
  bitrate: number | undefined;
}

export interface ProbeOptions {
  /** Decode every frame to count them (slow on long files; exact). MPEG-TS input is counted in-process instead. */
  countFrames?: boolean;
  /** @default 30_000 ms */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
}

interface FfprobeJson {
  format?: { format_name?: string; duration?: string; size?: string; bit_rate?: string };
  streams?: Array<{
    codec_type?: string;
    codec_name?: string;
    profile?: string;
    width?: number;
    height?: number;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    pix_fmt?: string;
    sample_aspect_ratio?: string;
    nb_frames?: string;
    nb_read_frames?: string;
    start_time?: string;
    sample_rate?: string;
    channels?: number;
    bit_rate?: string;
  }>;
}

/**
 * Probes a file path, a URL, or bytes (sent on stdin) with ffprobe. Throws {@link ProbeError} `ProbeFailed`
 * with ffprobe's reason when it cannot read the input.
 */
export async function probeMedia(
  input: string | Uint8Array,
  options: ProbeOptions,
  deps: { tools: MediaTools; logger?: Logger },
): Promise<MediaProbe> {
  const label = typeof input === 'string' ? input : `<${input.length} bytes>`;
  const args = ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams'];
  const countInProcess = options.countFrames && input instanceof Uint8Array;
  if (options.countFrames && !countInProcess) args.push('-count_frames');
  args.push('-i', typeof input === 'string' ? input : 'pipe:0');
  let stdout: Buffer;
  try {
    const run = await runFfmpeg(
      deps.tools.ffprobe,
      {
        args,
        input: typeof input === 'string' ? undefined : input,
        stdout: 'collect',
        timeoutMs: options.timeoutMs ?? 30_000,
        signal: options.signal,
      },
      deps,
    );
    stdout = run.stdout;
  } catch (err) {
    if (err instanceof FfmpegError && err.code === 'FfmpegFailed') {
      throw new ProbeError(
        'ProbeFailed',
        `Cannot read ${label}: ${lastLines(err.details.stderrTail ?? '', 2)}`,
        { input: label, ...(err.details.stderrTail ? { stderrTail: err.details.stderrTail } : {}) },
        { cause: err },
      );
    }
    throw err;
  }
  let json: FfprobeJson;
  try {
    json = JSON.parse(stdout.toString('utf8')) as FfprobeJson;
  } catch (err) {
    throw new ProbeError(
      'ProbeFailed',
      `ffprobe gave no JSON for ${label}`,
      { input: label },
      { cause: err },
    );
  }
  const result = toProbe(json);
  if (input instanceof Uint8Array) result.size ??= input.length;
  if (countInProcess && result.video && input instanceof Uint8Array) {
    try {
      const v = analyzeTs(input).video;
      if (v) {
        result.video.frames = v.frames;
        result.video.pixels = v.pixels ?? v.frames * result.video.width * result.video.height;
        // ffprobe cannot seek a pipe for the end timestamp; the packet timestamps give it exactly.
        if (result.duration === 0) result.duration = v.duration;
      }
    } catch {
      // not MPEG-TS: leave the container's count
    }
  }
  return result;
}

function num(s: string | undefined): number | undefined {
  if (s === undefined || s === 'N/A') return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

function ratio(s: string | undefined): number | undefined {
  if (!s) return undefined;
  const [a, b] = s.split(/[/:]/).map(Number);
  if (a === undefined || !Number.isFinite(a)) return undefined;
  if (b === undefined) return a;
  return b > 0 && a > 0 ? a / b : undefined;
}

function toProbe(json: FfprobeJson): MediaProbe {
  const streams = json.streams ?? [];
  const v = streams.find((s) => s.codec_type === 'video');
  const a = streams.find((s) => s.codec_type === 'audio');
  let video: ProbeVideo | undefined;
  if (v?.width && v.height) {
    const frames = num(v.nb_read_frames) ?? num(v.nb_frames);
    const sar = ratio(v.sample_aspect_ratio) ?? 1;
    video = {
      codec: v.codec_name ?? 'unknown',
      profile: v.profile,
      width: v.width,
      height: v.height,
      fps: round3(ratio(v.avg_frame_rate) ?? ratio(v.r_frame_rate) ?? 0),
      pixelFormat: v.pix_fmt,
      displayAspect: (v.width * sar) / v.height,
      frames,
      pixels: frames === undefined ? undefined : frames * v.width * v.height,
      startTime: num(v.start_time),
    };
  }
  const audio: ProbeAudio | undefined = a && {
    codec: a.codec_name ?? 'unknown',
    sampleRate: num(a.sample_rate) ?? 0,
    channels: a.channels ?? 0,
    bitrate: num(a.bit_rate),
  };
  return {
    format: json.format?.format_name ?? 'unknown',
    duration: num(json.format?.duration) ?? 0,
    size: num(json.format?.size),
    bitrate: num(json.format?.bit_rate),
    video,
    audio,
  };
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
