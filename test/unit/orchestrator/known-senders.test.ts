import { create } from '@bufbuild/protobuf';
import type { HandlerContext } from '@connectrpc/connect';
import type { Address, Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import type { SegmentTranscoder } from '../../../src/media/transcode.js';
import { JobService, type JobServiceOptions } from '../../../src/orchestrator/service.js';
import type { Payment, TicketParams } from '../../../src/pm/types.js';
import { paymentToProto } from '../../../src/rpc/convert.js';
import { fromConnectError, WireError } from '../../../src/rpc/errors.js';
import {
  type TranscodeReply,
  TranscodeRequestSchema,
} from '../../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import type { SignedTranscodeRequest } from '../../../src/rpc/request-auth.js';
import { PEER_HEADER } from '../../../src/rpc/server.js';
import { addressOf, keyFor } from '../pm/helpers.js';

// The known-sender exemption of the request error budget, as pure logic: the request guard is a fake that
// accepts signatures starting with 0x01, so "valid" and "forged" are chosen per request and every check counts.

const orchestrator = privateKeyToAccount(`0x${'11'.repeat(32)}`);
const alice = addressOf(keyFor('alice'));
const bob = addressOf(keyFor('bob'));
const mallory = addressOf(keyFor('mallory'));

/** Signatures starting with 1 verify; anything else is `InvalidRequestSignature`. Counts every check. */
class FakeGuard {
  checks = 0;
  async check(req: SignedTranscodeRequest): Promise<{ sender: Address; segmentHash: Hex }> {
    this.checks++;
    const sig = typeof req.signature === 'string' ? req.signature : '';
    if (req.signature instanceof Uint8Array ? req.signature[0] === 1 : sig.startsWith('0x01')) {
      return { sender: req.sender, segmentHash: `0x${'00'.repeat(32)}` };
    }
    throw new WireError('InvalidRequestSignature', 'forged', { reason: 'wrongSigner' });
  }
}

function params(sender: Address): TicketParams {
  return {
    recipient: orchestrator.address,
    sender,
    faceValue: 1n,
    winProb: 1n,
    recipientRandHash: `0x${'22'.repeat(32)}`,
    seed: `0x${'33'.repeat(32)}`,
    creationRound: 1n,
    creationRoundBlockHash: `0x${'44'.repeat(32)}`,
    expirationRound: 2n,
    expiresAt: 0,
  };
}

function setup(options: Partial<JobServiceOptions> = {}) {
  const clock = { now: 1_000_000 };
  const guard = new FakeGuard();
  const notCalled = (): never => {
    throw new Error('not reached: no tickets and no credit');
  };
  const service = new JobService(
    {
      serviceUri: '',
      pricePerPixel: 1n,
      regionPrices: {},
      services: ['transcode/h264'],
      regions: [],
      requestErrorBudget: { maxErrors: 2, windowMs: 60_000, refuseMs: 24 * 3_600_000 },
      ...options,
    },
    {
      address: orchestrator.address,
      signer: orchestrator,
      // No tickets, no credit: an authenticated request ends in `InsufficientCredit` before any work, which is
      // all these tests need to tell "verified" from "refused by the budget".
      recipient: {
        ticketParams: notCalled,
        receivePayment: notCalled,
        ledger: { balance: () => 0n } as never,
      },
      transcoder: { transcode: notCalled } as unknown as SegmentTranscoder,
      capacityLeft: () => 1,
      challenges: { check: notCalled },
      requests: guard,
      now: () => clock.now,
    },
  );
  /** What one request from `remote` naming `sender` ends with: the reply's error code or the RPC error's. */
  const call = async (remote: string, sender: Address, valid: boolean): Promise<string> => {
    const payment: Payment = { sender, params: params(sender), tickets: [] };
    const req = create(TranscodeRequestSchema, {
      metadata: {
        streamId: 's',
        seq: 0n,
        durationMs: 2_000,
        profiles: [{ name: 'p', width: 320, height: 180, fps: 30, bitrate: 500_000, gop: 2 }],
      },
      segment: new Uint8Array(188),
      payment: paymentToProto(payment),
      issuedAtMs: BigInt(clock.now),
      nonce: new Uint8Array(16),
      signature: new Uint8Array(65).fill(valid ? 1 : 2),
    });
    const ctx = {
      requestHeader: new Headers({ [PEER_HEADER]: remote }),
      signal: new AbortController().signal,
    } as unknown as HandlerContext;
    try {
      const reply: TranscodeReply = await service.transcode(req, ctx);
      return reply.result.case === 'error' ? reply.result.value.code : (reply.result.case ?? 'none');
    } catch (err) {
      const e = fromConnectError(err);
      if (e.code === 'InvalidMessage') throw err;
      return e.code;
    }
  };
  /** Spends the budget of `remote` with forgeries naming Mallory. */
  const flood = async (remote: string) => {
    for (let i = 0; i < 3; i++) await call(remote, mallory, false);
    expect(await call(remote, mallory, false)).toBe('TooManyErrors');
  };
  return { service, guard, clock, call, flood };
}

describe('request error budget: senders known at an address', () => {
  it('verifies a known sender at a refused address, refuses forgeries naming it, and unknown senders unchecked', async () => {
    const { guard, call, flood } = setup();
    expect(await call('10.0.0.1', alice, true)).toBe('InsufficientCredit');
    await flood('10.0.0.1');
    const checks = guard.checks;
    expect(await call('10.0.0.1', alice, true)).toBe('InsufficientCredit');
    expect(await call('10.0.0.1', alice, false)).toBe('InvalidRequestSignature');
    expect(await call('10.0.0.1', alice, true)).toBe('InsufficientCredit');
    expect(guard.checks).toBe(checks + 3);
    expect(await call('10.0.0.1', bob, true)).toBe('TooManyErrors');
    expect(guard.checks).toBe(checks + 3);
  });

  it('knows a sender only at the address it signed from', async () => {
    const { guard, call, flood } = setup();
    expect(await call('10.0.0.1', alice, true)).toBe('InsufficientCredit');
    await flood('10.0.0.2');
    const checks = guard.checks;
    expect(await call('10.0.0.2', alice, true)).toBe('TooManyErrors');
    expect(guard.checks).toBe(checks);
  });

  it('forgets a sender not seen within knownSenderMs', async () => {
    const { guard, clock, call, flood } = setup({ knownSenderMs: 3_600_000 });
    expect(await call('10.0.0.1', alice, true)).toBe('InsufficientCredit');
    await flood('10.0.0.1');
    clock.now += 3_600_001;
    const checks = guard.checks;
    expect(await call('10.0.0.1', alice, true)).toBe('TooManyErrors');
    expect(guard.checks).toBe(checks);
  });

  it('keeps at most maxKnownSenders pairs, forgetting the least recently seen', async () => {
    const { service, call, flood } = setup({ maxKnownSenders: 2 });
    expect(await call('10.0.0.1', alice, true)).toBe('InsufficientCredit');
    expect(await call('10.0.0.1', bob, true)).toBe('InsufficientCredit');
    // Alice seen again: Bob is now the oldest and goes when a third sender signs.
    expect(await call('10.0.0.1', alice, true)).toBe('InsufficientCredit');
    expect(await call('10.0.0.1', addressOf(keyFor('carol')), true)).toBe('InsufficientCredit');
    expect(service.knownSenderCount).toBe(2);
    await flood('10.0.0.1');
    expect(await call('10.0.0.1', alice, true)).toBe('InsufficientCredit');
    expect(await call('10.0.0.1', bob, true)).toBe('TooManyErrors');
  });
});
