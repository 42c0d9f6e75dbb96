/**
 * Rewrites the video PES headers of a real (ffmpeg-made) transport stream, to build the hostile segments of
 * issue 9 D1: pictures without timestamps, shuffled timestamps, a stretched span. Only header bytes change;
 * every picture stays decodable.
 */

/** One video PES header as found, in decode order. */
export interface VideoPes {
  /** Byte offset of the PES start code in the stream. */
  at: number;
  pts: number | undefined;
  dts: number | undefined;
}

/** Video PES headers (stream id 0xE0) of `ts`, in decode order. */
export function videoPesHeaders(ts: Uint8Array): VideoPes[] {
  const found: VideoPes[] = [];
  for (let off = 0; off + 188 <= ts.length; off += 188) {
    const pusi = ((ts[off + 1] ?? 0) & 0x40) !== 0;
    const afc = ((ts[off + 3] ?? 0) >> 4) & 3;
    const at = off + (afc & 2 ? 5 + (ts[off + 4] ?? 0) : 4);
    if (!pusi || ts[at] !== 0 || ts[at + 1] !== 0 || ts[at + 2] !== 1 || ts[at + 3] !== 0xe0) continue;
    const flags = ts[at + 7] ?? 0;
    const pts = flags & 0x80 ? readStamp(ts, at + 9) : undefined;
    const dts = (flags & 0xc0) === 0xc0 ? readStamp(ts, at + 14) : undefined;
    found.push({ at, pts, dts });
  }
  return found;
}

/**
 * A copy of `ts` where each video PES gets the timestamps `edit` returns for it (`undefined` drops that
 * timestamp by clearing its flag; the bytes stay as header stuffing, which every demuxer skips).
 */
export function rewriteVideoPes(
  ts: Uint8Array,
  edit: (pes: VideoPes, index: number) => { pts: number | undefined; dts: number | undefined },
): Buffer {
  const out = Buffer.from(ts);
  videoPesHeaders(out).forEach((pes, i) => {
    const next = edit(pes, i);
    let flags = (out[pes.at + 7] ?? 0) & 0x3f;
    // Room for a timestamp only where the original header had one.
    if (next.pts !== undefined && pes.pts !== undefined) {
      const withDts = next.dts !== undefined && pes.dts !== undefined;
      flags |= withDts ? 0xc0 : 0x80;
      writeStamp(out, pes.at + 9, withDts ? 0x3 : 0x2, next.pts);
      if (withDts) writeStamp(out, pes.at + 14, 0x1, next.dts as number);
    }
    out[pes.at + 7] = flags;
  });
  return out;
}

function readStamp(d: Uint8Array, i: number): number {
  const b = (k: number) => d[i + k] ?? 0;
  return ((b(0) >> 1) & 0x07) * 2 ** 30 + ((b(1) << 22) | ((b(2) >> 1) << 15) | (b(3) << 7) | (b(4) >> 1));
}

function writeStamp(d: Uint8Array, i: number, prefix: number, value: number): void {
  const v = ((value % 2 ** 33) + 2 ** 33) % 2 ** 33;
  const hi = Math.floor(v / 2 ** 30);
  const lo = v % 2 ** 30;
  d[i] = (prefix << 4) | (hi << 1) | 1;
  d[i + 1] = (lo >> 22) & 0xff;
  d[i + 2] = (((lo >> 15) & 0x7f) << 1) | 1;
  d[i + 3] = (lo >> 7) & 0xff;
  d[i + 4] = ((lo & 0x7f) << 1) | 1;
}
