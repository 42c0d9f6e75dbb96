import secp256k1 from 'secp256k1';
import { type Address, bytesToHex, type Hex, hexToBytes, keccak256, toHex, zeroAddress } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import {
  isWinningTicket,
  recoverSigner,
  signDigest,
  type Ticket,
  ticketExpectedValue,
  ticketHash,
} from '../../../src/pm/ticket.js';

const key = hexToBytes(keccak256(toHex('sender key')));
const sender = privateKeyToAccount(bytesToHex(key));
const domain = { chainId: 31337, verifyingContract: '0x00000000000000000000000000000000000000b0' as Address };
const ticket: Ticket = {
  recipient: '0x00000000000000000000000000000000000000a1',
  sender: sender.address,
  faceValue: 10n ** 18n,
  winProb: 2n ** 256n / 50n,
  senderNonce: 1n,
  recipientRandHash: keccak256(toHex(42n, { size: 32 })),
  creationRound: 7n,
  creationRoundBlockHash: keccak256(toHex('block')),
};
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

describe('ticket signatures', () => {
  it('signs EIP-712 tickets that viem verifies as typed data from the same sender', async () => {
    const digest = ticketHash(ticket, domain);
    const sig = signDigest(digest, key);
    expect(recoverSigner(digest, sig)).toBe(sender.address);
    const viemSig = await sender.signTypedData({
      domain: { name: 'Streamflow TicketBroker', version: '1', ...domain },
      types: {
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
      },
      primaryType: 'Ticket',
      message: ticket,
    });
    expect(sig).toBe(viemSig);
  });

  it('binds the signature to the TicketBroker address and chain id', () => {
    const sig = signDigest(ticketHash(ticket, domain), key);
    const other = ticketHash(ticket, { ...domain, chainId: 1 });
    const otherBroker = ticketHash(ticket, { ...domain, verifyingContract: zeroAddress });
    expect(recoverSigner(other, sig)).not.toBe(sender.address);
    expect(recoverSigner(otherBroker, sig)).not.toBe(sender.address);
  });

  it('refuses the high-s twin and the 64-byte EIP-2098 form of a valid signature', () => {
    const digest = ticketHash(ticket, domain);
    const sig = hexToBytes(signDigest(digest, key));
    const s = BigInt(bytesToHex(sig.subarray(32, 64)));
    const high = new Uint8Array(sig);
    high.set(hexToBytes(toHex(N - s, { size: 32 })), 32);
    high[64] = sig[64] === 27 ? 28 : 27;
    // The twin is a valid ECDSA signature of the same digest; only the low-s rule tells them apart.
    expect(
      secp256k1.ecdsaVerify(
        secp256k1.signatureNormalize(high.slice(0, 64)),
        hexToBytes(digest),
        secp256k1.publicKeyCreate(key),
      ),
    ).toBe(true);
    expect(recoverSigner(digest, bytesToHex(high))).toBeUndefined();
    const compact = new Uint8Array(sig.subarray(0, 64));
    if (sig[64] === 28) compact[32] = (compact[32] ?? 0) | 0x80;
    expect(recoverSigner(digest, bytesToHex(compact) as Hex)).toBeUndefined();
  });

  it('computes wins and expected value as the contract does', () => {
    const sig = signDigest(ticketHash(ticket, domain), key);
    expect(isWinningTicket(sig, 42n, 2n ** 256n - 1n)).toBe(true);
    expect(isWinningTicket(sig, 42n, 0n)).toBe(false);
    expect(ticketExpectedValue(10n ** 18n, 2n ** 256n / 50n)).toBe(10n ** 18n / 50n - 1n);
  });
});
