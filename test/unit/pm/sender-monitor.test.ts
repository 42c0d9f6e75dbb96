import { describe, expect, it } from 'vitest';
import { SenderMonitor } from '../../../src/pm/sender-monitor.js';
import type { SenderInfo } from '../../../src/pm/types.js';
import { ETH, FakeChain, FakeClock, recipientAddress } from './helpers.js';

const alice = '0x00000000000000000000000000000000000a11ce' as const;

describe('SenderMonitor', () => {
  it('max float = claimable reserve − pending winning tickets; coverage adds the deposit', async () => {
    const chain = new FakeChain();
    chain.fund(alice, { deposit: 3n * ETH, claimableReserve: ETH });
    const m = new SenderMonitor({}, { chain, recipient: recipientAddress });
    expect(m.maxFloat(alice)).toBeUndefined();
    await m.ensure(alice);
    expect(m.maxFloat(alice)).toBe(ETH);
    m.addPending(alice, ETH / 4n);
    expect(m.maxFloat(alice)).toBe((3n * ETH) / 4n);
    expect(m.coverage(alice)).toBe(3n * ETH + (3n * ETH) / 4n);
    m.addPending(alice, 2n * ETH);
    expect(m.maxFloat(alice)).toBe(0n);
    m.settlePending(alice, 2n * ETH + ETH / 4n);
    expect(m.pending(alice)).toBe(0n);
  });

  it('caches reads for the TTL, shares concurrent reads, and re-reads after an event', async () => {
    const chain = new FakeChain();
    const clock = new FakeClock();
    chain.fund(alice);
    const m = new SenderMonitor(
      { senderInfoTtlMs: 1_000 },
      { chain, recipient: recipientAddress, now: clock.now },
    );
    await Promise.all([m.ensure(alice), m.ensure(alice), m.ensure(alice)]);
    expect(chain.reads.sender).toBe(1);
    await m.ensure(alice);
    expect(chain.reads.sender).toBe(1);
    clock.advance(1_000);
    await m.ensure(alice);
    expect(chain.reads.sender).toBe(2);

    chain.fund(alice, { withdrawRound: 20n }); // the broker emitted Unlock
    m.invalidate(alice);
    expect((await m.ensure(alice)).withdrawRound).toBe(20n);
    expect(chain.reads.sender).toBe(3);
  });

  it('a read that started before an event does not pass for fresh after it', async () => {
    const chain = new FakeChain();
    chain.fund(alice);
    let release: (info: SenderInfo) => void = () => {};
    chain.senderInfo = () =>
      new Promise<SenderInfo>((resolve) => {
        release = resolve;
      });
    const m = new SenderMonitor({}, { chain, recipient: recipientAddress });
    const p = m.ensure(alice);
    m.invalidate(alice);
    release({ deposit: 1n, reserve: 1n, claimableReserve: 1n, withdrawRound: 0n });
    const s = await p;
    expect(m.isStale(s)).toBe(true);
  });

  it('an invalidation (a round change) marks senders for a re-read without making them look idle', async () => {
    const chain = new FakeChain();
    const clock = new FakeClock();
    chain.fund(alice);
    const m = new SenderMonitor({}, { chain, recipient: recipientAddress, now: clock.now });
    await m.ensure(alice);
    m.invalidate();
    const s = m.get(alice);
    expect(s && m.isStale(s)).toBe(true);
    clock.advance(1_000);
    m.sweep(60_000);
    expect(m.get(alice)).toBeDefined();
    const reads = chain.reads.sender;
    await m.ensure(alice);
    expect(chain.reads.sender).toBe(reads + 1);
    const again = m.get(alice);
    expect(again && m.isStale(again)).toBe(false);
  });

  it('restores pending amounts and forgets idle senders without pending tickets', async () => {
    const chain = new FakeChain();
    const clock = new FakeClock();
    chain.fund(alice);
    const m = new SenderMonitor({}, { chain, recipient: recipientAddress, now: clock.now });
    m.setPending(new Map([[alice.toUpperCase(), 5n]]));
    expect(m.pending(alice)).toBe(5n);
    await m.ensure(alice);
    clock.advance(10_000);
    m.sweep(1_000);
    expect(m.get(alice)).toBeDefined();
    m.settlePending(alice, 5n);
    m.sweep(1_000);
    expect(m.get(alice)).toBeUndefined();
  });
});
