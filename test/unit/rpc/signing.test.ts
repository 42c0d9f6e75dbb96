import fc from 'fast-check';
import { type Address, bytesToHex, type Hex, keccak256 } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import type { TicketParams } from '../../../src/pm/types.js';
import {
  challengeDigest,
  orchestratorInfoDigest,
  receiptDigest,
  recoverWireSigner,
  signWireDigest,
} from '../../../src/rpc/signing.js';

// Anvil's first well-known development key: never holds real funds.
const orchestrator = privateKeyToAccount(
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
);
const broadcaster: Address = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const h = (n: number): Hex => bytesToHex(new Uint8Array(32).fill(n));

const params: TicketParams = {
  recipient: orchestrator.address,
  sender: broadcaster,
  faceValue: 10n ** 18n,
  winProb: 1n << 250n,
  recipientRandHash: h(1),
  seed: h(2),
  creationRound: 7n,
  creationRoundBlockHash: h(3),
  expirationRound: 9n,
  expiresAt: 1_800_000_000_000,
};

const info = {
  address: orchestrator.address,
  serviceUri: 'https://o1.example:8935',
  pricePerPixel: 1_200n,
  ticketParams: params,
  services: ['h264'],
  regions: ['eu-west'],
  challenge: h(4),
  broadcaster,
};

const receipt = {
  streamId: 'stream-1',
  seq: 42n,
  inputHash: keccak256(new Uint8Array([1, 2, 3])),
  renditions: [
    { profile: '360p30', hash: h(5) },
    { profile: '240p30', hash: h(6) },
  ],
};

describe('signed digests', () => {
  it('recovers the orchestrator from its signed info and receipt', async () => {
    for (const digest of [orchestratorInfoDigest(info), receiptDigest(receipt)]) {
      const signature = await signWireDigest(orchestrator, digest);
      expect(await recoverWireSigner(digest, signature), digest).toBe(orchestrator.address);
    }
  });

  it('changes the receipt digest when any signed field changes', () => {
    const base = receiptDigest(receipt);
    const variants = {
      streamId: { ...receipt, streamId: 'stream-2' },
      seq: { ...receipt, seq: 43n },
      inputHash: { ...receipt, inputHash: h(9) },
      order: { ...receipt, renditions: [...receipt.renditions].reverse() },
      hash: { ...receipt, renditions: [receipt.renditions[0], { profile: '240p30', hash: h(7) }] },
      dropped: { ...receipt, renditions: receipt.renditions.slice(0, 1) },
    };
    for (const [name, variant] of Object.entries(variants)) {
      expect(receiptDigest(variant as typeof receipt), name).not.toBe(base);
    }
  });

  it('changes the info digest with the price, the params or the challenge', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }), (price) => {
        fc.pre(price !== info.pricePerPixel);
        expect(orchestratorInfoDigest({ ...info, pricePerPixel: price })).not.toBe(
          orchestratorInfoDigest(info),
        );
      }),
      { seed: 0x5eed, numRuns: 50 },
    );
    const base = orchestratorInfoDigest(info);
    expect(orchestratorInfoDigest({ ...info, ticketParams: { ...params, faceValue: 1n } })).not.toBe(base);
    expect(orchestratorInfoDigest({ ...info, challenge: h(8) })).not.toBe(base);
  });

  it('binds a broadcaster challenge to the orchestrator and the time', () => {
    const base = { challenge: h(4), issuedAtMs: 1_700_000_000_000n, orchestrator: orchestrator.address };
    expect(challengeDigest({ ...base, orchestrator: broadcaster })).not.toBe(challengeDigest(base));
    expect(challengeDigest({ ...base, issuedAtMs: base.issuedAtMs + 1n })).not.toBe(challengeDigest(base));
  });
});
