import { randomBytes } from 'node:crypto';
import { type Address, bytesToHex, type Hex } from 'viem';
import { type ChallengeGuardOptions, ReplayWindow } from './challenge.js';
import { WireError } from './errors.js';
import {
  contentHash,
  type DigestSigner,
  recoverWireSigner,
  type SignedProfileFields,
  segmentMetadataHash,
  signWireDigest,
  transcodeRequestDigest,
} from './signing.js';

/** Nonce length bounds of a signed `TranscodeRequest`, bytes. */
export const REQUEST_NONCE_BYTES = Object.freeze({ min: 16, max: 32 });

/**
 * Why {@link TranscodeRequestGuard.check} refused a request: `details.reason` of its
 * `InvalidRequestSignature` error.
 * - `nonceLength`: the nonce is not 16–32 bytes;
 * - `issuedAtSkew`: `issuedAtMs` is more than `maxSkewMs` from this node's clock (`details.skewMs`);
 * - `badSignature`: the signature is not 65 canonical bytes or recovers to no address;
 * - `wrongSigner`: it recovers to another address than `payment.sender` (also: signed for another
 *   orchestrator, or any signed field changed: stream, seq, segment bytes, profiles, duration, time, nonce);
 * - `replay`: this (sender, nonce) pair was already accepted.
 */
export type RequestSignatureRefusal =
  | 'nonceLength'
  | 'issuedAtSkew'
  | 'badSignature'
  | 'wrongSigner'
  | 'replay';

/** A `TranscodeRequest` as the guard checks it: the fields the sender signed, decoded. */
export interface SignedTranscodeRequest {
  /** The orchestrator checking it: its own address, never one taken from the request. */
  orchestrator: Address;
  /** `payment.sender`. */
  sender: Address;
  streamId: string;
  seq: bigint;
  segment: Uint8Array;
  metadata: { durationMs: number; profiles: readonly SignedProfileFields[] };
  issuedAtMs: bigint;
  nonce: Uint8Array;
  signature: Uint8Array;
}

/**
 * Orchestrator side of request signatures (docs/rpc.md "Sessions"): every `Transcode` must be signed by the
 * session's owner, `payment.sender`, fresh and used once. Shares {@link ReplayWindow} with the challenge
 * guard: fresh while `|now − issuedAtMs| ≤ maxSkewMs` (default 30 s), accepted (sender, nonce) pairs kept
 * `2 × maxSkewMs`, at most `maxEntries` (default 100,000) at once, a full table refuses with
 * `OrchestratorBusy`. Cheap refusals (nonce length, skew, a known nonce) come before the segment is hashed
 * and the signature recovered (libsecp256k1, ~0.1 ms); a refused request is not remembered.
 */
export class TranscodeRequestGuard {
  private readonly window: ReplayWindow;

  constructor(options: ChallengeGuardOptions = {}, deps: { now?: () => number } = {}) {
    this.window = new ReplayWindow(options, deps);
  }

  /** (sender, nonce) pairs remembered right now. */
  get size(): number {
    return this.window.size;
  }

  /**
   * Verifies one request; resolves to the sender's checksummed address and the segment's
   * {@link contentHash} (reuse it in the receipt). Throws `WireError('InvalidRequestSignature')` with
   * `details.reason` a {@link RequestSignatureRefusal}, or `WireError('OrchestratorBusy')` with
   * `details.reason = 'requestTableFull'`.
   */
  async check(req: SignedTranscodeRequest): Promise<{ sender: Address; segmentHash: Hex }> {
    const { min, max } = REQUEST_NONCE_BYTES;
    if (req.nonce.length < min || req.nonce.length > max) {
      throw refuse('nonceLength', `the nonce must be ${min}–${max} random bytes`, {
        bytes: String(req.nonce.length),
      });
    }
    const { nowMs, skewMs, fresh } = this.window.skew(req.issuedAtMs);
    if (!fresh) {
      throw refuse(
        'issuedAtSkew',
        `the request was signed ${skewMs > 0n ? `${skewMs} ms in the future` : `${-skewMs} ms ago`}, more than the ${this.window.maxSkewMs} ms allowed; sign every request when sending it and check the clocks (NTP)`,
        {
          issuedAtMs: req.issuedAtMs.toString(),
          nowMs: String(nowMs),
          skewMs: skewMs.toString(),
          maxSkewMs: String(this.window.maxSkewMs),
        },
      );
    }
    const nonce = bytesToHex(req.nonce);
    const key = `${req.sender.toLowerCase()}:${nonce}`;
    this.admit(key);
    if (req.signature.length !== 65) {
      throw refuse('badSignature', 'the signature must be 65 bytes (r ‖ s ‖ v)', {
        bytes: String(req.signature.length),
      });
    }
    const segmentHash = contentHash(req.segment);
    let signer: Address;
    try {
      signer = await recoverWireSigner(
        transcodeRequestDigest({
          orchestrator: req.orchestrator,
          sender: req.sender,
          streamId: req.streamId,
          seq: req.seq,
          segmentHash,
          metadataHash: segmentMetadataHash(req.metadata),
          issuedAtMs: req.issuedAtMs,
          nonce,
        }),
        req.signature,
      );
    } catch (err) {
      throw refuse('badSignature', 'the signature recovers to no address', {}, err);
    }
    if (signer.toLowerCase() !== req.sender.toLowerCase()) {
      // The recovered address is not echoed: it tells a prober nothing it needs.
      throw refuse(
        'wrongSigner',
        'the request is not signed by payment.sender over these fields for this orchestrator; sign every request with the key of the ticket sender',
        {},
      );
    }
    this.admit(key);
    this.window.remember(key);
    return { sender: signer, segmentHash };
  }

  private admit(key: string): void {
    const refused = this.window.admit(key);
    if (refused === 'replay') {
      throw refuse('replay', 'this request nonce was already used; sign every request with a new nonce', {});
    }
    if (refused === 'full') {
      throw new WireError(
        'OrchestratorBusy',
        'the orchestrator is handling too many fresh requests to remember another; retry in a few seconds or use another orchestrator',
        { reason: 'requestTableFull', maxEntries: String(this.window.maxEntries) },
      );
    }
  }
}

function refuse(
  reason: RequestSignatureRefusal,
  message: string,
  details: Record<string, string>,
  cause?: unknown,
): WireError {
  return new WireError(
    'InvalidRequestSignature',
    `request refused: ${message}`,
    { reason, ...details },
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Sender side: signs one `TranscodeRequest` for `orchestrator` with a new 16-byte nonce and the current time.
 * `segmentHash` is {@link contentHash} of the segment (the broadcaster needs it again for the receipt).
 * Returns the three fields to put in the request.
 */
export async function signTranscodeRequest(
  signer: DigestSigner,
  f: {
    orchestrator: Address;
    sender: Address;
    streamId: string;
    seq: bigint;
    segmentHash: Hex;
    metadata: { durationMs: number; profiles: readonly SignedProfileFields[] };
  },
  now: () => number = Date.now,
): Promise<{ issuedAtMs: bigint; nonce: Uint8Array; signature: Hex }> {
  const nonce = new Uint8Array(randomBytes(REQUEST_NONCE_BYTES.min));
  const issuedAtMs = BigInt(Math.floor(now()));
  const signature = await signWireDigest(
    signer,
    transcodeRequestDigest({
      orchestrator: f.orchestrator,
      sender: f.sender,
      streamId: f.streamId,
      seq: f.seq,
      segmentHash: f.segmentHash,
      metadataHash: segmentMetadataHash(f.metadata),
      issuedAtMs,
      nonce: bytesToHex(nonce),
    }),
  );
  return { issuedAtMs, nonce, signature };
}
