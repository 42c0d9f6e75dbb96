import { randomBytes } from 'node:crypto';
import { type Address, bytesToHex, type Hex, isAddress, isHex, size } from 'viem';
import { WireError } from './errors.js';
import { challengeDigest, type DigestSigner, recoverWireSigner, signWireDigest } from './signing.js';

/** Options of {@link ChallengeGuard}. */
export interface ChallengeGuardOptions {
  /**
   * Largest distance between a challenge's `issuedAtMs` and this node's clock, either way, milliseconds.
   * @default 30_000
   */
  maxSkewMs?: number;
  /**
   * Challenges remembered at once. When the table is full of unexpired entries new challenges are refused
   * with `OrchestratorBusy` until one expires. @default 100_000
   */
  maxEntries?: number;
}

export const defaultChallengeGuardOptions = {
  maxSkewMs: 30_000,
  maxEntries: 100_000,
} as const satisfies Required<ChallengeGuardOptions>;

/** A signed challenge as a broadcaster sends it in `GetOrchestratorInfoRequest`. */
export interface ChallengeRequest {
  /** The address the request claims to come from. */
  broadcaster: Address;
  /** 32 random bytes. */
  challenge: Hex;
  /** Unix time, milliseconds, when the broadcaster made the challenge. */
  issuedAtMs: bigint;
  /** 65 bytes, EIP-191 over {@link challengeDigest}. */
  signature: Hex | Uint8Array;
  /** The orchestrator checking it: its own address, never one taken from the request. */
  orchestrator: Address;
}

/**
 * Why {@link ChallengeGuard.check} refused a challenge: `details.reason` of its `InvalidChallenge` error.
 * - `challengeLength`: the challenge is not 32 bytes of hex;
 * - `issuedAtSkew`: `issuedAtMs` is more than `maxSkewMs` away from this node's clock (`details.skewMs`,
 *   positive when in the future);
 * - `badSignature`: the signature is not 65 bytes or recovers to no address;
 * - `wrongSigner`: it recovers to another address than `broadcaster` (also a signature made for another
 *   orchestrator or over other fields);
 * - `replay`: this (broadcaster, challenge) pair was already accepted.
 */
export type ChallengeRefusal = 'challengeLength' | 'issuedAtSkew' | 'badSignature' | 'wrongSigner' | 'replay';

/**
 * The freshness window and replay table behind every signed, timestamped request: {@link ChallengeGuard} for
 * `GetOrchestratorInfo` challenges and `TranscodeRequestGuard` (src/rpc/request-auth.ts) for `Transcode`
 * requests. A request is fresh while `|now − issuedAtMs| ≤ maxSkewMs`; an accepted key is remembered
 * `2 × maxSkewMs`, the longest it could still be fresh, so no replay is fresh but forgotten. At most
 * `maxEntries` keys: expired ones go first, and a full table refuses new keys rather than forget live ones.
 * Pruning is lazy: no timer.
 */
export class ReplayWindow {
  readonly maxSkewMs: number;
  readonly maxEntries: number;
  private readonly now: () => number;
  /** key → when the entry expires, ms; in acceptance order. */
  private readonly seen = new Map<string, number>();

  constructor(options: ChallengeGuardOptions = {}, deps: { now?: () => number } = {}) {
    this.maxSkewMs = options.maxSkewMs ?? defaultChallengeGuardOptions.maxSkewMs;
    this.maxEntries = options.maxEntries ?? defaultChallengeGuardOptions.maxEntries;
    if (!Number.isSafeInteger(this.maxSkewMs) || this.maxSkewMs <= 0) {
      throw new RangeError(`maxSkewMs must be a positive integer of milliseconds, got ${this.maxSkewMs}`);
    }
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries <= 0) {
      throw new RangeError(`maxEntries must be a positive integer, got ${this.maxEntries}`);
    }
    this.now = deps.now ?? Date.now;
  }

  /** Keys remembered right now (expired ones may linger until the next check). */
  get size(): number {
    return this.seen.size;
  }

  /** `issuedAtMs − now` (positive: in the future) and whether it is within the window. */
  skew(issuedAtMs: bigint): { nowMs: number; skewMs: bigint; fresh: boolean } {
    const nowMs = Math.floor(this.now());
    const skewMs = issuedAtMs - BigInt(nowMs);
    const max = BigInt(this.maxSkewMs);
    return { nowMs, skewMs, fresh: skewMs <= max && -skewMs <= max };
  }

  /**
   * Whether `key` may be accepted now: `'replay'` when it was accepted before, `'full'` when the table holds
   * `maxEntries` unexpired keys, undefined when it may. Changes nothing but dropping expired keys.
   */
  admit(key: string): 'replay' | 'full' | undefined {
    this.prune(Math.floor(this.now()));
    if (this.seen.has(key)) return 'replay';
    if (this.seen.size >= this.maxEntries) return 'full';
    return undefined;
  }

  /** Remembers an accepted key; call {@link admit} just before (after any await) so copies are accepted once. */
  remember(key: string): void {
    this.seen.set(key, Math.floor(this.now()) + 2 * this.maxSkewMs);
  }

  private prune(nowMs: number): void {
    // Entries are in acceptance order, so expiry order as long as the clock does not step back; after a
    // step back some stay longer than needed, never shorter.
    for (const [key, expiresMs] of this.seen) {
      if (expiresMs >= nowMs) break;
      this.seen.delete(key);
    }
  }
}

/**
 * Orchestrator side of the `GetOrchestratorInfo` challenge: refuses stale, future, badly signed and
 * replayed requests, and returns the verified broadcaster.
 *
 * A challenge is fresh while `|now − issuedAtMs| ≤ maxSkewMs`, so it can be accepted at most until
 * `issuedAtMs + maxSkewMs`, at most `2 × maxSkewMs` after it was first accepted. Accepted pairs are
 * remembered exactly that long (`2 × maxSkewMs` from acceptance), which closes every replay window. Memory is
 * bounded by `maxEntries`: expired entries are dropped first, and when the table is still full the new
 * challenge is refused with `OrchestratorBusy` (the broadcaster retries later or elsewhere) rather than
 * forgetting one that could still be replayed. Pruning is lazy, on each check: no timer to stop.
 *
 * The clock is the wall clock (`now`); a step backwards longer than the window could let an old request
 * in again, as it would for any timestamp check.
 */
export class ChallengeGuard {
  private readonly window: ReplayWindow;

  constructor(options: ChallengeGuardOptions = {}, deps: { now?: () => number } = {}) {
    this.window = new ReplayWindow(options, deps);
  }

  /** Challenges remembered right now (expired ones may linger until the next check). */
  get size(): number {
    return this.window.size;
  }

  /**
   * Verifies one request; resolves to the broadcaster's checksummed address and remembers the pair. Throws
   * `WireError('InvalidChallenge')` with `details.reason` a {@link ChallengeRefusal},
   * `WireError('OrchestratorBusy')` with `details.reason = 'challengeTableFull'`, or
   * `WireError('InvalidMessage')` (`field: 'broadcaster'`) when `broadcaster` is not an address. A refused
   * request is not remembered, so a forged one cannot burn a genuine challenge.
   */
  async check(req: ChallengeRequest): Promise<Address> {
    if (!isHex(req.challenge, { strict: true }) || size(req.challenge) !== 32) {
      throw refuse('challengeLength', 'the challenge must be 32 bytes; make a new one with makeChallenge', {
        bytes: isHex(req.challenge, { strict: true }) ? String(size(req.challenge)) : 'not hex',
      });
    }
    const { nowMs, skewMs, fresh } = this.window.skew(req.issuedAtMs);
    if (!fresh) {
      const maxSkewMs = this.window.maxSkewMs;
      throw refuse(
        'issuedAtSkew',
        `the challenge was issued ${skewMs > 0n ? `${skewMs} ms in the future` : `${-skewMs} ms ago`}, more than the ${maxSkewMs} ms allowed; make a fresh one and check the clocks (NTP)`,
        {
          issuedAtMs: req.issuedAtMs.toString(),
          nowMs: String(nowMs),
          skewMs: skewMs.toString(),
          maxSkewMs: String(maxSkewMs),
        },
      );
    }
    if (!isAddress(req.broadcaster, { strict: false })) {
      throw new WireError('InvalidMessage', 'broadcaster: not an address', { field: 'broadcaster' });
    }
    const key = `${req.broadcaster.toLowerCase()}:${req.challenge.toLowerCase()}`;
    // Cheap refusals before the signature check (the costly part), then again after it: another check of
    // the same pair may have finished while this one awaited.
    this.admit(key);

    const signatureBytes =
      typeof req.signature === 'string'
        ? isHex(req.signature, { strict: true })
          ? size(req.signature)
          : -1
        : req.signature.length;
    if (signatureBytes !== 65) {
      throw refuse('badSignature', 'the signature must be 65 bytes (r ‖ s ‖ v)', {
        bytes: signatureBytes < 0 ? 'not hex' : String(signatureBytes),
      });
    }
    let signer: Address;
    try {
      signer = await recoverWireSigner(
        challengeDigest({
          challenge: req.challenge,
          issuedAtMs: req.issuedAtMs,
          orchestrator: req.orchestrator,
        }),
        req.signature,
      );
    } catch (err) {
      throw refuse('badSignature', 'the signature recovers to no address', {}, err);
    }
    if (signer.toLowerCase() !== req.broadcaster.toLowerCase()) {
      throw refuse(
        'wrongSigner',
        'the signature is not the broadcaster’s over this challenge, time and orchestrator; sign the challenge for this orchestrator with the broadcaster key',
        { broadcaster: req.broadcaster, recovered: signer },
      );
    }

    this.admit(key);
    this.window.remember(key);
    return signer;
  }

  /** Throws when `key` was seen or the table is full of unexpired entries; drops expired ones. */
  private admit(key: string): void {
    const refused = this.window.admit(key);
    if (refused === 'replay') {
      throw refuse('replay', 'this challenge was already used; make a new one for every request', {});
    }
    if (refused === 'full') {
      throw new WireError(
        'OrchestratorBusy',
        'the orchestrator is handling too many fresh challenges to remember another; retry in a few seconds or use another orchestrator',
        { reason: 'challengeTableFull', maxEntries: String(this.window.maxEntries) },
      );
    }
  }
}

function refuse(
  reason: ChallengeRefusal,
  message: string,
  details: Record<string, string>,
  cause?: unknown,
): WireError {
  return new WireError(
    'InvalidChallenge',
    `challenge refused: ${message}`,
    { reason, ...details },
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Broadcaster side: a fresh 32-byte challenge, the time it is issued (`now()`, ms) and the broadcaster's
 * signature over {@link challengeDigest} for `orchestrator`, for one `GetOrchestratorInfoRequest`. Make a new
 * one per request: the orchestrator refuses a challenge it has seen.
 */
export async function makeChallenge(
  signer: DigestSigner,
  orchestrator: Address,
  now: () => number = Date.now,
): Promise<{ challenge: Hex; issuedAtMs: bigint; signature: Hex }> {
  const challenge = bytesToHex(randomBytes(32));
  const issuedAtMs = BigInt(Math.floor(now()));
  const signature = await signWireDigest(signer, challengeDigest({ challenge, issuedAtMs, orchestrator }));
  return { challenge, issuedAtMs, signature };
}
