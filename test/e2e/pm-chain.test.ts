import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestClient, type Hash, hexToBytes, http, parseEther } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignerConnection } from '../../src/chain/client.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { RoundClock } from '../../src/chain/round-clock.js';
import { bondAndRegister, mineToNextRound } from '../../src/chain/staking.js';
import { TicketBrokerChain, TicketBrokerRedeemer, ticketDomain } from '../../src/chain/ticket-broker.js';
import { waitForSuccess } from '../../src/chain/tx.js';
import { RecipientEngine } from '../../src/pm/engine.js';
import { Sender } from '../../src/pm/sender.js';
import { ticketHash } from '../../src/pm/ticket.js';
import { paymentTicket } from '../../src/pm/types.js';

// The payment engine against the real TicketBroker: a broadcaster funds a deposit, pays an orchestrator with
// tickets that all win, the orchestrator's queue cashes them on chain, and the fees reach its earnings.
describe('payments on a real chain', () => {
  let devnet: Devnet;
  let o: SignerConnection;
  let b: SignerConnection;
  let dir: string;
  const done = (conn: SignerConnection, what: string) => (hash: Hash) => waitForSuccess(conn, hash, what);

  beforeAll(async () => {
    devnet = await startDevnet({ accounts: 3, blockTime: 0, parameters: { roundLength: 100n } });
    o = devnet.signer(1);
    b = devnet.signer(2);
    dir = await mkdtemp(join(tmpdir(), 'sf-pm-chain-'));
    await bondAndRegister(o, devnet.manifest, {
      stake: parseEther('1000'),
      rewardCut: 100_000n,
      feeShare: 500_000n,
    });
    await mineToNextRound(o, devnet.manifest);
    const co = streamflowContracts(o, devnet.manifest);
    await co.bondingManager.write.reward().then(done(o, 'reward'));
    const cb = streamflowContracts(b, devnet.manifest);
    await cb.ticketBroker.write
      .fundDepositAndReserve([parseEther('1'), parseEther('1')], { value: parseEther('2') })
      .then(done(b, 'fund'));
  });
  afterAll(async () => {
    await devnet?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('hashes tickets exactly as the TicketBroker does', async () => {
    const c = streamflowContracts(o, devnet.manifest);
    const round = await c.roundsManager.read.currentRound();
    const ticket = {
      recipient: o.account.address,
      sender: b.account.address,
      faceValue: 123n,
      winProb: 2n ** 255n,
      senderNonce: 7n,
      recipientRandHash: `0x${'ab'.repeat(32)}` as const,
      creationRound: round,
      creationRoundBlockHash: await c.roundsManager.read.blockHashForRound([round]),
    };
    expect(await c.ticketBroker.read.getTicketHash([ticket])).toBe(
      ticketHash(ticket, ticketDomain(devnet.manifest)),
    );
  });

  it('redeems winning tickets on chain and credits the fees to the orchestrator', async () => {
    const chain = new TicketBrokerChain(
      { manifest: devnet.manifest, recipient: o.account.address },
      { conn: o },
    );
    const estimated = await chain.estimateRedeemGas();
    const redeemer = new TicketBrokerRedeemer({ manifest: devnet.manifest }, { conn: o, chain });
    const domain = ticketDomain(devnet.manifest);
    const engine = new RecipientEngine(
      // Every ticket wins: the expected value equals the face value.
      { dataDir: dir, address: o.account.address, domain, expectedValue: parseEther('1') },
      { chain, redeemer },
    );
    await engine.start();
    try {
      const bKey = devnet.accounts[2]?.privateKey;
      if (!bKey) throw new Error('no broadcaster key');
      const sender = new Sender(
        { privateKey: hexToBytes(bKey), domain, maxExpectedValue: parseEther('1') },
        { funds: { deposit: () => parseEther('1') } },
      );
      const params = await engine.recipient.ticketParams(b.account.address);
      expect(params.winProb).toBe(2n ** 256n - 1n);
      const payment = sender.createPayment(params, params.faceValue / 2n, { recipient: o.account.address });
      const result = await engine.recipient.receivePayment(payment, { session: 's1', peer: 'test' });
      expect(result.errors).toEqual([]);
      expect(result.winners.length).toBe(payment.tickets.length);

      const c = streamflowContracts(o, devnet.manifest);
      const hashes = payment.tickets.map((t) => ticketHash(paymentTicket(params, t.senderNonce), domain));
      for (let pass = 0; pass < 5; pass++) {
        const used = await Promise.all(hashes.map((h) => c.ticketBroker.read.usedTickets([h])));
        if (used.every(Boolean)) break;
        await engine.queue.processOnce();
      }
      for (const h of hashes) expect(await c.ticketBroker.read.usedTickets([h]), h).toBe(true);
      const [deposit] = await c.ticketBroker.read.getSenderInfo([b.account.address]);
      expect(deposit).toBe(parseEther('1') - params.faceValue * BigInt(hashes.length));
      expect(await c.bondingManager.read.pendingFees([o.account.address])).toBeGreaterThan(0n);
      // Estimated before any redemption from the live contracts, it lands near what redemption really used
      // per ticket (batches share work, so the real figure is lower for several tickets).
      const observed = await chain.estimateRedeemGas();
      expect(observed).toBeGreaterThan(21_000n);
      expect(
        Number(estimated) / Number(observed),
        `estimated ${estimated}, used ${observed}`,
      ).toBeGreaterThan(0.8);
      expect(Number(estimated) / Number(observed), `estimated ${estimated}, used ${observed}`).toBeLessThan(
        2.5,
      );
    } finally {
      await engine.stop();
    }
  });

  // A new round has no block hash until someone initialises it; params issued in that gap must still name a
  // round the TicketBroker knows, or every ticket won under them is lost.
  it('pays tickets issued while the next round waits to be initialised', async () => {
    const chain = new TicketBrokerChain(
      { manifest: devnet.manifest, recipient: o.account.address },
      { conn: o },
    );
    const redeemer = new TicketBrokerRedeemer({ manifest: devnet.manifest }, { conn: o, chain });
    const domain = ticketDomain(devnet.manifest);
    const c = streamflowContracts(o, devnet.manifest);
    const clock = new RoundClock({}, { conn: o, contracts: c });
    const before = await clock.read();
    await createTestClient({ mode: 'anvil', transport: http(o.rpcUrl) }).mine({
      blocks: Number(before.blocksLeft),
    });
    const gap = await clock.read();
    expect(gap.round).toBe(before.round + 1n);
    expect(gap.initialized).toBe(false);

    const engine = new RecipientEngine(
      {
        dataDir: join(dir, 'gap'),
        address: o.account.address,
        domain,
        expectedValue: parseEther('1'),
        // Its own loop tries the ticket before the round is initialised; retry soon after that refusal.
        queue: { retryBaseMs: 100, pollIntervalMs: 100 },
      },
      { chain, redeemer },
    );
    await engine.start();
    try {
      const params = await engine.recipient.ticketParams(b.account.address);
      expect(params.creationRound).toBe(before.round);
      expect(params.creationRoundBlockHash).toBe(
        await c.roundsManager.read.blockHashForRound([before.round]),
      );
      const bKey = devnet.accounts[2]?.privateKey;
      if (!bKey) throw new Error('no broadcaster key');
      const sender = new Sender(
        { privateKey: hexToBytes(bKey), domain, maxExpectedValue: parseEther('1') },
        {
          funds: {
            deposit: () => parseEther('1'),
            currentRound: () => before.round,
          },
        },
      );
      const payment = sender.createPayment(params, 1n, { recipient: o.account.address });
      const result = await engine.recipient.receivePayment(payment, { session: 'gap', peer: 'test' });
      expect(result.errors).toEqual([]);
      expect(result.winners.length).toBe(1);

      // Nothing is redeemable until the round is initialised: the queue's first try (on the new winner) waits,
      // saying why in one line, and the ticket stays in line. Once the round is initialised it pays.
      const hash = ticketHash(paymentTicket(params, payment.tickets[0]?.senderNonce ?? 0n), domain);
      const tried = Date.now() + 10_000;
      while (!engine.store.get(hash)?.lastError && Date.now() < tried) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const waiting = engine.store.get(hash);
      expect(waiting?.lastError).toBe(
        'the current round is not initialised yet; tickets are redeemed once it is',
      );
      expect(['pending', 'submitted']).toContain(waiting?.status);
      await clock.initializeIfDue();
      await engine.recipient.refreshChain();
      const until = Date.now() + 30_000;
      while (engine.store.counts().redeemed === 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(engine.store.counts()).toMatchObject({ redeemed: 1, failed: 0, pending: 0 });
      expect(await c.ticketBroker.read.usedTickets([hash])).toBe(true);
    } finally {
      await engine.stop();
    }
  });
});
