import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceFactsOf } from '../../../src/broadcaster/client.js';
import { SegmentFormatError } from '../../../src/media/errors.js';
import { analyzeTs, PTS_HZ } from '../../../src/media/mpegts.js';
import { defaultSegmentLimits } from '../../../src/media/options.js';
import type { Segment } from '../../../src/media/segmenter.js';
import { validateSegment } from '../../../src/media/transcode.js';
import { cut, makeSource, tempDir, tools } from './fixtures.js';
import { rewriteVideoPes, videoPesHeaders } from './pes.js';

// Issue 9 §2 / D1: a segment is billed from its own timestamps, so a segment whose timestamps cannot carry a
// duration is refused before any work, while every honest ffmpeg-made segment (B-frames included) passes.
describe('segment timestamps (billing facts)', () => {
  const tmp = tempDir('segment-timestamps');
  let plain: Segment[];
  let bframes: Segment[];

  beforeAll(() => {
    plain = cut(makeSource(tmp.dir, 'plain', { width: 320, height: 180, fps: 30, seconds: 4 }));
    // B-frames: presentation order differs from decode order, as x264 writes it at any preset but ultrafast.
    const file = join(tmp.dir, 'bframes.ts');
    execFileSync(tools.ffmpeg, [
      ...['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=25'],
      ...['-t', '4', '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '3', '-pix_fmt', 'yuv420p'],
      ...['-force_key_frames', 'expr:gte(t,n_forced*2)', file],
    ]);
    bframes = cut(file);
  });
  afterAll(() => tmp.remove());

  const reason = (bytes: Uint8Array): string | undefined => {
    try {
      validateSegment(bytes, defaultSegmentLimits);
      return undefined;
    } catch (err) {
      expect(err).toBeInstanceOf(SegmentFormatError);
      return (err as SegmentFormatError).details.reason;
    }
  };

  it('passes honest segments, and B-frame segments whose PTS goes back in decode order while DTS only rises', () => {
    for (const [i, s] of [...plain, ...bframes].entries()) {
      expect(reason(s.bytes), `segment ${i}`).toBeUndefined();
      expect(sourceFactsOf(s.bytes).duration, `segment ${i}`).toBeGreaterThan(1.5);
    }
    const headers = videoPesHeaders((bframes[0] as Segment).bytes);
    const pts = headers.map((h) => h.pts as number);
    expect(pts.some((p, i) => i > 0 && p < (pts[i - 1] as number))).toBe(true);
    const dts = headers.map((h) => h.dts ?? (h.pts as number));
    expect(dts.every((d, i) => i === 0 || d > (dts[i - 1] as number))).toBe(true);
  });

  it('refuses pictures without a PTS (the D1 segment: duration 0, fee 0)', () => {
    const bytes = (plain[0] as Segment).bytes;
    const stripped = rewriteVideoPes(bytes, () => ({ pts: undefined, dts: undefined }));
    expect(analyzeTs(stripped).video?.duration).toBe(0);
    expect(reason(stripped)).toBe('MissingTimestamps');
    expect(() => sourceFactsOf(stripped)).toThrow(SegmentFormatError);
    const oneMissing = rewriteVideoPes(bytes, (p, i) => (i === 7 ? { pts: undefined, dts: undefined } : p));
    expect(reason(oneMissing)).toBe('MissingTimestamps');
  });

  it('refuses shuffled timestamps and duplicate presentation times', () => {
    const bytes = (plain[0] as Segment).bytes;
    const pts = videoPesHeaders(bytes).map((h) => h.pts as number);
    // A fixed permutation: every other pair swapped, so decode times go back and forth.
    const shuffled = pts.map((_, i) => pts[i % 2 === 0 ? Math.min(i + 1, pts.length - 1) : i - 1] as number);
    expect(reason(rewriteVideoPes(bytes, (_, i) => ({ pts: shuffled[i], dts: undefined })))).toBe(
      'NonMonotonicTimestamps',
    );
    const doubled = rewriteVideoPes(bytes, (_, i) => ({ pts: pts[i - (i % 2)], dts: undefined }));
    expect(reason(doubled)).toBe('NonMonotonicTimestamps');
    // B-frame stream: PTS kept, DTS edited to go backwards once.
    const b = (bframes[0] as Segment).bytes;
    const back = rewriteVideoPes(b, (p, i) => ({
      pts: p.pts,
      dts: i === 5 && p.dts !== undefined ? p.dts - 9_000 : p.dts,
    }));
    expect(reason(back)).toBe('NonMonotonicTimestamps');
  });

  it('refuses a span that disagrees with the frame count at the rate the timestamps show', () => {
    const bytes = (plain[0] as Segment).bytes;
    const headers = videoPesHeaders(bytes);
    const n = headers.length;
    // The last quarter of the pictures pushed 5 s later: the span says ~7 s, the frames at 30 fps say 2 s.
    const stretched = rewriteVideoPes(bytes, (p, i) =>
      i >= (3 * n) / 4 ? { pts: (p.pts as number) + 5 * PTS_HZ, dts: p.dts && p.dts + 5 * PTS_HZ } : p,
    );
    expect(reason(stretched)).toBe('TimestampSpanMismatch');
    // Squeezed tenfold: 300 fps, a rate no source has, and a tenth of the fee.
    const first = headers[0]?.pts as number;
    const squeezed = rewriteVideoPes(bytes, (p) => ({
      pts: first + Math.round(((p.pts as number) - first) / 10),
      dts: p.dts && first + Math.round((p.dts - first) / 10),
    }));
    expect(reason(squeezed)).toBe('TimestampSpanMismatch');
  });
});
