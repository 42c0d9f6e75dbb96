import { InsufficientCreditError } from './errors.js';
import { type CreditLedgerOptions, defaultCreditLedgerOptions, withDefaults } from './options.js';

/** A price: `wei` for every `pixels` pixels (go-livepeer's pricePerUnit / pixelsPerUnit). */
export interface PixelPrice {
  wei: bigint;
  pixels: bigint;
}

/** Fee of `pixels` pixels at `price`, rounded up to the wei. */
export function feeFor(pixels: bigint, price: PixelPrice): bigint {
  if (price.pixels <= 0n) throw new RangeError('price.pixels must be positive');
  return (pixels * price.wei + price.pixels - 1n) / price.pixels;
}

interface Account {
  balance: bigint;
  touchedAt: number;
}

export interface CreditLedgerDeps {
  now?: () => number;
}

/**
 * Credit per (sender, session) at the recipient: each accepted ticket adds its expected value, each piece
 * of work debits its fee. Work is refused (`InsufficientCredit`) when the credit does not cover it, so a
 * broadcaster cannot get more transcoding than its tickets are worth on average. In memory: a restart
 * forgets the credit of open sessions (the broadcaster re-pays one segment).
 */
export class CreditLedger {
  private readonly options: CreditLedgerOptions;
  private readonly now: () => number;
  private readonly accounts = new Map<string, Account>();

  constructor(options: Partial<CreditLedgerOptions> = {}, deps: CreditLedgerDeps = {}) {
    this.options = withDefaults(defaultCreditLedgerOptions, options);
    this.now = deps.now ?? Date.now;
  }

  private key(sender: string, session: string): string {
    return `${sender.toLowerCase()}/${session}`;
  }

  /** Credit of a session, wei (0 for an unknown one). */
  balance(sender: string, session: string): bigint {
    return this.accounts.get(this.key(sender, session))?.balance ?? 0n;
  }

  /** Adds `wei` (≥ 0) and returns the new balance. */
  credit(sender: string, session: string, wei: bigint): bigint {
    if (wei < 0n) throw new RangeError('credit must be ≥ 0');
    const k = this.key(sender, session);
    const a = this.accounts.get(k);
    const now = this.now();
    if (a) {
      a.balance += wei;
      a.touchedAt = now;
      return a.balance;
    }
    this.accounts.set(k, { balance: wei, touchedAt: now });
    return wei;
  }

  /**
   * Throws `InsufficientCredit` unless the session holds at least `wei`; changes nothing. For checking a
   * segment's expected fee before working on it.
   */
  require(sender: string, session: string, wei: bigint): void {
    const balance = this.balance(sender, session);
    if (balance < wei) {
      throw new InsufficientCreditError({ sender: sender.toLowerCase(), session, required: wei });
    }
  }

  /**
   * Takes `wei` (≥ 0) from the session's credit and returns what is left; refuses with `InsufficientCredit`
   * (taking nothing) when the credit does not cover it.
   */
  debit(sender: string, session: string, wei: bigint): bigint {
    if (wei < 0n) throw new RangeError('debit must be ≥ 0');
    this.require(sender, session, wei);
    const a = this.accounts.get(this.key(sender, session));
    if (!a) return 0n;
    a.balance -= wei;
    a.touchedAt = this.now();
    return a.balance;
  }

  /** Debits the fee of `pixels` pixels at `price`; see `debit`. */
  debitPixels(sender: string, session: string, pixels: bigint, price: PixelPrice): bigint {
    return this.debit(sender, session, feeFor(pixels, price));
  }

  /** Forgets a session; returns the credit it held. */
  close(sender: string, session: string): bigint {
    const k = this.key(sender, session);
    const balance = this.accounts.get(k)?.balance ?? 0n;
    this.accounts.delete(k);
    return balance;
  }

  /** Forgets sessions idle for longer than `sessionIdleMs`. */
  sweep(now = this.now()): void {
    for (const [k, a] of this.accounts) {
      if (now - a.touchedAt > this.options.sessionIdleMs) this.accounts.delete(k);
    }
  }

  get size(): number {
    return this.accounts.size;
  }
}
