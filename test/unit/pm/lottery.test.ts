import { describe, expect, it } from 'vitest';
import { PMStore } from '../../../src/pm/store.js';
import type { TicketParams } from '../../../src/pm/types.js';
import {
  addressOf,
  ETH,
  FakeChain,
  FakeClock,
  keyFor,
  makeRecipient,
  makeSender,
  tempDir,
} from './helpers.js';

describe('lottery through the real Sender and Recipient', () => {
  it('20,000 tickets at winProb 1/50 give a number of winners within 4σ of 400', async () => {
    const TICKETS = 20_000;
    const PER_PAYMENT = 10;
    const { dir, cleanup } = tempDir();
    const labels = ['s0', 's1', 's2', 's3'];
    const clock = new FakeClock();
    const senders = labels.map((l) => makeSender(l, {}, { maxExpectedValue: 10n ** 15n }, clock));
    const store = new PMStore(`${dir}/pm.db`);
    // faceValue = 100_000 gas × 1 gwei × 100 = 1e16; EV = 1e16 / 50 ⇒ winProb = ⌊2^256 / 50⌋.
    // Enough reserve for every winner to stay pending: max float must not run out mid-test.
    const chain = new FakeChain();
    for (const s of senders) chain.fund(s.address, { claimableReserve: 100n * ETH });
    const h = await makeRecipient({
      chain,
      senders: labels.map((l) => addressOf(keyFor(l))),
      store,
      clock,
      expectedValue: 2n * 10n ** 14n,
    });
    try {
      const params = new Map<string, TicketParams>();
      for (const s of senders) params.set(s.address, await h.recipient.ticketParams(s.address));
      expect(params.get(senders[0]?.address ?? '')?.winProb).toBe((1n << 256n) / 50n);

      let winners = 0;
      let accepted = 0;
      for (let i = 0; i < TICKETS / PER_PAYMENT; i++) {
        const s = senders[i % senders.length];
        if (!s) throw new Error('sender');
        const p = params.get(s.address) as TicketParams;
        const ev = (p.faceValue * p.winProb) >> 256n;
        const r = await h.recipient.receivePayment(s.createPayment(p, BigInt(PER_PAYMENT) * ev), {
          session: s.address,
        });
        expect(r.errors, `payment ${i}`).toEqual([]);
        accepted += r.accepted;
        winners += r.winners.length;
        if (!r.params) throw new Error(`payment ${i}: no fresh params (${r.paramsError?.message})`);
        params.set(s.address, r.params);
      }
      expect(accepted).toBe(TICKETS);
      const p = 1 / 50;
      const mean = TICKETS * p;
      const sigma = Math.sqrt(TICKETS * p * (1 - p));
      expect(
        Math.abs(winners - mean),
        `${winners} winners, expected ${mean} ± ${4 * sigma}`,
      ).toBeLessThanOrEqual(4 * sigma);
      expect(store.summary().pending.count).toBe(winners);
      expect(h.recipient.stats.winningTickets).toBe(winners);
    } finally {
      await h.recipient.stop();
      store.close();
      cleanup();
    }
  });
});
