import { type Address, domainSeparator, type Hex, hexToBytes, keccak256, toBytes } from 'viem';
import { keccak256Into, keccakAbsorbBlock, keccakFinish, keccakState } from './keccak.js';
import { TICKET_DOMAIN_NAME, TICKET_DOMAIN_VERSION, type Ticket, type TicketDomain } from './ticket.js';

/** keccak256 of the EIP-712 type string of `Ticket` (fields in the order of `TICKET_TYPES`). */
export const TICKET_TYPEHASH: Hex = keccak256(
  toBytes(
    'Ticket(address recipient,address sender,uint256 faceValue,uint256 winProb,uint256 senderNonce,' +
      'bytes32 recipientRandHash,uint256 creationRound,bytes32 creationRoundBlockHash)',
  ),
);

/** The struct encoding is 9 words; the nonce is word 5, in the second 136-byte keccak block. */
const STRUCT_BYTES = 9 * 32;
const NONCE_OFFSET = 5 * 32;
const U256_MAX = (1n << 256n) - 1n;

/**
 * A ticket with every field but the nonce encoded once: the 288-byte struct encoding, and the keccak state
 * after its first block (type hash, recipient, sender, faceValue, part of winProb), which no nonce changes.
 * Signing or checking a ticket then costs two permutations for the struct and one for the digest instead of
 * viem's `hashTypedData` (which re-encodes everything through hex strings).
 */
export interface PreparedTicket {
  readonly fields: Readonly<Omit<Ticket, 'senderNonce'>>;
  /** Struct encoding; bytes 160–191 are overwritten with each nonce. */
  readonly struct: Uint8Array;
  readonly view: DataView;
  /** Keccak state after absorbing `struct[0, 136)`. */
  readonly prefixState: Int32Array;
}

/** Writes a uint256 big-endian at `offset`. */
export function writeUint256(out: Uint8Array, offset: number, value: bigint): void {
  if (value < 0n || value > U256_MAX) throw new RangeError(`not a uint256: ${value}`);
  const hex = value.toString(16).padStart(64, '0');
  for (let i = 0; i < 32; i++) out[offset + i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
}

function writeAddress(out: Uint8Array, offset: number, address: Address): void {
  out.fill(0, offset, offset + 12);
  out.set(hexToBytes(address), offset + 12);
}

/**
 * EIP-712 digests of tickets for one TicketBroker, computed with a precomputed domain separator and type
 * hash and a local keccak. Gives exactly `ticketHash()` (checked by property tests), 4–5× faster. Not
 * re-entrant: digests go to a shared buffer unless `out` is given, and callers are synchronous.
 */
export class TicketHasher {
  readonly domain: TicketDomain;
  /** EIP-712 domain separator of the TicketBroker. */
  readonly domainSeparator: Uint8Array;
  private readonly digestInput = new Uint8Array(66);
  private readonly state = keccakState();

  constructor(domain: TicketDomain) {
    this.domain = domain;
    this.domainSeparator = hexToBytes(
      domainSeparator({
        domain: {
          name: TICKET_DOMAIN_NAME,
          version: TICKET_DOMAIN_VERSION,
          chainId: domain.chainId,
          verifyingContract: domain.verifyingContract,
        },
      }),
    );
    this.digestInput[0] = 0x19;
    this.digestInput[1] = 0x01;
    this.digestInput.set(this.domainSeparator, 2);
  }

  /** Encodes the fields shared by all tickets under the same params. */
  prepare(fields: Omit<Ticket, 'senderNonce'>): PreparedTicket {
    const struct = new Uint8Array(STRUCT_BYTES);
    struct.set(hexToBytes(TICKET_TYPEHASH), 0);
    writeAddress(struct, 32, fields.recipient);
    writeAddress(struct, 64, fields.sender);
    writeUint256(struct, 96, fields.faceValue);
    writeUint256(struct, 128, fields.winProb);
    const randHash = hexToBytes(fields.recipientRandHash);
    const blockHash = hexToBytes(fields.creationRoundBlockHash);
    if (randHash.length !== 32 || blockHash.length !== 32)
      throw new RangeError('ticket hashes must be 32 bytes');
    struct.set(randHash, 192);
    writeUint256(struct, 224, fields.creationRound);
    struct.set(blockHash, 256);
    const prefixState = keccakState();
    keccakAbsorbBlock(prefixState, struct, 0);
    return {
      fields: { ...fields },
      struct,
      view: new DataView(struct.buffer, struct.byteOffset, struct.byteLength),
      prefixState,
    };
  }

  /**
   * The EIP-712 digest of the prepared ticket with `nonce`, written to `out` (32 bytes).
   * @throws RangeError when the nonce is not a uint256
   */
  digest(prepared: PreparedTicket, nonce: bigint, out: Uint8Array = new Uint8Array(32)): Uint8Array {
    if (nonce >= 0n && nonce <= 0xffff_ffff_ffff_ffffn) {
      prepared.struct.fill(0, NONCE_OFFSET, NONCE_OFFSET + 24);
      prepared.view.setBigUint64(NONCE_OFFSET + 24, nonce);
    } else {
      writeUint256(prepared.struct, NONCE_OFFSET, nonce);
    }
    const s = this.state;
    s.set(prepared.prefixState);
    keccakAbsorbBlock(s, prepared.struct, 136);
    keccakFinish(s, prepared.struct, 272, STRUCT_BYTES - 272, this.digestInput, 34);
    return keccak256Into(this.digestInput, 0, 66, out, 0);
  }

  /** The digest of a whole ticket; the same value as `ticketHash(ticket, domain)`, as bytes. */
  hash(ticket: Ticket, out?: Uint8Array): Uint8Array {
    return this.digest(this.prepare(ticket), ticket.senderNonce, out);
  }
}
