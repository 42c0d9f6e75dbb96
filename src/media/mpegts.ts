/**
 * A small MPEG-TS reader: enough of ISO/IEC 13818-1 to validate a segment, count its frames, find its keyframes
 * and timestamps and read its H.264 SPS, in-process. It is the fast probe in front of every transcode (no
 * ffprobe spawn per segment) and the cutter behind the live segmenter. Input is untrusted: nothing here throws
 * on malformed bytes except {@link analyzeTs} when the bytes are not a transport stream at all.
 */
import { SegmentFormatError } from './errors.js';
import { avcCodecString, type H264Sps, parseH264Sps } from './h264.js';

export const TS_PACKET_SIZE = 188;
const SYNC_BYTE = 0x47;
/** MPEG-TS timestamps tick at 90 kHz. */
export const PTS_HZ = 90_000;
const PTS_WRAP = 2 ** 33;

export type TsCodec =
  | 'h264'
  | 'hevc'
  | 'mpeg1video'
  | 'mpeg2video'
  | 'mpeg4'
  | 'aac'
  | 'aac_latm'
  | 'mp3'
  | 'ac3'
  | 'eac3'
  | 'unknown';

export type TrackKind = 'video' | 'audio' | 'other';

const STREAM_TYPES: Record<number, { codec: TsCodec; kind: TrackKind }> = {
  1: { codec: 'mpeg1video', kind: 'video' },
  2: { codec: 'mpeg2video', kind: 'video' },
  3: { codec: 'mp3', kind: 'audio' },
  4: { codec: 'mp3', kind: 'audio' },
  15: { codec: 'aac', kind: 'audio' },
  16: { codec: 'mpeg4', kind: 'video' },
  17: { codec: 'aac_latm', kind: 'audio' },
  27: { codec: 'h264', kind: 'video' },
  36: { codec: 'hevc', kind: 'video' },
  129: { codec: 'ac3', kind: 'audio' },
  135: { codec: 'eac3', kind: 'audio' },
};

/** One elementary stream as the PMT lists it. */
export interface TsStream {
  pid: number;
  streamType: number;
  codec: TsCodec;
  kind: TrackKind;
}

/** One video access unit (one PES), reported when the next one starts or at {@link TsDemuxer.end}. */
export interface TsVideoFrame {
  pid: number;
  /** Byte offset in the whole input of the TS packet that starts this PES: where a cut before it goes. */
  offset: number;
  /** Presentation / decode timestamps, 90 kHz, as written (not unwrapped). */
  pts: number | undefined;
  dts: number | undefined;
  /** An IDR (H.264) / IRAP (HEVC) picture, or the muxer's random-access flag for other codecs. */
  keyframe: boolean;
  /** Whether the PES carried a picture at all (a PES of only SEI/AUD is not a frame). */
  picture: boolean;
  /** The SPS carried in this access unit, if any. */
  sps: H264Sps | undefined;
}

export interface TsDemuxerEvents {
  onVideoFrame?: (frame: TsVideoFrame) => void;
  /** An audio PES started: timestamps only, the payload is not needed. */
  onAudioPes?: (pid: number, pts: number | undefined) => void;
  onStreams?: (streams: TsStream[]) => void;
}

/**
 * Push-based demuxer: feed chunks of any size with {@link push}, call {@link end} at the end. Tracks the first
 * program only, which is what every segmenter and encoder we meet writes.
 */
export class TsDemuxer {
  /** Bytes seen, including any skipped while resynchronising. */
  bytes = 0;
  packets = 0;
  /** Bytes skipped because they did not sit on a 188-byte packet boundary. */
  skippedBytes = 0;
  streams: TsStream[] = [];
  /** The latest PAT and PMT packets, kept whole so a cut segment can start with them. */
  patPacket: Uint8Array | undefined;
  pmtPacket: Uint8Array | undefined;

  private carry: Uint8Array = new Uint8Array(0);
  private carryOffset = 0;
  private pmtPid: number | undefined;
  private videoPid: number | undefined;
  private videoCodec: TsCodec = 'unknown';
  private audioPids = new Set<number>();
  private pes: { offset: number; chunks: Uint8Array[]; size: number; rai: boolean } | undefined;

  constructor(private readonly events: TsDemuxerEvents = {}) {}

  /** Offset of the TS packet that started the video access unit being read, if one is. */
  get videoPesOffset(): number | undefined {
    return this.pes?.offset;
  }

  push(chunk: Uint8Array): void {
    let data: Uint8Array;
    let base: number;
    if (this.carry.length > 0) {
      data = new Uint8Array(this.carry.length + chunk.length);
      data.set(this.carry, 0);
      data.set(chunk, this.carry.length);
      base = this.carryOffset;
    } else {
      data = chunk;
      base = this.bytes;
    }
    this.bytes += chunk.length;
    let pos = 0;
    while (data.length - pos >= TS_PACKET_SIZE) {
      if (data[pos] !== SYNC_BYTE) {
        const next = findSync(data, pos + 1);
        if (next < 0) {
          // Keep a packet's worth: the sync byte of the next packet may be in it.
          const keep = Math.min(data.length - pos, TS_PACKET_SIZE - 1);
          this.skippedBytes += data.length - pos - keep;
          pos = data.length - keep;
          break;
        }
        this.skippedBytes += next - pos;
        pos = next;
        continue;
      }
      this.packet(data.subarray(pos, pos + TS_PACKET_SIZE), base + pos);
      pos += TS_PACKET_SIZE;
    }
    this.carry = data.slice(pos);
    this.carryOffset = base + pos;
  }

  /** Flushes the last PES. Trailing bytes shorter than a packet are counted as skipped. */
  end(): void {
    this.skippedBytes += this.carry.length;
    this.carry = new Uint8Array(0);
    this.flushVideoPes();
  }

  private packet(p: Uint8Array, offset: number): void {
    this.packets++;
    const b1 = p[1] ?? 0;
    const pusi = (b1 & 0x40) !== 0;
    const pid = ((b1 & 0x1f) << 8) | (p[2] ?? 0);
    const afc = ((p[3] ?? 0) >> 4) & 0x3;
    let payloadStart = 4;
    let rai = false;
    if (afc === 2 || afc === 3) {
      const afLength = p[4] ?? 0;
      if (afLength > 0) rai = ((p[5] ?? 0) & 0x40) !== 0;
      payloadStart = 5 + afLength;
    }
    if (afc === 0 || afc === 2 || payloadStart >= TS_PACKET_SIZE) return;
    const payload = p.subarray(payloadStart);

    if (pid === 0) {
      if (pusi) this.parsePat(payload, p);
    } else if (pid === this.pmtPid) {
      if (pusi) this.parsePmt(payload, p);
    } else if (pid === this.videoPid) {
      if (pusi) {
        this.flushVideoPes();
        this.pes = { offset, chunks: [payload], size: payload.length, rai };
      } else if (this.pes && this.pes.size < MAX_PES_BYTES) {
        this.pes.chunks.push(payload);
        this.pes.size += payload.length;
      }
    } else if (this.audioPids.has(pid) && pusi) {
      this.events.onAudioPes?.(pid, readPesHeader(payload)?.pts);
    }
  }

  private parsePat(payload: Uint8Array, packet: Uint8Array): void {
    const section = psiSection(payload, 0x00);
    if (!section) return;
    // Program loop: 4 bytes per program; program 0 is the network PID, skip it.
    for (let i = 8; i + 4 <= section.length - 4; i += 4) {
      const program = ((section[i] ?? 0) << 8) | (section[i + 1] ?? 0);
      if (program === 0) continue;
      this.pmtPid = (((section[i + 2] ?? 0) & 0x1f) << 8) | (section[i + 3] ?? 0);
      this.patPacket = packet.slice();
      return;
    }
  }

  private parsePmt(payload: Uint8Array, packet: Uint8Array): void {
    const section = psiSection(payload, 0x02);
    if (!section) return;
    const programInfoLength = (((section[10] ?? 0) & 0x0f) << 8) | (section[11] ?? 0);
    const streams: TsStream[] = [];
    for (let i = 12 + programInfoLength; i + 5 <= section.length - 4; ) {
      const streamType = section[i] ?? 0;
      const pid = (((section[i + 1] ?? 0) & 0x1f) << 8) | (section[i + 2] ?? 0);
      const esInfoLength = (((section[i + 3] ?? 0) & 0x0f) << 8) | (section[i + 4] ?? 0);
      const known = STREAM_TYPES[streamType] ?? { codec: 'unknown' as const, kind: 'other' as const };
      streams.push({ pid, streamType, ...known });
      i += 5 + esInfoLength;
    }
    this.pmtPacket = packet.slice();
    if (sameStreams(streams, this.streams)) return;
    this.streams = streams;
    const video = streams.find((s) => s.kind === 'video');
    if (video?.pid !== this.videoPid) this.flushVideoPes();
    this.videoPid = video?.pid;
    this.videoCodec = video?.codec ?? 'unknown';
    this.audioPids = new Set(streams.filter((s) => s.kind === 'audio').map((s) => s.pid));
    this.events.onStreams?.(streams);
  }

  private flushVideoPes(): void {
    const pes = this.pes;
    this.pes = undefined;
    if (!pes || this.videoPid === undefined) return;
    const data = pes.chunks.length === 1 ? (pes.chunks[0] as Uint8Array) : concat(pes.chunks, pes.size);
    const header = readPesHeader(data);
    if (!header) return;
    const es = data.subarray(header.headerLength);
    const nal = scanAccessUnit(es, this.videoCodec);
    this.events.onVideoFrame?.({
      pid: this.videoPid,
      offset: pes.offset,
      pts: header.pts,
      dts: header.dts,
      keyframe: nal ? nal.keyframe : pes.rai,
      picture: nal ? nal.picture : es.length > 0,
      sps: nal?.sps,
    });
  }
}

/** A PES larger than this (a 2 s segment at 100 Mb/s is ~25 MB, one frame far less) is truncated, not kept. */
const MAX_PES_BYTES = 16 * 1024 * 1024;

function findSync(data: Uint8Array, from: number): number {
  for (let i = from; i < data.length; i++) {
    if (data[i] !== SYNC_BYTE) continue;
    // Require the next packet to line up too (when we have it), so one stray 0x47 does not fool us.
    const next = data[i + TS_PACKET_SIZE];
    if (next === undefined || next === SYNC_BYTE) return i;
  }
  return -1;
}

function psiSection(payload: Uint8Array, tableId: number): Uint8Array | undefined {
  const pointer = payload[0] ?? 0;
  const start = 1 + pointer;
  if (payload[start] !== tableId) return undefined;
  const sectionLength = (((payload[start + 1] ?? 0) & 0x0f) << 8) | (payload[start + 2] ?? 0);
  const end = start + 3 + sectionLength;
  if (end > payload.length || sectionLength < 9) return undefined;
  return payload.subarray(start, end);
}

function sameStreams(a: TsStream[], b: TsStream[]): boolean {
  return a.length === b.length && a.every((s, i) => s.pid === b[i]?.pid && s.streamType === b[i]?.streamType);
}

interface PesHeader {
  pts: number | undefined;
  dts: number | undefined;
  headerLength: number;
}

function readPesHeader(data: Uint8Array): PesHeader | undefined {
  if (data.length < 9 || data[0] !== 0 || data[1] !== 0 || data[2] !== 1) return undefined;
  const flags = data[7] ?? 0;
  const headerLength = 9 + (data[8] ?? 0);
  if (headerLength > data.length) return undefined;
  const pts = flags & 0x80 && data.length >= 14 ? readTimestamp(data, 9) : undefined;
  const dts = (flags & 0xc0) === 0xc0 && data.length >= 19 ? readTimestamp(data, 14) : pts;
  return { pts, dts, headerLength };
}

function readTimestamp(d: Uint8Array, i: number): number {
  const b0 = d[i] ?? 0;
  const b1 = d[i + 1] ?? 0;
  const b2 = d[i + 2] ?? 0;
  const b3 = d[i + 3] ?? 0;
  const b4 = d[i + 4] ?? 0;
  return ((b0 >> 1) & 0x07) * 2 ** 30 + ((b1 << 22) | ((b2 >> 1) << 15) | (b3 << 7) | (b4 >> 1));
}

/** Walks the NAL units of one access unit up to its first picture: keyframe?, picture?, SPS. */
function scanAccessUnit(
  es: Uint8Array,
  codec: TsCodec,
): { keyframe: boolean; picture: boolean; sps: H264Sps | undefined } | undefined {
  if (codec !== 'h264' && codec !== 'hevc') return undefined;
  let sps: H264Sps | undefined;
  let i = 0;
  while (i + 3 < es.length) {
    const start = nextStartCode(es, i);
    if (start < 0) break;
    const header = es[start] ?? 0;
    if (codec === 'h264') {
      const type = header & 0x1f;
      if (type === 7) sps = parseH264Sps(es.subarray(start, endOfNal(es, start)));
      if (type >= 1 && type <= 5) return { keyframe: type === 5, picture: true, sps };
    } else {
      const type = (header >> 1) & 0x3f;
      if (type < 32) return { keyframe: type >= 16 && type <= 23, picture: true, sps };
    }
    i = start + 1;
  }
  return { keyframe: false, picture: false, sps };
}

/** Index of the first byte after the next 00 00 01 at or after `from`, or -1. */
function nextStartCode(d: Uint8Array, from: number): number {
  for (let i = from; i + 2 < d.length; i++) {
    // Skip ahead when the third byte cannot end a start code: the common case in slice data.
    if ((d[i + 2] ?? 0) > 1) {
      i += 2;
      continue;
    }
    if (d[i] === 0 && d[i + 1] === 0 && d[i + 2] === 1) return i + 3;
  }
  return -1;
}

function endOfNal(d: Uint8Array, start: number): number {
  const next = nextStartCode(d, start);
  return next < 0 ? d.length : next - 3;
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let n = 0;
  for (const c of chunks) {
    out.set(c, n);
    n += c.length;
  }
  return out;
}

/** `b - a` in 90 kHz ticks, taking the 33-bit wrap into account. */
export function ptsDiff(a: number, b: number): number {
  let d = (b - a) % PTS_WRAP;
  if (d > PTS_WRAP / 2) d -= PTS_WRAP;
  if (d < -PTS_WRAP / 2) d += PTS_WRAP;
  return d;
}

/** What one transport stream holds, read in one pass. */
export interface TsAnalysis {
  bytes: number;
  packets: number;
  skippedBytes: number;
  streams: TsStream[];
  video: TsVideoFacts | undefined;
  audio: TsAudioFacts | undefined;
}

export interface TsVideoFacts {
  pid: number;
  codec: TsCodec;
  /** Access units that carry a picture. */
  frames: number;
  keyframes: number;
  /** The first picture in decode order is a keyframe: the segment can be decoded on its own. */
  startsWithKeyframe: boolean;
  /** Lowest PTS, 90 kHz. */
  startPts: number | undefined;
  /** Seconds from the first to past the last frame (last frame counted for its average length). */
  duration: number;
  /** Frames per second measured from the timestamps; 0 when fewer than two frames. */
  fps: number;
  /** From the first SPS (H.264 only). */
  width: number | undefined;
  height: number | undefined;
  /** Σ width × height over frames, each frame counted at the size of the SPS in force (H.264 only). */
  pixels: number | undefined;
  /** RFC 6381 codec string (H.264 only), for HLS `CODECS`. */
  codecString: string | undefined;
  /** What the duration rests on: whether the pictures' own timestamps can be believed. */
  timestamps: TsTimestampFacts;
}

/**
 * The pictures' timestamps as a biller must see them. "Monotonic" is in decode order for decode times (DTS,
 * or the PTS where a PES carries no DTS) and in presentation order for presentation times: with B-frames the
 * PTS goes back and forth in decode order, honestly, while the DTS still only goes up.
 */
export interface TsTimestampFacts {
  /** Pictures whose PES carries no PTS. */
  missingPts: number;
  /** Pictures whose decode time is not after the previous picture's. */
  dtsNotIncreasing: number;
  /** Pictures presented at the same instant as another one. */
  duplicatePts: number;
  /** Pictures whose PTS comes before their own DTS (impossible in a valid stream). */
  ptsBeforeDts: number;
  /**
   * Median interval between consecutive presentation times, 90 kHz ticks: the source's frame interval as
   * its own timestamps say. 0 with fewer than two timed pictures.
   */
  medianInterval: number;
}

export interface TsAudioFacts {
  pid: number;
  codec: TsCodec;
  /** PES packets (a PES may hold several audio frames). */
  packets: number;
  startPts: number | undefined;
}

/**
 * Reads a whole segment. Throws {@link SegmentFormatError} `NotMpegTs` when the bytes are not a transport stream
 * (no sync, or no PAT/PMT); everything else (no video, one frame, …) is reported in the facts for the caller's
 * own limits to judge.
 */
export function analyzeTs(data: Uint8Array): TsAnalysis {
  let frames = 0;
  let keyframes = 0;
  let firstPictureKey: boolean | undefined;
  let refPts: number | undefined;
  let minPts = 0;
  let maxPts = 0;
  let sps: H264Sps | undefined;
  let firstSps: H264Sps | undefined;
  let pixels = 0;
  let audioPackets = 0;
  let audioStart: number | undefined;
  let audioPid: number | undefined;
  const presented: number[] = [];
  let missingPts = 0;
  let dtsNotIncreasing = 0;
  let ptsBeforeDts = 0;
  let refDts: number | undefined;
  let lastDts = 0;
  const demuxer = new TsDemuxer({
    onVideoFrame(f) {
      if (f.sps) {
        sps = f.sps;
        firstSps ??= f.sps;
      }
      if (!f.picture) return;
      frames++;
      if (f.keyframe) keyframes++;
      firstPictureKey ??= f.keyframe;
      if (sps) pixels += sps.width * sps.height;
      if (f.pts === undefined) {
        missingPts++;
        return;
      }
      if (refPts === undefined) refPts = f.pts;
      const rel = ptsDiff(refPts, f.pts);
      minPts = Math.min(minPts, rel);
      maxPts = Math.max(maxPts, rel);
      presented.push(rel);
      const dts = f.dts ?? f.pts;
      if (ptsDiff(dts, f.pts) < 0) ptsBeforeDts++;
      if (refDts === undefined) refDts = dts;
      else {
        const relDts = ptsDiff(refDts, dts);
        if (relDts <= lastDts) dtsNotIncreasing++;
        lastDts = relDts;
      }
    },
    onAudioPes(pid, pts) {
      if (audioPid === undefined) audioPid = pid;
      if (pid !== audioPid) return;
      audioPackets++;
      if (pts !== undefined && audioStart === undefined) audioStart = pts;
    },
  });
  demuxer.push(data);
  demuxer.end();

  if (demuxer.packets === 0 || demuxer.skippedBytes > data.length / 10) {
    throw new SegmentFormatError(
      'NotMpegTs',
      'the bytes are not an MPEG transport stream (no 188-byte packets)',
      {
        bytes: data.length,
        skippedBytes: demuxer.skippedBytes,
      },
    );
  }
  if (demuxer.patPacket === undefined || demuxer.streams.length === 0) {
    throw new SegmentFormatError(
      'NotMpegTs',
      'the transport stream has no PAT/PMT, so no programme to decode',
      {
        bytes: data.length,
      },
    );
  }
  const videoStream = demuxer.streams.find((s) => s.kind === 'video');
  const audioStream = demuxer.streams.find((s) => s.kind === 'audio');
  const span = maxPts - minPts;
  const video: TsVideoFacts | undefined = videoStream && {
    pid: videoStream.pid,
    codec: videoStream.codec,
    frames,
    keyframes,
    startsWithKeyframe: firstPictureKey === true,
    startPts: refPts === undefined ? undefined : (((refPts + minPts) % PTS_WRAP) + PTS_WRAP) % PTS_WRAP,
    duration: frames > 1 ? (span * frames) / (frames - 1) / PTS_HZ : 0,
    fps: frames > 1 && span > 0 ? ((frames - 1) * PTS_HZ) / span : 0,
    width: firstSps?.width,
    height: firstSps?.height,
    pixels: firstSps ? pixels : undefined,
    codecString: firstSps ? avcCodecString(firstSps) : undefined,
    timestamps: timestampFacts(presented, { missingPts, dtsNotIncreasing, ptsBeforeDts }),
  };
  const audio: TsAudioFacts | undefined = audioStream && {
    pid: audioStream.pid,
    codec: audioStream.codec,
    packets: audioPackets,
    startPts: audioStart,
  };
  return {
    bytes: data.length,
    packets: demuxer.packets,
    skippedBytes: demuxer.skippedBytes,
    streams: demuxer.streams,
    video,
    audio,
  };
}

function timestampFacts(
  presented: number[],
  counts: Pick<TsTimestampFacts, 'missingPts' | 'dtsNotIncreasing' | 'ptsBeforeDts'>,
): TsTimestampFacts {
  const sorted = Float64Array.from(presented).sort();
  const intervals = new Float64Array(Math.max(0, sorted.length - 1));
  let duplicatePts = 0;
  for (let i = 1; i < sorted.length; i++) {
    const d = (sorted[i] as number) - (sorted[i - 1] as number);
    if (d === 0) duplicatePts++;
    intervals[i - 1] = d;
  }
  intervals.sort();
  const medianInterval = intervals.length > 0 ? (intervals[intervals.length >> 1] as number) : 0;
  return { ...counts, duplicatePts, medianInterval };
}
