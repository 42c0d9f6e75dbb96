import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createClient } from '@connectrpc/connect';
import { Command } from 'commander';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OrchestratorClient, sourceFactsOf, TranscodeRefused } from '../../src/broadcaster/client.js';
import { FfmpegError } from '../../src/media/errors.js';
import { type Profile, resolveProfiles } from '../../src/media/profiles.js';
import { LocalTranscoder, type SegmentTranscoder, type TranscodeResult } from '../../src/media/transcode.js';
import { StreamflowError } from '../../src/node/errors.js';
import { type Logger, silentLogger } from '../../src/node/logger.js';
import { type PoolEvent, TranscoderPool } from '../../src/orchestrator/transcoder-pool.js';
import { Sender } from '../../src/pm/sender.js';
import { fromConnectError } from '../../src/rpc/errors.js';
import { Transcoder } from '../../src/rpc/gen/streamflow/v1/transcoder_pb.js';
import { createRpcServer, type RpcServer } from '../../src/rpc/server.js';
import { createRpcTransport } from '../../src/rpc/transport.js';
import { registerTranscoderCommand } from '../../src/transcoder/cli.js';
import { RemoteTranscoder, type RemoteTranscoderEvent } from '../../src/transcoder/transcoder.js';
import { cut, makeSource, rejection, tempDir, tools } from '../unit/media/fixtures.js';
import {
  hexBytes,
  startOrchestrator,
  TICKET_EV,
  testAccount,
  testKey,
} from './fixtures/verify-orchestrator.js';

const SECRET = 'test-secret';
const TASK_TIMEOUT_MS = 20_000;
const profiles: Profile[] = resolveProfiles('144p30');

/** Never finishes a segment on its own: stands for a transcoder caught mid-segment. Ends when aborted. */
class HeldTranscoder implements SegmentTranscoder {
  private readonly waiters: (() => void)[] = [];
  holding = 0;

  transcode(
    _segment: Uint8Array,
    _profiles: readonly Profile[],
    opts: { signal?: AbortSignal | undefined } = {},
  ): Promise<TranscodeResult> {
    this.holding++;
    for (const w of this.waiters.splice(0)) w();
    return new Promise((_resolve, reject) => {
      opts.signal?.addEventListener(
        'abort',
        () => {
          this.holding--;
          reject(opts.signal?.reason);
        },
        { once: true },
      );
    });
  }

  /** Resolves once a segment is being held. */
  started(): Promise<void> {
    return this.holding > 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

function poolEvent<T extends PoolEvent['type']>(
  pool: TranscoderPool,
  type: T,
  match: (e: Extract<PoolEvent, { type: T }>) => boolean = () => true,
): Promise<Extract<PoolEvent, { type: T }>> {
  return new Promise((resolve) => {
    const off = pool.on((e) => {
      if (e.type === type && match(e as Extract<PoolEvent, { type: T }>)) {
        off();
        resolve(e as Extract<PoolEvent, { type: T }>);
      }
    });
  });
}

function transcoderEvent<T extends RemoteTranscoderEvent['type']>(
  t: RemoteTranscoder,
  type: T,
): Promise<Extract<RemoteTranscoderEvent, { type: T }>> {
  return new Promise((resolve) => {
    const off = t.on((e) => {
      if (e.type === type) {
        off();
        resolve(e as Extract<RemoteTranscoderEvent, { type: T }>);
      }
    });
  });
}

/** A TCP relay whose connections can be cut at once, as a crashed host or a pulled cable would. */
async function relay(targetPort: number): Promise<{ url: string; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut: () => {
      for (const s of sockets) s.resetAndDestroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('TranscoderPool with remote transcoders', () => {
  const tmp = tempDir('pool');
  let segment: Buffer;
  const cleanups: (() => Promise<void> | void)[] = [];

  let canned: TranscodeResult;
  /** Two 1 s segments of one stream, and segment 1's honest renditions: right size, rate, length; wrong time. */
  let stream: Buffer[];
  let otherSegments: TranscodeResult;
  beforeAll(async () => {
    segment = readFileSync(makeSource(tmp.dir, 'seg', { width: 160, height: 90, fps: 30, seconds: 1 }));
    const local = new LocalTranscoder({ preset: 'ultrafast' }, { tools });
    canned = await local.transcode(segment, profiles);
    const file = makeSource(tmp.dir, 'stream', { width: 160, height: 90, fps: 30, seconds: 2, gop: 1 });
    stream = cut(file, 1).map((s) => s.bytes);
    otherSegments = await local.transcode(stream[1] as Buffer, profiles);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(() => tmp.remove());

  async function servePool(
    options: Partial<ConstructorParameters<typeof TranscoderPool>[0]> = {},
    deps: { logger?: Logger } = {},
  ): Promise<{ pool: TranscoderPool; server: RpcServer }> {
    const pool = new TranscoderPool(
      { secret: SECRET, localCapacity: 0, taskTimeoutMs: TASK_TIMEOUT_MS, ...options },
      { tools, ...deps },
    );
    const server = await createRpcServer({ port: 0 }, (router) => pool.registerRoutes(router));
    cleanups.push(async () => {
      pool.close();
      await server.close();
    });
    return { pool, server };
  }

  /** Starts a transcoder and resolves with its member id once the pool has it. */
  async function connect(
    pool: TranscoderPool,
    url: string,
    opts: {
      capacity?: number;
      held?: HeldTranscoder;
      transcoder?: SegmentTranscoder;
      backoffInitialMs?: number;
    } = {},
  ): Promise<{ t: RemoteTranscoder; id: string }> {
    const t = new RemoteTranscoder(
      {
        orchestrator: url,
        secret: SECRET,
        capacity: opts.capacity ?? 1,
        transcode: { preset: 'ultrafast' },
        backoffInitialMs: opts.backoffInitialMs ?? 50,
        backoffMaxMs: 500,
      },
      opts.held || opts.transcoder
        ? { transcoder: opts.held ?? (opts.transcoder as SegmentTranscoder) }
        : { tools },
    );
    cleanups.push(() => t.stop());
    const joined = poolEvent(pool, 'joined');
    t.start();
    return { t, id: (await joined).member.id };
  }

  it('spreads segments over the least loaded transcoders and returns real renditions', async () => {
    const { pool, server } = await servePool();
    const a = await connect(pool, server.url, { capacity: 2 });
    const b = await connect(pool, server.url, { capacity: 2 });
    expect(pool.freeCapacity()).toBe(4);

    const results = await Promise.all([pool.transcode(segment, profiles), pool.transcode(segment, profiles)]);
    expect(results.map((r) => r.transcoder).sort()).toEqual([a.id, b.id].sort());
    for (const r of results) {
      const [rendition] = r.renditions;
      expect(rendition?.profile.name, `rendition from ${r.transcoder}`).toBe('144p30');
      expect([rendition?.width, rendition?.height], `size from ${r.transcoder}`).toEqual([256, 144]);
      expect(rendition?.frames, `frames from ${r.transcoder}`).toBeGreaterThanOrEqual(25);
      expect(r.attempts).toBe(1);
    }
    expect(pool.memberInfo().map((m) => m.load)).toEqual([0, 0]);
  });

  it('refuses a wrong secret with Unauthenticated, on both calls', async () => {
    const { pool, server } = await servePool();
    const controller = new AbortController();
    cleanups.push(() => controller.abort());
    const client = createClient(Transcoder, createRpcTransport(server.url, { signal: controller.signal }));

    const stream = client.registerTranscoder({ secret: 'wrong', capacity: 1 });
    const err = await (async () => {
      try {
        for await (const _ of stream) return undefined;
      } catch (e) {
        return fromConnectError(e);
      }
      return undefined;
    })();
    expect(err?.code).toBe('Unauthenticated');
    const submitErr = await client.submitResult({ secret: '', taskId: 'x' }).then(
      () => undefined,
      (e: unknown) => fromConnectError(e),
    );
    expect(submitErr?.code).toBe('Unauthenticated');

    // A RemoteTranscoder with the wrong secret is told why and never joins.
    const t = new RemoteTranscoder(
      { orchestrator: server.url, secret: 'also-wrong', backoffInitialMs: 50 },
      { transcoder: new HeldTranscoder() },
    );
    cleanups.push(() => t.stop());
    const refused = transcoderEvent(t, 'disconnected');
    t.start();
    expect((await refused).code).toBe('Unauthenticated');
    expect(pool.memberInfo()).toEqual([]);
  });

  it('re-dispatches at once when a transcoder is stopped mid-segment', async () => {
    const { pool, server } = await servePool();
    const held = new HeldTranscoder();
    // The held one joins first, so the tie between two idle members sends it the segment.
    const victim = await connect(pool, server.url, { held });
    const healthy = await connect(pool, server.url);

    const result = pool.transcode(segment, profiles);
    await held.started();
    const cutAt = performance.now();
    await victim.t.stop();
    const r = await result;
    const elapsed = performance.now() - cutAt;

    expect(r.transcoder).toBe(healthy.id);
    expect(r.attempts).toBe(2);
    expect(elapsed).toBeLessThan(TASK_TIMEOUT_MS / 4);
    expect(held.holding, 'stop() aborted the held segment').toBe(0);
    expect(victim.t.inFlight).toBe(0);
    expect(pool.memberInfo().map((m) => m.id)).toEqual([healthy.id]);
  });

  it('re-dispatches at once when a transcoder connection is cut abruptly mid-segment', async () => {
    const { pool, server } = await servePool();
    const link = await relay(server.port);
    cleanups.push(() => link.close());
    const held = new HeldTranscoder();
    const victim = await connect(pool, link.url, { held, backoffInitialMs: 60_000 });
    const healthy = await connect(pool, server.url);

    const result = pool.transcode(segment, profiles);
    await held.started();
    const left = poolEvent(pool, 'left', (e) => e.member.id === victim.id);
    const cutAt = performance.now();
    link.cut();
    const r = await result;
    const elapsed = performance.now() - cutAt;

    expect(r.transcoder).toBe(healthy.id);
    expect(r.attempts).toBe(2);
    expect(elapsed).toBeLessThan(TASK_TIMEOUT_MS / 4);
    await left;
    expect(pool.memberInfo().map((m) => m.id)).toEqual([healthy.id]);
  });

  it('re-dispatches the segment of a dropped transcoder once a busy member frees a slot, instead of failing it', async () => {
    // Found by test/e2e/chaos-transcoder.test.ts: two transcoders, both busy, one SIGKILLed. Its segment used to
    // fail (`TranscodeFailed`, "failed on 1 transcoder(s)") because no slot was free that instant, although the
    // other member was a second away from one.
    const { pool, server } = await servePool();
    const held = new HeldTranscoder();
    const victim = await connect(pool, server.url, { held });
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const busy = await connect(pool, server.url, {
      transcoder: {
        transcode: async () => {
          await gate;
          return canned;
        },
      },
    });

    const first = pool.transcode(segment, profiles);
    await held.started();
    const secondDispatched = poolEvent(pool, 'dispatched', (e) => e.member === busy.id);
    const second = pool.transcode(segment, profiles);
    await secondDispatched;
    expect(pool.freeCapacity()).toBe(0);

    const left = poolEvent(pool, 'left', (e) => e.member.id === victim.id);
    await victim.t.stop();
    await left;
    release();
    const [a, b] = await Promise.all([first, second]);
    expect({ transcoder: a.transcoder, attempts: a.attempts }).toEqual({ transcoder: busy.id, attempts: 2 });
    expect(b.transcoder).toBe(busy.id);
  });

  it('re-dispatches at once when a transcoder reports a failure', async () => {
    const { pool, server } = await servePool();
    const failing: SegmentTranscoder = {
      transcode: () =>
        Promise.reject(new FfmpegError('FfmpegTimeout', 'ffmpeg took too long', { binary: 'ffmpeg' })),
    };
    const bad = await connect(pool, server.url, { transcoder: failing });
    const healthy = await connect(pool, server.url);

    const failed = poolEvent(pool, 'failed');
    const startedAt = performance.now();
    const r = await pool.transcode(segment, profiles);
    const f = await failed;
    expect([f.member, f.code, f.retry]).toEqual([bad.id, 'TranscodeFailed', true]);
    expect(r.transcoder).toBe(healthy.id);
    expect(r.attempts).toBe(2);
    expect(performance.now() - startedAt).toBeLessThan(TASK_TIMEOUT_MS / 4);
  });

  // THREATS 26 on the orchestrator's side: a transcoder with the right secret is trusted with the work, not with
  // whose time its renditions are. The orchestrator signs a receipt over what the pool returns, so the pool
  // must not return another segment's renditions as this one's.
  it('drops a transcoder that answers with another segment’s renditions and re-dispatches the segment', async () => {
    const warnings: { msg?: string; member?: string; timing?: string }[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
    const { pool, server } = await servePool({}, { logger });
    // The rogue joins first, so the tie between two idle members sends it the segment.
    const rogue = await connect(pool, server.url, {
      transcoder: { transcode: async () => otherSegments },
      backoffInitialMs: 60_000,
    });
    const healthy = await connect(pool, server.url);

    const failed = poolEvent(pool, 'failed');
    const left = poolEvent(pool, 'left', (e) => e.member.id === rogue.id);
    const told = transcoderEvent(rogue.t, 'disconnected');
    const r = await pool.transcode(stream[0] as Buffer, profiles);

    expect(r.transcoder).toBe(healthy.id);
    expect(r.attempts).toBe(2);
    const f = await failed;
    expect([f.member, f.code, f.retry]).toEqual([rogue.id, 'TranscodeFailed', true]);
    expect((await left).reason).toMatch(/starts .* after the source segment/);
    expect(pool.memberInfo().map((m) => m.id)).toEqual([healthy.id]);
    // The rogue is told why its stream ended, with a code its operator can look up.
    expect((await told).code).toBe('TranscodeFailed');
    expect(warnings.map((w) => [w.msg, w.member, w.timing])).toContainEqual([
      'remote transcoder returned renditions of another time; dropping it',
      rogue.id,
      'StartShifted',
    ]);
  });

  it('refuses the segment when its only transcoder answers with another segment’s renditions', async () => {
    const { pool, server } = await servePool();
    await connect(pool, server.url, {
      transcoder: { transcode: async () => otherSegments },
      backoffInitialMs: 60_000,
    });
    const err = await rejection(pool.transcode(stream[0] as Buffer, profiles), StreamflowError);
    expect(err.code).toBe('TranscodeFailed');
    expect(err.message).toMatch(/after the source segment/);
    expect(pool.memberInfo()).toEqual([]);
  });

  it('never lets the orchestrator sign a receipt over another segment’s renditions from its transcoder', async () => {
    // The whole orchestrator side: the real JobService (payment, receipt signing) over the pool, asked by the
    // broadcaster's own client. The only transcoder answers with segment 1's renditions for segment 0.
    const { pool, server } = await servePool();
    await connect(pool, server.url, {
      transcoder: { transcode: async () => otherSegments },
      backoffInitialMs: 60_000,
    });
    const node = await startOrchestrator({ account: testAccount('pool-orchestrator'), transcoder: pool });
    cleanups.push(() => node.server.close());
    const broadcaster = testAccount('pool-broadcaster');
    const client = new OrchestratorClient(node.server.url, node.account.address, { signer: broadcaster });
    cleanups.push(() => client.close());
    const sender = new Sender(
      {
        privateKey: hexBytes(testKey('pool-broadcaster')),
        domain: { chainId: 31_337, verifyingContract: '0x00000000000000000000000000000000000000b0' },
      },
      { funds: { deposit: () => 10n ** 18n } },
    );
    const info = await client.getInfo({ service: 'transcode/h264' }, { timeoutMs: 5_000 });
    const seg = stream[0] as Buffer;
    const err = await rejection(
      client.transcode(
        {
          source: sourceFactsOf(seg),
          streamId: 'pool-stream',
          seq: 0,
          durationMs: 1_000,
          profiles,
          segment: seg,
          payment: sender.createPayment(info.params, TICKET_EV, { recipient: info.address }),
        },
        { timeoutMs: 30_000 },
      ),
      TranscodeRefused,
    );
    // A refusal from the orchestrator, not a signed reply: the broadcaster moves on without suspecting it.
    expect(err.code).toBe('TranscodeFailed');
    expect(pool.memberInfo()).toEqual([]);
  });

  it('refuses input no transcoder takes without trying another', async () => {
    const { pool, server } = await servePool();
    await connect(pool, server.url);
    const err = await rejection(pool.transcode(segment.subarray(0, 188 * 3), profiles), StreamflowError);
    expect(err.code).toBe('SegmentFormatDidntMatchJobInputParams');
    expect(pool.freeCapacity()).toBe(1);
  });

  it('re-dispatches a segment a silent transcoder holds past the task timeout', async () => {
    const { pool, server } = await servePool({ taskTimeoutMs: 500 });
    const held = new HeldTranscoder();
    await connect(pool, server.url, { held });
    // Real renditions made in beforeAll: a real ffmpeg run on a loaded machine could itself pass this short
    // timeout.
    const healthy = await connect(pool, server.url, { transcoder: { transcode: async () => canned } });

    const failed = poolEvent(pool, 'failed');
    const r = await pool.transcode(segment, profiles);
    expect((await failed).code).toBe('TranscodeFailed');
    expect(r.transcoder).toBe(healthy.id);
    expect(r.attempts).toBe(2);
  });

  it('answers OrchestratorBusy when every transcoder is full', async () => {
    const { pool, server } = await servePool();
    const held = [new HeldTranscoder(), new HeldTranscoder()];
    await connect(pool, server.url, { held: held[0] as HeldTranscoder });
    await connect(pool, server.url, { held: held[1] as HeldTranscoder });

    const controller = new AbortController();
    const pending = [
      pool.transcode(segment, profiles, { signal: controller.signal }),
      pool.transcode(segment, profiles, { signal: controller.signal }),
    ];
    await Promise.all(held.map((h) => h.started()));
    expect(pool.freeCapacity()).toBe(0);

    const err = await rejection(pool.transcode(segment, profiles), StreamflowError);
    expect(err.code).toBe('OrchestratorBusy');

    controller.abort(new Error('test done'));
    for (const p of pending) await expect(p).rejects.toThrow('test done');
    expect(pool.freeCapacity()).toBe(2);
  });

  it('`streamflow transcoder` serves the pool until its signal aborts', async () => {
    const { pool, server } = await servePool();
    const controller = new AbortController();
    const out: string[] = [];
    const program = new Command().exitOverride();
    registerTranscoderCommand(program, {
      signal: controller.signal,
      logger: silentLogger,
      stdout: { write: (text: string) => out.push(text) },
    });
    const joined = poolEvent(pool, 'joined');
    const run = program.parseAsync(
      [
        'transcoder',
        '--orchestrator',
        server.url,
        '--secret',
        SECRET,
        '--capacity',
        '2',
        '--ffmpeg',
        tools.ffmpeg,
      ],
      { from: 'user' },
    );
    const member = (await joined).member;
    expect(member.capacity).toBe(2);
    const r = await pool.transcode(segment, profiles);
    expect(r.transcoder).toBe(member.id);

    const left = poolEvent(pool, 'left');
    controller.abort();
    await run;
    await left;
    expect(out.join('')).toContain('capacity 2');
    expect(pool.memberInfo()).toEqual([]);
  });

  it('a transcoder reconnects after the pool server restarts', async () => {
    const pool = new TranscoderPool({ secret: SECRET, localCapacity: 0, taskTimeoutMs: TASK_TIMEOUT_MS });
    cleanups.push(() => pool.close());
    let server = await createRpcServer({ port: 0 }, (router) => pool.registerRoutes(router));
    cleanups.push(() => server.close());
    const first = await connect(pool, server.url);

    const left = poolEvent(pool, 'left');
    const dropped = transcoderEvent(first.t, 'disconnected');
    await server.close();
    await left;
    expect((await dropped).code).toBe('ShuttingDown');

    const rejoined = poolEvent(pool, 'joined');
    server = await createRpcServer({ port: server.port }, (router) => pool.registerRoutes(router));
    const again = (await rejoined).member.id;
    expect(again).not.toBe(first.id);

    const r = await pool.transcode(segment, profiles);
    expect(r.transcoder).toBe(again);
  });
});
