import { Registry } from 'prom-client';
import { bytesToHex, hexToBytes, keccak256, toHex } from 'viem';
import { afterEach, describe, expect, it } from 'vitest';
import { PaymentError } from '../../../src/pm/errors.js';
import { createPMMetrics } from '../../../src/pm/metrics.js';
import { Recipient, winProbFor } from '../../../src/pm/recipient.js';
import { PMStore } from '../../../src/pm/store.js';
import { signDigest, ticketHash } from '../../../src/pm/ticket.js';
import { type Payment, paymentTicket, type TicketParams } from '../../../src/pm/types.js';
import {
  addressOf,
  domain,
  ETH,
  FakeChain,
  FakeClock,
  GWEI,
  type Harness,
  keyFor,
  makeRecipient,
  recipientAddress,
  referencePayment,
  roundInfo,
  secretA,
  tempDir,
} from './helpers.js';

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const aliceKey = keyFor('alice');
const alice = addressOf(aliceKey);
const bobKey = keyFor('bob');
const bob = addressOf(bobKey);
const U256_MAX = (1n << 256n) - 1n;
/** EV of 1 wei: winProb ≈ 1e-16, so no ticket in these tests wins. */
const NEVER = { expectedValue: 1n };
/** EV above the face value: winProb = 2^256 − 1, every ticket wins. */
const ALWAYS = { expectedValue: 10n ** 30n };
const session = { session: 's1' };

const harnesses: Harness[] = [];
async function harness(opts: Parameters<typeof makeRecipient>[0] = {}): Promise<Harness> {
  const h = await makeRecipient({ senders: [alice, bob], ...opts });
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.recipient.stop();
});

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as PaymentError).code;
  }
}

describe('Recipient ticket params', () => {
  it('derives faceValue from the chain redeem gas × gas price × txCostMultiplier and winProb from EV', async () => {
    const { recipient, chain } = await harness({ expectedValue: 10n ** 12n });
    const p = await recipient.ticketParams(alice);
    expect(p.faceValue).toBe(100_000n * GWEI * 100n);
    expect(p.winProb).toBe(((10n ** 12n) << 256n) / p.faceValue);
    expect(p.recipient).toBe(recipientAddress);
    expect(p.creationRound).toBe(chain.round.round);
    expect(p.creationRoundBlockHash).toBe(chain.round.blockHash);
    expect(p.expirationRound).toBe(chain.round.round); // accepted in the creation round only
    expect(p.recipientRandHash).toMatch(/^0x[0-9a-f]{64}$/);

    // Measured, not hard-coded: twice the gas gives twice the face value once the cache refreshes.
    chain.redeemGas = 200_000n;
    await recipient.refreshChain();
    const q = await recipient.ticketParams(alice);
    expect(q.faceValue).toBe(200_000n * GWEI * 100n);
    expect(q.recipientRandHash).not.toBe(p.recipientRandHash);
  });

  it('caps faceValue at the max float: claimable reserve minus pending winning tickets', async () => {
    const chain = new FakeChain();
    chain.fund(alice, { claimableReserve: 5n * 10n ** 15n });
    const { recipient } = await harness({ chain, ...ALWAYS });
    const p = await recipient.ticketParams(alice);
    expect(p.faceValue).toBe(5n * 10n ** 15n);
    expect(p.winProb).toBe(U256_MAX);

    await recipient.receivePayment(referencePayment(p, [1n], aliceKey), session);
    expect(recipient.monitor.pending(alice)).toBe(5n * 10n ** 15n);
    // All of the reserve share is now owed: nothing left to back a new ticket.
    expect(await code(recipient.ticketParams(alice))).toBe('LowPMBalance');
  });

  it('returns the same params until a win, a new round or a change of target', async () => {
    const { recipient, chain } = await harness(NEVER);
    const p1 = await recipient.ticketParams(alice);
    expect((await recipient.ticketParams(alice)).recipientRandHash).toBe(p1.recipientRandHash);
    expect((await recipient.ticketParams(bob)).recipientRandHash).not.toBe(p1.recipientRandHash);
    chain.round = roundInfo(11n);
    recipient.setRound(chain.round);
    const p2 = await recipient.ticketParams(alice);
    expect(p2.creationRound).toBe(11n);
    expect(p2.recipientRandHash).not.toBe(p1.recipientRandHash);
    recipient.setExpectedValue(1000n);
    expect((await recipient.ticketParams(alice)).recipientRandHash).not.toBe(p2.recipientRandHash);
  });

  it('winProbFor caps at 2^256 − 1 and scales EV / faceValue', () => {
    expect(winProbFor(1n, 1n)).toBe(U256_MAX);
    expect(winProbFor(1n, 50n)).toBe((1n << 256n) / 50n);
  });
});

describe('Recipient validation error codes', () => {
  it('accepts valid tickets and credits their expected value to the session', async () => {
    const { recipient } = await harness({ expectedValue: 10n ** 6n });
    const p = await recipient.ticketParams(alice);
    const r = await recipient.receivePayment(referencePayment(p, [1n, 2n, 3n], aliceKey), session);
    const ev = (p.faceValue * p.winProb) >> 256n;
    expect(r.errors).toEqual([]);
    expect(r.accepted).toBe(3);
    expect(r.credited).toBe(3n * ev);
    expect(r.balance).toBe(3n * ev);
    expect(recipient.ledger.balance(alice, 's1')).toBe(3n * ev);
    expect(r.params?.recipientRandHash).toBe(p.recipientRandHash);
  });

  it('InvalidSignature: garbage, another signer, the high-s twin, the 64-byte form, a bad v', async () => {
    const { recipient } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    const good = referencePayment(p, [1n], aliceKey).tickets[0]?.signature as `0x${string}`;
    const sig = hexToBytes(good);
    const s = BigInt(bytesToHex(sig.subarray(32, 64)));
    const high = new Uint8Array(sig);
    high.set(hexToBytes(toHex(N - s, { size: 32 })), 32);
    high[64] = sig[64] === 27 ? 28 : 27;
    const compact = bytesToHex(sig.subarray(0, 64));
    const badV = new Uint8Array(sig);
    badV[64] = 29;
    const cases: [string, Payment['tickets'][number]['signature']][] = [
      ['garbage hex', `0x${'zz'.repeat(65)}`],
      ['short', '0x1234'],
      ['another signer', referencePayment(p, [1n], bobKey).tickets[0]?.signature as `0x${string}`],
      ['high-s twin', bytesToHex(high)],
      ['64-byte EIP-2098', compact],
      ['v = 29', badV],
      ['bytes of wrong length', sig.subarray(0, 64)],
    ];
    let nonce = 10n;
    for (const [name, signature] of cases) {
      const r = await recipient.receivePayment(
        { sender: alice, params: p, tickets: [{ senderNonce: nonce++, signature }] },
        session,
      );
      expect(
        r.errors.map((e) => e.code),
        name,
      ).toEqual(['InvalidSignature']);
      expect(r.accepted, name).toBe(0);
    }
    // The good signature, as bytes, still passes.
    const ok = await recipient.receivePayment(
      { sender: alice, params: p, tickets: [{ senderNonce: 1n, signature: sig }] },
      session,
    );
    expect(ok.accepted).toBe(1);
  });

  it('InvalidSignature: a ticket signed for another TicketBroker or chain (THREATS.md 3)', async () => {
    const { recipient } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    for (const other of [
      { ...domain, chainId: 1 },
      { ...domain, verifyingContract: `0x${'c0'.repeat(20)}` as const },
    ]) {
      const r = await recipient.receivePayment(referencePayment(p, [5n], aliceKey, other), session);
      expect(r.errors.map((e) => e.code)).toEqual(['InvalidSignature']);
    }
  });

  it('InvalidRecipient: params naming another orchestrator', async () => {
    const { recipient } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    const other = { ...p, recipient: bob };
    expect(await code(recipient.receivePayment(referencePayment(other, [1n], aliceKey), session))).toBe(
      'InvalidRecipient',
    );
  });

  it('InvalidRecipientRandHash: unknown commitment, edited params, params of another sender', async () => {
    const { recipient } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    const unknown = { ...p, recipientRandHash: keccak256(toHex('made up')) };
    expect(await code(recipient.receivePayment(referencePayment(unknown, [1n], aliceKey), session))).toBe(
      'InvalidRecipientRandHash',
    );
    const cheaper = { ...p, winProb: p.winProb * 2n };
    expect(await code(recipient.receivePayment(referencePayment(cheaper, [1n], aliceKey), session))).toBe(
      'InvalidRecipientRandHash',
    );
    const longer = { ...p, expiresAt: p.expiresAt + 1 };
    expect(await code(recipient.receivePayment(referencePayment(longer, [1n], aliceKey), session))).toBe(
      'InvalidRecipientRandHash',
    );
    // Bob re-using params issued to Alice, in his own name.
    const stolen = { ...p, sender: bob };
    expect(await code(recipient.receivePayment(referencePayment(stolen, [1n], bobKey), session))).toBe(
      'InvalidRecipientRandHash',
    );
  });

  it('InvalidSenderNonce and NonceAlreadySeen for the same recipientRand (THREATS.md 4)', async () => {
    const { recipient } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    const first = await recipient.receivePayment(referencePayment(p, [7n], aliceKey), session);
    expect(first.accepted).toBe(1);
    const replay = await recipient.receivePayment(referencePayment(p, [7n, 8n], aliceKey), session);
    expect(replay.errors.map((e) => [e.code, e.details.index])).toEqual([['NonceAlreadySeen', 0]]);
    expect(replay.accepted).toBe(1);
    const dup = await recipient.receivePayment(referencePayment(p, [9n, 9n], aliceKey), session);
    expect(dup.errors.map((e) => e.code)).toEqual(['NonceAlreadySeen']);
    const neg = await recipient.receivePayment(
      { sender: alice, params: p, tickets: [{ senderNonce: -1n, signature: `0x${'00'.repeat(65)}` }] },
      session,
    );
    expect(neg.errors.map((e) => e.code)).toEqual(['InvalidSenderNonce']);
    // Another sender's nonce space is separate: Bob may use 7 under his own params.
    const pb = await recipient.ticketParams(bob);
    expect((await recipient.receivePayment(referencePayment(pb, [7n], bobKey), session)).accepted).toBe(1);
  });

  it('a nonce spoofed by a bad signature does not burn the honest nonce', async () => {
    const { recipient } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    const forged = referencePayment(p, [3n], bobKey);
    forged.sender = alice;
    expect((await recipient.receivePayment(forged, session)).errors[0]?.code).toBe('InvalidSignature');
    expect((await recipient.receivePayment(referencePayment(p, [3n], aliceKey), session)).accepted).toBe(1);
  });

  it('TicketParamsExpired: past expiresAt or past expirationRound', async () => {
    const { recipient, clock, chain } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    clock.advance(p.expiresAt - clock.t + 1);
    const r1 = await code(recipient.receivePayment(referencePayment(p, [1n], aliceKey), session));
    expect(r1).toBe('TicketParamsExpired');

    const q = await recipient.ticketParams(alice);
    expect(q.recipientRandHash).not.toBe(p.recipientRandHash);
    chain.round = roundInfo(q.expirationRound + 1n);
    recipient.setRound(chain.round);
    expect(await code(recipient.receivePayment(referencePayment(q, [1n], aliceKey), session))).toBe(
      'TicketParamsExpired',
    );
    const fresh = await recipient.ticketParams(alice);
    expect(fresh.creationRound).toBe(chain.round.round);
  });

  it('a refusal that fresh params cure carries them, so the sender re-signs at once', async () => {
    const { recipient, chain } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    chain.round = roundInfo(p.creationRound + 1n); // a round boundary while the payment was in flight
    recipient.setRound(chain.round);
    const err = (await recipient
      .receivePayment(referencePayment(p, [1n], aliceKey), session)
      .catch((e) => e)) as PaymentError;
    expect(err.code).toBe('TicketParamsExpired');
    const fresh = err.details.params as TicketParams;
    expect(fresh.creationRound).toBe(chain.round.round);
    expect((await recipient.receivePayment(referencePayment(fresh, [1n], aliceKey), session)).accepted).toBe(
      1,
    );
  });

  // Issue 9 D8: the round change invalidated every sender, the next sweep took that for idleness and forgot
  // them, and the refusal went out without params.
  it('still carries fresh params after the round change was followed by a sweep', async () => {
    const { recipient, chain, clock } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    chain.round = roundInfo(p.creationRound + 1n);
    recipient.setRound(chain.round);
    clock.advance(1_000);
    recipient.sweep();
    const err = (await recipient
      .receivePayment(referencePayment(p, [1n], aliceKey), session)
      .catch((e) => e)) as PaymentError;
    expect(err.code).toBe('TicketParamsExpired');
    const fresh = err.details.params as TicketParams | undefined;
    expect(fresh?.creationRound).toBe(chain.round.round);
  });

  it('refuses options that would let accepted tickets expire before redemption', () => {
    expect(
      () =>
        new Recipient(
          { address: recipientAddress, domain, paramsValidityRounds: 1, ticketValidityRounds: 2 },
          { chain: new FakeChain(), store: new PMStore(':memory:'), secret: secretA },
        ),
    ).toThrow(RangeError);
  });

  it('InvalidTicketExpiry: creation round reorganised away or ahead of the chain', async () => {
    const { recipient, chain } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    recipient.setRound({ round: p.creationRound, blockHash: keccak256(toHex('another fork')) });
    expect(await code(recipient.receivePayment(referencePayment(p, [1n], aliceKey), session))).toBe(
      'InvalidTicketExpiry',
    );
    recipient.setRound(roundInfo(p.creationRound - 1n));
    chain.round = roundInfo(p.creationRound - 1n);
    expect(await code(recipient.receivePayment(referencePayment(p, [2n], aliceKey), session))).toBe(
      'InvalidTicketExpiry',
    );
  });

  it('SenderUnlocking: at params issue and at validation', async () => {
    const { recipient, chain } = await harness(NEVER);
    const p = await recipient.ticketParams(alice);
    chain.fund(alice, { withdrawRound: 15n });
    recipient.monitor.update(alice, await chain.senderInfo(alice));
    expect(await code(recipient.receivePayment(referencePayment(p, [1n], aliceKey), session))).toBe(
      'SenderUnlocking',
    );
    expect(await code(recipient.ticketParams(alice))).toBe('SenderUnlocking');
  });

  it('RoundNotInitialized: no params while no round has a block hash, so no ticket could carry the zero hash', async () => {
    const chain = new FakeChain();
    chain.round = { round: 0n, blockHash: `0x${'0'.repeat(64)}` };
    chain.fund(alice);
    const { recipient } = await harness({ chain, ...NEVER });
    expect(await code(recipient.ticketParams(alice))).toBe('RoundNotInitialized');
  });

  it('LowPMBalance: reserve too low to issue params, or deposit + reserve below the face value', async () => {
    const chain = new FakeChain();
    chain.fund(bob, { claimableReserve: 10n ** 14n }); // below 2 × the 1e14 wei redemption cost
    const { recipient } = await harness({ chain, ...NEVER });
    expect(await code(recipient.ticketParams(bob))).toBe('LowPMBalance');

    const p = await recipient.ticketParams(alice);
    // Alice drains her deposit and the active set grows: far less left than the face value.
    recipient.monitor.update(alice, {
      deposit: 0n,
      reserve: ETH,
      claimableReserve: p.faceValue / 2n,
      withdrawRound: 0n,
    });
    const err = await recipient.receivePayment(referencePayment(p, [1n], aliceKey), session).catch((e) => e);
    expect(err).toBeInstanceOf(PaymentError);
    expect(err.code).toBe('LowPMBalance');
    expect(err.details.faceValue).toBe(p.faceValue);
  });

  it('InvalidPayment: no tickets, too many tickets, malformed', async () => {
    const { recipient } = await harness({ ...NEVER, maxTicketsPerPayment: 3 });
    const p = await recipient.ticketParams(alice);
    expect(await code(recipient.receivePayment({ sender: alice, params: p, tickets: [] }, session))).toBe(
      'InvalidPayment',
    );
    expect(
      await code(recipient.receivePayment(referencePayment(p, [1n, 2n, 3n, 4n], aliceKey), session)),
    ).toBe('InvalidPayment');
    expect(await code(recipient.receivePayment({ sender: alice } as unknown as Payment, session))).toBe(
      'InvalidPayment',
    );
  });
});

describe('Recipient metrics', () => {
  it('counts tickets by result and winners', async () => {
    const registry = new Registry();
    const metrics = createPMMetrics(registry);
    const chain = new FakeChain();
    chain.fund(alice);
    const recipient = new Recipient(
      { address: recipientAddress, domain, ...ALWAYS },
      { chain, store: new PMStore(':memory:'), secret: secretA, metrics },
    );
    await recipient.start();
    const p = await recipient.ticketParams(alice);
    const payment = referencePayment(p, [1n, 1n], aliceKey);
    await recipient.receivePayment(payment, session);
    await recipient.stop();
    const values = async (name: string) =>
      (await registry.getMetricsAsJSON())
        .find((m) => m.name === name)
        ?.values.map((v) => [v.labels.result, v.value]);
    expect(await values('streamflow_pm_tickets_received_total')).toEqual([
      ['accepted', 1],
      ['NonceAlreadySeen', 1],
    ]);
    expect(await values('streamflow_pm_winning_tickets_total')).toEqual([[undefined, 1]]);
  });
});

describe('Recipient winning tickets', () => {
  it('stores winners durably before answering, then rotates recipientRand (THREATS.md 4)', async () => {
    const { recipient, store, notified } = await harness(ALWAYS);
    const p = await recipient.ticketParams(alice);
    const payment = referencePayment(p, [1n, 2n], aliceKey);
    const r = await recipient.receivePayment(payment, session);
    expect(r.winners.map((w) => w.senderNonce)).toEqual([1n, 2n]);
    const stored = store.list('pending');
    expect(stored.map((t) => t.ticketHash)).toEqual(r.winners.map((w) => w.ticketHash));
    expect(stored[0]?.ticketHash).toBe(ticketHash(paymentTicket(p, 1n), domain));
    expect(stored[0]?.signature).toBe(payment.tickets[0]?.signature);
    expect(keccak256(toHex(stored[0]?.recipientRand ?? 0n, { size: 32 }))).toBe(p.recipientRandHash);
    expect(stored[0]?.expiresRound).toBe(p.creationRound + 2n);
    expect(notified.count).toBe(1);

    // Fresh params came with the reply; the revealed rand is refused from now on.
    expect(r.params?.recipientRandHash).not.toBe(p.recipientRandHash);
    expect(await code(recipient.receivePayment(referencePayment(p, [3n], aliceKey), session))).toBe(
      'InvalidRecipientRandHash',
    );
    const next = await recipient.receivePayment(
      referencePayment(r.params as TicketParams, [1n], aliceKey),
      session,
    );
    expect(next.winners).toHaveLength(1);
  });
});

describe('Recipient error budget (THREATS.md 10)', () => {
  it('does not charge the budget for params a win retired or a round expired: segments in flight race on them', async () => {
    // Two segments in flight pay under one params set; when one wins, the other's payment names a retired rand.
    // That costs no signature recovery, so charging it would only get an honest broadcaster refused.
    const { recipient, chain } = await harness({
      ...ALWAYS,
      errorBudget: { maxErrors: 3, windowMs: 60_000, refuseMs: 60_000 },
    });
    const p = await recipient.ticketParams(alice);
    const won = await recipient.receivePayment(referencePayment(p, [1n], aliceKey), session);
    expect(won.winners).toHaveLength(1);
    for (let i = 0; i < 10; i++) {
      expect(
        await code(recipient.receivePayment(referencePayment(p, [BigInt(100 + i)], aliceKey), session)),
        `late payment ${i}`,
      ).toBe('InvalidRecipientRandHash');
    }
    const fresh = won.params as TicketParams;
    chain.round = roundInfo(chain.round.round + 5n);
    recipient.setRound(chain.round);
    for (let i = 0; i < 10; i++) {
      const c = await code(
        recipient.receivePayment(referencePayment(fresh, [BigInt(200 + i)], aliceKey), session),
      );
      expect(['TicketParamsExpired', 'InvalidTicketExpiry'], `expired payment ${i}: ${c}`).toContain(c);
    }
    const next = await recipient.ticketParams(alice);
    expect((await recipient.receivePayment(referencePayment(next, [1n], aliceKey), session)).accepted).toBe(
      1,
    );
  });

  it('refuses a flooding sender without checking signatures while an honest sender keeps working', async () => {
    const { recipient, clock } = await harness({
      ...NEVER,
      errorBudget: { maxErrors: 5, windowMs: 60_000, refuseMs: 30_000 },
    });
    const pa = await recipient.ticketParams(alice);
    const pb = await recipient.ticketParams(bob);
    const junk = (i: number): Payment => ({
      sender: bob,
      params: pb,
      tickets: [{ senderNonce: BigInt(1000 + i), signature: signDigest(keccak256(toHex(i)), bobKey) }],
    });
    let i = 0;
    for (; i < 6; i++)
      expect((await recipient.receivePayment(junk(i), session)).errors[0]?.code, `junk ${i}`).toBe(
        'InvalidSignature',
      );
    const recoveries = recipient.stats.recoveries;
    for (; i < 200; i++)
      expect(await code(recipient.receivePayment(junk(i), session)), `junk ${i}`).toBe('TooManyErrors');
    expect(recipient.stats.recoveries).toBe(recoveries);
    // Even Bob's valid tickets wait out the refusal …
    expect(await code(recipient.receivePayment(referencePayment(pb, [1n], bobKey), session))).toBe(
      'TooManyErrors',
    );
    // … while Alice, on the same endpoint, is served throughout.
    expect((await recipient.receivePayment(referencePayment(pa, [1n], aliceKey), session)).accepted).toBe(1);
    clock.advance(30_001);
    expect((await recipient.receivePayment(referencePayment(pb, [1n], bobKey), session)).accepted).toBe(1);
  });

  it('payment-level errors count too; an unauthenticated spoofer is refused by address, not in the sender name', async () => {
    const { recipient } = await harness({
      ...NEVER,
      errorBudget: { maxErrors: 3, windowMs: 60_000, refuseMs: 60_000 },
    });
    const pa = await recipient.ticketParams(alice);
    const forged = { ...pa, recipientRandHash: keccak256(toHex('forged')) };
    const spoof = { session: 'x', peer: '10.6.6.6', authenticated: false };
    for (let i = 0; i < 4; i++) {
      await recipient.receivePayment(referencePayment(forged, [1n], bobKey), spoof).catch(() => {});
    }
    // Anything unproven from that address is refused now …
    expect(await code(recipient.receivePayment(referencePayment(pa, [1n], aliceKey), spoof))).toBe(
      'TooManyErrors',
    );
    // … but Alice herself, from her own address, was never charged for the spoofer's garbage.
    const ok = await recipient.receivePayment(referencePayment(pa, [1n], aliceKey), {
      session: 's',
      peer: '10.1.1.1',
      authenticated: true,
    });
    expect(ok.accepted).toBe(1);
  });

  it('follows the sender across new connections: a fresh peer port does not reset its budget', async () => {
    const { recipient } = await harness({
      ...NEVER,
      errorBudget: { maxErrors: 5, windowMs: 60_000, refuseMs: 60_000 },
    });
    const pb = await recipient.ticketParams(bob);
    const junk = (i: number): Payment => ({
      sender: bob,
      params: pb,
      tickets: [{ senderNonce: BigInt(1000 + i), signature: signDigest(keccak256(toHex(i)), bobKey) }],
    });
    const codes: string[] = [];
    for (let i = 0; i < 50; i++) {
      // What the RPC server used to pass: ip:port, a new port per connection.
      const ctx = { session: 's', peer: `127.0.0.1:${40_000 + i}` };
      const r = await recipient.receivePayment(junk(i), ctx).catch((e: PaymentError) => e);
      codes.push(r instanceof PaymentError ? r.code : (r.errors[0]?.code ?? 'ok'));
    }
    expect(codes.slice(0, 6).every((c) => c === 'InvalidSignature')).toBe(true);
    expect(codes.slice(6).every((c) => c === 'TooManyErrors')).toBe(true);
    expect(recipient.stats.recoveries).toBe(6);
  });

  it('checks at most the budget of a payment of 600 garbage tickets (the most one may carry)', async () => {
    const registry = new Registry();
    const metrics = createPMMetrics(registry);
    const chain = new FakeChain();
    chain.fund(bob);
    const recipient = new Recipient(
      { address: recipientAddress, domain, ...NEVER },
      { chain, store: new PMStore(':memory:'), secret: secretA, metrics },
    );
    await recipient.start();
    harnesses.push({ recipient } as Harness);
    const pb = await recipient.ticketParams(bob);
    const garbage: Payment = {
      sender: bob,
      params: pb,
      tickets: Array.from({ length: 600 }, (_, i) => ({
        senderNonce: BigInt(i + 1),
        signature: signDigest(keccak256(toHex(i)), bobKey),
      })),
    };
    const r = await recipient.receivePayment(garbage, { session: 's', peer: '10.0.0.9' });
    expect(r.accepted).toBe(0);
    // The default budget is 20 errors a minute: the 21st refuses the sender, nothing after it is looked at.
    expect(recipient.stats.recoveries).toBe(21);
    expect(r.errors.at(-1)?.code).toBe('TooManyErrors');
    expect(r.errors.at(-1)?.details.unchecked).toBe(600 - 21);
    expect(await code(recipient.receivePayment(garbage, { session: 's', peer: '10.0.0.9' }))).toBe(
      'TooManyErrors',
    );
    expect(recipient.stats.recoveries).toBe(21);
    expect(
      (await registry.getSingleMetric('streamflow_pm_signature_recoveries_total')?.get())?.values[0]?.value,
    ).toBe(21);
  });

  it('refuses a remote address that floods with fresh unknown senders, and serves known senders from it', async () => {
    const { recipient } = await harness({
      ...NEVER,
      errorBudget: { maxErrors: 5, windowMs: 60_000, refuseMs: 60_000 },
    });
    const pa = await recipient.ticketParams(alice);
    const from = { session: 's', peer: '10.0.0.7' };
    const codes: string[] = [];
    for (let i = 0; i < 30; i++) {
      // A new key each time: no sender budget ever fills, and each unknown sender would cost a chain read.
      const key = keyFor(`fresh-${i}`);
      const fake = { ...pa, sender: addressOf(key), recipientRandHash: keccak256(toHex(`r${i}`)) };
      const err = await recipient.receivePayment(referencePayment(fake, [1n], key), from).catch((e) => e);
      codes.push((err as PaymentError).code);
    }
    expect(codes.slice(0, 6).every((c) => c !== 'TooManyErrors')).toBe(true);
    expect(codes.slice(6).every((c) => c === 'TooManyErrors')).toBe(true);
    // Alice is known (her chain data was read): the address's refusal is not hers.
    expect((await recipient.receivePayment(referencePayment(pa, [1n], aliceKey), from)).accepted).toBe(1);
    // Another address is not affected at all.
    const key = keyFor('fresh-other');
    const fake = { ...pa, sender: addressOf(key), recipientRandHash: keccak256(toHex('other')) };
    const err = await recipient
      .receivePayment(referencePayment(fake, [1n], key), { session: 's', peer: '10.0.0.8' })
      .catch((e) => e);
    expect((err as PaymentError).code).not.toBe('TooManyErrors');
  });
});

describe('Recipient restart', () => {
  it('accepts params issued before a restart (secret on disk) and keeps refusing replayed nonces', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const clock = new FakeClock();
      const chain = new FakeChain();
      const store1 = new PMStore(`${dir}/pm.db`);
      const h1 = await makeRecipient({ senders: [alice], store: store1, chain, clock, ...NEVER });
      const p = await h1.recipient.ticketParams(alice);
      expect(
        (await h1.recipient.receivePayment(referencePayment(p, [1n, 2n, 3n], aliceKey), session)).accepted,
      ).toBe(3);
      // The maintenance loop's checkpoint, then a crash: nothing else reaches the disk.
      h1.recipient.checkpoint();
      await h1.recipient.stop();
      store1.close();

      const store2 = new PMStore(`${dir}/pm.db`);
      const h2 = await makeRecipient({ senders: [alice], store: store2, chain, clock, ...NEVER });
      harnesses.push(h2);
      const replay = await h2.recipient.receivePayment(referencePayment(p, [2n, 4n], aliceKey), session);
      expect(replay.errors.map((e) => e.code)).toEqual(['NonceAlreadySeen']);
      expect(replay.accepted).toBe(1);

      // Another secret (the file was lost) cannot vouch for those params.
      const h3 = await makeRecipient({
        senders: [alice],
        store: new PMStore(':memory:'),
        secret: new Uint8Array(32).fill(9),
        chain,
        clock,
        ...NEVER,
      });
      harnesses.push(h3);
      expect(await code(h3.recipient.receivePayment(referencePayment(p, [5n], aliceKey), session))).toBe(
        'InvalidRecipientRandHash',
      );
      await h2.recipient.stop();
      store2.close();
    } finally {
      cleanup();
    }
  });

  it('refuses a rand revealed by a winner stored before the restart', async () => {
    const store = new PMStore(':memory:');
    const clock = new FakeClock();
    const h1 = await harness({ store, clock, ...ALWAYS });
    const p = await h1.recipient.ticketParams(alice);
    await h1.recipient.receivePayment(referencePayment(p, [1n], aliceKey), session);
    const h2 = new Recipient(
      { address: recipientAddress, domain, ...ALWAYS },
      { chain: h1.chain, store, secret: secretA, now: clock.now },
    );
    await h2.start();
    expect(await code(h2.receivePayment(referencePayment(p, [2n], aliceKey), session))).toBe(
      'InvalidRecipientRandHash',
    );
    await h2.stop();
  });

  it('start/stop are idempotent and a stopped recipient cannot restart', async () => {
    const { recipient } = await harness(NEVER);
    await recipient.start();
    await recipient.stop();
    await recipient.stop();
    await expect(recipient.start()).rejects.toThrow(/cannot restart/);
  });
});
