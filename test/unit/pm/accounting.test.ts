import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorBudget } from '../../../src/pm/error-budget.js';
import { InsufficientCreditError } from '../../../src/pm/errors.js';
import { CreditLedger, feeFor } from '../../../src/pm/ledger.js';
import { NonceWindow } from '../../../src/pm/nonces.js';
import { FakeClock } from './helpers.js';

describe('CreditLedger', () => {
  it('credits EV, debits price × pixels, and refuses work the credit does not cover', () => {
    const ledger = new CreditLedger();
    ledger.credit('0xA', 's', 1_000n);
    expect(ledger.debitPixels('0xa', 's', 1_000n, { wei: 3n, pixels: 4n })).toBe(250n); // 750 wei of work
    let err: unknown;
    try {
      ledger.debit('0xA', 's', 251n);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InsufficientCreditError);
    expect(err).toMatchObject({
      code: 'InsufficientCredit',
      details: { required: 251n, session: 's' },
    });
    // What the session holds is never told, not even to its owner's request.
    expect((err as InsufficientCreditError).details).not.toHaveProperty('balance');
    expect((err as Error).message).not.toContain('250');
    expect(ledger.balance('0xA', 's')).toBe(250n);
    expect(() => ledger.require('0xA', 'other', 1n)).toThrow(InsufficientCreditError);
    expect(ledger.balance('0xA', 'other')).toBe(0n);
    expect(ledger.close('0xA', 's')).toBe(250n);
  });

  it('feeFor rounds up to the wei', () => {
    expect(feeFor(10n, { wei: 1n, pixels: 3n })).toBe(4n);
    expect(feeFor(0n, { wei: 5n, pixels: 1n })).toBe(0n);
  });

  it('balance = credits − accepted debits and never goes negative (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.constantFrom('a', 'b'), fc.bigInt({ min: 0n, max: 1_000n })), {
          maxLength: 200,
        }),
        (ops) => {
          const ledger = new CreditLedger();
          const model = new Map<string, bigint>();
          for (const [isCredit, s, wei] of ops) {
            const before = model.get(s) ?? 0n;
            if (isCredit) {
              model.set(s, before + wei);
              ledger.credit('0x1', s, wei);
            } else if (before >= wei) {
              model.set(s, before - wei);
              ledger.debit('0x1', s, wei);
            } else {
              expect(() => ledger.debit('0x1', s, wei)).toThrow(InsufficientCreditError);
            }
            expect(ledger.balance('0x1', s)).toBe(model.get(s) ?? 0n);
            expect(ledger.balance('0x1', s) >= 0n).toBe(true);
          }
        },
      ),
      { numRuns: 200, seed: 5 },
    );
  });

  it('forgets idle sessions', () => {
    const clock = new FakeClock();
    const ledger = new CreditLedger({ sessionIdleMs: 1_000 }, { now: clock.now });
    ledger.credit('0x1', 's', 5n);
    clock.advance(1_001);
    ledger.sweep();
    expect(ledger.size).toBe(0);
  });
});

describe('NonceWindow', () => {
  it('never accepts a nonce twice, whatever the order (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.bigInt({ min: 0n, max: 300n }), { maxLength: 400 }),
        fc.integer({ min: 2, max: 64 }),
        (seq, w) => {
          const win = new NonceWindow(w);
          const accepted = new Set<bigint>();
          for (const n of seq) {
            if (win.has(n)) continue;
            expect(accepted.has(n), `nonce ${n}`).toBe(false);
            accepted.add(n);
            win.add(n);
          }
        },
      ),
      { numRuns: 300, seed: 6 },
    );
  });

  it('accepts every nonce of an in-order sender and refuses at or below a restored floor', () => {
    const win = new NonceWindow(8);
    for (let n = 1n; n <= 1_000n; n++) {
      expect(win.has(n), `nonce ${n}`).toBe(false);
      win.add(n);
    }
    expect(win.max).toBe(1_000n);
    const restored = new NonceWindow(8, 1_000n);
    expect(restored.has(1_000n)).toBe(true);
    expect(restored.has(1_001n)).toBe(false);
  });
});

describe('ErrorBudget', () => {
  it('refuses after maxErrors within the window, for refuseMs', () => {
    const b = new ErrorBudget({ maxErrors: 2, windowMs: 1_000, refuseMs: 5_000 });
    expect(b.record('k', 0)).toBe(false);
    expect(b.record('k', 10, 2)).toBe(true);
    expect(b.refusedUntil('k', 10)).toBe(5_010);
    expect(b.refusedUntil('other', 10)).toBeUndefined();
    expect(b.refusedUntil('k', 5_010)).toBeUndefined();
    // Errors spread over windows never add up to a refusal.
    const c = new ErrorBudget({ maxErrors: 2, windowMs: 1_000, refuseMs: 5_000 });
    for (let t = 0; t < 10_000; t += 600) expect(c.record('k', t)).toBe(false);
    c.sweep(20_000);
    expect(c.size).toBe(0);
  });
});
