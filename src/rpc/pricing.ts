import type { Profile } from '../media/profiles.js';
import { feeFor, type PixelPrice } from '../pm/ledger.js';

/**
 * Pixels a segment of `durationSec` seconds is expected to produce in `profiles`: each profile's box at its
 * frame rate. Broadcaster and orchestrator both compute it, so the fee one pays ahead and the fee the other
 * requires before working agree; the fee actually debited is the pixels of the renditions returned.
 */
export function expectedPixels(profiles: readonly Profile[], durationSec: number): bigint {
  let total = 0n;
  const seconds = Math.max(0, durationSec);
  for (const p of profiles) total += BigInt(Math.ceil(p.width * p.height * p.fps * seconds));
  return total;
}

/** Wei per pixel as a {@link PixelPrice}. */
export function perPixel(wei: bigint): PixelPrice {
  return { wei, pixels: 1n };
}

/** Fee of the renditions returned for a segment: Σ pixels (read from their own bytes) × price. */
export function renditionsFee(renditions: readonly { pixels: number }[], pricePerPixel: bigint): bigint {
  let pixels = 0n;
  for (const r of renditions) pixels += BigInt(r.pixels);
  return feeFor(pixels, perPixel(pricePerPixel));
}
