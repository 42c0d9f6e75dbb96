import { create } from '@bufbuild/protobuf';
import { type Address, bytesToHex, getAddress, type Hex, hexToBytes, isHex } from 'viem';
import type { Profile } from '../media/profiles.js';
import type { Rendition as MediaRendition } from '../media/transcode.js';
import type { Payment, PaymentTicket, TicketParams } from '../pm/types.js';
import { WireError } from './errors.js';
import {
  H264Profile,
  type Payment as PaymentMessage,
  PaymentSchema,
  type PaymentTicket as PaymentTicketMessage,
  PaymentTicketSchema,
  type Profile as ProfileMessage,
  ProfileSchema,
  type Rendition as RenditionMessage,
  RenditionSchema,
  type TicketParams as TicketParamsMessage,
  TicketParamsSchema,
} from './gen/streamflow/v1/common_pb.js';
import { LIMITS } from './options.js';

const UINT256_MAX = (1n << 256n) - 1n;

function invalid(field: string, why: string): WireError {
  return new WireError('InvalidMessage', `${field}: ${why}`, { field });
}

/**
 * A uint256 as minimal big-endian bytes: no leading zero byte, zero as the empty array. Minimal so that
 * one value has one encoding, which is what a signature over the message needs.
 */
export function uintToBytes(value: bigint, field = 'value'): Uint8Array {
  if (value < 0n || value > UINT256_MAX) throw invalid(field, `${value} is outside uint256`);
  if (value === 0n) return new Uint8Array(0);
  const hex = value.toString(16);
  return hexToBytes(`0x${hex.length % 2 === 0 ? hex : `0${hex}`}`);
}

/** Reads a uint256 written by {@link uintToBytes}; refuses more than 32 bytes or a leading zero byte. */
export function bytesToUint(bytes: Uint8Array, field = 'value'): bigint {
  if (bytes.length === 0) return 0n;
  if (bytes.length > 32) throw invalid(field, `${bytes.length} bytes is more than a uint256`);
  if (bytes[0] === 0) throw invalid(field, 'leading zero byte: uint256 must be minimal big-endian');
  return BigInt(bytesToHex(bytes));
}

/** Hex to raw bytes, checking the length the field must have. */
export function hexToFixedBytes(hex: Hex, length: number, field: string): Uint8Array {
  if (!isHex(hex, { strict: true })) throw invalid(field, 'not hex');
  const bytes = hexToBytes(hex);
  if (bytes.length !== length) throw invalid(field, `${bytes.length} bytes, expected ${length}`);
  return bytes;
}

/** Raw bytes to hex, checking the length the field must have. */
export function fixedBytesToHex(bytes: Uint8Array, length: number, field: string): Hex {
  if (bytes.length !== length) throw invalid(field, `${bytes.length} bytes, expected ${length}`);
  return bytesToHex(bytes);
}

export function addressToBytes(address: Address, field = 'address'): Uint8Array {
  return hexToFixedBytes(address, 20, field);
}

/** 20 bytes to a checksummed address. */
export function bytesToAddress(bytes: Uint8Array, field = 'address'): Address {
  return getAddress(fixedBytesToHex(bytes, 20, field));
}

function msToUint64(ms: number, field: string): bigint {
  if (!Number.isSafeInteger(ms) || ms < 0) throw invalid(field, `${ms} is not a non-negative integer`);
  return BigInt(ms);
}

function uint64ToMs(value: bigint, field: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(field, `${value} ms is beyond any date`);
  return Number(value);
}

export function ticketParamsToProto(p: TicketParams): TicketParamsMessage {
  return create(TicketParamsSchema, {
    recipient: addressToBytes(p.recipient, 'ticketParams.recipient'),
    sender: addressToBytes(p.sender, 'ticketParams.sender'),
    faceValue: uintToBytes(p.faceValue, 'ticketParams.faceValue'),
    winProb: uintToBytes(p.winProb, 'ticketParams.winProb'),
    recipientRandHash: hexToFixedBytes(p.recipientRandHash, 32, 'ticketParams.recipientRandHash'),
    seed: hexToFixedBytes(p.seed, 32, 'ticketParams.seed'),
    creationRound: uintToBytes(p.creationRound, 'ticketParams.creationRound'),
    creationRoundBlockHash: hexToFixedBytes(
      p.creationRoundBlockHash,
      32,
      'ticketParams.creationRoundBlockHash',
    ),
    expirationRound: uintToBytes(p.expirationRound, 'ticketParams.expirationRound'),
    expiresAtMs: msToUint64(p.expiresAt, 'ticketParams.expiresAt'),
  });
}

/** Throws `WireError('InvalidMessage')` naming the field when a value is malformed. */
export function ticketParamsFromProto(
  m: TicketParamsMessage | undefined,
  field = 'ticketParams',
): TicketParams {
  if (!m) throw invalid(field, 'missing');
  return {
    recipient: bytesToAddress(m.recipient, `${field}.recipient`),
    sender: bytesToAddress(m.sender, `${field}.sender`),
    faceValue: bytesToUint(m.faceValue, `${field}.faceValue`),
    winProb: bytesToUint(m.winProb, `${field}.winProb`),
    recipientRandHash: fixedBytesToHex(m.recipientRandHash, 32, `${field}.recipientRandHash`),
    seed: fixedBytesToHex(m.seed, 32, `${field}.seed`),
    creationRound: bytesToUint(m.creationRound, `${field}.creationRound`),
    creationRoundBlockHash: fixedBytesToHex(m.creationRoundBlockHash, 32, `${field}.creationRoundBlockHash`),
    expirationRound: bytesToUint(m.expirationRound, `${field}.expirationRound`),
    expiresAt: uint64ToMs(m.expiresAtMs, `${field}.expiresAt`),
  };
}

function paymentTicketToProto(t: PaymentTicket, i: number): PaymentTicketMessage {
  const field = `payment.tickets[${i}]`;
  return create(PaymentTicketSchema, {
    senderNonce: uintToBytes(t.senderNonce, `${field}.senderNonce`),
    signature:
      typeof t.signature === 'string'
        ? hexToFixedBytes(t.signature, 65, `${field}.signature`)
        : checkLength(t.signature, 65, `${field}.signature`),
  });
}

function checkLength(bytes: Uint8Array, length: number, field: string): Uint8Array {
  if (bytes.length !== length) throw invalid(field, `${bytes.length} bytes, expected ${length}`);
  return bytes;
}

export function paymentToProto(p: Payment): PaymentMessage {
  if (p.tickets.length > LIMITS.tickets) throw invalid('payment.tickets', `more than ${LIMITS.tickets}`);
  return create(PaymentSchema, {
    sender: addressToBytes(p.sender, 'payment.sender'),
    params: ticketParamsToProto(p.params),
    tickets: p.tickets.map(paymentTicketToProto),
  });
}

/** Signatures come back as hex (the form src/pm hashes and stores). */
export function paymentFromProto(m: PaymentMessage | undefined, field = 'payment'): Payment {
  if (!m) throw invalid(field, 'missing');
  if (m.tickets.length > LIMITS.tickets) throw invalid(`${field}.tickets`, `more than ${LIMITS.tickets}`);
  return {
    sender: bytesToAddress(m.sender, `${field}.sender`),
    params: ticketParamsFromProto(m.params, `${field}.params`),
    tickets: m.tickets.map((t, i) => ({
      senderNonce: bytesToUint(t.senderNonce, `${field}.tickets[${i}].senderNonce`),
      signature: fixedBytesToHex(t.signature, 65, `${field}.tickets[${i}].signature`),
    })),
  };
}

const H264_TO_PROTO = {
  baseline: H264Profile.BASELINE,
  main: H264Profile.MAIN,
  high: H264Profile.HIGH,
} as const;

export function profileToProto(p: Profile): ProfileMessage {
  return create(ProfileSchema, {
    name: p.name,
    width: p.width,
    height: p.height,
    fps: p.fps,
    bitrate: p.bitrate,
    gop: p.gop,
    h264Profile: p.h264Profile ? H264_TO_PROTO[p.h264Profile] : H264Profile.UNSPECIFIED,
  });
}

/**
 * Carries the fields as sent; the receiver validates them with `profileSchema` from src/media before use.
 * `h264Profile` is absent when unspecified (the media default applies).
 */
export function profileFromProto(m: ProfileMessage): Profile {
  const profile: Profile = {
    name: m.name,
    width: m.width,
    height: m.height,
    fps: m.fps,
    bitrate: m.bitrate,
    gop: m.gop,
  };
  switch (m.h264Profile) {
    case H264Profile.BASELINE:
      profile.h264Profile = 'baseline';
      break;
    case H264Profile.MAIN:
      profile.h264Profile = 'main';
      break;
    case H264Profile.HIGH:
      profile.h264Profile = 'high';
      break;
    default:
      break;
  }
  return profile;
}

/** A rendition as it travels (orchestrator → broadcaster, transcoder → orchestrator). The receiver re-reads
 * the facts from the bytes; the ones sent are advisory. */
export function renditionToProto(r: MediaRendition): RenditionMessage {
  return create(RenditionSchema, {
    profile: r.profile.name,
    data: r.bytes,
    facts: { width: r.width, height: r.height, fps: r.fps, frames: r.frames, pixels: BigInt(r.pixels) },
  });
}
