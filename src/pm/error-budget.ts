import type { ErrorBudgetOptions } from './options.js';

interface Entry {
  windowStart: number;
  errors: number;
  refusedUntil: number;
}

/**
 * Counts errors per key (a sender, or a remote address) in a fixed window and refuses a key that exceeds
 * its budget for a while (THREATS.md 10): a flood of invalid tickets then costs a map lookup per payment
 * instead of a signature recovery per ticket, and other senders are unaffected.
 */
export class ErrorBudget {
  private readonly options: ErrorBudgetOptions;
  private readonly entries = new Map<string, Entry>();

  constructor(options: ErrorBudgetOptions) {
    this.options = options;
  }

  /** Unix ms until which `key` is refused, or undefined when it is not. */
  refusedUntil(key: string, now: number): number | undefined {
    const e = this.entries.get(key);
    return e && e.refusedUntil > now ? e.refusedUntil : undefined;
  }

  /**
   * Errors `key` may still cause in the current window before it is refused (the one that passes the budget
   * included), or 0 while it is refused.
   */
  remaining(key: string, now: number): number {
    const e = this.entries.get(key);
    if (!e) return this.options.maxErrors + 1;
    if (e.refusedUntil > now) return 0;
    if (now - e.windowStart >= this.options.windowMs) return this.options.maxErrors + 1;
    return Math.max(1, this.options.maxErrors + 1 - e.errors);
  }

  /** Adds `count` errors to `key`; returns true when this made it exceed its budget (it is now refused). */
  record(key: string, now: number, count = 1): boolean {
    if (count <= 0) return false;
    let e = this.entries.get(key);
    if (!e || now - e.windowStart >= this.options.windowMs) {
      e = { windowStart: now, errors: 0, refusedUntil: e?.refusedUntil ?? 0 };
      this.entries.set(key, e);
    }
    e.errors += count;
    if (e.errors > this.options.maxErrors && e.refusedUntil <= now) {
      e.refusedUntil = now + this.options.refuseMs;
      e.errors = 0;
      e.windowStart = now;
      return true;
    }
    return false;
  }

  /** Forgets keys whose window and refusal are both over. */
  sweep(now: number): void {
    for (const [key, e] of this.entries) {
      if (e.refusedUntil <= now && now - e.windowStart >= this.options.windowMs) this.entries.delete(key);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
