import type { Address, Hex } from 'viem';
import type { Profile } from '../media/profiles.js';
import type { Payment } from '../pm/types.js';
import { bytesToAddress, fixedBytesToHex, paymentFromProto, profileFromProto } from './convert.js';
import { WireError } from './errors.js';
import type { GetOrchestratorInfoRequest, TranscodeRequest } from './gen/streamflow/v1/orchestrator_pb.js';
import { LIMITS } from './options.js';

/**
 * Per-field limits of incoming messages, beyond the whole-message `maxMessageBytes` that Connect enforces.
 * The figures of the schema's comments; counts of profiles, tickets and bytes are in {@link LIMITS}.
 */
export const FIELD_LIMITS = Object.freeze({
  /** `serviceId`, `region`, profile names: characters. */
  nameChars: 64,
  /** `SegmentMetadata.streamId`: characters of `[A-Za-z0-9_.-]`. */
  streamIdChars: 128,
  /** `SegmentMetadata.durationMs`. */
  maxDurationMs: 60_000,
  minDimension: 16,
  maxWidth: 7680,
  maxHeight: 4320,
  maxFps: 240,
  /** Bits per second. */
  maxBitrate: 100_000_000,
});

function invalid(field: string, why: string): WireError {
  return new WireError('InvalidMessage', `${field}: ${why}`, { field });
}

function checkChars(value: string, max: number, field: string): void {
  if (value.length > max) throw invalid(field, `${value.length} characters, at most ${max}`);
}

/** A checked `GetOrchestratorInfoRequest`, decoded: spread it into `ChallengeGuard.check`. */
export interface CheckedInfoRequest {
  broadcaster: Address;
  challenge: Hex;
  issuedAtMs: bigint;
  signature: Hex;
  serviceId: string;
  region: string;
}

/**
 * Checks the fields of a `GetOrchestratorInfoRequest` (broadcaster 20 bytes, challenge 32, signature 65,
 * `serviceId` and `region` at most 64 characters) and returns them decoded. Throws
 * `WireError('InvalidMessage')` with `details.field`. Freshness and the signature itself are
 * `ChallengeGuard`'s: `guard.check({ ...checkInfoRequest(req), orchestrator: self })`.
 */
export function checkInfoRequest(req: GetOrchestratorInfoRequest): CheckedInfoRequest {
  const broadcaster = bytesToAddress(req.broadcaster, 'broadcaster');
  const challenge = fixedBytesToHex(req.challenge, 32, 'challenge');
  const signature = fixedBytesToHex(req.signature, 65, 'signature');
  checkChars(req.serviceId, FIELD_LIMITS.nameChars, 'serviceId');
  checkChars(req.region, FIELD_LIMITS.nameChars, 'region');
  return {
    broadcaster,
    challenge,
    issuedAtMs: req.issuedAtMs,
    signature,
    serviceId: req.serviceId,
    region: req.region,
  };
}

/** A checked `TranscodeRequest`, decoded. Profiles still go through `profileSchema` (src/media) before use. */
export interface CheckedTranscodeRequest {
  streamId: string;
  seq: bigint;
  durationMs: number;
  profiles: Profile[];
  segment: Uint8Array;
  payment: Payment;
  /** Request signature fields, as sent: `TranscodeRequestGuard` (src/rpc/request-auth.ts) judges them. */
  issuedAtMs: bigint;
  nonce: Uint8Array;
  signature: Uint8Array;
}

const STREAM_ID = /^[A-Za-z0-9_.-]+$/;

/**
 * Checks the fields of a `TranscodeRequest` and returns them decoded:
 * - `metadata` present; `streamId` 1–128 characters of `[A-Za-z0-9_.-]`, not `.` or `..` (stream ids name
 *   directories); `durationMs` 1–60 000;
 * - 1–{@link LIMITS}.profiles profiles with unique names of 1–64 characters, width and height even within
 *   16–7680 and 16–4320, fps 1–240, bitrate 1–100 000 000, gop finite and not negative;
 * - `segment` not empty, at most {@link LIMITS}.segmentBytes;
 * - `payment` present and decodable (`paymentFromProto`: sender 20 bytes, params present and well formed, at
 *   most {@link LIMITS}.tickets tickets, each signature 65 bytes and nonce at most 32 bytes).
 *
 * Throws `WireError('InvalidMessage')` with `details.field` (`metadata.profiles[2].width`,
 * `payment.tickets[3].signature`, …) for the first field out of bounds. Media-level checks (the profile
 * against `profileSchema`, the segment's format) and payment validity belong to their subsystems.
 */
export function checkTranscodeRequest(req: TranscodeRequest): CheckedTranscodeRequest {
  const m = req.metadata;
  if (!m) throw invalid('metadata', 'missing');
  if (m.streamId.length === 0) throw invalid('metadata.streamId', 'empty');
  checkChars(m.streamId, FIELD_LIMITS.streamIdChars, 'metadata.streamId');
  if (!STREAM_ID.test(m.streamId) || m.streamId === '.' || m.streamId === '..') {
    throw invalid('metadata.streamId', 'only letters, digits, "_", "." and "-" (and not "." or "..")');
  }
  if (m.durationMs < 1 || m.durationMs > FIELD_LIMITS.maxDurationMs) {
    throw invalid('metadata.durationMs', `${m.durationMs} ms, expected 1–${FIELD_LIMITS.maxDurationMs}`);
  }
  if (m.profiles.length === 0) throw invalid('metadata.profiles', 'none; ask for at least one');
  if (m.profiles.length > LIMITS.profiles) {
    throw invalid('metadata.profiles', `${m.profiles.length}, at most ${LIMITS.profiles}`);
  }
  const names = new Set<string>();
  const profiles = m.profiles.map((p, i) => {
    const field = `metadata.profiles[${i}]`;
    if (p.name.length === 0) throw invalid(`${field}.name`, 'empty');
    checkChars(p.name, FIELD_LIMITS.nameChars, `${field}.name`);
    if (names.has(p.name)) throw invalid(`${field}.name`, `"${p.name}" is asked twice; names must be unique`);
    names.add(p.name);
    checkDimension(p.width, FIELD_LIMITS.maxWidth, `${field}.width`);
    checkDimension(p.height, FIELD_LIMITS.maxHeight, `${field}.height`);
    if (!(p.fps >= 1 && p.fps <= FIELD_LIMITS.maxFps)) {
      throw invalid(`${field}.fps`, `${p.fps}, expected 1–${FIELD_LIMITS.maxFps}`);
    }
    if (p.bitrate < 1 || p.bitrate > FIELD_LIMITS.maxBitrate) {
      throw invalid(`${field}.bitrate`, `${p.bitrate} bit/s, expected 1–${FIELD_LIMITS.maxBitrate}`);
    }
    if (!(Number.isFinite(p.gop) && p.gop >= 0)) throw invalid(`${field}.gop`, `${p.gop}, expected ≥ 0`);
    return profileFromProto(p);
  });
  if (req.segment.length === 0) throw invalid('segment', 'empty');
  if (req.segment.length > LIMITS.segmentBytes) {
    throw invalid('segment', `${req.segment.length} bytes, at most ${LIMITS.segmentBytes}`);
  }
  return {
    streamId: m.streamId,
    seq: m.seq,
    durationMs: m.durationMs,
    profiles,
    segment: req.segment,
    payment: paymentFromProto(req.payment, 'payment'),
    issuedAtMs: req.issuedAtMs,
    nonce: req.nonce,
    signature: req.signature,
  };
}

function checkDimension(value: number, max: number, field: string): void {
  if (value < FIELD_LIMITS.minDimension || value > max || value % 2 !== 0) {
    throw invalid(
      field,
      `${value} pixels, expected an even number within ${FIELD_LIMITS.minDimension}–${max}`,
    );
  }
}
