import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SegmentFormatError } from '../../../src/media/errors.js';
import { analyzeTs, TsDemuxer } from '../../../src/media/mpegts.js';
import { makeSource, tempDir } from './fixtures.js';

describe('analyzeTs (in-process probe)', () => {
  const tmp = tempDir('mpegts');
  let wide25: Buffer;
  let mp4: Buffer;
  let crop: Buffer;

  beforeAll(() => {
    wide25 = readFileSync(makeSource(tmp.dir, 'wide25', { width: 320, height: 180, fps: 25, seconds: 4 }));
    mp4 = readFileSync(
      makeSource(tmp.dir, 'mp4', { width: 160, height: 90, fps: 25, seconds: 1, ext: 'mp4' }),
    );
    // 426 is not a multiple of 16: the SPS carries frame cropping that must be applied.
    crop = readFileSync(
      makeSource(tmp.dir, 'crop', { width: 426, height: 240, fps: 30, seconds: 1, audio: 'none' }),
    );
  });
  afterAll(() => tmp.remove());

  it('counts frames, keyframes, duration, fps, size and pixels of an H.264 + AAC stream', () => {
    const a = analyzeTs(wide25);
    expect(a.video).toMatchObject({
      codec: 'h264',
      frames: 100,
      keyframes: 2,
      startsWithKeyframe: true,
      width: 320,
      height: 180,
      pixels: 100 * 320 * 180,
    });
    expect(a.video?.duration).toBeCloseTo(4, 6);
    expect(a.video?.fps).toBeCloseTo(25, 6);
    expect(a.video?.codecString).toMatch(/^avc1\.[0-9a-f]{6}$/);
    expect(a.audio?.codec).toBe('aac');
  });

  it('applies SPS frame cropping (426x240 is coded as 432x240)', () => {
    const v = analyzeTs(crop).video;
    expect([v?.width, v?.height]).toEqual([426, 240]);
    expect(analyzeTs(crop).audio).toBeUndefined();
  });

  it('refuses bytes that are not a transport stream', () => {
    for (const [name, bytes] of [
      ['mp4', mp4],
      ['text', Buffer.from('hello world '.repeat(100))],
      ['zeros', Buffer.alloc(188 * 10)],
    ] as const) {
      expect(() => analyzeTs(bytes), name).toThrow(SegmentFormatError);
      try {
        analyzeTs(bytes);
      } catch (err) {
        expect((err as SegmentFormatError).details.reason, name).toBe('NotMpegTs');
      }
    }
  });

  it('reports the same frames whatever the chunking', () => {
    const whole = analyzeTs(wide25).video?.frames;
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1, maxLength: 50 }), (sizes) => {
        let frames = 0;
        const d = new TsDemuxer({
          onVideoFrame: (f) => {
            if (f.picture) frames++;
          },
        });
        let pos = 0;
        let i = 0;
        while (pos < wide25.length) {
          const n = sizes[i++ % sizes.length] as number;
          d.push(wide25.subarray(pos, pos + n));
          pos += n;
        }
        d.end();
        return frames === whole;
      }),
      { numRuns: 30, seed: 42 },
    );
  });

  it('never throws anything but SegmentFormatError on corrupted or random input', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 200 }),
        fc.nat(),
        (flips, cutAt) => {
          const bytes = Buffer.from(wide25.subarray(0, 188 * 400));
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          try {
            analyzeTs(bytes.subarray(0, Math.max(1, cutAt % bytes.length)));
          } catch (err) {
            return err instanceof SegmentFormatError;
          }
          return true;
        },
      ),
      { numRuns: 200, seed: 7 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
        try {
          analyzeTs(bytes);
        } catch (err) {
          return err instanceof SegmentFormatError;
        }
        return true;
      }),
      { numRuns: 300, seed: 11 },
    );
  });
});
