import { create } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';
import { hexToBytes } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { LocalTranscoder } from '../../../src/media/transcode.js';
import { JobService } from '../../../src/orchestrator/service.js';
import { WireError } from '../../../src/rpc/errors.js';
import { GetOrchestratorInfoRequestSchema } from '../../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { tools } from '../media/fixtures.js';

describe('JobService.GetOrchestratorInfo', () => {
  it('answers ChainUnavailable, not Internal, when the ticket params cannot be read from the chain', async () => {
    const orchestrator = privateKeyToAccount(generatePrivateKey());
    const broadcaster = privateKeyToAccount(generatePrivateKey());
    const service = new JobService(
      { serviceUri: '', pricePerPixel: 1n, regionPrices: {}, services: ['transcode/h264'], regions: [] },
      {
        address: orchestrator.address,
        signer: orchestrator,
        recipient: {
          // What viem throws when the RPC endpoint is down: a plain error, no code of ours.
          ticketParams: async () => {
            throw new Error('HTTP request failed. URL: http://127.0.0.1:8545 Details: fetch failed');
          },
          receivePayment: async () => {
            throw new Error('not used');
          },
          ledger: {} as never,
        },
        transcoder: new LocalTranscoder({}, { tools }),
        capacityLeft: () => 1,
        challenges: { check: async () => broadcaster.address },
      },
    );
    const req = create(GetOrchestratorInfoRequestSchema, {
      broadcaster: hexToBytes(broadcaster.address),
      challenge: new Uint8Array(32).fill(7),
      issuedAtMs: BigInt(Date.now()),
      signature: new Uint8Array(65).fill(1),
    });
    const ctx = { signal: new AbortController().signal } as HandlerContext;
    const err = await service.getOrchestratorInfo(req, ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WireError);
    expect((err as WireError).code).toBe('ChainUnavailable');
    expect((err as WireError).message).not.toContain('8545');
  });
});
