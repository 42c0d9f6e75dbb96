import { fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes } from 'viem';
import { describe, expect, it } from 'vitest';
import type { Profile } from '../../../src/media/profiles.js';
import type { Payment, TicketParams } from '../../../src/pm/types.js';
import {
  bytesToUint,
  paymentFromProto,
  paymentToProto,
  profileFromProto,
  profileToProto,
  ticketParamsFromProto,
  ticketParamsToProto,
  uintToBytes,
} from '../../../src/rpc/convert.js';
import { WireError } from '../../../src/rpc/errors.js';
import {
  PaymentSchema,
  ProfileSchema,
  TicketParamsSchema,
} from '../../../src/rpc/gen/streamflow/v1/common_pb.js';

const SEED = 0x5eed;
const UINT256_MAX = (1n << 256n) - 1n;

const uint256 = fc.oneof(
  fc.bigInt({ min: 0n, max: UINT256_MAX }),
  fc.constantFrom(0n, 1n, 255n, 256n, UINT256_MAX, UINT256_MAX - 1n, 1n << 255n),
);
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n }).map((b): Hex => bytesToHex(b));
const address = bytes(20).map((h): Address => getAddress(h));

const ticketParams: fc.Arbitrary<TicketParams> = fc.record({
  recipient: address,
  sender: address,
  faceValue: uint256,
  winProb: uint256,
  recipientRandHash: bytes(32),
  seed: bytes(32),
  creationRound: uint256,
  creationRoundBlockHash: bytes(32),
  expirationRound: uint256,
  expiresAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
});

const payment: fc.Arbitrary<Payment> = fc.record({
  sender: address,
  params: ticketParams,
  tickets: fc.array(fc.record({ senderNonce: uint256, signature: bytes(65) }), { maxLength: 8 }),
});

describe('pm conversions', () => {
  it('round-trips any uint256 through minimal big-endian bytes', () => {
    fc.assert(
      fc.property(uint256, (v) => {
        const b = uintToBytes(v);
        expect(b.length, `${v}`).toBeLessThanOrEqual(32);
        expect(b[0], `${v} has a leading zero`).not.toBe(0);
        expect(bytesToUint(b)).toBe(v);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('refuses values outside uint256 and non-minimal encodings', () => {
    expect(() => uintToBytes(-1n)).toThrow(WireError);
    expect(() => uintToBytes(UINT256_MAX + 1n)).toThrow(/outside uint256/);
    expect(() => bytesToUint(new Uint8Array([0, 1]), 'faceValue')).toThrow(/faceValue: leading zero/);
    expect(() => bytesToUint(new Uint8Array(33).fill(1))).toThrow(/more than a uint256/);
  });

  it('round-trips TicketParams through the encoded message', () => {
    fc.assert(
      fc.property(ticketParams, (p) => {
        const wire = toBinary(TicketParamsSchema, ticketParamsToProto(p));
        expect(ticketParamsFromProto(fromBinary(TicketParamsSchema, wire))).toEqual(p);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('round-trips Payment through the encoded message, signatures as hex or bytes', () => {
    fc.assert(
      fc.property(payment, fc.boolean(), (p, rawSignatures) => {
        const sent: Payment = rawSignatures
          ? {
              ...p,
              tickets: p.tickets.map((t) => ({ ...t, signature: hexToBytes(t.signature as Hex) })),
            }
          : p;
        const wire = toBinary(PaymentSchema, paymentToProto(sent));
        expect(paymentFromProto(fromBinary(PaymentSchema, wire))).toEqual(p);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('names the malformed field when decoding fails', () => {
    const [p] = fc.sample(ticketParams, { seed: SEED, numRuns: 1 });
    if (!p) throw new Error('no sample');
    const m = ticketParamsToProto(p);
    m.seed = new Uint8Array(31);
    expect(() => ticketParamsFromProto(m)).toThrow(/ticketParams\.seed: 31 bytes, expected 32/);
    expect(() => paymentFromProto(undefined)).toThrow(/payment: missing/);
    try {
      ticketParamsFromProto(m);
    } catch (err) {
      expect((err as WireError).code).toBe('InvalidMessage');
    }
  });

  it('round-trips profiles, with and without an H.264 profile', () => {
    const profiles: Profile[] = [
      { name: '720p30', width: 1280, height: 720, fps: 30, bitrate: 3_000_000, gop: 2 },
      {
        name: 'ntsc',
        width: 640,
        height: 480,
        fps: 29.97,
        bitrate: 800_000,
        gop: 1.5,
        h264Profile: 'baseline',
      },
      { name: 'm', width: 426, height: 240, fps: 30, bitrate: 400_000, gop: 2, h264Profile: 'main' },
      { name: 'h', width: 256, height: 144, fps: 60, bitrate: 200_000, gop: 2, h264Profile: 'high' },
    ];
    for (const p of profiles) {
      const wire = toBinary(ProfileSchema, profileToProto(p));
      expect(profileFromProto(fromBinary(ProfileSchema, wire)), p.name).toEqual(p);
    }
  });
});
