import http2 from 'node:http2';
import { create } from '@bufbuild/protobuf';
import { type Client, createClient } from '@connectrpc/connect';
import { type Address, bytesToHex, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  OrchestratorClient,
  type SegmentJob,
  sourceFactsOf,
  TranscodeRefused,
  type VerifiedSegment,
} from '../../src/broadcaster/client.js';
import { type Profile, resolveProfiles } from '../../src/media/profiles.js';
import type { Segment } from '../../src/media/segmenter.js';
import { LocalTranscoder, type SegmentTranscoder, type TranscodeResult } from '../../src/media/transcode.js';
import { PoolError } from '../../src/orchestrator/errors.js';
import { JobService, type JobServiceOptions } from '../../src/orchestrator/service.js';
import { OrchestratorState } from '../../src/orchestrator/state.js';
import { Recipient } from '../../src/pm/recipient.js';
import { Sender } from '../../src/pm/sender.js';
import { PMStore } from '../../src/pm/store.js';
import { ticketExpectedValue } from '../../src/pm/ticket.js';
import type { Payment, TicketParams } from '../../src/pm/types.js';
import { ChallengeGuard, makeChallenge } from '../../src/rpc/challenge.js';
import { addressToBytes, paymentToProto, profileToProto } from '../../src/rpc/convert.js';
import { fromConnectError, type WireError } from '../../src/rpc/errors.js';
import {
  type GetOrchestratorInfoRequest,
  GetOrchestratorInfoRequestSchema,
  Orchestrator,
  type TranscodeReply,
  type TranscodeRequest,
  TranscodeRequestSchema,
} from '../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { expectedPixels, renditionsFee } from '../../src/rpc/pricing.js';
import { signTranscodeRequest } from '../../src/rpc/request-auth.js';
import { createRpcServer, type RpcServer } from '../../src/rpc/server.js';
import { contentHash, receiptDigest, recoverWireSigner } from '../../src/rpc/signing.js';
import { createRpcTransport } from '../../src/rpc/transport.js';
import { cut, makeSource, tempDir, tools } from '../unit/media/fixtures.js';
import { domain, ETH, FakeChain, keyFor, recipientKey, secretA } from '../unit/pm/helpers.js';
import { CachingTranscoder } from './fixtures/verify-orchestrator.js';

// The orchestrator's job service as a broadcaster meets it: a real Connect server on loopback, the real payment
// recipient (only the chain under it is a fake), real tickets signed by a real Sender, real ffmpeg. Each case
// is something the broadcaster notices: what it is charged, which refusal code it gets, whether fresh params
// come with it, and whether any work (or chain read) happened on its behalf.

const profiles = resolveProfiles('240p30,144p30');
/** Wei a ticket is worth on average; a 2 s segment at 1 wei/pixel (8.3 M wei) costs nine tickets. */
const EV = 1_000_000n;
const PRICE = 1n;
const TIMEOUT = { timeoutMs: 30_000 };

/** The orchestrator signs with the key whose address the recipient takes tickets for. */
const orchestrator = privateKeyToAccount(bytesToHex(recipientKey));
const aliceKey = keyFor('orchestrator-jobs alice');
const alice = privateKeyToAccount(bytesToHex(aliceKey));
/** Never paid, never funded on chain. */
const mallory = privateKeyToAccount(bytesToHex(keyFor('orchestrator-jobs mallory')));

const shared = new CachingTranscoder(new LocalTranscoder({ preset: 'ultrafast', threads: 1 }, { tools }));
const tmp = tempDir('orchestrator-jobs');
/** Three 2 s segments of a 320×180 source. */
let segments: Segment[];

beforeAll(() => {
  segments = cut(makeSource(tmp.dir, 'src', { width: 320, height: 180, fps: 30, seconds: 6 }));
  expect(segments.length).toBeGreaterThanOrEqual(3);
});
afterAll(() => tmp.remove());

function segment(i: number): Segment {
  const s = segments[i];
  if (!s) throw new Error(`no segment ${i}`);
  return s;
}

/** Counts the segments that reached the transcoder. */
class CountingTranscoder implements SegmentTranscoder {
  calls = 0;
  constructor(private readonly inner: SegmentTranscoder) {}
  transcode(
    bytes: Uint8Array,
    ps: readonly Profile[],
    opts?: { signal?: AbortSignal | undefined },
  ): Promise<TranscodeResult> {
    this.calls++;
    return this.inner.transcode(bytes, ps, opts);
  }
}

interface Node {
  server: RpcServer;
  service: JobService;
  recipient: Recipient;
  chain: FakeChain;
  state: OrchestratorState;
  transcoder: CountingTranscoder;
  /** Alice's verifying client. */
  client: OrchestratorClient;
  /** Alice's tickets. */
  sender: Sender;
  /** The generated client, for requests the verifying client would not send. */
  raw: Client<typeof Orchestrator>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startNode(
  o: { options?: Partial<JobServiceOptions>; transcoder?: SegmentTranscoder } = {},
): Promise<Node> {
  const chain = new FakeChain();
  chain.fund(alice.address);
  const store = new PMStore(':memory:');
  const recipient = new Recipient(
    { address: orchestrator.address, domain, expectedValue: EV, nonceCheckpointMs: 3_600_000 },
    { chain, store, secret: secretA },
  );
  await recipient.start();
  const state = new OrchestratorState(':memory:');
  const transcoder = new CountingTranscoder(o.transcoder ?? shared);
  const service = new JobService(
    {
      serviceUri: '',
      pricePerPixel: PRICE,
      regionPrices: {},
      services: ['transcode/h264'],
      regions: [],
      ...o.options,
    },
    {
      address: orchestrator.address,
      signer: orchestrator,
      recipient,
      transcoder,
      capacityLeft: () => 3,
      challenges: new ChallengeGuard(),
      state,
    },
  );
  const server = await createRpcServer({ host: '127.0.0.1', port: 0 }, (router) =>
    router.service(Orchestrator, service.service()),
  );
  service.options.serviceUri = server.url;
  const client = new OrchestratorClient(server.url, orchestrator.address, { signer: alice });
  const controller = new AbortController();
  const raw = createClient(Orchestrator, createRpcTransport(server.url, { signal: controller.signal }));
  cleanups.push(async () => {
    client.close();
    controller.abort();
    await server.close();
    await recipient.stop();
    store.close();
    state.close();
  });
  const sender = new Sender({ privateKey: aliceKey, domain }, { funds: { deposit: () => ETH } });
  return { server, service, recipient, chain, state, transcoder, client, sender, raw };
}

/** The fee the orchestrator requires ahead for segment `i` at `price`: expected pixels × price. */
function expectedFee(i: number, price = PRICE): bigint {
  return expectedPixels(profiles, sourceFactsOf(segment(i).bytes).duration) * price;
}

/** What `payment` adds to the session's credit at the recipient. */
function worth(payment: Payment): bigint {
  return (
    BigInt(payment.tickets.length) * ticketExpectedValue(payment.params.faceValue, payment.params.winProb)
  );
}

function job(i: number, payment: Payment, streamId: string): SegmentJob {
  const seg = segment(i);
  return {
    source: sourceFactsOf(seg.bytes),
    streamId,
    seq: seg.seq,
    durationMs: seg.duration * 1000,
    profiles,
    segment: seg.bytes,
    payment,
  };
}

/** The refusal `promise` rejects with; fails the test when it resolves. */
async function refusal(promise: Promise<VerifiedSegment>, label: string): Promise<TranscodeRefused> {
  const outcome = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (outcome === undefined) throw new Error(`${label}: the segment was transcoded`);
  expect(outcome, `${label}: ${String(outcome)}`).toBeInstanceOf(TranscodeRefused);
  return outcome as TranscodeRefused;
}

/** The `WireError` a raw call fails with; fails the test when it succeeds. */
async function callError(promise: Promise<unknown>, label: string): Promise<WireError> {
  const outcome = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (outcome === undefined) throw new Error(`${label}: the call succeeded`);
  return fromConnectError(outcome);
}

function expectFreshParams(params: TicketParams | undefined, sender: Address, label: string): void {
  expect(params, `${label}: fresh params`).toBeDefined();
  expect(params?.recipient, label).toBe(orchestrator.address);
  expect(params?.sender.toLowerCase(), label).toBe(sender.toLowerCase());
}

/** A request as the generated client sends it, signed by `signer` (Alice unless said otherwise). */
async function rawTranscodeRequest(
  i: number,
  payment: Payment,
  o: {
    streamId?: string;
    profiles?: readonly Profile[];
    segment?: Uint8Array;
    signer?: typeof alice;
  } = {},
): Promise<TranscodeRequest> {
  const seg = segment(i);
  const metadata = {
    streamId: o.streamId ?? 'raw-stream',
    seq: BigInt(seg.seq),
    durationMs: Math.round(seg.duration * 1000),
    profiles: (o.profiles ?? profiles).map(profileToProto),
  };
  const bytes = o.segment ?? seg.bytes;
  const signed = await signTranscodeRequest(o.signer ?? alice, {
    orchestrator: orchestrator.address,
    sender: payment.sender,
    streamId: metadata.streamId,
    seq: metadata.seq,
    segmentHash: contentHash(bytes),
    metadata,
  });
  return create(TranscodeRequestSchema, {
    metadata,
    segment: bytes,
    payment: paymentToProto(payment),
    issuedAtMs: signed.issuedAtMs,
    nonce: signed.nonce,
    signature: hexBytes(signed.signature),
  });
}

/** The ok result of a raw reply; fails the test when it carries an error. */
function okOf(reply: TranscodeReply, label: string) {
  if (reply.result.case !== 'ok') {
    throw new Error(`${label}: refused with ${JSON.stringify(reply.result.value)}`);
  }
  return reply.result.value;
}

function errorOf(reply: TranscodeReply, label: string) {
  if (reply.result.case !== 'error')
    throw new Error(`${label}: expected a refusal, got ${reply.result.case}`);
  return reply.result.value;
}

describe('JobService.Transcode payments', () => {
  it('transcodes a paid segment, signs a receipt, sends fresh params and debits exactly the renditions’ fee', async () => {
    const node = await startNode();
    const info = await node.client.getInfo({ service: 'transcode/h264' }, TIMEOUT);
    expect(info.pricePerPixel).toBe(PRICE);
    expect(info.capacityLeft).toBe(3);
    expect(info.serviceUri).toBe(node.server.url);
    const payment = node.sender.createPayment(info.params, expectedFee(0), { recipient: info.address });
    const credited = worth(payment);
    expect(payment.tickets.length).toBeGreaterThan(1);

    const res = await node.client.transcode(job(0, payment, 'paid'), TIMEOUT);

    expect(res.renditions.map((r) => [r.profile.name, r.width, r.height])).toEqual([
      ['240p30', 426, 240],
      ['144p30', 256, 144],
    ]);
    const signer = await recoverWireSigner(
      receiptDigest({
        streamId: 'paid',
        seq: BigInt(segment(0).seq),
        inputHash: contentHash(segment(0).bytes),
        renditions: res.renditions.map((r) => ({ profile: r.profile.name, hash: contentHash(r.bytes) })),
      }),
      res.receipt.signature,
    );
    expect(signer).toBe(orchestrator.address);
    expectFreshParams(res.params, alice.address, 'ok reply');
    expect(res.params?.recipientRandHash).toBe(
      (await node.recipient.ticketParams(alice.address)).recipientRandHash,
    );

    const fee = renditionsFee(res.renditions, PRICE);
    expect(fee).toBeGreaterThan(0n);
    expect(node.recipient.ledger.balance(alice.address, 'paid')).toBe(credited - fee);
    expect(node.state.sessions()).toMatchObject([
      {
        sender: alice.address.toLowerCase(),
        session: 'paid',
        balance: credited - fee,
        segments: 1,
        fees: fee,
      },
    ]);
    expect(node.state.totals()).toEqual({ segments: 1, fees: fee });
    expect(node.transcoder.calls).toBe(1);
  });

  it('refuses a payment short of the expected fee with InsufficientCredit and fresh params, without transcoding', async () => {
    const node = await startNode();
    const info = await node.client.getInfo({}, TIMEOUT);
    const fee = expectedFee(0);
    const payment = node.sender.createPayment(info.params, fee / 3n, { recipient: info.address });
    const credited = worth(payment);
    expect(credited).toBeLessThan(fee);

    const err = await refusal(node.client.transcode(job(0, payment, 'short'), TIMEOUT), 'short payment');

    expect(err.code).toBe('InsufficientCredit');
    expect(err.details).toMatchObject({ required: fee.toString() });
    expect(err.details, 'the session’s balance is not told').not.toHaveProperty('balance');
    expect(err.message).not.toContain(credited.toString());
    expectFreshParams(err.params, alice.address, 'InsufficientCredit');
    expect(node.transcoder.calls).toBe(0);
    // The tickets were valid: their credit stays for the next attempt.
    expect(node.recipient.ledger.balance(alice.address, 'short')).toBe(credited);
    expect(node.state.sessions()).toEqual([]);

    // Topping the same session up with the rest gets the segment through.
    const rest = node.sender.createPayment(err.params as TicketParams, fee - credited, {
      recipient: info.address,
    });
    const res = await node.client.transcode(job(0, rest, 'short'), TIMEOUT);
    expect(node.recipient.ledger.balance(alice.address, 'short')).toBe(
      credited + worth(rest) - renditionsFee(res.renditions, PRICE),
    );
  });

  it('spends credit left from earlier payments on a payment with no tickets', async () => {
    const node = await startNode();
    const info = await node.client.getInfo({}, TIMEOUT);
    const first = node.sender.createPayment(info.params, 3n * expectedFee(0), { recipient: info.address });
    const r0 = await node.client.transcode(job(0, first, 'credit'), TIMEOUT);
    const params = r0.params ?? info.params;
    const reads = node.chain.reads.sender;

    const empty: Payment = { sender: alice.address, params, tickets: [] };
    const r1 = await node.client.transcode(job(1, empty, 'credit'), TIMEOUT);

    const fees = renditionsFee(r0.renditions, PRICE) + renditionsFee(r1.renditions, PRICE);
    expect(node.recipient.ledger.balance(alice.address, 'credit')).toBe(worth(first) - fees);
    expect(node.state.totals()).toEqual({ segments: 2, fees });
    expect(node.transcoder.calls).toBe(2);
    expect(node.chain.reads.sender, 'a known sender spending credit needs no chain read').toBe(reads);
  });

  it('refuses a payment with no tickets from an unknown sender without reading the chain or the segment', async () => {
    const node = await startNode();
    const info = await node.client.getInfo({}, TIMEOUT);
    const reads = { ...node.chain.reads };
    const stranger = new OrchestratorClient(node.server.url, orchestrator.address, { signer: mallory });
    cleanups.push(() => stranger.close());
    const empty: Payment = {
      sender: mallory.address,
      params: { ...info.params, sender: mallory.address },
      tickets: [],
    };

    const err = await refusal(stranger.transcode(job(0, empty, 'stranger'), TIMEOUT), 'stranger');

    expect(err.code).toBe('InsufficientCredit');
    expect(err.details).not.toHaveProperty('balance');
    expect(node.chain.reads.sender, 'senderInfo calls').toBe(reads.sender);
    expect(node.chain.reads).toEqual(reads);
    expect(node.transcoder.calls).toBe(0);
    expect(node.state.sessions()).toEqual([]);
  });

  it('refuses garbage bytes as the segment with SegmentFormatDidntMatchJobInputParams and fresh params', async () => {
    const node = await startNode();
    const info = await node.client.getInfo({}, TIMEOUT);
    const payment = node.sender.createPayment(info.params, expectedFee(0), { recipient: info.address });
    const garbage = new Uint8Array(188 * 20).map((_, i) => (i * 7919) % 251);

    const reply = await node.raw.transcode(
      await rawTranscodeRequest(0, payment, { segment: garbage }),
      TIMEOUT,
    );

    const err = errorOf(reply, 'garbage');
    expect(err.code).toBe('SegmentFormatDidntMatchJobInputParams');
    expect(reply.ticketParams, 'fresh params').toBeDefined();
    expect(node.transcoder.calls).toBe(0);
    // The payment was good: its credit is kept, nothing was debited.
    expect(node.recipient.ledger.balance(alice.address, 'raw-stream')).toBe(worth(payment));
  });

  it('passes OrchestratorBusy from the transcoder pool back in the reply with fresh params', async () => {
    const busy: SegmentTranscoder = {
      transcode: () =>
        Promise.reject(new PoolError('OrchestratorBusy', 'every transcoder is busy', { capacity: 0 })),
    };
    const node = await startNode({ transcoder: busy });
    const info = await node.client.getInfo({}, TIMEOUT);
    const payment = node.sender.createPayment(info.params, expectedFee(0), { recipient: info.address });

    const err = await refusal(node.client.transcode(job(0, payment, 'busy'), TIMEOUT), 'busy');

    expect(err.code).toBe('OrchestratorBusy');
    expectFreshParams(err.params, alice.address, 'OrchestratorBusy');
    expect(node.transcoder.calls).toBe(1);
    expect(node.recipient.ledger.balance(alice.address, 'busy')).toBe(worth(payment));
    expect(node.state.sessions()).toEqual([]);
  });

  it('fails calls with invalid fields with InvalidMessage before taking the payment', async () => {
    const node = await startNode();
    const info = await node.client.getInfo({}, TIMEOUT);
    const seventeen = Array.from({ length: 17 }, (_, i) => ({ ...profiles[1], name: `p${i}` }) as Profile);
    const cases: { name: string; field: string; o: Parameters<typeof rawTranscodeRequest>[2] }[] = [
      { name: '17 profiles', field: 'metadata.profiles', o: { profiles: seventeen } },
      { name: 'an empty stream id', field: 'metadata.streamId', o: { streamId: '' } },
      { name: 'a stream id naming a parent directory', field: 'metadata.streamId', o: { streamId: '..' } },
      {
        name: 'a profile the media schema refuses (200 fps)',
        field: 'metadata.profiles',
        o: { profiles: [{ ...(profiles[0] as Profile), fps: 200 }] },
      },
    ];
    for (const c of cases) {
      const payment = node.sender.createPayment(info.params, expectedFee(0), { recipient: info.address });
      const err = await callError(
        node.raw.transcode(await rawTranscodeRequest(0, payment, c.o), TIMEOUT),
        c.name,
      );
      expect(err.code, c.name).toBe('InvalidMessage');
      expect(err.details.field, c.name).toBe(c.field);
    }
    expect(node.transcoder.calls).toBe(0);
    expect(node.recipient.stats.ticketsAccepted, 'no ticket of an invalid request was taken').toBe(0);
  });
});

describe('JobService against hostile bytes (THREATS.md 20)', () => {
  /** One raw gRPC call over HTTP/2: `body` framed as a gRPC message (or not), the grpc-status back. */
  async function rawGrpc(url: string, body: Uint8Array, frame = true): Promise<string | undefined> {
    const session = http2.connect(url);
    try {
      const req = session.request({
        ':method': 'POST',
        ':path': '/streamflow.v1.Orchestrator/Transcode',
        'content-type': 'application/grpc+proto',
        te: 'trailers',
      });
      const header = Buffer.alloc(5);
      header.writeUInt32BE(body.length, 1);
      req.end(frame ? Buffer.concat([header, body]) : body);
      return await new Promise((resolve, reject) => {
        let status: string | undefined;
        req.on('response', (h) => {
          status ??= h['grpc-status'] as string | undefined;
        });
        req.on('trailers', (t) => {
          status = (t['grpc-status'] as string | undefined) ?? status;
        });
        req.on('data', () => undefined);
        req.on('end', () => resolve(status));
        req.on('error', reject);
      });
    } finally {
      session.close();
    }
  }

  it('answers malformed protobuf, a truncated frame and random bytes with an error status and keeps serving', async () => {
    const node = await startNode();
    const random = new Uint8Array(4096).map((_, i) => (i * 7919 + 13) % 256);
    // A field tag promising a 1 MB length-delimited value in a 6-byte message.
    const lying = Uint8Array.from([0x12, 0x80, 0x80, 0x40, 0x01, 0x02]);
    for (const [name, body, frame] of [
      ['random bytes as a message', random, true],
      ['a length that runs past the message', lying, true],
      ['bytes without gRPC framing', random.subarray(0, 3), false],
    ] as const) {
      const status = await rawGrpc(node.server.url, body, frame);
      expect(status, name).toBeDefined();
      expect(status, name).not.toBe('0');
    }
    expect(node.transcoder.calls).toBe(0);
    // Still serving: an honest request afterwards goes through.
    const info = await node.client.getInfo({}, TIMEOUT);
    expect(info.address).toBe(orchestrator.address);
  });
});

describe('JobService.GetOrchestratorInfo', () => {
  async function infoRequest(orch: Address): Promise<GetOrchestratorInfoRequest> {
    const c = await makeChallenge(alice, orch);
    return create(GetOrchestratorInfoRequestSchema, {
      broadcaster: addressToBytes(alice.address),
      challenge: hexBytes(c.challenge),
      issuedAtMs: c.issuedAtMs,
      signature: hexBytes(c.signature),
      serviceId: 'transcode/h264',
      region: '',
    });
  }

  it('refuses a replayed request (the same signed challenge twice) with InvalidChallenge', async () => {
    const node = await startNode();
    const req = await infoRequest(orchestrator.address);
    const first = await node.raw.getOrchestratorInfo(req, TIMEOUT);
    expect(bytesToHex(first.challenge)).toBe(bytesToHex(req.challenge as Uint8Array));

    const err = await callError(node.raw.getOrchestratorInfo(req, TIMEOUT), 'replay');
    expect(err.code).toBe('InvalidChallenge');
    expect(err.details.reason).toBe('replay');
    // A challenge bound to another orchestrator is refused and tells the caller which address to bind to.
    const elsewhere = await callError(
      node.raw.getOrchestratorInfo(await infoRequest(mallory.address), TIMEOUT),
      'wrong orchestrator',
    );
    expect(elsewhere.code).toBe('InvalidChallenge');
    expect(elsewhere.details.orchestrator?.toLowerCase()).toBe(orchestrator.address.toLowerCase());
  });

  it('refuses a service it does not offer with ServiceNotOffered', async () => {
    const node = await startNode();
    const err = await node.client.getInfo({ service: 'transcode/av1' }, TIMEOUT).then(
      () => undefined,
      (e: unknown) => e as WireError,
    );
    expect(err?.code).toBe('ServiceNotOffered');
    expect(err?.details.service).toBe('transcode/av1');
  });

  it('quotes the region’s price when the region is asked, and Transcode charges that price', async () => {
    const node = await startNode({
      options: { regions: ['eu-west', 'us-east'], regionPrices: { 'eu-west': 3n } },
    });
    expect((await node.client.getInfo({}, TIMEOUT)).pricePerPixel).toBe(PRICE);
    expect((await node.client.getInfo({ region: 'us-east' }, TIMEOUT)).pricePerPixel).toBe(PRICE);
    const refused = await node.client.getInfo({ region: 'ap-south' }, TIMEOUT).then(
      () => undefined,
      (e: unknown) => e as WireError,
    );
    expect(refused?.code).toBe('RegionNotServed');

    const info = await node.client.getInfo({ region: 'eu-west' }, TIMEOUT);
    expect(info.pricePerPixel).toBe(3n);
    // Paying the default price's fee is not enough once the region's price was quoted.
    const cheap = node.sender.createPayment(info.params, expectedFee(0, PRICE), { recipient: info.address });
    const err = await refusal(node.client.transcode(job(0, cheap, 'eu'), TIMEOUT), 'default-price payment');
    expect(err.code).toBe('InsufficientCredit');
    expect(err.details.required).toBe(expectedFee(0, 3n).toString());

    const rest = node.sender.createPayment(err.params ?? info.params, expectedFee(0, 3n) - worth(cheap), {
      recipient: info.address,
    });
    const res = await node.client.transcode(job(0, rest, 'eu'), TIMEOUT);
    const fee = renditionsFee(res.renditions, 3n);
    expect(fee).toBe(3n * renditionsFee(res.renditions, 1n));
    expect(node.recipient.ledger.balance(alice.address, 'eu')).toBe(worth(cheap) + worth(rest) - fee);
    expect(node.state.totals().fees).toBe(fee);
  });

  it('quotes and charges the default price for a region without a price of its own, whatever its name', async () => {
    // With no region list every region is served; names that are also Object properties must not be taken
    // for a price.
    const node = await startNode({ options: { regionPrices: { 'eu-west': 3n } } });
    for (const region of ['ap-south', 'constructor', 'toString', '__proto__']) {
      const info = await node.client.getInfo({ region }, TIMEOUT).catch((e: unknown) => e as WireError);
      expect
        .soft('pricePerPixel' in info ? info.pricePerPixel : `${info.code}: ${info.message}`, region)
        .toBe(PRICE);
    }
    // The last region asked sets the price the next segment is charged.
    const params = await node.recipient.ticketParams(alice.address);
    const payment = node.sender.createPayment(params, expectedFee(0), { recipient: orchestrator.address });
    const res = await node.client.transcode(job(0, payment, 'odd-region'), TIMEOUT);
    expect(node.state.totals().fees).toBe(renditionsFee(res.renditions, PRICE));
  });
});

describe('JobService debts', () => {
  /** Transcodes every profile at twice its frame rate: real renditions with twice the pixels expected. */
  const doubling: SegmentTranscoder = {
    transcode: (bytes, ps, opts) =>
      shared.transcode(
        bytes,
        ps.map((p) => ({ ...p, fps: p.fps * 2 })),
        opts,
      ),
  };

  it('leaves a debt when a segment comes out larger than the credit covers, and the next segment pays it', async () => {
    // A debt this large (a whole segment's fee) is allowed here to see it carried; the default cap is below it.
    const node = await startNode({ transcoder: doubling, options: { maxDebtShare: 2 } });
    const info = await node.client.getInfo({}, TIMEOUT);
    const pay0 = node.sender.createPayment(info.params, expectedFee(0), { recipient: info.address });
    const balance0 = worth(pay0);

    const r0 = okOf(
      await node.raw.transcode(await rawTranscodeRequest(0, pay0, { streamId: 'debt' }), TIMEOUT),
      'seg 0',
    );
    const fee0 = r0.renditions.reduce((sum, r) => sum + (r.facts?.pixels ?? 0n), 0n) * PRICE;
    expect(fee0, 'the doubled renditions cost more than the credit').toBeGreaterThan(balance0);
    const debt = fee0 - balance0;
    expect(node.recipient.ledger.balance(alice.address, 'debt')).toBe(0n);
    expect(node.state.sessions()).toMatchObject([
      { session: 'debt', balance: -debt, segments: 1, fees: fee0 },
    ]);

    // The next segment must cover its own expected fee and the debt.
    const pay1 = node.sender.createPayment(info.params, expectedFee(1), { recipient: info.address });
    const refused = errorOf(
      await node.raw.transcode(await rawTranscodeRequest(1, pay1, { streamId: 'debt' }), TIMEOUT),
      'seg 1 without the debt',
    );
    expect(refused.code).toBe('InsufficientCredit');
    expect(refused.details.required).toBe((expectedFee(1) + debt).toString());
    expect(node.transcoder.calls).toBe(1);
  });

  it('withholds renditions far larger than the fee required before work, and leaves no debt', async () => {
    const node = await startNode({ transcoder: doubling });
    const info = await node.client.getInfo({}, TIMEOUT);
    const pay0 = node.sender.createPayment(info.params, expectedFee(0), { recipient: info.address });

    const refused = errorOf(
      await node.raw.transcode(await rawTranscodeRequest(0, pay0, { streamId: 'capped' }), TIMEOUT),
      'doubled output',
    );

    expect(refused.code).toBe('InsufficientCredit');
    expect(node.transcoder.calls).toBe(1);
    // The fee required before work pays for the work done; nothing more is owed.
    expect(node.recipient.ledger.balance(alice.address, 'capped')).toBe(worth(pay0) - expectedFee(0));
    const [row] = node.state.sessions();
    expect(row?.balance).toBe(worth(pay0) - expectedFee(0));
    // No debt is carried: a payment of the next segment's own fee gets it to work (and withheld again).
    const pay1 = node.sender.createPayment(info.params, expectedFee(1), { recipient: info.address });
    const again = errorOf(
      await node.raw.transcode(await rawTranscodeRequest(1, pay1, { streamId: 'capped' }), TIMEOUT),
      'next segment',
    );
    expect(again.code).toBe('InsufficientCredit');
    expect(node.transcoder.calls).toBe(2);
  });

  it('requires a restored debt on top of the next segment’s fee, then forgets it once paid', async () => {
    const node = await startNode();
    const debt = 2n * expectedFee(0);
    node.service.restoreDebt(alice.address, 'restored', debt);
    const info = await node.client.getInfo({}, TIMEOUT);

    const pay0 = node.sender.createPayment(info.params, expectedFee(0), { recipient: info.address });
    const err = await refusal(node.client.transcode(job(0, pay0, 'restored'), TIMEOUT), 'debt unpaid');
    expect(err.code).toBe('InsufficientCredit');
    expect(err.details.required).toBe((expectedFee(0) + debt).toString());

    const top = node.sender.createPayment(err.params ?? info.params, expectedFee(0) + debt - worth(pay0), {
      recipient: info.address,
    });
    const r0 = await node.client.transcode(job(0, top, 'restored'), TIMEOUT);
    const fee0 = renditionsFee(r0.renditions, PRICE);
    const left = worth(pay0) + worth(top) - fee0 - debt;
    expect(node.recipient.ledger.balance(alice.address, 'restored')).toBe(left);
    expect(node.state.sessions()).toMatchObject([{ session: 'restored', balance: left, fees: fee0 }]);

    // Paid: the next segment costs its own fee only.
    const pay1 = node.sender.createPayment(r0.params ?? info.params, expectedFee(1) - left, {
      recipient: info.address,
    });
    expect(left + worth(pay1)).toBeLessThan(expectedFee(1) + debt);
    const r1 = await node.client.transcode(job(1, pay1, 'restored'), TIMEOUT);
    expect(node.recipient.ledger.balance(alice.address, 'restored')).toBe(
      left + worth(pay1) - renditionsFee(r1.renditions, PRICE),
    );
  });

  it('charges a debt once when two segments of the session are in flight together', async () => {
    // The second and third segments both pass the credit check before either is transcoded: the gate holds
    // each until both have reached the transcoder.
    let calls = 0;
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const gated: SegmentTranscoder = {
      transcode: async (bytes, ps, opts) => {
        calls++;
        if (calls === 3) open();
        if (calls >= 2) await gate;
        return shared.transcode(bytes, ps, opts);
      },
    };
    const node = await startNode({ transcoder: gated });
    const info = await node.client.getInfo({}, TIMEOUT);
    const debt = expectedFee(0);
    const payment = node.sender.createPayment(info.params, 6n * expectedFee(0) + debt, {
      recipient: info.address,
    });
    const r0 = await node.client.transcode(job(0, payment, 'parallel'), TIMEOUT);
    node.service.restoreDebt(alice.address, 'parallel', debt);

    const empty: Payment = { sender: alice.address, params: r0.params ?? info.params, tickets: [] };
    const [r1, r2] = await Promise.all([
      node.client.transcode(job(1, empty, 'parallel'), TIMEOUT),
      node.client.transcode(job(2, empty, 'parallel'), TIMEOUT),
    ]);

    const fees = [r0, r1, r2].reduce((sum, r) => sum + renditionsFee(r.renditions, PRICE), 0n);
    expect(
      node.recipient.ledger.balance(alice.address, 'parallel'),
      'credit left after paying the debt once',
    ).toBe(worth(payment) - fees - debt);
  });
});

function hexBytes(hex: Hex): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.slice(2), 'hex'));
}
