import { describe, expect, it } from 'vitest';
import { type Profile, resolveProfiles } from '../../../src/media/profiles.js';
import { feeFor } from '../../../src/pm/ledger.js';
import { expectedPixels, perPixel, renditionsFee } from '../../../src/rpc/pricing.js';

function box(width: number, height: number, fps: number): Profile {
  return { name: `p${width}x${height}@${fps}`, width, height, fps, bitrate: 100_000, gop: 2 };
}

describe('expectedPixels', () => {
  it('is each profile’s box × frame rate × duration, summed', () => {
    const profiles = resolveProfiles('240p30,144p30');
    // (426×240 + 256×144) × 30 fps × 2 s
    expect(expectedPixels(profiles, 2)).toBe(8_346_240n);
    expect(expectedPixels(profiles, 1)).toBe(4_173_120n);
    expect(expectedPixels(resolveProfiles('1080p60'), 2)).toBe(1920n * 1080n * 60n * 2n);
  });

  it('rounds each profile up to a whole pixel, not the total', () => {
    // 16×16 at 1 fps for 1/512 s is half a pixel: each profile counts one, so two count two.
    const half = 1 / 512;
    expect(expectedPixels([box(16, 16, 1)], half)).toBe(1n);
    expect(expectedPixels([box(16, 16, 1), box(16, 16, 1)], half)).toBe(2n);
    // 426×240 at 29.97 fps for 2.002 s: 6 134 393.9 pixels, rounded up.
    expect(expectedPixels([box(426, 240, 29.97)], 2.002)).toBe(6_134_394n);
  });

  it('is zero without profiles, for a zero duration and for a negative duration', () => {
    expect(expectedPixels([], 2)).toBe(0n);
    expect(expectedPixels(resolveProfiles('240p30'), 0)).toBe(0n);
    expect(expectedPixels(resolveProfiles('240p30'), -5)).toBe(0n);
  });

  it('stays exact beyond 2^53 pixels', () => {
    const profiles = Array.from({ length: 16 }, (_, i) => ({ ...box(7680, 4320, 240), name: `p${i}` }));
    expect(expectedPixels(profiles, 60)).toBe(16n * 7680n * 4320n * 240n * 60n);
  });
});

describe('renditionsFee', () => {
  it('is the sum of the renditions’ pixels × the price', () => {
    expect(renditionsFee([{ pixels: 6_134_400 }, { pixels: 2_211_840 }], 3n)).toBe(8_346_240n * 3n);
    expect(renditionsFee([{ pixels: 1 }], 10n ** 12n)).toBe(10n ** 12n);
  });

  it('is zero for no renditions or a zero price', () => {
    expect(renditionsFee([], 5n)).toBe(0n);
    expect(renditionsFee([{ pixels: 1_000_000 }], 0n)).toBe(0n);
  });

  it('equals the fee of the same pixels through feeFor at perPixel(price)', () => {
    const renditions = [{ pixels: 123_457 }, { pixels: 7 }, { pixels: 0 }];
    for (const price of [0n, 1n, 7n, 10n ** 9n]) {
      expect(renditionsFee(renditions, price), `price ${price}`).toBe(feeFor(123_464n, perPixel(price)));
    }
  });

  it('charges the expected fee for renditions of exactly the expected pixels', () => {
    const profiles = resolveProfiles('240p30,144p30');
    const renditions = profiles.map((p) => ({ pixels: p.width * p.height * p.fps * 2 }));
    expect(renditionsFee(renditions, 2n)).toBe(feeFor(expectedPixels(profiles, 2), perPixel(2n)));
  });
});

describe('feeFor (the rounding under both)', () => {
  it('rounds a fractional fee up to the wei', () => {
    expect(perPixel(5n)).toEqual({ wei: 5n, pixels: 1n });
    expect(feeFor(10n, { wei: 1n, pixels: 3n })).toBe(4n);
    expect(feeFor(9n, { wei: 1n, pixels: 3n })).toBe(3n);
    expect(feeFor(1n, { wei: 1n, pixels: 1_000n })).toBe(1n);
    expect(feeFor(0n, { wei: 1n, pixels: 1_000n })).toBe(0n);
  });
});
