import { createHash } from 'node:crypto';
import { type Address, bytesToHex, encodeAbiParameters, type Hex, hashMessage, keccak256 } from 'viem';
import { recoverSigner } from '../pm/ticket.js';
import type { TicketParams } from '../pm/types.js';

/**
 * What signs: a viem `LocalAccount` (or any wallet) fits. Signatures are EIP-191 personal-sign over a
 * 32-byte digest, so a hardware or remote signer can produce them without knowing the message layout.
 */
export interface DigestSigner {
  signMessage(args: { message: { raw: Hex } }): Promise<Hex>;
}

// Each digest starts with its own tag so a signature made for one message can never verify as another.
const TAG = {
  challenge: 'streamflow.v1.GetOrchestratorInfoRequest',
  info: 'streamflow.v1.OrchestratorInfo',
  receipt: 'streamflow.v1.Receipt',
  transcode: 'streamflow.v1.TranscodeRequest',
} as const;

/** keccak256 of the ABI encoding of every `TicketParams` field, in declaration order. */
export function ticketParamsHash(p: TicketParams): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        { type: 'address' },
        { type: 'address' },
        { type: 'uint256' },
        { type: 'uint256' },
        { type: 'bytes32' },
        { type: 'bytes32' },
        { type: 'uint256' },
        { type: 'bytes32' },
        { type: 'uint256' },
        { type: 'uint64' },
      ],
      [
        p.recipient,
        p.sender,
        p.faceValue,
        p.winProb,
        p.recipientRandHash,
        p.seed,
        p.creationRound,
        p.creationRoundBlockHash,
        p.expirationRound,
        BigInt(p.expiresAt),
      ],
    ),
  );
}

/** What a broadcaster signs in `GetOrchestratorInfoRequest`: bound to one orchestrator and one moment. */
export interface ChallengeFields {
  /** 32 random bytes. */
  challenge: Hex;
  /** Unix time, milliseconds. */
  issuedAtMs: bigint;
  /** The orchestrator asked, so the request cannot be replayed to another one. */
  orchestrator: Address;
}

export function challengeDigest(f: ChallengeFields): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: 'string' }, { type: 'bytes32' }, { type: 'uint64' }, { type: 'address' }],
      [TAG.challenge, f.challenge, f.issuedAtMs, f.orchestrator],
    ),
  );
}

/** The essential fields of an `OrchestratorInfo` reply: everything a broadcaster acts on but capacity. */
export interface OrchestratorInfoFields {
  address: Address;
  serviceUri: string;
  /** Wei per output pixel. */
  pricePerPixel: bigint;
  ticketParams: TicketParams;
  services: readonly string[];
  regions: readonly string[];
  /** The request's challenge, echoed. */
  challenge: Hex;
  /** The requesting broadcaster. */
  broadcaster: Address;
}

export function orchestratorInfoDigest(f: OrchestratorInfoFields): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        { type: 'string' },
        { type: 'address' },
        { type: 'string' },
        { type: 'uint256' },
        { type: 'bytes32' },
        { type: 'string[]' },
        { type: 'string[]' },
        { type: 'bytes32' },
        { type: 'address' },
      ],
      [
        TAG.info,
        f.address,
        f.serviceUri,
        f.pricePerPixel,
        ticketParamsHash(f.ticketParams),
        f.services,
        f.regions,
        f.challenge,
        f.broadcaster,
      ],
    ),
  );
}

/** What an orchestrator signs for one transcoded segment. */
export interface ReceiptFields {
  streamId: string;
  seq: bigint;
  /** keccak256 of the input segment. */
  inputHash: Hex;
  /** In the order the profiles were asked; `hash` is keccak256 of the rendition bytes. */
  renditions: readonly { profile: string; hash: Hex }[];
}

export function receiptDigest(f: ReceiptFields): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        { type: 'string' },
        { type: 'string' },
        { type: 'uint64' },
        { type: 'bytes32' },
        { type: 'string[]' },
        { type: 'bytes32[]' },
      ],
      [
        TAG.receipt,
        f.streamId,
        f.seq,
        f.inputHash,
        f.renditions.map((r) => r.profile),
        f.renditions.map((r) => r.hash),
      ],
    ),
  );
}

/** The fields of one asked-for profile as they travel (`streamflow.v1.Profile`), hashed into a request signature. */
export interface SignedProfileFields {
  name: string;
  width: number;
  height: number;
  /** Frames per second: hashed as its IEEE-754 binary64 bits, so both sides hash the very value sent. */
  fps: number;
  bitrate: number;
  /** Seconds, hashed as binary64 bits like `fps`. */
  gop: number;
  /** The wire enum value (`H264Profile`). */
  h264Profile: number;
}

function float64Bits(x: number): Hex {
  const b = new DataView(new ArrayBuffer(8));
  b.setFloat64(0, x);
  return bytesToHex(new Uint8Array(b.buffer));
}

/**
 * keccak256 of the ABI encoding of a segment's `duration_ms` and every profile field, in the order asked:
 * what a request signature commits to about the work asked for (`SegmentMetadata` minus stream id and seq,
 * which the digest carries on their own).
 */
export function segmentMetadataHash(m: {
  durationMs: number;
  profiles: readonly SignedProfileFields[];
}): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        { type: 'uint32' },
        { type: 'string[]' },
        { type: 'uint32[]' },
        { type: 'uint32[]' },
        { type: 'bytes8[]' },
        { type: 'uint32[]' },
        { type: 'bytes8[]' },
        { type: 'uint8[]' },
      ],
      [
        m.durationMs,
        m.profiles.map((p) => p.name),
        m.profiles.map((p) => p.width),
        m.profiles.map((p) => p.height),
        m.profiles.map((p) => float64Bits(p.fps)),
        m.profiles.map((p) => p.bitrate),
        m.profiles.map((p) => float64Bits(p.gop)),
        m.profiles.map((p) => p.h264Profile),
      ],
    ),
  );
}

/** What a sender signs in every `TranscodeRequest`: one segment, one job, one orchestrator, one moment. */
export interface TranscodeRequestFields {
  /** The orchestrator asked: its own address on checking, never one taken from the request. */
  orchestrator: Address;
  /** `payment.sender`: the session's owner, whose credit the request spends. */
  sender: Address;
  streamId: string;
  seq: bigint;
  /** {@link contentHash} of the segment bytes. */
  segmentHash: Hex;
  /** {@link segmentMetadataHash} of the metadata. */
  metadataHash: Hex;
  /** Unix time, milliseconds. */
  issuedAtMs: bigint;
  /** 16–32 random bytes. */
  nonce: Hex;
}

export function transcodeRequestDigest(f: TranscodeRequestFields): Hex {
  return keccak256(
    encodeAbiParameters(
      [
        { type: 'string' },
        { type: 'address' },
        { type: 'address' },
        { type: 'string' },
        { type: 'uint64' },
        { type: 'bytes32' },
        { type: 'bytes32' },
        { type: 'uint64' },
        { type: 'bytes' },
      ],
      [
        TAG.transcode,
        f.orchestrator,
        f.sender,
        f.streamId,
        f.seq,
        f.segmentHash,
        f.metadataHash,
        f.issuedAtMs,
        f.nonce,
      ],
    ),
  );
}

/** EIP-191 signature (65 bytes, r ‖ s ‖ v) over a digest. */
export function signWireDigest(signer: DigestSigner, digest: Hex): Promise<Hex> {
  return signer.signMessage({ message: { raw: digest } });
}

/**
 * The address that made `signature` over `digest`; compare it with the expected on-chain address. libsecp256k1
 * (as for tickets: ~20× faster than pure JS, this runs for every segment), canonical 65-byte low-s signatures
 * only, as viem and every Ethereum wallet make them.
 * @throws Error for a malformed or non-canonical signature
 */
export async function recoverWireSigner(digest: Hex, signature: Hex | Uint8Array): Promise<Address> {
  const sig = typeof signature === 'string' ? signature : bytesToHex(signature);
  const signer = recoverSigner(hashMessage({ raw: digest }), sig);
  if (!signer) throw new Error('not a canonical 65-byte signature');
  return signer;
}

/**
 * Hash of segment and rendition bytes in receipts: SHA-256 (native, ~1 ms per MB, where keccak256 in JS takes
 * ~10). The EVM has it as a precompile, so a receipt stays checkable on chain.
 */
export function contentHash(bytes: Uint8Array): Hex {
  return `0x${createHash('sha256').update(bytes).digest('hex')}`;
}
