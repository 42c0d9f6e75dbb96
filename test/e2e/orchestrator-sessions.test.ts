import { create } from '@bufbuild/protobuf';
import { type Client, createClient } from '@connectrpc/connect';
import { type Hash, hexToBytes, parseEther } from 'viem';
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  OrchestratorClient,
  type SegmentJob,
  sourceFactsOf,
  TranscodeRefused,
} from '../../src/broadcaster/client.js';
import type { SignerConnection } from '../../src/chain/client.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { bondAndRegister, mineToNextRound } from '../../src/chain/staking.js';
import { TicketBrokerChain, ticketDomain } from '../../src/chain/ticket-broker.js';
import { waitForSuccess } from '../../src/chain/tx.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import type { Segment } from '../../src/media/segmenter.js';
import { LocalTranscoder, type SegmentTranscoder, type TranscodeResult } from '../../src/media/transcode.js';
import { JobService, type JobServiceDeps, type JobServiceOptions } from '../../src/orchestrator/service.js';
import { TranscoderPool } from '../../src/orchestrator/transcoder-pool.js';
import { Recipient } from '../../src/pm/recipient.js';
import { Sender } from '../../src/pm/sender.js';
import { PMStore } from '../../src/pm/store.js';
import type { Payment } from '../../src/pm/types.js';
import { ChallengeGuard } from '../../src/rpc/challenge.js';
import { paymentToProto, profileToProto } from '../../src/rpc/convert.js';
import { fromConnectError, type WireError } from '../../src/rpc/errors.js';
import {
  Orchestrator,
  type TranscodeReply,
  type TranscodeRequest,
  TranscodeRequestSchema,
} from '../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import {
  type SignedTranscodeRequest,
  signTranscodeRequest,
  TranscodeRequestGuard,
} from '../../src/rpc/request-auth.js';
import { createRpcServer, type RpcServer } from '../../src/rpc/server.js';
import { contentHash } from '../../src/rpc/signing.js';
import { createRpcTransport } from '../../src/rpc/transport.js';
import { cut, makeSource, tempDir, tools } from '../unit/media/fixtures.js';
import { rewriteVideoPes } from '../unit/media/pes.js';
import { secretA } from '../unit/pm/helpers.js';

// Issue 9 §1, §2 and D8 against a real chain (anvil, the real TicketBroker), real sockets and real ffmpeg: a
// session is its sender's alone, billing rests on facts the orchestrator reads itself, one sender cannot
// starve another, and a refusal after a round change carries the params that cure it.

const profiles = resolveProfiles('240p30,144p30');
/** Wei a ticket is worth on average: a 2 s segment at 1 wei/pixel (≈ 8.3 M wei) is nine tickets. */
const EV = 1_000_000n;
const TIMEOUT = { timeoutMs: 60_000 };

let devnet: Devnet;
let orchestrator: PrivateKeyAccount;
let alice: PrivateKeyAccount;
let bob: PrivateKeyAccount;
/** Never funded: pays nothing, signs its own requests. */
let mallory: PrivateKeyAccount;
let keys: Record<'alice' | 'bob', Uint8Array>;
let segments: Segment[];
const tmp = tempDir('orchestrator-sessions');
const local = new LocalTranscoder({ preset: 'ultrafast', threads: 1 }, { tools });

beforeAll(async () => {
  segments = cut(makeSource(tmp.dir, 'src', { width: 320, height: 180, fps: 30, seconds: 8 }));
  expect(segments.length).toBeGreaterThanOrEqual(4);
  devnet = await startDevnet({ accounts: 5, blockTime: 0, parameters: { roundLength: 50n } });
  const accounts = devnet.accounts.map((a) => privateKeyToAccount(a.privateKey));
  [, orchestrator, alice, bob, mallory] = accounts as [
    PrivateKeyAccount,
    PrivateKeyAccount,
    PrivateKeyAccount,
    PrivateKeyAccount,
    PrivateKeyAccount,
  ];
  keys = {
    alice: hexToBytes(devnet.accounts[2]?.privateKey as Hash),
    bob: hexToBytes(devnet.accounts[3]?.privateKey as Hash),
  };
  const o = devnet.signer(1);
  await bondAndRegister(o, devnet.manifest, {
    stake: parseEther('1000'),
    rewardCut: 100_000n,
    feeShare: 500_000n,
  });
  await mineToNextRound(o, devnet.manifest);
  for (const i of [2, 3]) {
    const b = devnet.signer(i);
    await streamflowContracts(b, devnet.manifest)
      .ticketBroker.write.fundDepositAndReserve([parseEther('1'), parseEther('1')], {
        value: parseEther('2'),
      })
      .then((hash) => waitForSuccess(b, hash, 'fund'));
  }
}, 180_000);
afterAll(async () => {
  await devnet?.stop();
  tmp.remove();
});

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Counts the segments that reached ffmpeg. */
class CountingTranscoder implements SegmentTranscoder {
  calls = 0;
  transcode(
    bytes: Uint8Array,
    ps: Parameters<SegmentTranscoder['transcode']>[1],
    opts?: Parameters<SegmentTranscoder['transcode']>[2],
  ): Promise<TranscodeResult> {
    this.calls++;
    return local.transcode(bytes, ps, opts);
  }
}

/** The real request guard, counting the requests it was asked to verify (each costs a signature recovery). */
class CountingGuard {
  calls = 0;
  private readonly guard = new TranscodeRequestGuard();
  check(req: SignedTranscodeRequest) {
    this.calls++;
    return this.guard.check(req);
  }
}

interface Node {
  url: string;
  service: JobService;
  recipient: Recipient;
  pool: TranscoderPool;
  transcoder: CountingTranscoder;
  raw: Client<typeof Orchestrator>;
  client(who: PrivateKeyAccount): OrchestratorClient;
  sender(who: 'alice' | 'bob'): Sender;
}

async function startNode(
  options: Partial<JobServiceOptions> = {},
  capacity = 2,
  deps: Pick<JobServiceDeps, 'requests'> = {},
): Promise<Node> {
  const conn: SignerConnection = devnet.signer(1);
  const chain = new TicketBrokerChain(
    { manifest: devnet.manifest, recipient: orchestrator.address },
    { conn },
  );
  const store = new PMStore(':memory:');
  const recipient = new Recipient(
    {
      address: orchestrator.address,
      domain: ticketDomain(devnet.manifest),
      expectedValue: EV,
      nonceCheckpointMs: 3_600_000,
    },
    { chain, store, secret: secretA },
  );
  await recipient.start();
  const transcoder = new CountingTranscoder();
  const pool = new TranscoderPool({ localCapacity: capacity }, { local: transcoder });
  const service = new JobService(
    {
      serviceUri: '',
      pricePerPixel: 1n,
      regionPrices: {},
      services: ['transcode/h264'],
      regions: [],
      ...options,
    },
    {
      address: orchestrator.address,
      signer: orchestrator,
      recipient,
      transcoder: pool,
      capacityLeft: () => pool.freeCapacity(),
      challenges: new ChallengeGuard(),
      ...deps,
    },
  );
  const server: RpcServer = await createRpcServer({ host: '127.0.0.1', port: 0 }, (router) =>
    router.service(Orchestrator, service.service()),
  );
  service.options.serviceUri = server.url;
  const controller = new AbortController();
  const raw = createClient(Orchestrator, createRpcTransport(server.url, { signal: controller.signal }));
  const clients: OrchestratorClient[] = [];
  cleanups.push(async () => {
    for (const c of clients) c.close();
    controller.abort();
    await server.close();
    pool.close();
    await recipient.stop();
    store.close();
  });
  const domain = ticketDomain(devnet.manifest);
  return {
    url: server.url,
    service,
    recipient,
    pool,
    transcoder,
    raw,
    client: (who) => {
      const c = new OrchestratorClient(server.url, orchestrator.address, { signer: who });
      clients.push(c);
      return c;
    },
    sender: (who) =>
      new Sender({ privateKey: keys[who], domain }, { funds: { deposit: () => parseEther('1') } }),
  };
}

function segment(i: number): Segment {
  const s = segments[i];
  if (!s) throw new Error(`no segment ${i}`);
  return s;
}

function expectedFee(bytes: Uint8Array): bigint {
  const d = sourceFactsOf(bytes).duration;
  return profiles.reduce((sum, p) => sum + BigInt(Math.ceil(p.width * p.height * p.fps * d)), 0n);
}

function job(i: number, payment: Payment, streamId: string, bytes = segment(i).bytes): SegmentJob {
  const seg = segment(i);
  return {
    source: sourceFactsOf(seg.bytes),
    streamId,
    seq: seg.seq,
    durationMs: seg.duration * 1000,
    profiles,
    segment: bytes,
    payment,
  };
}

/** A request as the generated client sends it, signed by `signer` (which need not be `payment.sender`). */
async function rawRequest(
  i: number,
  payment: Payment,
  o: { streamId: string; signer: PrivateKeyAccount; segment?: Uint8Array; profiles?: typeof profiles },
): Promise<TranscodeRequest> {
  const seg = segment(i);
  const metadata = {
    streamId: o.streamId,
    seq: BigInt(seg.seq),
    durationMs: Math.round(seg.duration * 1000),
    profiles: (o.profiles ?? profiles).map(profileToProto),
  };
  const bytes = o.segment ?? seg.bytes;
  const signed = await signTranscodeRequest(o.signer, {
    orchestrator: orchestrator.address,
    sender: payment.sender,
    streamId: o.streamId,
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
    signature: hexToBytes(signed.signature),
  });
}

/** What a raw call ended with: the reply, or the error it failed with. */
async function outcome(p: Promise<TranscodeReply>): Promise<TranscodeReply | WireError> {
  return p.catch((err: unknown) => fromConnectError(err));
}

function codeOf(r: TranscodeReply | WireError): string {
  if ('result' in r) return r.result.case === 'error' ? r.result.value.code : (r.result.case ?? 'none');
  return r.code;
}

/** Every text a refusal carries: message and details, as the attacker reads them. */
function textOf(r: TranscodeReply | WireError): string {
  if ('result' in r) {
    return r.result.case === 'error'
      ? `${r.result.value.message} ${JSON.stringify(r.result.value.details)}`
      : '';
  }
  return `${r.message} ${JSON.stringify(r.details)}`;
}

/** Alice pays for and transcodes segment 0 of `streamId`, leaving credit in that session. */
async function aliceStreams(node: Node, streamId: string, margin = 3n) {
  const client = node.client(alice);
  const info = await client.getInfo({}, TIMEOUT);
  const sender = node.sender('alice');
  const payment = sender.createPayment(info.params, margin * expectedFee(segment(0).bytes), {
    recipient: orchestrator.address,
  });
  const res = await client.transcode(job(0, payment, streamId), TIMEOUT);
  return { client, sender, info, res, credit: node.recipient.ledger.balance(alice.address, streamId) };
}

describe('orchestrator sessions (issue 9 §1–2, D8)', () => {
  it('D1: no tickets and a segment without timestamps is refused before any work, with no renditions and no debt', async () => {
    const node = await startNode();
    const info = await node
      .client(mallory)
      .getInfo({}, TIMEOUT)
      .catch(() => undefined);
    const noPts = rewriteVideoPes(segment(0).bytes, () => ({ pts: undefined, dts: undefined }));
    const empty: Payment = {
      sender: mallory.address,
      params: info?.params ?? (await node.recipient.ticketParams(alice.address)),
      tickets: [],
    };
    for (let i = 0; i < 3; i++) {
      const r = await outcome(
        node.raw.transcode(
          await rawRequest(0, empty, { streamId: `free-${i}`, signer: mallory, segment: noPts }),
          TIMEOUT,
        ),
      );
      expect(['InsufficientCredit', 'LowPMBalance'], `attempt ${i}: ${textOf(r)}`).toContain(codeOf(r));
      expect('result' in r && r.result.case === 'ok', `attempt ${i}: renditions served`).toBe(false);
      expect(node.recipient.ledger.balance(mallory.address, `free-${i}`)).toBe(0n);
    }
    expect(node.transcoder.calls, 'segments that reached ffmpeg').toBe(0);
    // Next segment of the same session: nothing is owed (a debt would show in the fee required).
    const again = await outcome(
      node.raw.transcode(await rawRequest(1, empty, { streamId: 'free-0', signer: mallory }), TIMEOUT),
    );
    expect(codeOf(again)).toBe('InsufficientCredit');
    expect(node.transcoder.calls).toBe(0);

    // A paying sender's segment without timestamps is refused with a reason, also before any work.
    const { sender, res } = await aliceStreams(node, 'paid');
    const calls = node.transcoder.calls;
    const payment = sender.createPayment(
      res.params ?? info?.params ?? empty.params,
      expectedFee(segment(1).bytes),
      {
        recipient: orchestrator.address,
      },
    );
    const refused = await outcome(
      node.raw.transcode(
        await rawRequest(1, payment, { streamId: 'paid', signer: alice, segment: noPts }),
        TIMEOUT,
      ),
    );
    expect(codeOf(refused)).toBe('SegmentFormatDidntMatchJobInputParams');
    expect(textOf(refused)).toContain('MissingTimestamps');
    expect(node.transcoder.calls).toBe(calls);
  });

  it('D2: a request naming another sender’s address and stream is refused; the victim’s credit is untouched and no text shows it', async () => {
    const node = await startNode();
    const { credit, info } = await aliceStreams(node, 'victim', 4n);
    expect(credit).toBeGreaterThan(0n);
    const calls = node.transcoder.calls;
    const empty: Payment = { sender: alice.address, params: info.params, tickets: [] };
    // A probe with a large profile first (it used to answer with the victim's balance), then a normal one;
    // signed by the attacker, unsigned, and signed by the attacker with the victim's address as signer field.
    const big = resolveProfiles('1080p60');
    const cases: { name: string; req: TranscodeRequest }[] = [
      {
        name: 'probe',
        req: await rawRequest(1, empty, { streamId: 'victim', signer: mallory, profiles: big }),
      },
      {
        name: 'signed by the attacker',
        req: await rawRequest(1, empty, { streamId: 'victim', signer: mallory }),
      },
      { name: 'unsigned', req: await rawRequest(1, empty, { streamId: 'victim', signer: mallory }) },
    ];
    (cases[2] as { req: TranscodeRequest }).req.signature = new Uint8Array(0);
    for (const c of cases) {
      const r = await outcome(node.raw.transcode(c.req, TIMEOUT));
      expect(codeOf(r), c.name).toBe('InvalidRequestSignature');
      const text = textOf(r);
      expect(text, `${c.name}: no balance in the text`).not.toContain(credit.toString());
      expect(text, `${c.name}: no balance in the text`).not.toMatch(/balance/i);
    }
    expect(node.recipient.ledger.balance(alice.address, 'victim'), 'the victim’s credit').toBe(credit);
    expect(node.transcoder.calls).toBe(calls);

    // The owner's own refusals do not say what the session holds either.
    const owner = await outcome(
      node.raw.transcode(
        await rawRequest(1, empty, { streamId: 'victim', signer: alice, profiles: big }),
        TIMEOUT,
      ),
    );
    expect(codeOf(owner)).toBe('InsufficientCredit');
    expect(textOf(owner)).not.toContain(credit.toString());
    expect(textOf(owner)).not.toMatch(/balance/i);
  });

  it('refuses a replayed signed request: the segment is transcoded and paid once', async () => {
    const node = await startNode();
    const { info, credit } = await aliceStreams(node, 'replayed', 5n);
    const empty: Payment = { sender: alice.address, params: info.params, tickets: [] };
    const req = await rawRequest(1, empty, { streamId: 'replayed', signer: alice });
    const first = await outcome(node.raw.transcode(req, TIMEOUT));
    expect(codeOf(first)).toBe('ok');
    const after = node.recipient.ledger.balance(alice.address, 'replayed');
    expect(after).toBeLessThan(credit);
    const calls = node.transcoder.calls;

    const replay = await outcome(node.raw.transcode(req, TIMEOUT));
    expect(codeOf(replay)).toBe('InvalidRequestSignature');
    expect((replay as WireError).details.reason).toBe('replay');
    expect(node.recipient.ledger.balance(alice.address, 'replayed')).toBe(after);
    expect(node.transcoder.calls).toBe(calls);
  });

  it('a flooding sender gets OrchestratorBusy for itself only; a paying sender still gets its segment', async () => {
    const node = await startNode({ maxSegmentsPerSender: 1 }, 2);
    const bobClient = node.client(bob);
    const bobInfo = await bobClient.getInfo({}, TIMEOUT);
    const bobSender = node.sender('bob');
    // Bob pays for every segment he floods with, into one session: credit is not what stops him.
    const fund = bobSender.createPayment(bobInfo.params, 20n * expectedFee(segment(0).bytes), {
      recipient: orchestrator.address,
    });
    const warm = await bobClient.transcode(job(0, fund, 'flood'), TIMEOUT);
    const params = warm.params ?? bobInfo.params;
    const settled: string[] = [];
    const flood = Array.from({ length: 6 }, async (_, k) => {
      const empty: Payment = { sender: bob.address, params, tickets: [] };
      const r = await outcome(
        node.raw.transcode(await rawRequest(k % 4, empty, { streamId: 'flood', signer: bob }), TIMEOUT),
      );
      settled.push(codeOf(r));
      return r;
    });
    // Alice comes in once the flood has either filled the pool or been turned away.
    const deadline = Date.now() + 30_000;
    while (node.pool.freeCapacity() > 0 && settled.length < 5) {
      if (Date.now() > deadline) throw new Error(`flood never settled: ${settled.join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const aliceClient = node.client(alice);
    const aliceInfo = await aliceClient.getInfo({}, TIMEOUT);
    const payment = node.sender('alice').createPayment(aliceInfo.params, 2n * expectedFee(segment(1).bytes), {
      recipient: orchestrator.address,
    });
    const res = await aliceClient.transcode(job(1, payment, 'honest'), TIMEOUT).catch((e: unknown) => e);
    expect(res instanceof TranscodeRefused ? `refused: ${res.code}` : 'ok').toBe('ok');

    const replies = await Promise.all(flood);
    const busy = replies.filter((r) => codeOf(r) === 'OrchestratorBusy');
    expect(busy.length, settled.join(', ')).toBeGreaterThanOrEqual(4);
    for (const r of busy) {
      expect('result' in r && r.result.case === 'error' && r.result.value.details.reason).toBe(
        'senderConcurrency',
      );
    }
  });

  it('a flood of bad request signatures from one address does not lock out an honest sender known at that address', async () => {
    const guard = new CountingGuard();
    const node = await startNode(
      { requestErrorBudget: { maxErrors: 3, windowMs: 600_000, refuseMs: 600_000 } },
      2,
      { requests: guard },
    );
    // Alice authenticates from 127.0.0.1 and leaves credit; everyone below shares that address.
    const { info } = await aliceStreams(node, 'shared', 5n);
    const aliceEmpty: Payment = { sender: alice.address, params: info.params, tickets: [] };
    const malloryEmpty: Payment = { sender: mallory.address, params: info.params, tickets: [] };
    const codes: string[] = [];
    for (let k = 0; k < 6; k++) {
      const forged = await rawRequest(k % 4, malloryEmpty, { streamId: 'm', signer: bob });
      codes.push(codeOf(await outcome(node.raw.transcode(forged, TIMEOUT))));
    }
    // The budget (3 errors) is spent by the 4th bad signature: the address is refused from then on.
    expect(codes).toEqual([...Array(4).fill('InvalidRequestSignature'), 'TooManyErrors', 'TooManyErrors']);
    expect(guard.calls).toBe(1 + 4);
    const ffmpegBefore = node.transcoder.calls;

    // Alice, known here, is still verified (one recovery) and served.
    const first = await outcome(
      node.raw.transcode(await rawRequest(1, aliceEmpty, { streamId: 'shared', signer: alice }), TIMEOUT),
    );
    expect(codeOf(first), textOf(first)).toBe('ok');
    expect(guard.calls).toBe(6);

    // A forgery naming Alice costs one recovery, is refused, and does not lock her out.
    const forged = await outcome(
      node.raw.transcode(await rawRequest(2, aliceEmpty, { streamId: 'shared', signer: mallory }), TIMEOUT),
    );
    expect(codeOf(forged)).toBe('InvalidRequestSignature');
    expect((forged as WireError).details.reason).toBe('wrongSigner');
    expect(guard.calls).toBe(7);
    const second = await outcome(
      node.raw.transcode(await rawRequest(2, aliceEmpty, { streamId: 'shared', signer: alice }), TIMEOUT),
    );
    expect(codeOf(second), textOf(second)).toBe('ok');
    expect(guard.calls).toBe(8);

    // Bob signs correctly but was never seen at this address: refused without a recovery.
    const bobEmpty: Payment = { sender: bob.address, params: info.params, tickets: [] };
    const unknown = await outcome(
      node.raw.transcode(await rawRequest(3, bobEmpty, { streamId: 'b', signer: bob }), TIMEOUT),
    );
    expect(codeOf(unknown)).toBe('TooManyErrors');
    expect(guard.calls).toBe(8);
    expect(node.transcoder.calls).toBe(ffmpegBefore + 2);
  });

  it('D8: a payment right after a round change is refused with fresh params, and they pay at once', async () => {
    const node = await startNode();
    const { client, sender, res, info } = await aliceStreams(node, 'rounds', 1n);
    const old = res.params ?? info.params;
    const round = await mineToNextRound(devnet.signer(1), devnet.manifest);
    expect(round).toBeGreaterThan(old.creationRound);
    // What the orchestrator node does on the round clock's `initialized` event, then its maintenance sweep.
    await node.recipient.refreshChain();
    node.recipient.sweep();

    let cure = old;
    for (let attempt = 0; attempt < 5; attempt++) {
      const payment = sender.createPayment(old, expectedFee(segment(1).bytes), {
        recipient: orchestrator.address,
      });
      const err = await client
        .transcode(job(1, payment, `rounds-${attempt}`), TIMEOUT)
        .catch((e: unknown) => e);
      expect(err, `attempt ${attempt}`).toBeInstanceOf(TranscodeRefused);
      const refused = err as TranscodeRefused;
      expect(refused.code, `attempt ${attempt}`).toBe('TicketParamsExpired');
      expect(refused.params?.creationRound, `attempt ${attempt}: fresh params`).toBe(round);
      cure = refused.params ?? cure;
      node.recipient.sweep();
    }
    const payment = sender.createPayment(cure, expectedFee(segment(1).bytes), {
      recipient: orchestrator.address,
    });
    const ok = await client.transcode(job(1, payment, 'rounds-ok'), TIMEOUT);
    expect(ok.renditions.length).toBe(profiles.length);
  });
});
