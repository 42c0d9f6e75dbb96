import fc from 'fast-check';
import { type Address, bytesToHex, type Hex, keccak256 } from 'viem';
import { describe, expect, it } from 'vitest';
import { TicketHasher } from '../../../src/pm/hasher.js';
import { keccak256Into, keccakAbsorbBlock, keccakFinish, keccakState } from '../../../src/pm/keccak.js';
import { type Ticket, ticketHash } from '../../../src/pm/ticket.js';
import { domain } from './helpers.js';

const U256_MAX = (1n << 256n) - 1n;
const u256 = fc.bigInt({ min: 0n, max: U256_MAX });
const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => bytesToHex(b) as Hex);
const address = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => bytesToHex(b) as Address);
const ticket: fc.Arbitrary<Ticket> = fc.record({
  recipient: address,
  sender: address,
  faceValue: u256,
  winProb: u256,
  senderNonce: fc.oneof(
    fc.bigInt({ min: 0n, max: 1000n }),
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    u256,
  ),
  recipientRandHash: bytes32,
  creationRound: u256,
  creationRoundBlockHash: bytes32,
});

describe('keccak256Into', () => {
  it('equals viem keccak256 for every length around the block boundaries', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 700 }), (data) => {
        expect(bytesToHex(keccak256Into(data))).toBe(keccak256(data));
      }),
      { numRuns: 500, seed: 1 },
    );
    for (const n of [0, 1, 135, 136, 137, 271, 272, 273]) {
      const data = new Uint8Array(n).map((_, i) => i * 7);
      expect(bytesToHex(keccak256Into(data)), `length ${n}`).toBe(keccak256(data));
    }
  });

  it('hashes a slice into an offset of an output buffer, and a saved prefix state resumes', () => {
    const data = new Uint8Array(300).map((_, i) => i);
    const out = new Uint8Array(40);
    keccak256Into(data, 10, 200, out, 8);
    expect(bytesToHex(out.subarray(8))).toBe(keccak256(data.subarray(10, 210)));
    const s = keccakState();
    keccakAbsorbBlock(s, data, 0);
    const copy = new Int32Array(s);
    expect(bytesToHex(keccakFinish(copy, data, 136, 100, new Uint8Array(32)))).toBe(
      keccak256(data.subarray(0, 236)),
    );
  });
});

describe('TicketHasher', () => {
  it('gives the same digest as viem hashTypedData (ticketHash) for any ticket', () => {
    const hasher = new TicketHasher(domain);
    fc.assert(
      fc.property(ticket, (t) => {
        expect(bytesToHex(hasher.hash(t))).toBe(ticketHash(t, domain));
      }),
      { numRuns: 300, seed: 2 },
    );
  });

  it('reuses a prepared ticket across nonces', () => {
    const hasher = new TicketHasher({
      chainId: 1,
      verifyingContract: '0x0000000000000000000000000000000000000bad',
    });
    fc.assert(
      fc.property(ticket, fc.array(u256, { minLength: 1, maxLength: 5 }), (t, nonces) => {
        const prepared = hasher.prepare(t);
        for (const senderNonce of nonces) {
          expect(bytesToHex(hasher.digest(prepared, senderNonce))).toBe(
            ticketHash({ ...t, senderNonce }, hasher.domain),
          );
        }
      }),
      { numRuns: 100, seed: 3 },
    );
  });

  it('refuses nonces outside uint256', () => {
    const hasher = new TicketHasher(domain);
    fc.assert(
      fc.property(ticket, (t) => {
        const p = hasher.prepare(t);
        expect(() => hasher.digest(p, -1n)).toThrow(RangeError);
        expect(() => hasher.digest(p, U256_MAX + 1n)).toThrow(RangeError);
      }),
      { numRuns: 5, seed: 4 },
    );
  });
});
