import secp256k1 from 'secp256k1';
import {
  type Address,
  bytesToHex,
  encodePacked,
  getAddress,
  type Hex,
  hashTypedData,
  hexToBytes,
  keccak256,
} from 'viem';

/**
 * A probabilistic micropayment ticket. Signed by the sender as EIP-712 typed data whose domain names the
 * TicketBroker and chain id, so a ticket is worthless on any other deployment or chain.
 */
export interface Ticket {
  recipient: Address;
  sender: Address;
  /** Wei paid if the ticket wins. */
  faceValue: bigint;
  /** Win probability as a fraction of 2^256 (a ticket wins when its random number is below it). */
  winProb: bigint;
  senderNonce: bigint;
  /** keccak256 of the recipient's secret random number for this ticket. */
  recipientRandHash: Hex;
  creationRound: bigint;
  creationRoundBlockHash: Hex;
}

export interface TicketDomain {
  chainId: number;
  /** The TicketBroker contract. */
  verifyingContract: Address;
}

export const TICKET_DOMAIN_NAME = 'Streamflow TicketBroker';
export const TICKET_DOMAIN_VERSION = '1';

export const TICKET_TYPES = {
  Ticket: [
    { name: 'recipient', type: 'address' },
    { name: 'sender', type: 'address' },
    { name: 'faceValue', type: 'uint256' },
    { name: 'winProb', type: 'uint256' },
    { name: 'senderNonce', type: 'uint256' },
    { name: 'recipientRandHash', type: 'bytes32' },
    { name: 'creationRound', type: 'uint256' },
    { name: 'creationRoundBlockHash', type: 'bytes32' },
  ],
} as const;

/** secp256k1 group order / 2: signatures with s above it are the malleable twins and are refused. */
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/** The EIP-712 digest the sender signs and the TicketBroker recomputes. */
export function ticketHash(ticket: Ticket, domain: TicketDomain): Hex {
  return hashTypedData({
    domain: {
      name: TICKET_DOMAIN_NAME,
      version: TICKET_DOMAIN_VERSION,
      chainId: domain.chainId,
      verifyingContract: domain.verifyingContract,
    },
    types: TICKET_TYPES,
    primaryType: 'Ticket',
    message: ticket,
  });
}

/** Signs a digest with libsecp256k1: a 65-byte r‖s‖v signature, low s, v ∈ {27, 28}. */
export function signDigest(digest: Hex, privateKey: Uint8Array): Hex {
  return bytesToHex(signDigestBytes(hexToBytes(digest), privateKey));
}

/** `signDigest` on bytes: signs a 32-byte digest into `out` (65 bytes, r ‖ s ‖ v), without hex round trips. */
export function signDigestBytes(
  digest: Uint8Array,
  privateKey: Uint8Array,
  out = new Uint8Array(65),
): Uint8Array {
  // libsecp256k1 always produces low-s signatures (RFC 6979 nonces, normalised s).
  const { recid } = secp256k1.ecdsaSign(digest, privateKey, {}, out.subarray(0, 64));
  out[64] = 27 + recid;
  return out;
}

/** HALF_N as 32 big-endian bytes, for byte-wise low-s checks on the hot path. */
const HALF_N_BYTES = (() => {
  const out = new Uint8Array(32);
  const hex = HALF_N.toString(16).padStart(64, '0');
  for (let i = 0; i < 32; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
})();

/**
 * Whether 65 bytes at `offset` are a canonical signature: v 27/28, 0 < s ≤ n/2. The byte-level form of the
 * rule `recoverSigner` applies (THREATS.md 2).
 */
export function isCanonicalSignature(sig: Uint8Array, offset = 0): boolean {
  const v = sig[offset + 64];
  if (v !== 27 && v !== 28) return false;
  let zero = true;
  let cmp = 0;
  for (let i = 0; i < 32; i++) {
    const b = sig[offset + 32 + i] as number;
    if (b !== 0) zero = false;
    if (cmp === 0) cmp = b - (HALF_N_BYTES[i] as number);
  }
  return !zero && cmp <= 0;
}

/**
 * The signer of a digest, or undefined for anything but a canonical 65-byte low-s signature with v 27/28.
 * EIP-2098 64-byte and high-s forms are refused: each would give a ticket extra lottery draws.
 */
export function recoverSigner(digest: Hex, signature: Hex): Address | undefined {
  if (signature.length !== 132) return undefined;
  const sig = hexToBytes(signature);
  const v = sig[64];
  if (v !== 27 && v !== 28) return undefined;
  const s = BigInt(bytesToHex(sig.subarray(32, 64)));
  if (s === 0n || s > HALF_N) return undefined;
  try {
    const pub = secp256k1.ecdsaRecover(sig.subarray(0, 64), v - 27, hexToBytes(digest), false);
    return getAddress(`0x${keccak256(pub.subarray(1)).slice(-40)}`);
  } catch {
    return undefined;
  }
}

/** Whether a signed ticket wins: uint256(keccak256(sig ‖ recipientRand)) < winProb, as the contract checks. */
export function isWinningTicket(signature: Hex, recipientRand: bigint, winProb: bigint): boolean {
  return BigInt(keccak256(encodePacked(['bytes', 'uint256'], [signature, recipientRand]))) < winProb;
}

/** The expected value of a ticket in wei: faceValue × winProb / 2^256. */
export function ticketExpectedValue(faceValue: bigint, winProb: bigint): bigint {
  return (faceValue * winProb) >> 256n;
}
