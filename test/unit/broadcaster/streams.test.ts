import { once } from 'node:events';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BroadcasterError } from '../../../src/broadcaster/errors.js';
import { createStreamKey, IngestAuth, IngestError } from '../../../src/broadcaster/ingest-auth.js';
import type { JobManager } from '../../../src/broadcaster/jobs.js';
import { StreamRegistry } from '../../../src/broadcaster/streams.js';
import { createHttpPushHandler } from '../../../src/media/http-push.js';
import { resolveProfiles } from '../../../src/media/profiles.js';
import { cut, makeSource, rejection, tempDir } from '../media/fixtures.js';

const profiles = resolveProfiles('360p30,240p30');

/** A job manager that knows no orchestrator: every segment fails at once and goes out as the source. */
const noOrchestrator: Pick<JobManager, 'transcode'> = {
  transcode: async (task) => {
    throw new BroadcasterError('NoOrchestrator', `no orchestrator for ${task.seq}`, {
      seq: task.seq,
      tried: 0,
    });
  },
};

/** The broadcaster's push wiring (src/broadcaster/node.ts), on a real server. */
async function pushServer(registry: StreamRegistry): Promise<{ server: Server; port: number }> {
  const push = createHttpPushHandler(
    {},
    {
      authorize: (req) => registry.authorizePush({ ...req, protocol: 'http' }),
      onSegment: async (seg) => {
        const r = await registry.pushSegment(seg);
        return r && { ...r, fee: r.fee.toString() };
      },
      onEnd: (req) => registry.endPush(req.stream),
    },
  );
  const server = createServer((req, res) => {
    if (!push(req, res)) res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

function send(
  port: number,
  method: string,
  path: string,
  body: Buffer | undefined,
  headers: Record<string, string> = {},
  agent?: Agent,
): Promise<{ status: number; json: Record<string, unknown> | undefined; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: { 'content-type': 'video/mp2t', ...headers }, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({
            status: res.statusCode ?? 0,
            json: text ? JSON.parse(text) : undefined,
            headers: res.headers,
          });
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err),
    );
    req.end(body);
  });
}

describe('stream bookkeeping', () => {
  const tmp = tempDir('streams');
  let segment: Buffer;
  let second: Buffer;
  const servers: Server[] = [];

  beforeAll(() => {
    const segs = cut(makeSource(tmp.dir, 'tiny', { width: 64, height: 36, fps: 10, seconds: 2, gop: 1 }), 1);
    segment = segs[0]?.bytes as Buffer;
    second = segs[1]?.bytes as Buffer;
  });
  afterEach(() => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      s.close();
    }
  });
  afterAll(() => tmp.remove());

  it('refuses a stream over maxStreams with a reason and takes one again once a stream has ended', async () => {
    const registry = new StreamRegistry(
      { profiles, maxStreams: 2 },
      { jobs: noOrchestrator, auth: new IngestAuth({ profiles: [] }) },
    );
    const { server, port } = await pushServer(registry);
    servers.push(server);
    expect((await send(port, 'PUT', '/live/a/0.ts', segment)).status).toBe(200);
    expect((await send(port, 'PUT', '/live/b/0.ts', segment)).status).toBe(200);
    const third = await send(port, 'PUT', '/live/c/0.ts', segment);
    expect(third.status).toBe(503);
    expect(third.json).toMatchObject({ code: 'TooManyStreams' });
    expect(String(third.json?.message)).toContain('at most 2 live streams');
    // A file or RTMP stream counts too.
    await rejection(
      Promise.resolve().then(() => registry.open('file')),
      IngestError,
    );
    expect((await send(port, 'DELETE', '/live/a', undefined)).status).toBe(204);
    expect(registry.get('a')?.snapshot().ended).toBe(true);
    expect((await send(port, 'PUT', '/live/c/0.ts', segment)).status).toBe(200);
    expect(registry.live).toBe(2);
  });

  it('answers a duplicate or out-of-order pushed seq with 409 and a reason', async () => {
    const registry = new StreamRegistry(
      { profiles },
      { jobs: noOrchestrator, auth: new IngestAuth({ profiles: [] }) },
    );
    const { server, port } = await pushServer(registry);
    servers.push(server);
    expect((await send(port, 'PUT', '/live/cam/5.ts', segment)).status).toBe(200);
    const dup = await send(port, 'PUT', '/live/cam/5.ts', segment);
    expect(dup.status).toBe(409);
    expect(dup.json).toMatchObject({ code: 'DuplicateSegment' });
    expect(String(dup.json?.message)).toContain('already pushed');
    const late = await send(port, 'PUT', '/live/cam/3.ts', segment);
    expect(late.status).toBe(409);
    expect(late.json).toMatchObject({ code: 'SegmentOutOfOrder' });
    expect((await send(port, 'PUT', '/live/cam/6.ts', second)).status).toBe(200);
    expect(registry.get('cam')?.snapshot().ingested).toBe(2);
  });

  it('binds a pushed stream to the key that opened it and refuses web pages of other origins', async () => {
    const file = join(tmp.dir, 'keys.json');
    const { key } = await createStreamKey(file, 'cam');
    const registry = new StreamRegistry(
      { profiles },
      { jobs: noOrchestrator, auth: new IngestAuth({ profiles: [], streamKeysFile: file }) },
    );
    const { server, port } = await pushServer(registry);
    servers.push(server);
    const none = await send(port, 'PUT', '/live/cam/0.ts', segment);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    expect(
      (await send(port, 'PUT', '/live/cam/0.ts', segment, { authorization: 'Bearer nope' })).status,
    ).toBe(403);
    expect(registry.get('cam')).toBeUndefined();
    const ok = await send(port, 'PUT', '/live/cam/0.ts', segment, { authorization: `Bearer ${key}` });
    expect(ok.status).toBe(200);
    // The key in the path works as well; without any key a live stream takes nothing.
    expect((await send(port, 'PUT', `/live/cam/${key}/1.ts`, second)).status).toBe(200);
    expect((await send(port, 'PUT', '/live/cam/2.ts', second)).status).toBe(401);
    expect((await send(port, 'DELETE', '/live/cam', undefined)).status).toBe(401);
    const cross = await send(port, 'PUT', '/live/cam/2.ts', second, {
      authorization: `Bearer ${key}`,
      origin: 'http://evil.example',
    });
    expect(cross.status).toBe(403);
    expect(cross.json).toMatchObject({ code: 'CrossOrigin' });
    const preflight = await send(port, 'OPTIONS', '/live/cam/2.ts', undefined, {
      origin: 'http://evil.example',
      'access-control-request-method': 'PUT',
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    // Same origin (a page served by this very server) is not cross-origin.
    const same = await send(port, 'PUT', '/live/cam/2.ts', second, {
      authorization: `Bearer ${key}`,
      origin: `http://127.0.0.1:${port}`,
    });
    expect(same.status).toBe(200);
    expect(
      (await send(port, 'DELETE', '/live/cam', undefined, { authorization: `Bearer ${key}` })).status,
    ).toBe(204);
    expect(registry.get('cam')?.snapshot()).toMatchObject({ ended: true, ingested: 3 });
  });

  it('makes only the profiles the auth webhook allowed for that stream', async () => {
    const asked: unknown[] = [];
    const auth = new IngestAuth(
      { profiles: profiles.map((p) => p.name), authWebhook: 'http://auth.invalid/hook' },
      {
        fetch: async (_url, init) => {
          asked.push(JSON.parse(String(init?.body)));
          return new Response('{"profiles":["240p30"]}', { status: 200 });
        },
      },
    );
    const registry = new StreamRegistry({ profiles }, { jobs: noOrchestrator, auth });
    const { server, port } = await pushServer(registry);
    servers.push(server);
    expect(
      (await send(port, 'PUT', '/live/narrow/0.ts', segment, { authorization: 'Bearer k' })).status,
    ).toBe(200);
    expect((await send(port, 'PUT', '/live/narrow/1.ts', second, { authorization: 'Bearer k' })).status).toBe(
      200,
    );
    // Asked once for the stream, not for every segment.
    expect(asked).toEqual([
      {
        stream: 'narrow',
        key: 'k',
        remoteAddress: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        protocol: 'http',
      },
    ]);
    expect(registry.get('narrow')?.profiles.map((p) => p.name)).toEqual(['240p30']);
    // The grant went with that key: the stream takes nothing without it.
    expect((await send(port, 'PUT', '/live/narrow/2.ts', second)).status).toBe(401);
    // No orchestrator here, so the variants carry the source; the 360p30 variant does not exist at all.
    const hls = registry.get('narrow')?.hls;
    expect(await hls?.get('240p30/index.m3u8')).toBeDefined();
    expect(await hls?.get('360p30/index.m3u8')).toBeUndefined();
  });

  it('binds a stream the webhook let in without a key to the publisher it let in', async () => {
    const auth = new IngestAuth(
      { profiles: [], authWebhook: 'http://auth.invalid/hook' },
      { fetch: async () => new Response(null, { status: 204 }) },
    );
    const registry = new StreamRegistry({ profiles }, { jobs: noOrchestrator, auth });
    const push = (remoteAddress: string, seq: number) =>
      registry.authorizePush({ stream: 'cam', key: undefined, remoteAddress, protocol: 'http', seq });
    await push('192.0.2.10:4000', 0);
    await push('192.0.2.10:4001', 1);
    const err = await rejection(push('192.0.2.11:4000', 1), IngestError);
    expect(err.code).toBe('StreamKeyRefused');
  });

  it('ends a pushed stream that stops sending after the idle timeout', async () => {
    const registry = new StreamRegistry(
      { profiles, pushIdleTimeoutMs: 100 },
      { jobs: noOrchestrator, auth: new IngestAuth({ profiles: [] }) },
    );
    const { server, port } = await pushServer(registry);
    servers.push(server);
    expect((await send(port, 'PUT', '/live/quiet/0.ts', segment)).status).toBe(200);
    const until = performance.now() + 10_000;
    while (!registry.get('quiet')?.snapshot().ended && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(registry.get('quiet')?.snapshot().ended).toBe(true);
    expect(registry.live).toBe(0);
  });

  it('keeps only the newest ended streams, for a while', async () => {
    let now = 0;
    const registry = new StreamRegistry(
      { profiles, keepEnded: 3, keepEndedMs: 1_000 },
      { jobs: noOrchestrator, auth: new IngestAuth({ profiles: [] }), now: () => now },
    );
    for (const id of ['s1', 's2', 's3', 's4', 's5']) await registry.end(registry.open(id));
    expect([...registry.streams.keys()]).toEqual(['s3', 's4', 's5']);
    now = 2_000;
    registry.open('s6');
    expect([...registry.streams.keys()]).toEqual(['s6']);
  });

  it('keeps memory flat across 5,000 pushed stream starts and stops', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const registry = new StreamRegistry(
      { profiles, maxStreams: 64 },
      { jobs: noOrchestrator, auth: new IngestAuth({ profiles: [] }) },
    );
    const { server, port } = await pushServer(registry);
    servers.push(server);
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const measure = async () => {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
      const m = process.memoryUsage();
      return m.heapUsed + m.external;
    };
    const run = async (from: number, to: number) => {
      const lanes = 8;
      await Promise.all(
        Array.from({ length: lanes }, async (_, lane) => {
          for (let i = from + lane; i < to; i += lanes) {
            const started = await send(port, 'PUT', `/live/flood-${i}/0.ts`, segment, {}, agent);
            if (started.status !== 200)
              throw new Error(`start ${i}: ${started.status} ${JSON.stringify(started.json)}`);
            const stopped = await send(port, 'DELETE', `/live/flood-${i}`, undefined, {}, agent);
            if (stopped.status !== 204) throw new Error(`stop ${i}: ${stopped.status}`);
          }
        }),
      );
    };
    const t0 = performance.now();
    await run(0, 500);
    const early = await measure();
    await run(500, 5_000);
    const late = await measure();
    agent.destroy();
    const growthMb = (late - early) / 2 ** 20;
    console.log(
      `5,000 push streams started and stopped in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
        `heap+external after 500: ${(early / 2 ** 20).toFixed(1)} MB, after 5,000: ${(late / 2 ** 20).toFixed(1)} MB`,
    );
    expect(registry.live).toBe(0);
    expect(registry.streams.size).toBeLessThanOrEqual(64);
    // Before, every stream ever started stayed (its segments and playlists with it): +158 MB for 5,000.
    expect(growthMb).toBeLessThan(8);
  }, 240_000);
});
