import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultSelectionOptions } from '../../../src/broadcaster/options.js';
import {
  ineligibility,
  type OrchestratorStats,
  rankCandidates,
  type SelectionCandidate,
  Selector,
} from '../../../src/broadcaster/selection.js';

class Clock {
  ms = 1_000_000;
  readonly now = () => this.ms;
}

const A = '0x000000000000000000000000000000000000000a';
const B = '0x000000000000000000000000000000000000000b';
const C = '0x000000000000000000000000000000000000000c';
const cand = (
  address: string,
  pricePerPixel: number,
  stake: bigint | undefined = 100n,
): SelectionCandidate => ({
  address,
  pricePerPixel,
  stake,
});

describe('orchestrator selection', () => {
  it('prefers a fast orchestrator over a cheaper one that is much slower, with the default weights', () => {
    const clock = new Clock();
    const s = new Selector({ warmSessions: 1 }, { now: clock.now });
    s.recordLatency(A, 50); // fast, pricier
    s.recordLatency(B, 900); // slow, cheaper
    const pick = s.select([cand(A, 1.2), cand(B, 1.0)]);
    expect(pick.warm.map((c) => c.address)).toEqual([A]);
    expect(pick.failover?.address).toBe(B);
  });

  it('prefers the cheaper orchestrator when price carries most of the weight', () => {
    const s = new Selector({ warmSessions: 1, priceWeight: 0.8, latencyWeight: 0.1, successWeight: 0.1 });
    s.recordLatency(A, 50);
    s.recordLatency(B, 900);
    expect(s.select([cand(A, 1.2), cand(B, 1.0)]).warm[0]?.address).toBe(B);
  });

  it('pushes an orchestrator down after failures, and suspends it after a run of them', () => {
    const clock = new Clock();
    const s = new Selector(
      { warmSessions: 1, maxConsecutiveFailures: 3, suspensionMs: 10_000 },
      { now: clock.now },
    );
    const cs = [cand(A, 1), cand(B, 1)];
    expect(s.select(cs).warm[0]?.address).toBe(A); // tie broken by address
    s.recordFailure(A);
    expect(s.select(cs).warm[0]?.address).toBe(B);
    expect(s.isSuspended(A)).toBe(false);
    s.recordFailure(A);
    s.recordFailure(A);
    expect(s.isSuspended(A)).toBe(true);
    const pick = s.select(cs);
    expect(pick.ranked.map((r) => r.candidate.address)).toEqual([B]);
    expect(pick.failover).toBeUndefined();
  });

  it('lets a suspended orchestrator back once its suspension expires', () => {
    const clock = new Clock();
    const s = new Selector({}, { now: clock.now });
    s.suspend(A, clock.ms + 5_000);
    expect(s.select([cand(A, 1)]).ranked).toHaveLength(0);
    clock.ms += 4_999;
    expect(s.isSuspended(A)).toBe(true);
    clock.ms += 1;
    expect(s.select([cand(A, 1)]).warm.map((c) => c.address)).toEqual([A]);
  });

  it('ranks suspended orchestrators only when asked to include them, still behind the price ceiling', () => {
    const clock = new Clock();
    const s = new Selector({ maxPricePerPixel: 5 }, { now: clock.now });
    s.suspend(A, clock.ms + 60_000);
    expect(s.select([cand(A, 1)]).warm).toEqual([]);
    expect(s.select([cand(A, 1)], 1, { includeSuspended: true }).warm.map((c) => c.address)).toEqual([A]);
    expect(s.select([cand(A, 9)], 1, { includeSuspended: true }).warm).toEqual([]);
  });

  it('a success resets the failure run, so scattered failures do not suspend', () => {
    const s = new Selector({ maxConsecutiveFailures: 2 });
    for (let i = 0; i < 5; i++) {
      s.recordFailure(A);
      s.recordSuccess(A);
    }
    expect(s.isSuspended(A)).toBe(false);
  });

  it('forgets old failures over the history half-life', () => {
    const clock = new Clock();
    const s = new Selector({ historyHalfLifeMs: 1_000, maxConsecutiveFailures: 100 }, { now: clock.now });
    s.recordFailure(A);
    s.recordFailure(A);
    expect(s.statsOf(A)?.failures).toBeCloseTo(2);
    clock.ms += 1_000;
    expect(s.statsOf(A)?.failures).toBeCloseTo(1);
    clock.ms += 10_000;
    expect(s.statsOf(A)?.failures ?? 1).toBeLessThan(0.01);
  });

  it('never picks an orchestrator above the max price', () => {
    const s = new Selector({ maxPricePerPixel: 2 });
    const pick = s.select([cand(A, 2.5), cand(B, 2), cand(C, 1)]);
    expect(pick.ranked.map((r) => r.candidate.address).sort()).toEqual([B, C]);
  });

  it('never picks an orchestrator whose quote is not a finite, non-negative number', () => {
    const s = new Selector();
    const pick = s.select([
      cand(A, Number.NaN),
      cand(B, Number.POSITIVE_INFINITY),
      cand(C, -1),
      cand('0xd', 1),
    ]);
    expect(pick.ranked.map((r) => r.candidate.address)).toEqual(['0xd']);
  });

  it('never picks a chain orchestrator below the stake floor, but keeps static entries', () => {
    const s = new Selector({ minStake: 1_000n });
    const pick = s.select([
      cand(A, 1, 999n),
      cand(B, 1, 1_000n),
      { address: C, pricePerPixel: 1, stake: undefined },
    ]);
    expect(pick.ranked.map((r) => r.candidate.address).sort()).toEqual([B, C]);
  });

  it('does not let stake raise the score above the floor', () => {
    const s = new Selector({ warmSessions: 1 });
    s.recordLatency(A, 900);
    s.recordLatency(B, 50);
    expect(s.select([cand(A, 1, 10n ** 24n), cand(B, 1, 1n)]).warm[0]?.address).toBe(B);
  });

  it('breaks ties by stake, then by address, whatever the input order', () => {
    const s = new Selector({ warmSessions: 3 });
    const cs = [cand(C, 1, 5n), cand(B, 1, 5n), cand(A, 1, 1n)];
    const expected = [B, C, A];
    expect(s.select(cs).warm.map((c) => c.address)).toEqual(expected);
    expect(s.select([...cs].reverse()).warm.map((c) => c.address)).toEqual(expected);
  });

  it('treats addresses case-insensitively', () => {
    const s = new Selector();
    s.suspend(A.toUpperCase().replace('0X', '0x'), Date.now() + 60_000);
    expect(s.isSuspended(A)).toBe(true);
  });

  it('gives an untried orchestrator the mean latency, between the fast and the slow', () => {
    const s = new Selector({ warmSessions: 3 });
    s.recordLatency(A, 10);
    s.recordLatency(C, 1_000);
    expect(s.select([cand(A, 1), cand(B, 1), cand(C, 1)]).warm.map((c) => c.address)).toEqual([A, B, C]);
  });
});

describe('selection score properties', () => {
  const weights = defaultSelectionOptions;
  const row = fc.record({
    price: fc.double({ min: 0, max: 1_000, noNaN: true }),
    latency: fc.option(fc.double({ min: 0, max: 10_000, noNaN: true }), { nil: undefined }),
    successes: fc.nat(50),
    failures: fc.nat(50),
  });
  const build = (
    rows: { price: number; latency: number | undefined; successes: number; failures: number }[],
  ) => {
    const candidates = rows.map((r, i) => cand(`0x${i.toString(16).padStart(40, '0')}`, r.price));
    const stats = new Map<string, OrchestratorStats>();
    rows.forEach((r, i) => {
      stats.set(candidates[i]?.address as string, {
        latencyMs: r.latency,
        successes: r.successes,
        failures: r.failures,
        consecutiveFailures: 0,
        suspendedUntilMs: 0,
        updatedMs: 0,
      });
    });
    return { candidates, stats };
  };
  const scoreOf = (rows: Parameters<typeof build>[0], i: number) => {
    const { candidates, stats } = build(rows);
    const ranked = rankCandidates(candidates, stats, weights);
    return ranked.find((r) => r.candidate.address === candidates[i]?.address)?.score as number;
  };

  it('a lower price never lowers a candidate score', () => {
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 1, maxLength: 8 }),
        fc.nat(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (rows, j, f) => {
          const i = j % rows.length;
          const cheaper = rows.map((r, k) => (k === i ? { ...r, price: r.price * f } : r));
          expect(scoreOf(cheaper, i)).toBeGreaterThanOrEqual(scoreOf(rows, i) - 1e-12);
        },
      ),
    );
  });

  it('a lower latency never lowers a candidate score', () => {
    fc.assert(
      fc.property(
        fc.array(row, { minLength: 1, maxLength: 8 }),
        fc.nat(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (rows, j, f) => {
          const i = j % rows.length;
          const lat = rows[i]?.latency;
          fc.pre(lat !== undefined);
          const faster = rows.map((r, k) => (k === i ? { ...r, latency: (lat as number) * f } : r));
          expect(scoreOf(faster, i)).toBeGreaterThanOrEqual(scoreOf(rows, i) - 1e-9);
        },
      ),
    );
  });

  it('ranking does not depend on input order', () => {
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 8 }), fc.nat(), (rows, seed) => {
        const { candidates, stats } = build(rows);
        const shuffled = [...candidates].sort(
          (a, b) =>
            ((Number.parseInt(a.address.slice(-4), 16) * 31 + seed) % 97) -
            ((Number.parseInt(b.address.slice(-4), 16) * 31 + seed) % 97),
        );
        const order = (cs: SelectionCandidate[]) =>
          rankCandidates(cs, stats, weights).map((r) => r.candidate.address);
        expect(order(shuffled)).toEqual(order(candidates));
      }),
    );
  });
});

describe('ineligibility names the filter a candidate fails', () => {
  const options = { maxPricePerPixel: 10, minStake: 50n };
  const cases: [string, SelectionCandidate, 'price' | 'stake' | undefined][] = [
    ['eligible', cand(A, 10, 50n), undefined],
    ['above the max price', cand(A, 11, 50n), 'price'],
    ['a non-finite quote', cand(A, Number.NaN, 50n), 'price'],
    ['a negative quote', cand(A, -1, 50n), 'price'],
    ['below the stake floor', cand(A, 5, 49n), 'stake'],
    ['price first when both fail', cand(A, 11, 1n), 'price'],
    ['a static entry (stake unknown) is not subject to the floor', cand(A, 5, undefined), undefined],
  ];
  for (const [name, c, expected] of cases) {
    it(name, () => expect(ineligibility(c, options)).toBe(expected));
  }
});
