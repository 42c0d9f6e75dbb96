import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { OrchestratorState } from '../../../src/orchestrator/state.js';

const ALICE = '0xAbCdEf0000000000000000000000000000000001';
const BOB = '0x00000000000000000000000000000000000000b0';

const dirs: string[] = [];
const open: OrchestratorState[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A path for `orchestrator.db` in a fresh directory that does not exist yet (the state makes it). */
function dbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sf-orch-state-'));
  dirs.push(dir);
  return join(dir, 'nested', 'orchestrator.db');
}

function openState(path: string): OrchestratorState {
  const s = new OrchestratorState(path);
  open.push(s);
  return s;
}

describe('OrchestratorState', () => {
  it('keeps a session’s balance and totals across closing and reopening the file', () => {
    const path = dbPath();
    const first = openState(path);
    first.saveSession(ALICE, 'stream-1', 5_000n, { segments: 1, fees: 700n }, 1_000);
    first.saveSession(ALICE, 'stream-1', 4_300n, { segments: 1, fees: 700n }, 2_000);
    first.close();

    const again = openState(path);
    expect(again.sessions()).toEqual([
      {
        sender: ALICE.toLowerCase(),
        session: 'stream-1',
        balance: 4_300n,
        segments: 2,
        fees: 1_400n,
        updatedAt: 2_000,
      },
    ]);
    expect(again.totals()).toEqual({ segments: 2, fees: 1_400n });
  });

  it('adds totals up across sessions and senders, whatever the case of the sender address', () => {
    const s = openState(':memory:');
    s.saveSession(ALICE, 'a', 10n, { segments: 1, fees: 100n }, 1);
    s.saveSession(ALICE.toLowerCase(), 'a', 5n, { segments: 2, fees: 50n }, 2);
    s.saveSession(ALICE, 'b', 0n, { segments: 3, fees: 7n }, 3);
    s.saveSession(BOB, 'a', 1n, { fees: 10n ** 18n }, 4);
    s.saveSession(BOB, 'a', 1n, { segments: 1, fees: 10n ** 18n }, 5);
    // A balance-only write (credit restored, nothing transcoded) leaves the totals alone.
    s.saveSession(BOB, 'c', 99n, {}, 6);

    expect(s.totals()).toEqual({ segments: 7, fees: 157n + 2n * 10n ** 18n });
    const rows = s.sessions();
    expect(rows.map((r) => [r.sender, r.session, r.balance, r.segments, r.fees])).toEqual([
      [ALICE.toLowerCase(), 'a', 5n, 3, 150n],
      [ALICE.toLowerCase(), 'b', 0n, 3, 7n],
      [BOB, 'a', 1n, 1, 2n * 10n ** 18n],
      [BOB, 'c', 99n, 0, 0n],
    ]);
  });

  it('prune forgets only sessions idle since before the cut-off', () => {
    const s = openState(':memory:');
    s.saveSession(ALICE, 'old', 1n, { segments: 1, fees: 1n }, 1_000);
    s.saveSession(ALICE, 'edge', 2n, { segments: 1, fees: 2n }, 2_000);
    s.saveSession(BOB, 'new', 3n, { segments: 1, fees: 3n }, 3_000);
    // Touching an old session makes it recent again.
    s.saveSession(BOB, 'touched', 4n, {}, 500);
    s.saveSession(BOB, 'touched', 4n, {}, 2_500);

    expect(s.sessions(2_000).map((r) => r.session)).toEqual(['edge', 'touched', 'new']);
    expect(s.prune(2_000)).toBe(1);
    expect(s.sessions().map((r) => r.session)).toEqual(['edge', 'touched', 'new']);
    expect(s.prune(2_000)).toBe(0);
    expect(s.totals()).toEqual({ segments: 2, fees: 5n });
  });

  it('round-trips negative balances (debts) and balances beyond 64 bits', () => {
    const path = dbPath();
    const s = openState(path);
    const big = 2n ** 200n + 12_345n;
    s.saveSession(ALICE, 'debt', -123_456_789_012_345_678_901n, { segments: 1, fees: 1n }, 10);
    s.saveSession(BOB, 'rich', big, {}, 11);
    s.close();

    const again = openState(path);
    const byName = new Map(again.sessions().map((r) => [r.session, r.balance]));
    expect(byName.get('debt')).toBe(-123_456_789_012_345_678_901n);
    expect(byName.get('rich')).toBe(big);
  });

  it('gets and sets meta values, overwriting and keeping them across a reopen', () => {
    const path = dbPath();
    const s = openState(path);
    expect(s.getMeta('lastRewardRound')).toBeUndefined();
    s.setMeta('lastRewardRound', '7');
    s.setMeta('lastRewardRound', '8');
    s.setMeta('other', '');
    expect(s.getMeta('lastRewardRound')).toBe('8');
    s.close();

    const again = openState(path);
    expect(again.getMeta('lastRewardRound')).toBe('8');
    expect(again.getMeta('other')).toBe('');
    expect(again.getMeta('missing')).toBeUndefined();
  });

  it('keeps the last balance and the sums of every session for any sequence of writes (property)', () => {
    const write = fc.record({
      sender: fc.constantFrom(ALICE, ALICE.toLowerCase(), BOB),
      session: fc.constantFrom('s1', 's2', 's3'),
      balance: fc.bigInt({ min: -(10n ** 24n), max: 10n ** 24n }),
      segments: fc.integer({ min: 0, max: 5 }),
      fees: fc.bigInt({ min: 0n, max: 10n ** 15n }),
    });
    fc.assert(
      fc.property(fc.array(write, { maxLength: 40 }), (writes) => {
        const s = new OrchestratorState(':memory:');
        try {
          const want = new Map<string, { balance: bigint; segments: number; fees: bigint }>();
          for (const [i, w] of writes.entries()) {
            s.saveSession(w.sender, w.session, w.balance, { segments: w.segments, fees: w.fees }, i);
            const key = `${w.sender.toLowerCase()}/${w.session}`;
            const prev = want.get(key) ?? { balance: 0n, segments: 0, fees: 0n };
            want.set(key, {
              balance: w.balance,
              segments: prev.segments + w.segments,
              fees: prev.fees + w.fees,
            });
          }
          const got = new Map(
            s
              .sessions()
              .map((r) => [
                `${r.sender}/${r.session}`,
                { balance: r.balance, segments: r.segments, fees: r.fees },
              ]),
          );
          expect(got).toEqual(want);
          let segments = 0;
          let fees = 0n;
          for (const v of want.values()) {
            segments += v.segments;
            fees += v.fees;
          }
          expect(s.totals()).toEqual({ segments, fees });
        } finally {
          s.close();
        }
      }),
      { seed: 20_240_605, numRuns: 100 },
    );
  });
});
