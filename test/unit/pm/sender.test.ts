import fc from 'fast-check';
import { keccak256, toHex } from 'viem';
import { describe, expect, it } from 'vitest';
import type { UnsafeTicketParamsError } from '../../../src/pm/errors.js';
import { expectedValueCap, referenceExpectedValue } from '../../../src/pm/options.js';
import { recoverSigner, ticketExpectedValue, ticketHash } from '../../../src/pm/ticket.js';
import { paymentTicket, type TicketParams } from '../../../src/pm/types.js';
import { addressOf, domain, ETH, FakeClock, keyFor, makeSender, recipientAddress } from './helpers.js';

const clock = new FakeClock();
/** EV of a ticket under the default params: 1e16 × ⌊2^256 / 10^4⌋ / 2^256, just under 1e12 wei. */
const EV = ticketExpectedValue(10n ** 16n, (1n << 256n) / 10_000n);
const alice = addressOf(keyFor('alice'));

function params(over: Partial<TicketParams> = {}): TicketParams {
  return {
    recipient: recipientAddress,
    sender: alice,
    faceValue: 10n ** 16n,
    winProb: (1n << 256n) / 10_000n, // EV = 1e12 wei
    recipientRandHash: keccak256(toHex('rand 1')),
    seed: keccak256(toHex('seed')),
    creationRound: 10n,
    creationRoundBlockHash: keccak256(toHex('round 10')),
    expirationRound: 11n,
    expiresAt: clock.t + 600_000,
    ...over,
  };
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as UnsafeTicketParamsError).code;
  }
}

describe('Sender.createPayment', () => {
  it('signs tickets the reference EIP-712 path attributes to the sender', () => {
    const sender = makeSender('alice', {}, {}, clock);
    expect(sender.address).toBe(alice);
    const p = params();
    const pay = sender.createPayment(p, 3n * EV);
    expect(pay.sender).toBe(alice);
    expect(pay.tickets.map((t) => t.senderNonce)).toEqual([1n, 2n, 3n]);
    for (const t of pay.tickets) {
      expect(
        recoverSigner(ticketHash(paymentTicket(p, t.senderNonce), domain), t.signature as `0x${string}`),
      ).toBe(alice);
    }
  });

  it('sends the fewest tickets whose expected value covers the fee', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 2n * 10n ** 14n }),
        fc.bigInt({ min: 2n, max: 10_000n }),
        (fee, denom) => {
          const sender = makeSender(
            'alice',
            { deposit: 10n ** 20n },
            { maxTicketsPerPayment: 100_000, maxExpectedValue: 10n ** 18n },
            clock,
          );
          const p = params({ winProb: (1n << 256n) / denom });
          const ev = ticketExpectedValue(p.faceValue, p.winProb);
          fc.pre((fee + ev - 1n) / ev <= 100_000n);
          const n = BigInt(sender.createPayment(p, fee).tickets.length);
          expect(n * ev >= fee).toBe(true);
          expect(n === 1n || (n - 1n) * ev < fee).toBe(true);
        },
      ),
      { numRuns: 100, seed: 42 },
    );
  });

  it('counts nonces per recipientRandHash from 1', () => {
    const sender = makeSender('alice', {}, {}, clock);
    const p1 = params();
    const p2 = params({ recipientRandHash: keccak256(toHex('rand 2')) });
    expect(sender.createPayment(p1, 2n * EV).tickets.map((t) => t.senderNonce)).toEqual([1n, 2n]);
    expect(sender.createPayment(p2, 1n).tickets.map((t) => t.senderNonce)).toEqual([1n]);
    expect(sender.createPayment(p1, 1n).tickets.map((t) => t.senderNonce)).toEqual([3n]);
  });

  it('with a session, carries the surplus so rounding up does not overpay', () => {
    const sender = makeSender('alice', {}, {}, clock);
    const p = params();
    const ev = ticketExpectedValue(p.faceValue, p.winProb);
    const fee = (ev * 4n) / 10n; // 0.4 ticket per segment
    let sent = 0n;
    for (let i = 1n; i <= 50n; i++) {
      sent += BigInt(sender.createPayment(p, fee, { session: 's' }).tickets.length) * ev;
      expect(sent >= i * fee, `segment ${i}`).toBe(true);
      expect(sent - i * fee < ev, `segment ${i}`).toBe(true);
      expect(sender.sessionCredit('s')).toBe(sent - i * fee);
    }
    sender.resetSession('s');
    expect(sender.sessionCredit('s')).toBe(0n);
  });
});

describe('Sender refuses unsafe params', () => {
  const cases: [string, Partial<TicketParams>, string, Parameters<typeof makeSender>[1]?, object?][] = [
    ['zero win probability', { winProb: 0n }, 'InvalidTicketParams'],
    ['zero face value', { faceValue: 0n }, 'InvalidTicketParams'],
    ['EV rounding to 0 wei', { winProb: 1n }, 'InvalidTicketParams'],
    ['params issued to another sender', { sender: recipientAddress }, 'InvalidTicketParams'],
    ['face value above the deposit', { faceValue: 2n * ETH }, 'FaceValueTooHigh', { deposit: ETH }],
    [
      'face value above deposit / multiplier',
      { faceValue: ETH / 2n + 1n },
      'FaceValueTooHigh',
      { deposit: ETH },
      { depositMultiplier: 2 },
    ],
    ['EV above the cap', { winProb: (1n << 256n) / 2n }, 'ExpectedValueTooHigh'],
    ['about to expire', { expiresAt: clock.t + 5_000 }, 'TicketParamsExpiring'],
    ['expiration round passed', { expirationRound: 11n }, 'TicketParamsExpiring', { round: 12n }],
  ];
  for (const [name, over, expected, funds, init] of cases) {
    it(`${expected}: ${name}`, () => {
      const sender = makeSender('alice', funds ?? {}, init ?? {}, clock);
      expect(code(() => sender.createPayment(params(over), 1n))).toBe(expected);
    });
  }

  it('InvalidRecipient: params paying someone other than the orchestrator asked', () => {
    const sender = makeSender('alice', {}, {}, clock);
    expect(code(() => sender.createPayment(params(), 1n, { recipient: alice }))).toBe('InvalidRecipient');
    expect(sender.createPayment(params(), 1n, { recipient: recipientAddress }).tickets).toHaveLength(1);
  });

  it('TooManyTickets: a fee needing more tickets than the limit', () => {
    const sender = makeSender('alice', {}, { maxTicketsPerPayment: 5 }, clock);
    expect(code(() => sender.createPayment(params(), 5n * EV + 1n))).toBe('TooManyTickets');
    expect(sender.createPayment(params(), 5n * EV).tickets).toHaveLength(5);
  });
});

describe('the EV cap follows the quoted price (D10)', () => {
  const evParams = (ev: bigint) =>
    params({ faceValue: 10n ** 17n, winProb: ((1n << 256n) * ev) / 10n ** 17n });

  it("accepts an orchestrator's default EV (one reference segment's fee) at any price, with default options", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 1_000_000_000n }), (price) => {
        const sender = makeSender('alice', { deposit: 10n ** 20n }, {}, clock);
        const ev = referenceExpectedValue(price);
        if (ev > 10n ** 17n) return; // face value of these params; a recipient would raise it too
        const p = evParams(ev);
        const actual = ticketExpectedValue(p.faceValue, p.winProb);
        expect(sender.checkParams(p, { pricePerPixel: price })).toBe(actual);
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('refuses an EV above two reference segments at the quoted price, and names the price', () => {
    const sender = makeSender('alice', { deposit: 10n ** 20n }, {}, clock);
    const price = 4_000_000n; // the demo's: two reference segments = 4e14 wei
    expect(expectedValueCap(sender.options, price)).toBe(4n * 10n ** 14n);
    expect(sender.checkParams(evParams(4n * 10n ** 14n), { pricePerPixel: price })).toBeGreaterThan(0n);
    let err: UnsafeTicketParamsError | undefined;
    try {
      sender.checkParams(evParams(5n * 10n ** 14n), { pricePerPixel: price });
    } catch (e) {
      err = e as UnsafeTicketParamsError;
    }
    expect(err?.code).toBe('ExpectedValueTooHigh');
    expect(err?.message).toContain('4000000 wei/pixel');
  });

  it('keeps the floor of 1e14 wei for a low or unknown price, and a hard cap when one is set', () => {
    const sender = makeSender('alice', { deposit: 10n ** 20n }, {}, clock);
    expect(expectedValueCap(sender.options, 1n)).toBe(10n ** 14n);
    expect(expectedValueCap(sender.options)).toBe(10n ** 14n);
    expect(code(() => sender.checkParams(evParams(2n * 10n ** 14n)))).toBe('ExpectedValueTooHigh');
    const capped = makeSender('alice', { deposit: 10n ** 20n }, { maxExpectedValue: 10n ** 13n }, clock);
    expect(code(() => capped.checkParams(evParams(10n ** 14n), { pricePerPixel: 4_000_000n }))).toBe(
      'ExpectedValueTooHigh',
    );
  });
});
