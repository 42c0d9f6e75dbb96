import { type Address, bytesToHex, type Hex, hexToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { ChallengeGuard, type ChallengeRequest, makeChallenge } from '../../../src/rpc/challenge.js';
import { WireError } from '../../../src/rpc/errors.js';
import { challengeDigest, recoverWireSigner, signWireDigest } from '../../../src/rpc/signing.js';

// Anvil's well-known development keys: never hold real funds.
const broadcaster = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d');
const other = privateKeyToAccount('0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a');
const orchestrator = privateKeyToAccount(
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
).address;
const elsewhere = privateKeyToAccount(
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
).address;

const T0 = 1_800_000_000_000;
const SKEW = 30_000;

/** A clock the test moves by hand. */
function clock(start = T0) {
  let t = start;
  return {
    now: () => t,
    set: (ms: number) => {
      t = ms;
    },
  };
}

async function request(
  overrides: { at?: number; signer?: typeof broadcaster; for?: Address; challenge?: Hex } = {},
): Promise<ChallengeRequest> {
  const signer = overrides.signer ?? broadcaster;
  const made = await makeChallenge(signer, overrides.for ?? orchestrator, () => overrides.at ?? T0);
  const challenge = overrides.challenge ?? made.challenge;
  const signature =
    overrides.challenge === undefined
      ? made.signature
      : await signWireDigest(
          signer,
          challengeDigest({
            challenge,
            issuedAtMs: made.issuedAtMs,
            orchestrator: overrides.for ?? orchestrator,
          }),
        );
  return {
    broadcaster: broadcaster.address,
    challenge,
    issuedAtMs: made.issuedAtMs,
    signature,
    orchestrator,
  };
}

async function refusal(promise: Promise<unknown>): Promise<WireError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(WireError);
    return err as WireError;
  }
  throw new Error('expected the check to refuse');
}

describe('makeChallenge', () => {
  it('makes a fresh 32-byte challenge per call, stamped with now() and signed by the broadcaster', async () => {
    const a = await makeChallenge(broadcaster, orchestrator, () => T0);
    const b = await makeChallenge(broadcaster, orchestrator, () => T0);
    expect(hexToBytes(a.challenge)).toHaveLength(32);
    expect(a.challenge).not.toBe(b.challenge);
    expect(a.issuedAtMs).toBe(BigInt(T0));
    const digest = challengeDigest({ challenge: a.challenge, issuedAtMs: a.issuedAtMs, orchestrator });
    expect(await recoverWireSigner(digest, a.signature)).toBe(broadcaster.address);
  });
});

describe('ChallengeGuard', () => {
  it('accepts a fresh, well-signed challenge and returns the broadcaster', async () => {
    const guard = new ChallengeGuard({}, { now: clock().now });
    expect(await guard.check(await request())).toBe(broadcaster.address);
    expect(guard.size).toBe(1);
  });

  it('accepts the signature as raw bytes and the broadcaster in any letter case', async () => {
    const guard = new ChallengeGuard({}, { now: clock().now });
    const req = await request();
    const lower = broadcaster.address.toLowerCase() as Address;
    expect(
      await guard.check({ ...req, broadcaster: lower, signature: hexToBytes(req.signature as Hex) }),
    ).toBe(broadcaster.address);
  });

  it('accepts issuedAt exactly maxSkewMs away either way and refuses one millisecond more', async () => {
    const guard = new ChallengeGuard({ maxSkewMs: SKEW }, { now: clock().now });
    expect(await guard.check(await request({ at: T0 - SKEW }))).toBe(broadcaster.address);
    expect(await guard.check(await request({ at: T0 + SKEW }))).toBe(broadcaster.address);

    const stale = await refusal(guard.check(await request({ at: T0 - SKEW - 1 })));
    expect(stale.code).toBe('InvalidChallenge');
    expect(stale.details).toMatchObject({
      reason: 'issuedAtSkew',
      skewMs: String(-SKEW - 1),
      maxSkewMs: String(SKEW),
      nowMs: String(T0),
    });
    expect(stale.message).toMatch(/ago/);

    const future = await refusal(guard.check(await request({ at: T0 + SKEW + 1 })));
    expect(future.code).toBe('InvalidChallenge');
    expect(future.details).toMatchObject({ reason: 'issuedAtSkew', skewMs: String(SKEW + 1) });
    expect(future.message).toMatch(/future/);
  });

  it('refuses a challenge that is not 32 bytes of hex', async () => {
    const guard = new ChallengeGuard({}, { now: clock().now });
    const cases: [string, Hex][] = [
      ['31 bytes', bytesToHex(new Uint8Array(31).fill(1))],
      ['33 bytes', bytesToHex(new Uint8Array(33).fill(1))],
      ['empty', '0x'],
      ['not hex', `0x${'zz'.repeat(32)}` as Hex],
    ];
    for (const [what, challenge] of cases) {
      const req = { ...(await request()), challenge };
      const err = await refusal(guard.check(req));
      expect(err.code, what).toBe('InvalidChallenge');
      expect(err.details.reason, what).toBe('challengeLength');
    }
    expect(guard.size).toBe(0);
  });

  it('refuses a malformed signature', async () => {
    const guard = new ChallengeGuard({}, { now: clock().now });
    const req = await request();
    const cases: [string, Hex | Uint8Array][] = [
      ['64 bytes', (req.signature as Hex).slice(0, -2) as Hex],
      ['66 bytes', `${req.signature as Hex}00`],
      ['64 raw bytes', hexToBytes(req.signature as Hex).subarray(0, 64)],
      ['all zero', bytesToHex(new Uint8Array(65))],
      ['bad v', `${(req.signature as Hex).slice(0, -2)}05` as Hex],
      ['not hex', `0x${'zz'.repeat(65)}` as Hex],
    ];
    for (const [what, signature] of cases) {
      const err = await refusal(guard.check({ ...req, signature }));
      expect(err.code, what).toBe('InvalidChallenge');
      expect(err.details.reason, what).toBe('badSignature');
    }
    expect(guard.size).toBe(0);
  });

  it('refuses a signature by another key, for another orchestrator, or over other fields', async () => {
    const guard = new ChallengeGuard({}, { now: clock().now });
    const byOther = await request({ signer: other });
    const forElsewhere = await request({ for: elsewhere });
    const good = await request();
    const cases: [string, ChallengeRequest][] = [
      ['signed by another key', byOther],
      ['signed for another orchestrator', forElsewhere],
      ['issuedAt changed after signing', { ...good, issuedAtMs: good.issuedAtMs + 1n }],
      ['challenge changed after signing', { ...good, challenge: (await request()).challenge }],
    ];
    for (const [what, req] of cases) {
      const err = await refusal(guard.check(req));
      expect(err.code, what).toBe('InvalidChallenge');
      expect(err.details.reason, what).toBe('wrongSigner');
      expect(err.details.broadcaster, what).toBe(broadcaster.address);
    }
    const byOtherErr = await refusal(guard.check(byOther));
    expect(byOtherErr.details.recovered).toBe(other.address);
    expect(guard.size).toBe(0);
    // A refused attempt is not remembered: the genuine request with the same challenge still passes.
    expect(await guard.check(good)).toBe(broadcaster.address);
  });

  it('refuses a request whose broadcaster is not an address as an invalid message', async () => {
    const guard = new ChallengeGuard({}, { now: clock().now });
    const err = await refusal(guard.check({ ...(await request()), broadcaster: '0x1234' }));
    expect(err.code).toBe('InvalidMessage');
    expect(err.details.field).toBe('broadcaster');
  });

  it('refuses a replay for as long as the original could be fresh, then as stale', async () => {
    const c = clock();
    const guard = new ChallengeGuard({ maxSkewMs: SKEW }, { now: c.now });
    // Issued as far in the future as allowed: fresh until T0 + 2 × SKEW, the longest replay window.
    const req = await request({ at: T0 + SKEW });
    expect(await guard.check(req)).toBe(broadcaster.address);
    for (const at of [T0, T0 + 1, T0 + SKEW, T0 + 2 * SKEW]) {
      c.set(at);
      const err = await refusal(guard.check(req));
      expect(err.code, `at +${at - T0} ms`).toBe('InvalidChallenge');
      expect(err.details.reason, `at +${at - T0} ms`).toBe('replay');
    }
    c.set(T0 + 2 * SKEW + 1);
    expect((await refusal(guard.check(req))).details.reason).toBe('issuedAtSkew');
  });

  it('accepts only one of several concurrent checks of the same request', async () => {
    const guard = new ChallengeGuard({}, { now: clock().now });
    const req = await request();
    const results = await Promise.allSettled([guard.check(req), guard.check(req), guard.check(req)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused.map((r) => (r.reason as WireError).details.reason)).toEqual(['replay', 'replay']);
  });

  it('keeps the same challenge from different broadcasters apart', async () => {
    const guard = new ChallengeGuard({}, { now: clock().now });
    const mine = await request();
    const theirs = await request({ signer: other, challenge: mine.challenge });
    expect(await guard.check(mine)).toBe(broadcaster.address);
    expect(await guard.check({ ...theirs, broadcaster: other.address })).toBe(other.address);
  });

  it('when full of unexpired challenges refuses new ones with OrchestratorBusy, forgetting none', async () => {
    const c = clock();
    const guard = new ChallengeGuard({ maxSkewMs: SKEW, maxEntries: 2 }, { now: c.now });
    const first = await request();
    const second = await request();
    await guard.check(first);
    c.set(T0 + 10);
    await guard.check(second);

    const busy = await refusal(guard.check(await request()));
    expect(busy.code).toBe('OrchestratorBusy');
    expect(busy.details).toEqual({ reason: 'challengeTableFull', maxEntries: '2' });
    // Still remembered: a replay is a replay, not a new challenge.
    expect((await refusal(guard.check(first))).details.reason).toBe('replay');
    expect(guard.size).toBe(2);

    // Once the first expires (2 × maxSkewMs after it was accepted) there is room again.
    c.set(T0 + 2 * SKEW + 1);
    expect(await guard.check(await request({ at: T0 + 2 * SKEW }))).toBe(broadcaster.address);
    expect(guard.size).toBe(2);
    c.set(T0 + 4 * SKEW + 20);
    expect(await guard.check(await request({ at: T0 + 4 * SKEW }))).toBe(broadcaster.address);
    expect(guard.size).toBe(1);
  });

  it('refuses options that would make it unsound', () => {
    expect(() => new ChallengeGuard({ maxSkewMs: 0 })).toThrow(RangeError);
    expect(() => new ChallengeGuard({ maxSkewMs: Number.NaN })).toThrow(RangeError);
    expect(() => new ChallengeGuard({ maxEntries: 0 })).toThrow(RangeError);
  });
});
