import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RecipientEngine } from '../../../src/pm/engine.js';
import {
  addressOf,
  domain,
  FakeChain,
  FakeRedeemer,
  keyFor,
  recipientAddress,
  referencePayment,
  tempDir,
} from './helpers.js';

const aliceKey = keyFor('alice');
const alice = addressOf(aliceKey);

describe('RecipientEngine', () => {
  it('wires store, secret, recipient and queue: a win is stored, redeemed, and leaves max float', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const chain = new FakeChain();
      chain.fund(alice);
      const redeemer = new FakeRedeemer();
      const engine = new RecipientEngine(
        {
          dataDir: dir,
          address: recipientAddress,
          domain,
          expectedValue: 10n ** 30n,
          queue: { pollIntervalMs: 3_600_000 },
        },
        { chain, redeemer },
      );
      await engine.start();
      await engine.start();
      expect(statSync(join(dir, 'pm.secret')).mode & 0o777).toBe(0o600);
      const p = await engine.recipient.ticketParams(alice);
      const r = await engine.recipient.receivePayment(referencePayment(p, [1n], aliceKey), { session: 's' });
      expect(r.winners).toHaveLength(1);
      expect(engine.recipient.monitor.pending(alice)).toBe(p.faceValue);
      const reads = chain.reads.sender;
      await engine.queue.processOnce();
      expect(redeemer.redeemed).toEqual([r.winners[0]?.ticketHash]);
      expect(engine.recipient.monitor.pending(alice)).toBe(0n);
      // The redemption invalidated the sender's chain data; the next params re-read it.
      await engine.recipient.ticketParams(alice);
      expect(chain.reads.sender).toBeGreaterThan(reads);
      await engine.stop();
      await engine.stop();
      expect(engine.store.db.open).toBe(false);
    } finally {
      cleanup();
    }
  });
});
