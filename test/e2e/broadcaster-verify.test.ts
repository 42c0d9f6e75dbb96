import { execFileSync } from 'node:child_process';
import { pino } from 'pino';
import { type Address, type Hex, keccak256, recoverMessageAddress, toHex } from 'viem';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  OrchestratorClient,
  sourceFactsOf,
  TranscodeRefused,
  type VerifiedSegment,
} from '../../src/broadcaster/client.js';
import type { OrchestratorCandidate } from '../../src/broadcaster/discovery.js';
import { JobManager } from '../../src/broadcaster/jobs.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import type { Segment } from '../../src/media/segmenter.js';
import { LocalTranscoder } from '../../src/media/transcode.js';
import { Sender } from '../../src/pm/sender.js';
import { addressToBytes, bytesToAddress, uintToBytes } from '../../src/rpc/convert.js';
import { WireError } from '../../src/rpc/errors.js';
import type { OrchestratorInfo, TranscodeReply } from '../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { contentHash, receiptDigest } from '../../src/rpc/signing.js';
import { cut, makeSource, tempDir, tools } from '../unit/media/fixtures.js';
import {
  CachingTranscoder,
  type Cheat,
  hexBytes,
  okOf,
  resignInfo,
  seal,
  sent,
  startOrchestrator,
  type TestOrchestrator,
  TICKET_EV,
  testAccount,
  testKey,
} from './fixtures/verify-orchestrator.js';

// A broadcaster pays for renditions it cannot check by eye: every reply of an orchestrator that cheats in one
// way must be refused with the code the broadcaster branches on, and a JobManager must move the segment to an
// honest orchestrator. The cheaters are the real JobService (challenge check, LocalTranscoder, signing) whose
// replies are rewritten on their way out, over real Connect servers on loopback.

const profiles = resolveProfiles('240p30,144p30');
const STREAM = 'verify-stream';
const broadcaster = testAccount('broadcaster');
/** The address the broadcaster expects (from the ServiceRegistry): every cheat below is "its" node. */
const orchestrator = testAccount('orchestrator');
const impostor = testAccount('impostor');
const honestAccount = testAccount('honest');
const transcoder = new CachingTranscoder(new LocalTranscoder({ preset: 'ultrafast', threads: 1 }, { tools }));

const tmp = tempDir('broadcaster-verify');
/** Three 2 s segments of a 320×180 source. */
let segments: Segment[];
/** Honest ffmpeg output for segment 0 at profiles other than the ones asked, for the wrong-size cases. */
let wrongSize: { p360: Buffer; p144: Buffer };

function newSender(): Sender {
  return new Sender(
    {
      privateKey: hexBytes(testKey('broadcaster')),
      domain: { chainId: 31_337, verifyingContract: '0x00000000000000000000000000000000000000b0' },
    },
    { funds: { deposit: () => 10n ** 18n } },
  );
}

const servers: TestOrchestrator[] = [];
const clients: OrchestratorClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((o) => o.server.close()));
});

beforeAll(async () => {
  segments = cut(makeSource(tmp.dir, 'src', { width: 320, height: 180, fps: 30, seconds: 6 }));
  expect(segments.length).toBeGreaterThanOrEqual(3);
  const seg0 = segment(0).bytes;
  const [p360, p144] = (await transcoder.transcode(seg0, resolveProfiles('360p30,144p30'))).renditions;
  if (!p360 || !p144) throw new Error('the wrong-size renditions were not made');
  wrongSize = { p360: p360.bytes, p144: p144.bytes };
});
afterAll(() => tmp.remove());

function segment(i: number): Segment {
  const s = segments[i];
  if (!s) throw new Error(`no segment ${i}`);
  return s;
}

async function serve(cheat: Cheat, o: { pricePerPixel?: bigint; account?: typeof orchestrator } = {}) {
  const node = await startOrchestrator({
    account: o.account ?? orchestrator,
    transcoder,
    cheat,
    ...(o.pricePerPixel !== undefined ? { pricePerPixel: o.pricePerPixel } : {}),
  });
  servers.push(node);
  return node;
}

function connect(node: TestOrchestrator, expected: Address = orchestrator.address): OrchestratorClient {
  const client = new OrchestratorClient(node.server.url, expected, { signer: broadcaster });
  clients.push(client);
  return client;
}

/** Negotiates, pays one ticket (far above the fee of a 2 s segment at 1 wei/pixel) and sends segment `i`. */
async function send(client: OrchestratorClient, i: number, sender = newSender()): Promise<VerifiedSegment> {
  const info = await client.getInfo({ service: 'transcode/h264' }, { timeoutMs: 5_000 });
  const seg = segment(i);
  const payment = sender.createPayment(info.params, TICKET_EV, { recipient: info.address });
  return client.transcode(
    {
      source: sourceFactsOf(seg.bytes),
      streamId: STREAM,
      seq: seg.seq,
      durationMs: seg.duration * 1000,
      profiles,
      segment: seg.bytes,
      payment,
    },
    { timeoutMs: 30_000 },
  );
}

/** The error `promise` rejects with; fails the test when it resolves or rejects with a non-`WireError`. */
async function wireError(promise: Promise<unknown>, label: string): Promise<WireError> {
  const outcome = await promise.then(
    (value) => ({ resolved: value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome)) throw new Error(`${label}: the tampered reply was accepted`);
  expect(outcome.err, `${label}: ${String(outcome.err)}`).toBeInstanceOf(WireError);
  // A refusal is the orchestrator's own code; every case here is an `ok` reply the broadcaster must reject.
  expect(outcome.err, label).not.toBeInstanceOf(TranscodeRefused);
  return outcome.err as WireError;
}

/** What a cheat needs of the request it answers. */
function job(req: Parameters<NonNullable<Cheat['transcode']>>[1]) {
  return {
    streamId: req.metadata?.streamId ?? '',
    seq: req.metadata?.seq ?? 0n,
    inputHash: contentHash(req.segment),
  };
}

/** A cheat that rewrites the `ok` result of the honest reply into its own, sealed as the cheat decides. */
function rewrite(
  f: (honest: ReturnType<typeof okOf> & ReturnType<typeof job>) => Promise<TranscodeReply>,
): Cheat {
  return { transcode: async (reply, req) => f({ ...okOf(reply), ...job(req) }) };
}

/** Bytes that look like MPEG-TS packets (sync byte every 188) with a deterministic pseudo-random payload. */
function fakeTs(packets: number): Buffer {
  const out = Buffer.alloc(188 * packets);
  let h: Hex = keccak256(toHex('garbage'));
  for (let i = 0; i < out.length; i += 32) {
    h = keccak256(h);
    out.set(hexBytes(h).subarray(0, Math.min(32, out.length - i)), i);
  }
  for (let i = 0; i < out.length; i += 188) out[i] = 0x47;
  return out;
}

/** Runs ffmpeg on one segment, MPEG-TS in and out through pipes. */
function ffmpeg(input: Buffer, args: string[]): Buffer {
  return execFileSync(
    tools.ffmpeg,
    ['-hide_banner', '-loglevel', 'error', '-f', 'mpegts', '-i', 'pipe:0', ...args, '-f', 'mpegts', 'pipe:1'],
    { input, maxBuffer: 64 * 1024 * 1024 },
  );
}

describe('broadcaster verification against cheating orchestrators', () => {
  it('accepts the honest orchestrator the cheats are made from', async () => {
    const node = await serve({});
    const res = await send(connect(node), 0);
    expect(res.renditions.map((r) => [r.profile.name, r.width, r.height])).toEqual([
      ['240p30', 426, 240],
      ['144p30', 256, 144],
    ]);
    expect(res.receipt.inputHash).toBe(contentHash(segment(0).bytes));
  });

  describe('GetOrchestratorInfo', () => {
    const cases: {
      name: string;
      info: (info: OrchestratorInfo, broadcaster: Address) => Promise<OrchestratorInfo>;
    }[] = [
      {
        name: 'signed by a key other than the orchestrator address it names',
        info: (info, b) => resignInfo(info, b, impostor),
      },
      {
        name: 'naming and signed by another address than the one expected',
        info: (info, b) => resignInfo({ ...info, address: addressToBytes(impostor.address) }, b, impostor),
      },
      {
        name: 'with a price lowered after signing',
        info: async (info) => ({ ...info, pricePerPixel: uintToBytes(1n) }),
      },
      {
        name: 'with a signature that is not 65 bytes',
        info: async (info) => ({ ...info, signature: info.signature.subarray(0, 64) }),
      },
    ];
    for (const c of cases) {
      it(`refuses an info reply ${c.name}`, async () => {
        const node = await serve(
          { info: (info, req) => c.info(info, bytesToAddress(req.broadcaster)) },
          { pricePerPixel: 1_000n },
        );
        const err = await wireError(
          connect(node).getInfo({ service: 'transcode/h264' }, { timeoutMs: 5_000 }),
          c.name,
        );
        expect(err.code, c.name).toBe('InvalidSignature');
      });
    }

    it('refuses a signed info reply replayed for another challenge', async () => {
      // The first reply is genuine; later requests get it again instead of one signed over their own challenge.
      let first: OrchestratorInfo | undefined;
      const node = await serve({
        info: async (info) => {
          first ??= info;
          return first;
        },
      });
      const client = connect(node);
      await client.getInfo({ service: 'transcode/h264' }, { timeoutMs: 5_000 });
      const err = await wireError(
        client.getInfo({ service: 'transcode/h264' }, { timeoutMs: 5_000 }),
        'replay',
      );
      expect(err.code).toBe('InvalidSignature');
    });
  });

  it('refuses a receipt signed by another key', async () => {
    const node = await serve(
      rewrite((h) => seal({ signer: impostor, renditions: sent(h.renditions), ...pick(h) })),
    );
    const err = await wireError(send(connect(node), 0), 'impostor receipt');
    expect(err.code).toBe('InvalidReceipt');
  });

  it('refuses a receipt whose signature recovers to no address', async () => {
    const node = await serve(
      rewrite(async (h) => {
        const reply = await seal({ signer: orchestrator, renditions: sent(h.renditions), ...pick(h) });
        const receipt = okOf(reply).receipt;
        // r = s = 0 is no signature of anyone's: recovery itself fails, and the client must still say InvalidReceipt.
        receipt.signature = new Uint8Array(65).fill(0);
        receipt.signature[64] = 27;
        return reply;
      }),
    );
    const err = await wireError(send(connect(node), 0), 'zero signature');
    expect(err.code).toBe('InvalidReceipt');
  });

  describe('renditions whose bytes do not match the receipt hash', () => {
    const cases: { name: string; swap: (r: { profile: string; data: Uint8Array }[]) => void }[] = [
      {
        name: 'renditions swapped between the profiles',
        swap: (r) => {
          const [a, b] = r;
          if (!a || !b) throw new Error('two renditions expected');
          [a.data, b.data] = [b.data, a.data];
        },
      },
      {
        name: 'the 240p30 rendition of another segment',
        swap: (r) => {
          // Segment 1's honest 240p30 output, made in this block's beforeAll.
          (r[0] as { data: Uint8Array }).data = otherSegment240p;
        },
      },
      {
        name: 'one byte flipped in the 144p30 rendition',
        swap: (r) => {
          const data = Buffer.from(r[1]?.data ?? []);
          const i = Math.floor(data.length / 2);
          data[i] = (data[i] ?? 0) ^ 0xff;
          (r[1] as { data: Uint8Array }).data = data;
        },
      },
    ];
    let otherSegment240p: Buffer;
    beforeAll(async () => {
      const r = (await transcoder.transcode(segment(1).bytes, profiles)).renditions[0];
      if (!r) throw new Error('no 240p30 rendition of segment 1');
      otherSegment240p = r.bytes;
    });
    for (const c of cases) {
      it(`refuses ${c.name} (receipt signed over the honest hashes)`, async () => {
        const node = await serve(
          rewrite(async (h) => {
            const listed = h.receipt.renditions.map((r) => ({
              profile: r.profile,
              hash: toHexBytes(r.hash),
            }));
            const renditions = sent(h.renditions);
            c.swap(renditions);
            return seal({ signer: orchestrator, renditions, listed, ...pick(h) });
          }),
        );
        const err = await wireError(send(connect(node), 0), c.name);
        expect(err.code, c.name).toBe('RenditionMismatch');
        expect(err.message, c.name).toMatch(/receipt hash/);
      });
    }
  });

  describe('renditions at the wrong resolution, correctly hashed and signed', () => {
    const cases: { name: string; bytes: () => Buffer }[] = [
      { name: '144p bytes (256×144) labelled 240p30', bytes: () => wrongSize.p144 },
      { name: '360p bytes (640×360) labelled 240p30', bytes: () => wrongSize.p360 },
    ];
    for (const c of cases) {
      it(`refuses ${c.name}`, async () => {
        const node = await serve(
          rewrite((h) => {
            const renditions = sent(h.renditions);
            (renditions[0] as { data: Uint8Array }).data = c.bytes();
            return seal({ signer: orchestrator, renditions, ...pick(h) });
          }),
        );
        const err = await wireError(send(connect(node), 0), c.name);
        expect(err.code, c.name).toBe('RenditionMismatch');
        expect(err.message, c.name).toMatch(/not fitted/);
      });
    }
  });

  // Each of these passes the box check (one side equal to the box, neither larger); only the source's aspect
  // ratio (the size `fitInside` gives for it), the profile's frame rate or the segment's length tells them from
  // an honest rendition, and the client reads all three facts already.
  describe('240p30 renditions fitted to the box but not what was asked, correctly hashed and signed', () => {
    const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-an'];
    const cases: { name: string; args: string[] }[] = [
      {
        name: 'squeezed out of the 16:9 source aspect ratio to 240×240',
        args: ['-vf', 'scale=240:240,setsar=1'],
      },
      { name: 'at 5 fps instead of 30', args: ['-vf', 'fps=5,scale=426:240,setsar=1'] },
      { name: 'one frame long for a 2 s segment', args: ['-frames:v', '1', '-vf', 'scale=426:240,setsar=1'] },
    ];
    for (const c of cases) {
      it(`refuses a rendition ${c.name}`, async () => {
        const bytes = ffmpeg(segment(0).bytes, [...c.args, ...x264]);
        const node = await serve(
          rewrite((h) => {
            const renditions = sent(h.renditions);
            (renditions[0] as { data: Uint8Array }).data = bytes;
            return seal({ signer: orchestrator, renditions, ...pick(h) });
          }),
        );
        const err = await wireError(send(connect(node), 0), c.name);
        expect(err.code, c.name).toBe('RenditionMismatch');
      });
    }
  });

  // THREATS 26: right size, right frame rate, an honest receipt over the bytes sent, but not this segment's time.
  // Only the timestamps tell them apart: the pipeline keeps the source's (-copyts), so an honest rendition starts
  // where the source segment starts, lasts as long and has the profile's rate of frames over it.
  describe('renditions of another time, hashed and signed honestly over the wrong bytes', () => {
    const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-an'];
    /** Keeps the source timeline through a re-encode, as the orchestrator's own ffmpeg does. */
    const keep = ['-copyts', '-vsync', 'passthrough', '-mpegts_copyts', '1'];
    const cases: { name: string; why: RegExp; bytes: (seg0: Buffer, honest240: Uint8Array) => Buffer }[] = [
      {
        name: 'shifted 0.2 s later',
        why: /starts 2\d\d\.\d ms after/,
        bytes: (_, honest240) =>
          ffmpeg(Buffer.from(honest240), [
            '-copyts',
            '-c',
            'copy',
            '-output_ts_offset',
            '0.2',
            '-mpegts_copyts',
            '1',
          ]),
      },
      {
        name: 'of the right 60 frames stretched over 2.07 s (29 fps, within the frame-rate check)',
        why: /lasts 2\.06\d s/,
        bytes: (seg0) =>
          ffmpeg(seg0, [
            ...keep,
            '-vf',
            'fps=30,scale=426:240,setsar=1,setpts=(PTS-STARTPTS)*1.05+STARTPTS',
            ...x264,
          ]),
      },
      {
        name: 'two frames too few (58 over the whole span, 29 fps)',
        why: /has 58 frames/,
        bytes: (seg0) =>
          ffmpeg(seg0, [
            ...keep,
            '-vf',
            "fps=30,select='not(between(n\\,20\\,21))',scale=426:240,setsar=1",
            ...x264,
          ]),
      },
      {
        name: 'two frames too many (62 at 31 fps)',
        why: /has 62 frames/,
        bytes: (seg0) => ffmpeg(seg0, [...keep, '-vf', 'fps=31,scale=426:240,setsar=1', ...x264]),
      },
    ];
    for (const c of cases) {
      it(`refuses a 240p30 rendition ${c.name}`, async () => {
        const node = await serve(
          rewrite((h) => {
            const renditions = sent(h.renditions);
            const target = renditions[0] as { data: Uint8Array };
            target.data = c.bytes(segment(0).bytes, target.data);
            return seal({ signer: orchestrator, renditions, ...pick(h) });
          }),
        );
        const err = await wireError(send(connect(node), 0), c.name);
        expect(err.code, c.name).toBe('RenditionMismatch');
        expect(err.message, c.name).toMatch(c.why);
      });
    }

    for (const [asked, given] of [
      [0, 1],
      [1, 0],
      [2, 0],
    ] as const) {
      it(`refuses segment ${given}'s honest renditions as segment ${asked}'s, under a receipt signed over them`, async () => {
        const node = await serve(anotherSegmentsRenditions((seq) => (seq === asked ? given : seq)));
        const err = await wireError(send(connect(node), asked), `segment ${given} for ${asked}`);
        expect(err.code).toBe('RenditionMismatch');
        expect(err.message).toMatch(/starts \d\.\d{3} s (after|before) the source segment/);
      });
    }
  });

  describe('undecodable renditions, correctly hashed and signed', () => {
    let audioOnly: Buffer;
    beforeAll(() => {
      audioOnly = ffmpeg(segment(0).bytes, ['-vn', '-c:a', 'copy']);
    });
    const cases: { name: string; bytes: (honest: Uint8Array) => Uint8Array }[] = [
      { name: 'random bytes', bytes: () => hexBytes(keccak256(toHex('noise'))) },
      { name: 'packets with MPEG-TS sync bytes and a random payload', bytes: () => fakeTs(64) },
      { name: 'no bytes at all', bytes: () => new Uint8Array(0) },
      { name: 'an audio-only transport stream', bytes: () => audioOnly },
      { name: 'the first 4 packets of the honest rendition', bytes: (honest) => honest.subarray(0, 188 * 4) },
    ];
    for (const c of cases) {
      it(`refuses ${c.name} as a rendition`, async () => {
        const node = await serve(
          rewrite((h) => {
            const renditions = sent(h.renditions);
            const target = renditions[1] as { data: Uint8Array };
            target.data = c.bytes(target.data);
            return seal({ signer: orchestrator, renditions, ...pick(h) });
          }),
        );
        const err = await wireError(send(connect(node), 0), c.name);
        expect(err.code, c.name).toBe('RenditionMismatch');
        expect(err.message, c.name).toMatch(/no decodable video/);
      });
    }
  });

  describe('missing, extra or misnamed renditions, correctly signed', () => {
    type R = { profile: string; data: Uint8Array };
    const cases: { name: string; edit: (r: R[]) => { renditions: R[]; listed?: R[] } }[] = [
      { name: 'one rendition missing', edit: (r) => ({ renditions: r.slice(0, 1) }) },
      { name: 'no renditions', edit: () => ({ renditions: [] }) },
      {
        name: 'an extra rendition nobody asked for',
        edit: (r) => ({ renditions: [...r, { profile: '360p30', data: wrongSize.p360 }] }),
      },
      {
        name: 'a receipt listing one of the two renditions sent',
        edit: (r) => ({ renditions: r, listed: r.slice(0, 1) }),
      },
      { name: 'the renditions in the other order', edit: (r) => ({ renditions: [...r].reverse() }) },
      {
        name: 'the 144p30 rendition sent as an unasked 360p30',
        edit: (r) => ({
          renditions: r.map((x) => (x.profile === '144p30' ? { ...x, profile: '360p30' } : x)),
        }),
      },
      {
        name: 'the 240p30 rendition sent twice, once under the 144p30 name',
        edit: (r) => ({ renditions: r.map((x) => ({ profile: x.profile, data: (r[0] as R).data })) }),
      },
    ];
    for (const c of cases) {
      it(`refuses ${c.name}`, async () => {
        const node = await serve(
          rewrite((h) => {
            const { renditions, listed } = c.edit(sent(h.renditions));
            return seal({
              signer: orchestrator,
              renditions,
              ...(listed
                ? { listed: listed.map((x) => ({ profile: x.profile, hash: contentHash(x.data) })) }
                : {}),
              ...pick(h),
            });
          }),
        );
        const err = await wireError(send(connect(node), 0), c.name);
        expect(err.code, c.name).toBe('RenditionMismatch');
      });
    }
  });

  describe('receipts for another segment', () => {
    const other = () => contentHash(segment(2).bytes);
    const cases: {
      name: string;
      edit: (h: ReturnType<typeof job>) => Partial<Parameters<typeof seal>[0]>;
    }[] = [
      { name: 'the next seq', edit: (h) => ({ seq: h.seq + 1n }) },
      { name: 'another input hash', edit: () => ({ inputHash: other() }) },
      { name: 'another stream', edit: () => ({ streamId: 'another-stream' }) },
      { name: 'this seq shown but the next one signed', edit: (h) => ({ signed: { seq: h.seq + 1n } }) },
      { name: 'this input shown but another signed', edit: () => ({ signed: { inputHash: other() } }) },
      {
        name: 'this stream shown but another signed',
        edit: () => ({ signed: { streamId: 'another-stream' } }),
      },
      {
        name: 'honest hashes shown but other ones signed',
        edit: () => ({ signed: { listed: profiles.map((p) => ({ profile: p.name, hash: other() })) } }),
      },
    ];
    for (const c of cases) {
      it(`refuses a receipt for ${c.name}`, async () => {
        const node = await serve(
          rewrite((h) =>
            seal({ signer: orchestrator, renditions: sent(h.renditions), ...pick(h), ...c.edit(h) }),
          ),
        );
        const err = await wireError(send(connect(node), 1), c.name);
        expect(err.code, c.name).toBe('InvalidReceipt');
      });
    }

    it('refuses the previous segment’s genuine reply replayed for the next one', async () => {
      let first: TranscodeReply | undefined;
      const node = await serve({
        transcode: async (reply) => {
          first ??= reply;
          return first;
        },
      });
      const client = connect(node);
      const sender = newSender();
      await send(client, 0, sender);
      const err = await wireError(send(client, 1, sender), 'replayed reply');
      expect(err.code).toBe('InvalidReceipt');
    });
  });

  describe('JobManager failover', () => {
    it('returns the honest orchestrator’s renditions when the cheaper one cheats, and records its failure', async () => {
      // The cheater swaps the 240p30 and 144p30 bytes under its receipt's honest, correctly signed hashes.
      const cheater = await serve(
        rewrite(async (h) => {
          const listed = h.receipt.renditions.map((r) => ({ profile: r.profile, hash: toHexBytes(r.hash) }));
          const renditions = sent(h.renditions).reverse();
          return seal({
            signer: orchestrator,
            renditions: renditions.map((r, i) => ({
              profile: listed[i]?.profile ?? r.profile,
              data: r.data,
            })),
            listed,
            ...pick(h),
          });
        }),
        { pricePerPixel: 1n },
      );
      const honest = await serve({}, { account: honestAccount, pricePerPixel: 2n });
      const candidates = staticCandidates(cheater, honest);
      // The manager's own account of each failure: what it logged, with the code it saw.
      const failures: { orchestrator?: string; code?: string }[] = [];
      const logger = pino(
        { level: 'warn' },
        {
          write: (line: string) => {
            const entry = JSON.parse(line) as { msg?: string; orchestrator?: string; code?: string };
            if (entry.msg?.startsWith('segment failed')) failures.push(entry);
          },
        },
      );
      const jobs = new JobManager(
        // Latency off: the price alone ranks two untried orchestrators, so the cheaper cheater is asked first.
        { selection: { latencyWeight: 0 }, segmentTimeoutMs: 30_000, refreshMs: 600_000 },
        { sender: newSender(), signer: broadcaster, discover: async () => candidates, logger },
      );
      try {
        await jobs.start();
        expect(jobs.ranked().map((r) => r.address)).toEqual([orchestrator.address, honestAccount.address]);

        const seg = segment(0);
        const task = { streamId: STREAM, seq: seg.seq, duration: seg.duration, bytes: seg.bytes, profiles };
        const outcome = await jobs.transcode(task);
        expect(outcome.orchestrator).toBe(honestAccount.address);
        expect(outcome.attempts).toBe(2);
        expect(outcome.renditions.map((r) => [r.profile.name, r.width, r.height])).toEqual([
          ['240p30', 426, 240],
          ['144p30', 256, 144],
        ]);
        const honestResult = await transcoder.transcode(seg.bytes, profiles);
        expect(outcome.renditions.map((r) => contentHash(r.bytes))).toEqual(
          honestResult.renditions.map((r) => contentHash(r.bytes)),
        );
        const signer = await recoverMessageAddress({
          message: {
            raw: receiptDigest({
              streamId: STREAM,
              seq: BigInt(seg.seq),
              inputHash: contentHash(seg.bytes),
              renditions: outcome.renditions.map((r) => ({
                profile: r.profile.name,
                hash: contentHash(r.bytes),
              })),
            }),
          },
          signature: outcome.receipt.signature,
        });
        expect(signer).toBe(honestAccount.address);
        expect(jobs.selector.statsOf(orchestrator.address)?.failures ?? 0).toBeGreaterThan(0);
        expect(jobs.selector.statsOf(honestAccount.address)?.successes ?? 0).toBeGreaterThan(0);
        expect(jobs.stats.failovers).toBe(1);

        // A signed reply that does not verify is proof, not bad luck: the cheater is suspended at once, so
        // later segments (and their tickets) go straight to the honest orchestrator.
        expect(jobs.selector.isSuspended(orchestrator.address)).toBe(true);
        for (const i of [1, 2]) {
          const next = segment(i);
          const res = await jobs.transcode({
            ...task,
            seq: next.seq,
            duration: next.duration,
            bytes: next.bytes,
          });
          expect(res.orchestrator, `segment ${i}`).toBe(honestAccount.address);
          expect(res.attempts, `segment ${i}`).toBe(1);
        }
        expect(jobs.ranked().map((r) => r.address)).toEqual([honestAccount.address]);
        expect(failures.map((f) => [f.orchestrator, f.code])).toEqual([
          [orchestrator.address, 'RenditionMismatch'],
        ]);
      } finally {
        await jobs.stop();
      }
    });
  });
});

describe('JobManager failover from renditions of another segment', () => {
  it('suspends the orchestrator, redoes the segment on the honest one and keeps every later segment there', async () => {
    // Segment seq+1's honest renditions for segment seq, under a receipt honestly signed over those bytes.
    const cheater = await serve(
      anotherSegmentsRenditions((seq) => (seq + 1) % segments.length),
      { pricePerPixel: 1n },
    );
    const honest = await serve({}, { account: honestAccount, pricePerPixel: 2n });
    const candidates = staticCandidates(cheater, honest);
    const failures: { orchestrator?: string; code?: string; err?: string }[] = [];
    const logger = pino(
      { level: 'warn' },
      {
        write: (line: string) => {
          const entry = JSON.parse(line) as {
            msg?: string;
            orchestrator?: string;
            code?: string;
            err?: string;
          };
          if (entry.msg?.startsWith('segment failed')) failures.push(entry);
        },
      },
    );
    const jobs = new JobManager(
      { selection: { latencyWeight: 0 }, segmentTimeoutMs: 30_000, refreshMs: 600_000 },
      { sender: newSender(), signer: broadcaster, discover: async () => candidates, logger },
    );
    try {
      await jobs.start();
      expect(jobs.ranked().map((r) => r.address)).toEqual([orchestrator.address, honestAccount.address]);
      const outcomes = [];
      for (const i of [0, 1, 2]) {
        const seg = segment(i);
        outcomes.push(
          await jobs.transcode({
            streamId: STREAM,
            seq: seg.seq,
            duration: seg.duration,
            bytes: seg.bytes,
            profiles,
          }),
        );
      }
      // Every segment came back, each its own: no gap for a player, the cheater's bytes nowhere.
      for (const [i, outcome] of outcomes.entries()) {
        expect(outcome.orchestrator, `segment ${i}`).toBe(honestAccount.address);
        expect(outcome.attempts, `segment ${i}`).toBe(i === 0 ? 2 : 1);
        const own = await transcoder.transcode(segment(i).bytes, profiles);
        expect(
          outcome.renditions.map((r) => contentHash(r.bytes)),
          `segment ${i}`,
        ).toEqual(own.renditions.map((r) => contentHash(r.bytes)));
      }
      expect(jobs.selector.isSuspended(orchestrator.address)).toBe(true);
      expect(jobs.ranked().map((r) => r.address)).toEqual([honestAccount.address]);
      expect(jobs.stats.failovers).toBe(1);
      expect(failures.map((f) => [f.orchestrator, f.code])).toEqual([
        [orchestrator.address, 'RenditionMismatch'],
      ]);
      expect(failures[0]?.err).toMatch(/starts 2\.0\d\d s after the source segment/);
    } finally {
      await jobs.stop();
    }
  });
});

/**
 * A cheat that answers segment `seq` with the honest renditions of segment `other(seq)` of the same stream,
 * sealed with the orchestrator's own key over their real hashes: right size, right rate, honest receipt.
 */
function anotherSegmentsRenditions(other: (seq: number) => number): Cheat {
  return rewrite(async (h) => {
    const given = (await transcoder.transcode(segment(other(Number(h.seq))).bytes, profiles)).renditions;
    return seal({
      signer: orchestrator,
      renditions: given.map((r) => ({ profile: r.profile.name, data: r.bytes })),
      ...pick(h),
    });
  });
}

/** Static candidates for the given test orchestrators, as `--orchestrators URL,…` gives them. */
function staticCandidates(...nodes: TestOrchestrator[]): OrchestratorCandidate[] {
  return nodes.map((o) => ({
    address: undefined,
    serviceUri: o.server.url,
    stake: undefined,
    services: [],
    regions: [],
    source: 'static',
  }));
}

/** Starts the manager and transcodes segment 0 through it. */
async function firstSegment(jobs: JobManager) {
  await jobs.start();
  const seg = segment(0);
  return jobs.transcode({
    streamId: STREAM,
    seq: seg.seq,
    duration: seg.duration,
    bytes: seg.bytes,
    profiles,
  });
}

describe('redundancy', () => {
  it('sends each segment to k orchestrators at once and keeps the first valid result', async () => {
    const second = testAccount('second');
    const calls = new Map<string, number>();
    const counting = (name: string, delayMs: number): Cheat => ({
      transcode: async (reply) => {
        calls.set(name, (calls.get(name) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, delayMs));
        return reply;
      },
    });
    // The slow one answers last; the fast one's (also valid) result must be the one kept.
    const slow = await serve(counting('slow', 400), { account: honestAccount });
    const fast = await serve(counting('fast', 0), { account: second });
    const candidates = staticCandidates(slow, fast);
    const jobs = new JobManager(
      { redundancy: 2, refreshMs: 600_000 },
      { sender: newSender(), signer: broadcaster, discover: async () => candidates },
    );
    try {
      const outcome = await firstSegment(jobs);
      expect(outcome.orchestrator).toBe(second.address);
      expect(calls.get('fast')).toBe(1);
      expect(calls.get('slow')).toBe(1);
    } finally {
      await jobs.stop();
    }
  });

  it('keeps the honest result when one of the k orchestrators cheats', async () => {
    const cheater = await serve(
      {
        transcode: async (reply) => {
          const ok = okOf(reply);
          const first = ok.renditions[0];
          if (first) first.data = new Uint8Array(first.data.length);
          return reply;
        },
      },
      { pricePerPixel: 1n },
    );
    const honest = await serve(
      {
        transcode: async (reply) => {
          await new Promise((r) => setTimeout(r, 300));
          return reply;
        },
      },
      { account: honestAccount, pricePerPixel: 2n },
    );
    const candidates = staticCandidates(cheater, honest);
    const jobs = new JobManager(
      { redundancy: 2, refreshMs: 600_000 },
      { sender: newSender(), signer: broadcaster, discover: async () => candidates },
    );
    try {
      const outcome = await firstSegment(jobs);
      // The cheater answered first, with renditions that do not match the receipt: the honest one is kept.
      expect(outcome.orchestrator).toBe(honestAccount.address);
      expect(jobs.selector.isSuspended(orchestrator.address)).toBe(true);
    } finally {
      await jobs.stop();
    }
  });
});

/** The fields of the honest receipt a cheat keeps when it seals its own. */
function pick(h: ReturnType<typeof job>) {
  return { streamId: h.streamId, seq: h.seq, inputHash: h.inputHash };
}

function toHexBytes(bytes: Uint8Array): Hex {
  return `0x${Buffer.from(bytes).toString('hex')}`;
}
