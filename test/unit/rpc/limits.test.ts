import { create } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { type Address, bytesToHex, getAddress, type Hex } from 'viem';
import { describe, expect, it } from 'vitest';
import type { Payment } from '../../../src/pm/types.js';
import { paymentToProto } from '../../../src/rpc/convert.js';
import { WireError } from '../../../src/rpc/errors.js';
import { H264Profile, ProfileSchema } from '../../../src/rpc/gen/streamflow/v1/common_pb.js';
import {
  type GetOrchestratorInfoRequest,
  GetOrchestratorInfoRequestSchema,
  SegmentMetadataSchema,
  type TranscodeRequest,
  TranscodeRequestSchema,
} from '../../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { checkInfoRequest, checkTranscodeRequest, FIELD_LIMITS } from '../../../src/rpc/limits.js';
import { LIMITS } from '../../../src/rpc/options.js';

const SEED = 0x5eed;
const filled = (n: number, v: number) => new Uint8Array(n).fill(v);
const h = (n: number): Hex => bytesToHex(filled(32, n));
const broadcaster: Address = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const orchestrator: Address = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';

function infoRequest(): GetOrchestratorInfoRequest {
  return create(GetOrchestratorInfoRequestSchema, {
    broadcaster: filled(20, 0xab),
    challenge: filled(32, 7),
    issuedAtMs: 1_800_000_000_000n,
    signature: filled(65, 1),
    serviceId: 'h264',
    region: 'eu-west',
  });
}

const payment: Payment = {
  sender: broadcaster,
  params: {
    recipient: orchestrator,
    sender: broadcaster,
    faceValue: 10n ** 16n,
    winProb: 1n << 250n,
    recipientRandHash: h(1),
    seed: h(2),
    creationRound: 7n,
    creationRoundBlockHash: h(3),
    expirationRound: 9n,
    expiresAt: 1_800_000_000_000,
  },
  tickets: [
    { senderNonce: 1n, signature: bytesToHex(filled(65, 9)) },
    { senderNonce: 2n, signature: bytesToHex(filled(65, 8)) },
  ],
};

const profile = (name: string) =>
  create(ProfileSchema, {
    name,
    width: 640,
    height: 360,
    fps: 30,
    bitrate: 800_000,
    gop: 2,
    h264Profile: H264Profile.MAIN,
  });

function transcodeRequest(): TranscodeRequest {
  return create(TranscodeRequestSchema, {
    metadata: create(SegmentMetadataSchema, {
      streamId: 'cam-1.main_stream',
      seq: 42n,
      durationMs: 2_000,
      profiles: [profile('360p30'), profile('240p30')],
    }),
    segment: filled(188 * 10, 0x47),
    payment: paymentToProto(payment),
  });
}

/** The field an `InvalidMessage` refusal names, or `undefined` when `fn` passes. */
function refusedField(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(WireError);
    expect((err as WireError).code).toBe('InvalidMessage');
    return (err as WireError).details.field;
  }
}

describe('checkInfoRequest', () => {
  it('passes a well-formed request and returns it decoded', () => {
    expect(checkInfoRequest(infoRequest())).toEqual({
      broadcaster: getAddress(bytesToHex(filled(20, 0xab))),
      challenge: bytesToHex(filled(32, 7)),
      issuedAtMs: 1_800_000_000_000n,
      signature: bytesToHex(filled(65, 1)),
      serviceId: 'h264',
      region: 'eu-west',
    });
  });

  it('accepts empty service and region (any) and 64 characters', () => {
    for (const value of ['', 'x'.repeat(FIELD_LIMITS.nameChars)]) {
      const req = infoRequest();
      req.serviceId = value;
      req.region = value;
      expect(
        refusedField(() => checkInfoRequest(req)),
        `${value.length} characters`,
      ).toBeUndefined();
    }
  });

  const cases: [string, string, (r: GetOrchestratorInfoRequest) => void][] = [
    ['broadcaster of 19 bytes', 'broadcaster', (r) => (r.broadcaster = filled(19, 1))],
    ['broadcaster missing', 'broadcaster', (r) => (r.broadcaster = new Uint8Array())],
    ['challenge of 31 bytes', 'challenge', (r) => (r.challenge = filled(31, 1))],
    ['challenge of 33 bytes', 'challenge', (r) => (r.challenge = filled(33, 1))],
    ['signature of 64 bytes', 'signature', (r) => (r.signature = filled(64, 1))],
    ['signature missing', 'signature', (r) => (r.signature = new Uint8Array())],
    ['serviceId of 65 characters', 'serviceId', (r) => (r.serviceId = 's'.repeat(65))],
    ['region of 65 characters', 'region', (r) => (r.region = 'r'.repeat(65))],
  ];
  for (const [what, field, mutate] of cases) {
    it(`refuses ${what}, naming ${field}`, () => {
      const req = infoRequest();
      mutate(req);
      expect(refusedField(() => checkInfoRequest(req))).toBe(field);
    });
  }
});

describe('checkTranscodeRequest', () => {
  it('passes a well-formed request and returns it decoded', () => {
    const checked = checkTranscodeRequest(transcodeRequest());
    expect(checked.streamId).toBe('cam-1.main_stream');
    expect(checked.seq).toBe(42n);
    expect(checked.durationMs).toBe(2_000);
    expect(checked.profiles.map((p) => [p.name, p.width, p.height, p.h264Profile])).toEqual([
      ['360p30', 640, 360, 'main'],
      ['240p30', 640, 360, 'main'],
    ]);
    expect(checked.segment).toHaveLength(1880);
    expect(checked.payment.sender).toBe(broadcaster);
    expect(checked.payment.params).toEqual(payment.params);
    expect(checked.payment.tickets).toEqual(payment.tickets);
  });

  it('accepts every limit exactly', () => {
    const req = transcodeRequest();
    const m = req.metadata;
    if (!m) throw new Error('fixture has metadata');
    m.streamId = 'a'.repeat(FIELD_LIMITS.streamIdChars);
    m.durationMs = FIELD_LIMITS.maxDurationMs;
    m.profiles = Array.from({ length: LIMITS.profiles }, (_, i) => profile(`p${i}`));
    const [first, second] = m.profiles;
    if (!first || !second) throw new Error('fixture has profiles');
    Object.assign(first, {
      name: 'n'.repeat(FIELD_LIMITS.nameChars),
      width: FIELD_LIMITS.maxWidth,
      height: FIELD_LIMITS.maxHeight,
      fps: FIELD_LIMITS.maxFps,
      bitrate: FIELD_LIMITS.maxBitrate,
    });
    Object.assign(second, { width: 16, height: 16, fps: 1, bitrate: 1, gop: 0 });
    req.segment = new Uint8Array(LIMITS.segmentBytes);
    req.payment = paymentToProto({
      ...payment,
      tickets: Array.from({ length: LIMITS.tickets }, (_, i) => ({
        senderNonce: (1n << 256n) - 1n - BigInt(i),
        signature: bytesToHex(filled(65, i % 256)),
      })),
    });
    const checked = checkTranscodeRequest(req);
    expect(checked.profiles).toHaveLength(LIMITS.profiles);
    expect(checked.payment.tickets).toHaveLength(LIMITS.tickets);
  });

  type Case = [string, string, (r: TranscodeRequest) => void];
  const meta = (r: TranscodeRequest) => {
    if (!r.metadata) throw new Error('fixture has metadata');
    return r.metadata;
  };
  const prof = (r: TranscodeRequest, i = 0) => {
    const p = meta(r).profiles[i];
    if (!p) throw new Error(`fixture has profile ${i}`);
    return p;
  };
  const cases: Case[] = [
    ['metadata missing', 'metadata', (r) => (r.metadata = undefined)],
    ['an empty stream id', 'metadata.streamId', (r) => (meta(r).streamId = '')],
    ['a stream id of 129 characters', 'metadata.streamId', (r) => (meta(r).streamId = 'a'.repeat(129))],
    ['a stream id with a slash', 'metadata.streamId', (r) => (meta(r).streamId = 'a/b')],
    ['a stream id with a space', 'metadata.streamId', (r) => (meta(r).streamId = 'a b')],
    ['a stream id of non-ASCII letters', 'metadata.streamId', (r) => (meta(r).streamId = 'caméra')],
    ['the stream id ".."', 'metadata.streamId', (r) => (meta(r).streamId = '..')],
    ['the stream id "."', 'metadata.streamId', (r) => (meta(r).streamId = '.')],
    ['a zero duration', 'metadata.durationMs', (r) => (meta(r).durationMs = 0)],
    ['a duration over 60 s', 'metadata.durationMs', (r) => (meta(r).durationMs = 60_001)],
    ['no profile', 'metadata.profiles', (r) => (meta(r).profiles = [])],
    [
      'more profiles than LIMITS.profiles',
      'metadata.profiles',
      (r) => (meta(r).profiles = Array.from({ length: LIMITS.profiles + 1 }, (_, i) => profile(`p${i}`))),
    ],
    ['a profile without a name', 'metadata.profiles[1].name', (r) => (prof(r, 1).name = '')],
    ['a profile name of 65 characters', 'metadata.profiles[0].name', (r) => (prof(r).name = 'n'.repeat(65))],
    ['a profile name asked twice', 'metadata.profiles[1].name', (r) => (prof(r, 1).name = '360p30')],
    ['an odd width', 'metadata.profiles[0].width', (r) => (prof(r).width = 641)],
    ['a width under 16', 'metadata.profiles[0].width', (r) => (prof(r).width = 14)],
    ['a width over 7680', 'metadata.profiles[0].width', (r) => (prof(r).width = 7682)],
    ['an odd height', 'metadata.profiles[1].height', (r) => (prof(r, 1).height = 361)],
    ['a zero height', 'metadata.profiles[0].height', (r) => (prof(r).height = 0)],
    ['a height over 4320', 'metadata.profiles[0].height', (r) => (prof(r).height = 4322)],
    ['fps under 1', 'metadata.profiles[0].fps', (r) => (prof(r).fps = 0.5)],
    ['fps over 240', 'metadata.profiles[0].fps', (r) => (prof(r).fps = 240.5)],
    ['fps NaN', 'metadata.profiles[0].fps', (r) => (prof(r).fps = Number.NaN)],
    ['a zero bitrate', 'metadata.profiles[0].bitrate', (r) => (prof(r).bitrate = 0)],
    ['a bitrate over 100 Mbit/s', 'metadata.profiles[0].bitrate', (r) => (prof(r).bitrate = 100_000_001)],
    ['a negative gop', 'metadata.profiles[0].gop', (r) => (prof(r).gop = -1)],
    ['an infinite gop', 'metadata.profiles[0].gop', (r) => (prof(r).gop = Number.POSITIVE_INFINITY)],
    ['an empty segment', 'segment', (r) => (r.segment = new Uint8Array())],
    ['a segment over 16 MiB', 'segment', (r) => (r.segment = new Uint8Array(LIMITS.segmentBytes + 1))],
    ['payment missing', 'payment', (r) => (r.payment = undefined)],
    [
      'a sender of 19 bytes',
      'payment.sender',
      (r) => {
        if (r.payment) r.payment.sender = filled(19, 1);
      },
    ],
    [
      'ticket params missing',
      'payment.params',
      (r) => {
        if (r.payment) r.payment.params = undefined;
      },
    ],
    [
      'more tickets than LIMITS.tickets',
      'payment.tickets',
      (r) => {
        const t = r.payment?.tickets[0];
        if (r.payment && t) r.payment.tickets = Array.from({ length: LIMITS.tickets + 1 }, () => t);
      },
    ],
    [
      'a ticket signature of 64 bytes',
      'payment.tickets[1].signature',
      (r) => {
        const t = r.payment?.tickets[1];
        if (t) t.signature = filled(64, 1);
      },
    ],
    [
      'a ticket nonce of 33 bytes',
      'payment.tickets[0].senderNonce',
      (r) => {
        const t = r.payment?.tickets[0];
        if (t) t.senderNonce = filled(33, 1);
      },
    ],
  ];
  for (const [what, field, mutate] of cases) {
    it(`refuses ${what}, naming ${field}`, () => {
      const req = transcodeRequest();
      mutate(req);
      expect(refusedField(() => checkTranscodeRequest(req))).toBe(field);
    });
  }

  it('either passes a profile within every bound or refuses it naming the field out of bounds', () => {
    const n = (min: number, max: number) =>
      fc.oneof(fc.integer({ min, max }), fc.constantFrom(min, max, min - 1, max + 1, 0));
    fc.assert(
      fc.property(
        fc.record({
          name: fc.string({ maxLength: 70 }),
          width: n(16, 7680).map((v) => Math.max(0, v)),
          height: n(16, 4320).map((v) => Math.max(0, v)),
          fps: fc.oneof(fc.double({ min: -1, max: 300 }), fc.constantFrom(1, 240, Number.NaN)),
          bitrate: n(1, 100_000_000).map((v) => Math.max(0, v)),
          gop: fc.oneof(fc.double({ min: -5, max: 30 }), fc.constant(Number.NaN)),
        }),
        (p) => {
          const req = transcodeRequest();
          meta(req).profiles = [create(ProfileSchema, p)];
          const field = refusedField(() => checkTranscodeRequest(req));
          const inBounds = {
            name: p.name.length >= 1 && p.name.length <= 64,
            width: p.width >= 16 && p.width <= 7680 && p.width % 2 === 0,
            height: p.height >= 16 && p.height <= 4320 && p.height % 2 === 0,
            fps: p.fps >= 1 && p.fps <= 240,
            bitrate: p.bitrate >= 1 && p.bitrate <= 100_000_000,
            gop: Number.isFinite(p.gop) && p.gop >= 0,
          };
          const firstOut = Object.entries(inBounds).find(([, ok]) => !ok)?.[0];
          expect(field, JSON.stringify(p)).toBe(
            firstOut === undefined ? undefined : `metadata.profiles[0].${firstOut}`,
          );
        },
      ),
      { seed: SEED, numRuns: 500 },
    );
  });
});
