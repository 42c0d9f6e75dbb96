import http2 from 'node:http2';
import net from 'node:net';
import { create, toBinary } from '@bufbuild/protobuf';
import { type ConnectRouter, createClient } from '@connectrpc/connect';
import { afterEach, describe, expect, it } from 'vitest';
import { fromConnectError, WireError } from '../../../src/rpc/errors.js';
import {
  GetOrchestratorInfoRequestSchema,
  Orchestrator,
  OrchestratorInfoSchema,
  TranscodeReplySchema,
  TranscodeRequestSchema,
} from '../../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import type { RpcServerOptions } from '../../../src/rpc/options.js';
import { createRpcServer, PEER_HEADER, type RpcServer } from '../../../src/rpc/server.js';
import { createRpcTransport } from '../../../src/rpc/transport.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const TRANSCODE = '/streamflow.v1.Orchestrator/Transcode';
const INFO = '/streamflow.v1.Orchestrator/GetOrchestratorInfo';

const servers: RpcServer[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Replies to Transcode with the segment's length in `ticketParams.faceValue`'s place: enough to see it arrived. */
const routes =
  (hooks: { transcode?: () => Promise<void>; peer?: (p: string | null) => void } = {}) =>
  (router: ConnectRouter) =>
    router.service(Orchestrator, {
      getOrchestratorInfo: (_req, ctx) => {
        hooks.peer?.(ctx.requestHeader.get(PEER_HEADER));
        return create(OrchestratorInfoSchema, { capacityLeft: 1 });
      },
      transcode: async (req) => {
        await hooks.transcode?.();
        return create(TranscodeReplySchema, {
          ticketParams: { faceValue: new Uint8Array([req.segment.length >> 16, req.segment.length & 0xff]) },
        });
      },
    });

async function serve(options: RpcServerOptions = {}, r = routes()): Promise<RpcServer> {
  const server = await createRpcServer({ host: '127.0.0.1', port: 0, closeGraceMs: 200, ...options }, r);
  servers.push(server);
  return server;
}

function client(url: string) {
  const controller = new AbortController();
  cleanups.push(() => controller.abort());
  return createClient(Orchestrator, createRpcTransport(url, { signal: controller.signal }));
}

function session(url: string): http2.ClientHttp2Session {
  const s = http2.connect(url);
  s.on('error', () => {});
  cleanups.push(() => s.destroy());
  return s;
}

/** A raw HTTP/2 session to `server` whose connection comes from `localAddress` (any 127.x on loopback). */
function fromAddress(server: RpcServer, localAddress: string): http2.ClientHttp2Session {
  const s = http2.connect(server.url, {
    createConnection: () => net.connect({ host: '127.0.0.1', port: server.port, localAddress }),
  });
  s.on('error', () => {});
  cleanups.push(() => s.destroy());
  return s;
}

function transcodeRequest(segmentBytes: number): Uint8Array {
  return toBinary(
    TranscodeRequestSchema,
    create(TranscodeRequestSchema, { segment: new Uint8Array(segmentBytes) }),
  );
}

interface RawResult {
  /** `grpc-status` from the response headers or trailers, when a response came. */
  grpcStatus?: number;
  /** `streamflow-error-code`, when the server sent one. */
  code?: string;
  /** RST_STREAM code the stream closed with (0 = normal end). */
  rstCode: number;
  /** When the stream closed, ms since it opened. */
  closedAfterMs: number;
}

/** A gRPC request written by hand: `chunks` are sent as given (prefix included), then the body ends if `end`. */
function raw(
  s: http2.ClientHttp2Session,
  path: string,
  chunks: Uint8Array[],
  options: { end?: boolean; contentType?: string } = {},
): { stream: http2.ClientHttp2Stream; done: Promise<RawResult> } {
  const opened = Date.now();
  const stream = s.request({
    ':method': 'POST',
    ':path': path,
    'content-type': options.contentType ?? 'application/grpc',
    te: 'trailers',
  });
  stream.on('error', () => {});
  const result: Partial<RawResult> = {};
  const take = (h: http2.IncomingHttpHeaders) => {
    if (h['grpc-status'] !== undefined) result.grpcStatus = Number(h['grpc-status']);
    const code = h['streamflow-error-code'];
    if (typeof code === 'string') result.code = code;
  };
  stream.on('response', take);
  stream.on('trailers', take);
  stream.on('data', () => {});
  for (const c of chunks) stream.write(c);
  if (options.end) stream.end();
  const done = new Promise<RawResult>((resolve) =>
    stream.once('close', () =>
      resolve({ ...result, rstCode: stream.rstCode ?? 0, closedAfterMs: Date.now() - opened }),
    ),
  );
  return { stream, done };
}

function prefix(length: number, flags = 0): Uint8Array {
  const p = new Uint8Array(5);
  p[0] = flags;
  new DataView(p.buffer).setUint32(1, length);
  return p;
}

function envelope(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + message.length);
  out.set(prefix(message.length), 0);
  out.set(message, 5);
  return out;
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('rpc server resource limits', () => {
  it('refuses a declared length above the procedure limit at the prefix, allocating nothing', async () => {
    const server = await serve();
    const s = session(server.url);
    const before = process.memoryUsage().arrayBuffers;
    // Twelve 60 MiB declarations took an orchestrator from 547 MB to 1.45 GB when they were allocated up front.
    const calls = Array.from({ length: 12 }, () =>
      raw(s, TRANSCODE, [prefix(60 * MiB), new Uint8Array(KiB)]),
    );
    const results = await Promise.all(calls.map((c) => c.done));
    const grown = process.memoryUsage().arrayBuffers - before;
    for (const [i, r] of results.entries()) {
      expect(r.code, `call ${i}`).toBe('MessageTooLarge');
      expect(r.grpcStatus, `call ${i}`).toBe(8); // RESOURCE_EXHAUSTED
      expect(r.closedAfterMs, `call ${i}`).toBeLessThan(5_000);
    }
    expect(grown).toBeLessThan(64 * MiB);
    // A control procedure has a control-sized limit, not the segment's.
    const info = await raw(s, INFO, [prefix(MiB)]).done;
    expect(info.code).toBe('MessageTooLarge');
  });

  it('answers an honest Transcode below the limit', async () => {
    const server = await serve();
    const reply = await client(server.url).transcode({ segment: new Uint8Array(3 * MiB + 7) });
    expect(reply.ticketParams?.faceValue).toEqual(new Uint8Array([48, 7]));
    expect(server.stats.inFlightBytes).toBe(0);
  });

  it('resets hundreds of dripping streams within seconds while an honest call succeeds', async () => {
    const server = await serve();
    const drips: ReturnType<typeof raw>[] = [];
    const sessions = [session(server.url), session(server.url), session(server.url)];
    // 20 MiB is under the Transcode limit: only the rate rule can stop these.
    for (let i = 0; i < 300; i++) {
      drips.push(
        raw(sessions[i % 3] as http2.ClientHttp2Session, TRANSCODE, [prefix(20 * MiB), new Uint8Array(KiB)]),
      );
    }
    const timer = setInterval(() => {
      for (const d of drips) if (!d.stream.closed) d.stream.write(new Uint8Array(KiB));
    }, 3_000);
    cleanups.push(() => clearInterval(timer));
    const started = Date.now();
    const reply = await client(server.url).transcode({ segment: new Uint8Array(MiB) });
    expect(reply.ticketParams?.faceValue).toEqual(new Uint8Array([16, 0]));
    const results = await Promise.all(drips.map((d) => d.done));
    // Default grace 5 s at 64 KiB/s: every drip is gone well before its 20 MiB could arrive.
    // (Room for a loaded machine: the watchdog's clock stops while this process is starved.)
    expect(Date.now() - started).toBeLessThan(25_000);
    for (const [i, r] of results.entries()) {
      expect(r.rstCode, `stream ${i}`).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
    }
    expect(server.stats.streamsReset.bodyTooSlow).toBe(300);
    expect(server.stats.inFlightBytes).toBe(0);
  }, 60_000);

  it('resets a stream that stops sending, and one that outlasts the body deadline', async () => {
    const server = await serve({ bodyIdleTimeoutMs: 300, bodyTimeoutMs: 1_500, minBodyBytesPerSecond: 1 });
    const s = session(server.url);
    const stalled = raw(s, TRANSCODE, [prefix(MiB), new Uint8Array(KiB)]);
    const slow = raw(s, TRANSCODE, [prefix(MiB)]);
    const timer = setInterval(() => slow.stream.write(new Uint8Array(16)), 100);
    cleanups.push(() => clearInterval(timer));
    expect((await stalled.done).rstCode).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
    expect((await slow.done).rstCode).toBe(http2.constants.NGHTTP2_REFUSED_STREAM);
    expect(server.stats.streamsReset.bodyIdle).toBe(1);
    expect(server.stats.streamsReset.bodyTimeout).toBe(1);
  });

  it('leaves a call alone once its request arrived, however long its handler takes', async () => {
    const server = await serve(
      { bodyIdleTimeoutMs: 200, bodyGraceMs: 100, bodyTimeoutMs: 400 },
      // Simulated work, longer than every body timeout.
      routes({ transcode: () => new Promise((r) => setTimeout(r, 1_200)) }),
    );
    const reply = await client(server.url).transcode({ segment: new Uint8Array(64 * KiB) });
    expect(reply.ticketParams).toBeDefined();
    expect(server.stats.streamsReset).toEqual({ bodyTooSlow: 0, bodyIdle: 0, bodyTimeout: 0 });
  });

  it('refuses with OrchestratorBusy once the request bytes in flight reach the cap', async () => {
    // Every call comes from 127.0.0.1 here: the per-address share is off to see the total cap alone.
    const server = await serve({
      maxInFlightRequestBytes: MiB,
      maxInFlightSharePerAddress: 1,
      bodyIdleTimeoutMs: 60_000,
      bodyGraceMs: 60_000,
    });
    const s = session(server.url);
    const hog = raw(s, TRANSCODE, [prefix(2 * MiB), new Uint8Array(900 * KiB)]);
    await until(() => server.stats.inFlightBytes >= 900 * KiB, 10_000, 'the hog to be received');
    const err = await client(server.url)
      .transcode({ segment: new Uint8Array(300 * KiB) })
      .then(
        () => undefined,
        (e: unknown) => fromConnectError(e),
      );
    expect(err).toBeInstanceOf(WireError);
    expect(err?.code).toBe('OrchestratorBusy');
    expect(err?.details.reason).toBe('inFlightBytes');
    hog.stream.close(http2.constants.NGHTTP2_CANCEL);
    await hog.done;
    await until(() => server.stats.inFlightBytes === 0, 10_000, 'the hog bytes to be released');
    const reply = await client(server.url).transcode({ segment: new Uint8Array(300 * KiB) });
    expect(reply.ticketParams).toBeDefined();
  });

  it('refuses with OrchestratorBusy once the jobs in flight reach the cap', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const server = await serve(
      { maxInFlightJobs: 2, maxInFlightSharePerAddress: 1 },
      routes({ transcode: () => gate }),
    );
    const c = client(server.url);
    const held = [c.transcode({ segment: new Uint8Array(10) }), c.transcode({ segment: new Uint8Array(10) })];
    await until(() => server.stats.inFlightJobs === 2, 10_000, 'two jobs in flight');
    const err = await c.transcode({ segment: new Uint8Array(10) }).then(
      () => undefined,
      (e: unknown) => fromConnectError(e),
    );
    expect(err?.code).toBe('OrchestratorBusy');
    expect(err?.details.reason).toBe('inFlightJobs');
    release();
    await Promise.all(held);
    await until(() => server.stats.inFlightJobs === 0, 10_000, 'jobs released');
    await expect(c.transcode({ segment: new Uint8Array(10) })).resolves.toBeDefined();
  });

  it('keeps one address to its share of the job slots, so another address is still admitted', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const server = await serve(
      { maxInFlightJobs: 4, maxInFlightSharePerAddress: 0.5 },
      routes({ transcode: () => gate }),
    );
    // A flood from 127.0.0.1 tries to hold every slot: it gets its share (2 of 4), the rest OrchestratorBusy.
    const c = client(server.url);
    const flood = Array.from({ length: 4 }, () =>
      c.transcode({ segment: new Uint8Array(10) }).then(
        () => undefined,
        (e: unknown) => fromConnectError(e),
      ),
    );
    await until(() => server.stats.refused.addressJobs === 2, 10_000, 'the flood beyond its share refused');
    expect(server.stats.inFlightJobs).toBe(2);
    // Another address (127.0.0.2, same loopback) finds room while the flood holds its share.
    const other = fromAddress(server, '127.0.0.2');
    const honest = raw(other, TRANSCODE, [envelope(transcodeRequest(10))], { end: true });
    await until(() => server.stats.inFlightJobs === 3, 10_000, 'the other address admitted');
    release();
    expect((await honest.done).grpcStatus).toBe(0);
    const refused = (await Promise.all(flood)).filter((e) => e !== undefined);
    expect(refused).toHaveLength(2);
    for (const err of refused) {
      expect(err?.code).toBe('OrchestratorBusy');
      expect(err?.details.reason).toBe('inFlightJobsPerAddress');
    }
    expect(server.stats.refused.jobs).toBe(0);
    await until(() => server.stats.inFlightJobs === 0, 10_000, 'jobs released');
  });

  it('keeps one address to its share of the request bytes in flight, so another address is still admitted', async () => {
    const server = await serve({
      maxInFlightRequestBytes: MiB,
      maxInFlightSharePerAddress: 0.5,
      bodyIdleTimeoutMs: 60_000,
      bodyGraceMs: 60_000,
    });
    // 400 KiB of a declared 2 MiB held from 127.0.0.1: below its 512 KiB share, far below the 1 MiB total.
    const hog = raw(session(server.url), TRANSCODE, [prefix(2 * MiB), new Uint8Array(400 * KiB)]);
    await until(() => server.stats.inFlightBytes >= 400 * KiB, 10_000, 'the hog to be received');
    const err = await client(server.url)
      .transcode({ segment: new Uint8Array(300 * KiB) })
      .then(
        () => undefined,
        (e: unknown) => fromConnectError(e),
      );
    expect(err?.code).toBe('OrchestratorBusy');
    expect(err?.details.reason).toBe('inFlightBytesPerAddress');
    const other = raw(fromAddress(server, '127.0.0.2'), TRANSCODE, [envelope(transcodeRequest(300 * KiB))], {
      end: true,
    });
    expect((await other.done).grpcStatus).toBe(0);
    expect(server.stats.refused.bytes).toBe(0);
    hog.stream.close(http2.constants.NGHTTP2_CANCEL);
    await hog.done;
    await until(() => server.stats.inFlightBytes === 0, 10_000, 'the hog bytes to be released');
  });

  it('closes connections beyond the per-address cap and advertises its HTTP/2 limits', async () => {
    const server = await serve({
      maxConnectionsPerAddress: 3,
      maxConcurrentStreams: 7,
      maxHeaderBytes: 8 * KiB,
    });
    const sockets = Array.from({ length: 5 }, () => net.connect(server.port, '127.0.0.1'));
    const closed = new Set<number>();
    for (const [i, sock] of sockets.entries()) {
      sock.on('error', () => {});
      sock.on('close', () => closed.add(i));
      cleanups.push(() => sock.destroy());
    }
    await until(() => server.stats.connectionsRefused === 2, 10_000, 'two connections refused');
    await until(() => closed.size === 2, 10_000, 'two sockets closed');
    for (const sock of sockets) sock.destroy();
    await until(() => closed.size === 5, 10_000, 'all sockets closed');
    const s = session(server.url);
    await new Promise<void>((resolve) => s.once('remoteSettings', () => resolve()));
    expect(s.remoteSettings.maxConcurrentStreams).toBe(7);
    expect(s.remoteSettings.maxHeaderListSize).toBe(8 * KiB);
  });

  it('closes a connection that sends no request in time, and one left idle', async () => {
    const server = await serve({ headersTimeoutMs: 300, idleTimeoutMs: 300 });
    // A TCP connection that starts HTTP/2 (or does not) and never sends a request.
    const mute = net.connect(server.port, '127.0.0.1');
    mute.on('error', () => {});
    mute.resume();
    cleanups.push(() => mute.destroy());
    let muteClosed = false;
    mute.on('close', () => {
      muteClosed = true;
    });
    await until(() => muteClosed, 10_000, 'the mute connection to be closed');
    expect(server.stats.sessionsTimedOut.headers).toBeGreaterThanOrEqual(1);

    const s = session(server.url);
    let sessionClosed = false;
    s.on('close', () => {
      sessionClosed = true;
    });
    const info = raw(
      s,
      INFO,
      [envelope(toBinary(GetOrchestratorInfoRequestSchema, create(GetOrchestratorInfoRequestSchema)))],
      {
        end: true,
      },
    );
    expect((await info.done).grpcStatus).toBe(0);
    await until(() => sessionClosed, 10_000, 'the idle session to be closed');
    expect(server.stats.sessionsTimedOut.idle).toBe(1);
  });

  it('lets a client whose idle connection was closed call again over a new one', async () => {
    const server = await serve({ idleTimeoutMs: 300 });
    const c = client(server.url);
    await c.getOrchestratorInfo({});
    await until(() => server.stats.sessionsTimedOut.idle === 1, 10_000, 'the idle session to be closed');
    await expect(c.getOrchestratorInfo({})).resolves.toBeDefined();
  });

  it('tells handlers the remote IP address without the port', async () => {
    const peers: (string | null)[] = [];
    const server = await serve({}, routes({ peer: (p) => peers.push(p) }));
    await client(server.url).getOrchestratorInfo({});
    await client(server.url).getOrchestratorInfo({});
    expect(peers).toEqual(['127.0.0.1', '127.0.0.1']);
  });
});

describe('malformed requests are InvalidArgument', () => {
  const cases: { name: string; chunks: Uint8Array[]; contentType?: string }[] = [
    // Field 1, length-delimited, 127 bytes long, then nothing.
    { name: 'a message that does not parse', chunks: [envelope(new Uint8Array([0x0a, 0x7f, 1, 2, 3]))] },
    // Wire type 7 does not exist.
    { name: 'an impossible wire type', chunks: [envelope(new Uint8Array([0x0f, 0, 0, 0]))] },
    { name: 'a truncated envelope', chunks: [prefix(100), new Uint8Array(50)] },
    { name: 'a truncated prefix', chunks: [new Uint8Array([0, 0])] },
    { name: 'a compressed envelope nobody negotiated', chunks: [prefix(3, 1), new Uint8Array(3)] },
  ];
  for (const c of cases) {
    it(`answers ${c.name} with InvalidMessage (gRPC INVALID_ARGUMENT)`, async () => {
      const server = await serve();
      const r = await raw(session(server.url), TRANSCODE, c.chunks, { end: true }).done;
      expect(r.grpcStatus).toBe(3);
      expect(r.code).toBe('InvalidMessage');
    });
  }

  it('answers a Connect unary body that does not parse with invalid_argument', async () => {
    const server = await serve();
    const s = session(server.url);
    const stream = s.request({ ':method': 'POST', ':path': TRANSCODE, 'content-type': 'application/proto' });
    stream.end(Buffer.from([0x0a, 0x7f, 1, 2, 3]));
    let status = 0;
    let text = '';
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      text += d;
    });
    await new Promise((r) => stream.once('close', r));
    expect(status).toBe(400);
    expect(JSON.parse(text).code).toBe('invalid_argument');
  });

  it('refuses a Connect unary content-length above the limit before reading the body', async () => {
    const server = await serve();
    const s = session(server.url);
    const stream = s.request({
      ':method': 'POST',
      ':path': TRANSCODE,
      'content-type': 'application/proto',
      'content-length': String(60 * MiB),
    });
    stream.on('error', () => {});
    stream.write(new Uint8Array(KiB));
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      text += d;
    });
    await new Promise((r) => stream.once('close', r));
    expect(JSON.parse(text).code).toBe('resource_exhausted');
  });

  it('still serves well-formed requests after malformed ones', async () => {
    const server = await serve();
    const s = session(server.url);
    await raw(s, TRANSCODE, [envelope(new Uint8Array([0x0f]))], { end: true }).done;
    const good = toBinary(
      TranscodeRequestSchema,
      create(TranscodeRequestSchema, { segment: new Uint8Array(5) }),
    );
    const r = await raw(s, TRANSCODE, [envelope(good)], { end: true }).done;
    expect(r.grpcStatus).toBe(0);
  });
});
