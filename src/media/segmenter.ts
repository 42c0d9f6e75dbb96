import type { Readable } from 'node:stream';
import type { Logger } from '../node/logger.js';
import { IngestError } from './errors.js';
import { FfmpegProcess, lastLines, type MediaTools } from './ffmpeg.js';
import { PTS_HZ, ptsDiff, TsDemuxer, type TsVideoFrame } from './mpegts.js';
import { defaultSegmenterOptions, type SegmenterOptions, withDefaults } from './options.js';

/** One cut MPEG-TS segment, starting with PAT, PMT and a keyframe. */
export interface Segment {
  /** Position in the stream, from `firstSeq`, +1 per segment. */
  seq: number;
  /** Seconds, from this segment's first keyframe to the next segment's. */
  duration: number;
  bytes: Buffer;
  /** PTS of the first keyframe, 90 kHz. */
  startPts: number;
  /** The timeline jumped (publisher restarted its clock): players need `#EXT-X-DISCONTINUITY` here. */
  discontinuity: boolean;
}

/**
 * Cuts a continuous MPEG-TS byte stream into segments at keyframes, in-process. Push chunks of any size; each
 * call returns the segments it completed. A segment ends at the first keyframe at least `targetDuration` after
 * its start; it is emitted once that keyframe's access unit is complete (one frame of delay).
 */
export class TsSegmenter {
  readonly options: SegmenterOptions;
  private readonly demuxer: TsDemuxer;
  private chunks: Buffer[] = [];
  /** Absolute offset of `chunks[0][0]`. */
  private chunksStart = 0;
  private chunksBytes = 0;
  private seq: number;
  private start: { offset: number; pts: number; discontinuity: boolean } | undefined;
  private lastPts: number | undefined;
  private pictures = 0;
  private ready: Segment[] = [];

  constructor(options: Partial<SegmenterOptions> = {}) {
    this.options = withDefaults(defaultSegmenterOptions, options);
    this.seq = this.options.firstSeq;
    this.demuxer = new TsDemuxer({ onVideoFrame: (f) => this.onFrame(f) });
  }

  /** Feeds bytes; returns the segments completed by them. Throws {@link IngestError} on a runaway segment. */
  push(chunk: Uint8Array): Segment[] {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.chunks.push(buf);
    this.chunksBytes += buf.length;
    this.demuxer.push(buf);
    if (this.start !== undefined && this.demuxer.bytes - this.start.offset > this.options.maxBytes) {
      throw new IngestError(
        'IngestTooLarge',
        `A segment grew past ${this.options.maxBytes} bytes without a keyframe to cut at; lower the bitrate or the keyframe interval`,
        { maxBytes: this.options.maxBytes },
      );
    }
    // Before the first keyframe nothing is kept but the access unit being read, which may be that keyframe.
    if (this.start === undefined) this.dropBefore(this.demuxer.videoPesOffset ?? this.demuxer.bytes);
    return this.take();
  }

  /** End of input: returns the last, possibly short, segment. */
  end(): Segment[] {
    this.demuxer.end();
    if (this.start !== undefined && this.lastPts !== undefined) {
      const span = ptsDiff(this.start.pts, this.lastPts);
      // The last frame lasts as long as the average frame before it.
      const duration = this.pictures > 1 ? (span * this.pictures) / (this.pictures - 1) / PTS_HZ : 0;
      this.emit(this.demuxer.bytes, duration);
    }
    this.start = undefined;
    return this.take();
  }

  private take(): Segment[] {
    const out = this.ready;
    this.ready = [];
    return out;
  }

  private onFrame(f: TsVideoFrame): void {
    if (!f.picture || f.pts === undefined) return;
    const start = this.start;
    if (start === undefined) {
      // Bytes before the first keyframe cannot be decoded on their own: drop them (PAT/PMT are re-added).
      if (!f.keyframe) return;
      this.start = { offset: f.offset, pts: f.pts, discontinuity: false };
      this.lastPts = f.pts;
      this.pictures = 1;
      return;
    }
    const elapsed = ptsDiff(start.pts, f.pts);
    const jumped = elapsed < -PTS_HZ || elapsed > this.options.maxDuration * 2 * PTS_HZ;
    // Half a 90 kHz tick of slack per frame would do; 1 ms absorbs encoders that round timestamps.
    if (f.keyframe && (jumped || elapsed >= this.options.targetDuration * PTS_HZ - 90)) {
      const duration = jumped ? this.segmentSpan() : elapsed / PTS_HZ;
      this.emit(f.offset, duration);
      this.start = { offset: f.offset, pts: f.pts, discontinuity: jumped };
      this.lastPts = f.pts;
      this.pictures = 1;
      return;
    }
    if (!jumped && elapsed > this.options.maxDuration * PTS_HZ) {
      throw new IngestError(
        'KeyframeIntervalTooLong',
        `No keyframe for ${(elapsed / PTS_HZ).toFixed(1)} s (limit ${this.options.maxDuration} s); set the encoder's keyframe interval to ${this.options.targetDuration} s`,
        { seconds: elapsed / PTS_HZ, maxDuration: this.options.maxDuration },
      );
    }
    this.pictures++;
    if (this.lastPts === undefined || ptsDiff(this.lastPts, f.pts) > 0) this.lastPts = f.pts;
  }

  private segmentSpan(): number {
    if (this.start === undefined || this.lastPts === undefined || this.pictures < 2) return 0;
    const span = ptsDiff(this.start.pts, this.lastPts);
    return (span * this.pictures) / (this.pictures - 1) / PTS_HZ;
  }

  private emit(endOffset: number, duration: number): void {
    const start = this.start;
    if (start === undefined) return;
    const body = this.slice(start.offset, endOffset);
    this.dropBefore(endOffset);
    const head: Buffer[] = [];
    // A segment must open with PAT and PMT so a player (or ffmpeg on stdin) can demux it alone.
    if (body[0] !== 0x47 || ((body[1] ?? 0) & 0x1f) !== 0 || body[2] !== 0) {
      if (this.demuxer.patPacket) head.push(Buffer.from(this.demuxer.patPacket));
      if (this.demuxer.pmtPacket) head.push(Buffer.from(this.demuxer.pmtPacket));
    }
    this.ready.push({
      seq: this.seq++,
      duration,
      bytes: head.length > 0 ? Buffer.concat([...head, body]) : body,
      startPts: start.pts,
      discontinuity: start.discontinuity,
    });
  }

  private slice(from: number, to: number): Buffer {
    const parts: Buffer[] = [];
    let pos = this.chunksStart;
    for (const c of this.chunks) {
      const end = pos + c.length;
      if (end > from && pos < to)
        parts.push(c.subarray(Math.max(0, from - pos), Math.min(c.length, to - pos)));
      pos = end;
    }
    return Buffer.concat(parts);
  }

  private dropBefore(offset: number): void {
    while (this.chunks.length > 0) {
      const first = this.chunks[0] as Buffer;
      if (this.chunksStart + first.length > offset) break;
      this.chunks.shift();
      this.chunksStart += first.length;
      this.chunksBytes -= first.length;
    }
  }
}

export interface SegmentSourceOptions extends Partial<SegmenterOptions> {
  /** A file path, an http(s)/rtmp URL ffmpeg can open, or a byte stream (e.g. FLV from the RTMP server). */
  input: string | Readable;
  /** ffmpeg demuxer for a stream input, e.g. 'flv'; probed when absent. */
  inputFormat?: string;
  /**
   * Re-encode the video to H.264 with keyframes every `targetDuration` instead of copying it. For sources whose
   * codec the transcoders do not take or whose keyframes are too far apart. @default false
   */
  reencode?: boolean;
  /**
   * Audio: stream-copied, or re-encoded to AAC (for sources whose audio HLS players cannot take, e.g. Opus or
   * PCM). The transcoder makes AAC for renditions either way. @default 'copy'
   */
  audio?: 'copy' | 'aac';
  /** Read a file at its native rate (`-re`), to simulate a live source. @default false */
  realtime?: boolean;
  signal?: AbortSignal | undefined;
}

export interface SegmentSourceDeps {
  tools: MediaTools;
  logger?: Logger;
}

/**
 * Segments a file, URL or byte stream: ffmpeg remuxes it (stream copy, or a re-encode when asked) to one
 * continuous MPEG-TS on stdout and {@link TsSegmenter} cuts it here. Yields segments as they complete; ends
 * when the input ends. Breaking out of the loop or aborting kills ffmpeg and waits for it to exit.
 * Throws {@link IngestError} `IngestFailed` when ffmpeg fails (message carries its stderr).
 */
export async function* segmentSource(
  options: SegmentSourceOptions,
  deps: SegmentSourceDeps,
): AsyncGenerator<Segment, void, undefined> {
  const segmenter = new TsSegmenter(options);
  const log = deps.logger?.child({ module: 'segmenter' });
  const input = typeof options.input === 'string' ? options.input : 'pipe:0';
  const video = options.reencode
    ? [
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-crf',
        '18',
        '-force_key_frames',
        `expr:gte(t,n_forced*${segmenter.options.targetDuration})`,
        '-pix_fmt',
        'yuv420p',
      ]
    : ['-c:v', 'copy'];
  const args = [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'error',
    ...(options.realtime ? ['-re'] : []),
    ...(options.inputFormat ? ['-f', options.inputFormat] : []),
    '-i',
    input,
    '-map',
    '0:v:0',
    '-map',
    '0:a:0?',
    ...video,
    ...(options.audio === 'aac' ? ['-c:a', 'aac', '-b:a', '128k'] : ['-c:a', 'copy']),
    '-f',
    'mpegts',
    'pipe:1',
  ];
  const proc = new FfmpegProcess(
    deps.tools.ffmpeg,
    {
      args,
      input: typeof options.input === 'string' ? undefined : options.input,
      stdout: 'stream',
      timeoutMs: 0,
      signal: options.signal,
    },
    deps.logger,
  );
  let finished = false;
  try {
    for await (const chunk of proc.stdout as Readable) {
      for (const segment of segmenter.push(chunk as Buffer)) {
        log?.debug(
          { seq: segment.seq, duration: segment.duration, bytes: segment.bytes.length },
          'segment cut',
        );
        yield segment;
      }
    }
    const result = await proc.exited;
    if (result.exitCode !== 0) {
      throw new IngestError('IngestFailed', `Cannot read the source: ${lastLines(result.stderrTail, 3)}`, {
        exitCode: result.exitCode,
        stderrTail: result.stderrTail,
      });
    }
    for (const segment of segmenter.end()) yield segment;
    finished = true;
  } finally {
    if (!finished) {
      proc.kill();
      await proc.exited.catch(() => undefined);
    }
  }
}
