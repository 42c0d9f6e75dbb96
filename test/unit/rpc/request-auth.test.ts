import { hexToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { remoteAddress } from '../../../src/orchestrator/service.js';
import { WireError } from '../../../src/rpc/errors.js';
import {
  type SignedTranscodeRequest,
  signTranscodeRequest,
  TranscodeRequestGuard,
} from '../../../src/rpc/request-auth.js';
import { contentHash, type SignedProfileFields } from '../../../src/rpc/signing.js';

const alice = privateKeyToAccount(`0x${'a1'.repeat(32)}`);
const mallory = privateKeyToAccount(`0x${'b2'.repeat(32)}`);
const orchestrator = privateKeyToAccount(`0x${'c3'.repeat(32)}`).address;
const other = privateKeyToAccount(`0x${'d4'.repeat(32)}`).address;
const profile: SignedProfileFields = {
  name: '240p30',
  width: 426,
  height: 240,
  fps: 30,
  bitrate: 600_000,
  gop: 2,
  h264Profile: 0,
};
const segment = new Uint8Array(188 * 4).map((_, i) => i & 0xff);

class Clock {
  t = 1_700_000_000_000;
  now = () => this.t;
}

async function signed(
  o: { signer?: typeof alice; now?: number; to?: `0x${string}`; profiles?: SignedProfileFields[] } = {},
): Promise<SignedTranscodeRequest> {
  const metadata = { durationMs: 2000, profiles: o.profiles ?? [profile] };
  const s = await signTranscodeRequest(
    o.signer ?? alice,
    {
      orchestrator: o.to ?? orchestrator,
      sender: alice.address,
      streamId: 'live',
      seq: 7n,
      segmentHash: contentHash(segment),
      metadata,
    },
    () => o.now ?? 1_700_000_000_000,
  );
  return {
    orchestrator,
    sender: alice.address,
    streamId: 'live',
    seq: 7n,
    segment,
    metadata,
    issuedAtMs: s.issuedAtMs,
    nonce: s.nonce,
    signature: hexToBytes(s.signature),
  };
}

async function reasonOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err === undefined) return undefined;
  expect(err).toBeInstanceOf(WireError);
  const w = err as WireError;
  return w.code === 'InvalidRequestSignature' ? (w.details.reason as string) : w.code;
}

describe('TranscodeRequestGuard', () => {
  it('accepts a request signed by payment.sender and returns the segment hash for the receipt', async () => {
    const clock = new Clock();
    const guard = new TranscodeRequestGuard({}, clock);
    const r = await guard.check(await signed());
    expect(r.sender).toBe(alice.address);
    expect(r.segmentHash).toBe(contentHash(segment));
  });

  it('refuses another signer, another orchestrator, and any signed field changed', async () => {
    const guard = new TranscodeRequestGuard({}, new Clock());
    const cases: [string, SignedTranscodeRequest][] = [
      ['signed by another key', await signed({ signer: mallory })],
      ['signed for another orchestrator', await signed({ to: other })],
      ['another stream', { ...(await signed()), streamId: 'victim' }],
      ['another seq', { ...(await signed()), seq: 8n }],
      [
        'one segment byte flipped',
        { ...(await signed()), segment: segment.map((b, i) => (i === 9 ? b ^ 1 : b)) },
      ],
      [
        'a bigger profile',
        { ...(await signed()), metadata: { durationMs: 2000, profiles: [{ ...profile, fps: 60 }] } },
      ],
      ['a longer duration', { ...(await signed()), metadata: { durationMs: 2001, profiles: [profile] } }],
      ['another time', { ...(await signed()), issuedAtMs: 1_700_000_000_001n }],
    ];
    for (const [name, req] of cases) expect(await reasonOf(guard.check(req)), name).toBe('wrongSigner');
  });

  it('refuses missing or malformed signatures and nonces before recovering anything', async () => {
    const guard = new TranscodeRequestGuard({}, new Clock());
    expect(await reasonOf(guard.check({ ...(await signed()), signature: new Uint8Array(0) }))).toBe(
      'badSignature',
    );
    expect(await reasonOf(guard.check({ ...(await signed()), signature: new Uint8Array(65) }))).toBe(
      'badSignature',
    );
    expect(await reasonOf(guard.check({ ...(await signed()), nonce: new Uint8Array(0) }))).toBe(
      'nonceLength',
    );
    expect(await reasonOf(guard.check({ ...(await signed()), nonce: new Uint8Array(33) }))).toBe(
      'nonceLength',
    );
  });

  it('refuses requests signed more than 30 s away from its clock, either way', async () => {
    const clock = new Clock();
    const guard = new TranscodeRequestGuard({}, clock);
    expect(await reasonOf(guard.check(await signed({ now: clock.t - 30_001 })))).toBe('issuedAtSkew');
    expect(await reasonOf(guard.check(await signed({ now: clock.t + 30_001 })))).toBe('issuedAtSkew');
    expect(await reasonOf(guard.check(await signed({ now: clock.t - 29_000 })))).toBeUndefined();
  });

  it('accepts a request once: a replay, also a concurrent copy, is refused; a forgery does not burn the nonce', async () => {
    const clock = new Clock();
    const guard = new TranscodeRequestGuard({}, clock);
    const req = await signed();
    const forged = { ...req, signature: (await signed({ signer: mallory })).signature };
    expect(await reasonOf(guard.check(forged))).toBe('wrongSigner');
    const both = await Promise.all([reasonOf(guard.check(req)), reasonOf(guard.check(req))]);
    expect(both.sort()).toEqual(['replay', undefined].sort());
    clock.t += 29_000;
    expect(await reasonOf(guard.check(req)), 'still remembered while it could be fresh').toBe('replay');
  });

  it('bounds its table: full of live nonces it refuses with OrchestratorBusy, and forgets expired ones', async () => {
    const clock = new Clock();
    const guard = new TranscodeRequestGuard({ maxEntries: 2 }, clock);
    await guard.check(await signed());
    await guard.check(await signed());
    expect(await reasonOf(guard.check(await signed()))).toBe('OrchestratorBusy');
    clock.t += 60_001;
    expect(await reasonOf(guard.check(await signed({ now: clock.t })))).toBeUndefined();
    expect(guard.size).toBe(1);
  });
});

describe('remoteAddress', () => {
  it('keys the error budget by address, not by connection', () => {
    expect(remoteAddress('127.0.0.1:5555')).toBe('127.0.0.1');
    expect(remoteAddress('127.0.0.1')).toBe('127.0.0.1');
    expect(remoteAddress('[::1]:5555')).toBe('::1');
    expect(remoteAddress(undefined)).toBe('unknown');
  });
});
