import { Registry } from 'prom-client';
import { type Hex, keccak256, toHex } from 'viem';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createPMMetrics } from '../../../src/pm/metrics.js';
import { RedemptionQueue, type RedemptionQueueDeps } from '../../../src/pm/redemption-queue.js';
import { PMStore } from '../../../src/pm/store.js';
import type { RedeemResult, SignedTicket } from '../../../src/pm/types.js';
import { FakeChain, FakeClock, FakeRedeemer, GWEI, recipientAddress, roundInfo, tempDir } from './helpers.js';

const alice = '0x00000000000000000000000000000000000a11ce' as const;

function winner(i: number, faceValue = 10n ** 16n, creationRound = 10n): SignedTicket {
  return {
    ticket: {
      recipient: recipientAddress,
      sender: alice,
      faceValue,
      winProb: (1n << 256n) - 1n,
      senderNonce: BigInt(i),
      recipientRandHash: keccak256(toHex(`rand ${i}`)),
      creationRound,
      creationRoundBlockHash: keccak256(toHex(`round ${creationRound}`)),
    },
    signature: `0x${i.toString(16).padStart(2, '0').repeat(65)}` as Hex,
    recipientRand: BigInt(i),
    ticketHash: keccak256(toHex(`ticket ${i}`)),
  };
}

interface Q {
  queue: RedemptionQueue;
  store: PMStore;
  chain: FakeChain;
  clock: FakeClock;
  redeemer: FakeRedeemer;
  settled: [Hex, string][];
  registry: Registry;
}

const queues: Q[] = [];
afterEach(async () => {
  for (const q of queues.splice(0)) {
    await q.queue.stop();
    q.store.close();
  }
});

function setup(
  options: ConstructorParameters<typeof RedemptionQueue>[0] = {},
  store = new PMStore(':memory:'),
): Q {
  const chain = new FakeChain();
  const clock = new FakeClock();
  const redeemer = new FakeRedeemer();
  const settled: [Hex, string][] = [];
  const registry = new Registry();
  const deps: RedemptionQueueDeps = {
    store,
    chain,
    redeemer,
    now: clock.now,
    metrics: createPMMetrics(registry),
    onSettled: (t, outcome) => settled.push([t.ticketHash, outcome]),
  };
  const q = { queue: new RedemptionQueue(options, deps), store, chain, clock, redeemer, settled, registry };
  queues.push(q);
  return q;
}

function add(q: Q, tickets: SignedTicket[]): void {
  q.store.insertWinningTickets(
    tickets.map((signed) => ({ signed, expiresRound: signed.ticket.creationRound + 2n })),
    q.clock.t,
  );
}

async function metric(q: Q, name: string): Promise<number> {
  const m = (await q.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((s, v) => s + v.value, 0);
}

describe('RedemptionQueue', () => {
  it('redeems due tickets in batches of maxBatch, soonest expiry first', async () => {
    const q = setup({ maxBatch: 2 });
    add(q, [winner(1, 10n ** 16n, 11n), winner(2), winner(3), winner(4, 10n ** 16n, 9n), winner(5)]);
    const pass = await q.queue.processOnce();
    expect(pass).toMatchObject({ batches: 3, redeemed: 5, retried: 0, failed: 0, expired: 0 });
    expect(q.redeemer.calls.map((c) => c.map((t) => Number(t.ticket.senderNonce)))).toEqual([
      [4, 2],
      [3, 5],
      [1],
    ]);
    expect(q.store.summary().redeemed.count).toBe(5);
    expect(q.settled.every(([, o]) => o === 'redeemed')).toBe(true);
    expect((await q.queue.processOnce()).batches).toBe(0);
    expect(await metric(q, 'streamflow_pm_redeemed_face_value_wei_total')).toBe(5e16);
  });

  it('waits while the face value does not beat the transaction cost by the margin', async () => {
    const q = setup({ redeemMargin: 2 });
    add(q, [winner(1, 10n ** 16n)]);
    q.chain.gasPriceWei = 60n * GWEI; // 100_000 gas × 60 gwei × 2 = 1.2e16 > 1e16
    expect(await q.queue.processOnce()).toMatchObject({ batches: 0, waiting: 1 });
    expect(q.redeemer.calls).toHaveLength(0);
    q.chain.gasPriceWei = 50n * GWEI; // exactly 2×: worth it
    expect(await q.queue.processOnce()).toMatchObject({ batches: 1, redeemed: 1 });
  });

  it('in its last redeemable round, a ticket is redeemed below the margin if it still pays for its gas', async () => {
    const q = setup({ redeemMargin: 2 });
    add(q, [winner(1, 10n ** 16n, 10n)]); // redeemable in rounds 10 and 11
    q.chain.gasPriceWei = 90n * GWEI; // costs 9e15 of a 1e16 ticket: below the margin
    expect(await q.queue.processOnce()).toMatchObject({ batches: 0, waiting: 1 });
    q.chain.round = roundInfo(11n);
    expect(await q.queue.processOnce()).toMatchObject({ batches: 1, redeemed: 1 });
    add(q, [winner(2, 10n ** 16n, 10n)]);
    q.chain.gasPriceWei = 100n * GWEI; // would cost the whole face value: not worth a transaction
    expect(await q.queue.processOnce()).toMatchObject({ batches: 0, waiting: 1 });
  });

  it('waits a poll interval after a pass that could not read the chain, instead of retrying in a loop', async () => {
    // Found by test/e2e/chaos-rpc-outage.test.ts: with the chain unreachable, due tickets stayed due and the
    // queue retried at once, logging a failed pass every few hundred ms for the whole outage.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const q = setup({ pollIntervalMs: 5_000 });
      add(q, [winner(1)]);
      let reads = 0;
      q.chain.currentRound = async () => {
        reads++;
        throw new Error('fetch failed: connect ECONNREFUSED');
      };
      q.queue.start();
      await vi.advanceTimersByTimeAsync(4_000);
      expect(reads).toBe(1);
      await vi.advanceTimersByTimeAsync(1_500);
      expect(reads).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('retries a failed transaction with exponential backoff, then redeems', async () => {
    const q = setup({ retryBaseMs: 1_000, retryMaxMs: 3_000 });
    add(q, [winner(1), winner(2)]);
    let fail = 3;
    q.redeemer.respond = (tickets) => {
      if (fail-- > 0) throw new Error('nonce too low');
      return tickets.map(() => ({ status: 'redeemed', txHash: keccak256('0x01') }) as RedeemResult);
    };
    const start = q.clock.t;
    expect(await q.queue.processOnce()).toMatchObject({ retried: 2 });
    expect(q.store.list().map((t) => [t.status, t.attempts, t.nextAttemptAt - start, t.lastError])).toEqual([
      ['pending', 1, 1_000, 'nonce too low'],
      ['pending', 1, 1_000, 'nonce too low'],
    ]);
    expect((await q.queue.processOnce()).batches).toBe(0); // not due yet
    q.clock.advance(1_000);
    await q.queue.processOnce();
    expect(q.store.list()[0]?.nextAttemptAt).toBe(q.clock.t + 2_000);
    q.clock.advance(2_000);
    await q.queue.processOnce();
    expect(q.store.list()[0]?.nextAttemptAt).toBe(q.clock.t + 3_000); // capped at retryMaxMs
    q.clock.advance(3_000);
    expect(await q.queue.processOnce()).toMatchObject({ redeemed: 2 });
    expect(q.redeemer.calls).toHaveLength(4);
  });

  it('handles per-ticket results: retry, rejected (lost, logged) and alreadyRedeemed', async () => {
    const q = setup({ retryBaseMs: 10 });
    add(q, [winner(1), winner(2), winner(3)]);
    q.redeemer.respond = () => [
      { status: 'retry', reason: 'gas' },
      { status: 'rejected', reason: 'InvalidSignature' },
      { status: 'alreadyRedeemed' },
    ];
    expect(await q.queue.processOnce()).toMatchObject({ retried: 1, failed: 1, redeemed: 1 });
    const byNonce = new Map(q.store.list().map((t) => [t.ticket.senderNonce, t]));
    expect(byNonce.get(1n)?.status).toBe('pending');
    expect(byNonce.get(2n)).toMatchObject({ status: 'failed', lastError: 'InvalidSignature' });
    expect(byNonce.get(3n)?.status).toBe('redeemed');
    expect(await metric(q, 'streamflow_pm_lost_face_value_wei_total')).toBe(1e16);
    expect(q.settled.map(([, o]) => o).sort()).toEqual(['failed', 'redeemed']);
  });

  it('a redeemer answering with the wrong number of results is a failed transaction', async () => {
    const q = setup();
    add(q, [winner(1), winner(2)]);
    q.redeemer.respond = () => [{ status: 'redeemed', txHash: keccak256('0x01') }];
    expect(await q.queue.processOnce()).toMatchObject({ retried: 2, redeemed: 0 });
  });

  it('expires tickets the broker would no longer pay: status, metric, settle hook', async () => {
    const q = setup();
    add(q, [winner(1, 10n ** 16n, 10n), winner(2, 10n ** 16n, 11n)]);
    q.chain.gasPriceWei = 10_000n * GWEI; // nothing worth redeeming
    q.chain.round = roundInfo(12n); // ticket 1 (round 10 + 2) is dead
    expect(await q.queue.processOnce()).toMatchObject({ expired: 1, waiting: 1 });
    expect(q.store.list().map((t) => t.status)).toEqual(['expired', 'pending']);
    expect(q.store.list()[0]?.lastError).toMatch(/not redeemed before round 12/);
    expect(await metric(q, 'streamflow_pm_lost_face_value_wei_total')).toBe(1e16);
    expect(q.settled).toEqual([[winner(1).ticketHash, 'expired']]);
  });

  it('resumes tickets a crash left submitted', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store1 = new PMStore(`${dir}/pm.db`);
      const q1 = setup({}, store1);
      add(q1, [winner(1), winner(2)]);
      let called: () => void = () => {};
      const inFlight = new Promise<void>((resolve) => {
        called = resolve;
      });
      q1.redeemer.respond = () => {
        called();
        return new Promise<RedeemResult[]>(() => {}); // the process dies mid-transaction
      };
      void q1.queue.processOnce();
      await inFlight;
      expect(store1.list().map((t) => t.status)).toEqual(['submitted', 'submitted']);
      queues.splice(queues.indexOf(q1), 1);
      store1.close();

      const q2 = setup({}, new PMStore(`${dir}/pm.db`));
      q2.redeemer.respond = (tickets) => tickets.map(() => ({ status: 'alreadyRedeemed' }));
      q2.queue.start();
      expect(q2.store.list().map((t) => t.status)).toEqual(['pending', 'pending']);
      await q2.queue.processOnce();
      expect(q2.store.list().map((t) => t.status)).toEqual(['redeemed', 'redeemed']);
    } finally {
      cleanup();
    }
  });

  it('the running loop redeems as soon as it is notified', async () => {
    const q = setup({ pollIntervalMs: 3_600_000 });
    let signalRedeemed: () => void = () => {};
    const redeemed = new Promise<void>((resolve) => {
      signalRedeemed = resolve;
    });
    q.redeemer.respond = (tickets) => {
      signalRedeemed();
      return tickets.map(() => ({ status: 'redeemed', txHash: keccak256('0x02') }));
    };
    q.queue.start();
    q.queue.start();
    await q.queue.processOnce(); // the first pass found nothing
    add(q, [winner(7)]);
    q.queue.notify();
    await redeemed;
    await q.queue.stop();
    await q.queue.stop();
    expect(q.store.list()[0]?.status).toBe('redeemed');
  });
});
