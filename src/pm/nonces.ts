/**
 * Nonces a recipient has accepted under one recipientRand (THREATS.md 4: a sender replaying or grinding a
 * nonce gets `NonceAlreadySeen`). Senders count up from 1, so memory is bounded by a floor: every nonce at
 * or below it counts as seen, and only the `window` most recent ones are kept individually. The floor also
 * carries over a restart, from the high-water mark checkpointed to SQLite.
 */
export class NonceWindow {
  /** Nonces ≤ floor are refused; -1 when none is. */
  private floor: bigint;
  private readonly seen = new Set<bigint>();
  private readonly window: number;
  /** Highest nonce accepted, or the floor. */
  max: bigint;
  /** Whether `max` moved since the last checkpoint. */
  dirty = false;

  /** @param window nonces remembered above the floor. @param floor nonces at or below it are refused. */
  constructor(window: number, floor = -1n) {
    this.window = Math.max(2, window);
    this.floor = floor;
    this.max = floor;
  }

  has(nonce: bigint): boolean {
    return nonce <= this.floor || this.seen.has(nonce);
  }

  add(nonce: bigint): void {
    this.seen.add(nonce);
    if (nonce > this.max) {
      this.max = nonce;
      this.dirty = true;
    }
    if (this.seen.size > this.window) {
      // Keep the newest half; a nonce older than that arriving now is a replay or a very late reorder.
      const floor = this.max - BigInt(this.window >> 1);
      for (const n of this.seen) if (n <= floor) this.seen.delete(n);
      if (floor > this.floor) this.floor = floor;
    }
  }
}
