import { connect } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError, HttpServer, parseRequestTarget, sendJson } from '../../../src/node/http-server.js';

/** Writes `raw` on a fresh TCP connection and resolves with everything the server sent before closing. */
function rawRequest(port: number, raw: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString()}`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(raw);
  });
}

function statusOf(response: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
}

describe('parseRequestTarget', () => {
  it('decodes each segment on its own, so an encoded slash stays inside its segment', () => {
    const t = parseRequestTarget('/hls/a%2Fb%20c/index.m3u8?x=1&y=%zz');
    expect(t.segments).toEqual(['hls', 'a/b c', 'index.m3u8']);
    expect(t.rawPath).toBe('/hls/a%2Fb%20c/index.m3u8');
    expect(t.query.get('x')).toBe('1');
  });

  it('takes the path of an absolute-form target', () => {
    expect(parseRequestTarget('http://example.com/status?x').segments).toEqual(['status']);
    expect(parseRequestTarget('http://example.com').path).toBe('/');
  });

  it('keeps empty segments of // (a 404 later, not a crash)', () => {
    expect(parseRequestTarget('//').segments).toEqual(['', '']);
    expect(parseRequestTarget('//a//b').path).toBe('//a//b');
  });

  it.each([
    ['/hls/%E0%A4%A/index.m3u8', 'not UTF-8'],
    ['/%', 'not UTF-8'],
    ['/%FF', 'not UTF-8'],
    ['*', 'start with /'],
    ['', 'start with /'],
    ['status', 'start with /'],
    ['/a/../status', 'dot segments'],
    ['/a/%2e%2E/status', 'dot segments'],
    ['/./x', 'dot segments'],
    ['/caf\u00e9', 'visible ASCII'],
    ['/a\tb', 'visible ASCII'],
  ])('refuses %j with 400 BadRequestTarget (%s)', (url, why) => {
    let err: unknown;
    try {
      parseRequestTarget(url);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HttpError);
    expect(err).toMatchObject({ status: 400, code: 'BadRequestTarget' });
    expect((err as Error).message).toContain(why);
  });
});

describe('HttpServer', () => {
  const logLines: Array<{ level: number; msg: string; err?: { message?: string } }> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void logLines.push(JSON.parse(s)) });
  const server = new HttpServer(
    { maxHeaderBytes: 4_096, headersTimeoutMs: 1_000, requestTimeoutMs: 2_000, maxConnections: 20 },
    { logger, name: 'test' },
  );
  let base: string;
  let port: number;

  beforeAll(async () => {
    server
      .route('GET', '/status', (_req, res) => sendJson(res, 200, { ok: true, big: 10n ** 20n }))
      .route(['PUT', 'POST'], '/live/:stream/:file', (_req, res, ctx) => sendJson(res, 200, ctx.params))
      .route('GET', '/hls/*', (_req, res, ctx) => sendJson(res, 200, { rest: ctx.rest }))
      .route('GET', '/throw', () => {
        throw new TypeError('handler bug');
      })
      .route('GET', '/reject', async () => {
        await Promise.resolve();
        throw new RangeError('async handler bug');
      })
      .route('GET', '/teapot', () => {
        throw new HttpError(418, 'Teapot', 'short and stout');
      })
      .route('GET', '/hang', () => undefined);
    await server.listen();
    base = server.url;
    port = server.address()?.port as number;
  });
  afterAll(() => server.close());

  it('serves a route, with HEAD wherever GET is served', async () => {
    const res = await fetch(`${base}/status`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, big: '100000000000000000000' });
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const head = await fetch(`${base}/status`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('answers 404 for an unknown path, also // which new URL() throws on', async () => {
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
    expect(statusOf(await rawRequest(port, 'GET // HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))).toBe(
      404,
    );
    expect(
      statusOf(await rawRequest(port, 'GET ///status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')),
    ).toBe(404);
  });

  it('answers 400 for percent-encoding that is not UTF-8 (decodeURIComponent throws on it)', async () => {
    const res = await rawRequest(
      port,
      'GET /hls/%E0%A4%A/index.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(statusOf(res)).toBe(400);
    expect(res).toContain('BadRequestTarget');
  });

  it('answers 405 with Allow for a known path asked with another method', async () => {
    const res = await fetch(`${base}/status`, { method: 'DELETE' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
    const push = await fetch(`${base}/live/a/1.ts`);
    expect(push.status).toBe(405);
    expect(push.headers.get('allow')).toBe('PUT, POST');
  });

  it('gives handlers decoded params and the rest of a * pattern', async () => {
    expect(await (await fetch(`${base}/live/my%20show/7.ts`, { method: 'PUT', body: 'x' })).json()).toEqual({
      stream: 'my show',
      file: '7.ts',
    });
    expect(await (await fetch(`${base}/hls/s/360p/index.m3u8`)).json()).toEqual({
      rest: ['s', '360p', 'index.m3u8'],
    });
    // * needs at least one segment.
    expect((await fetch(`${base}/hls`)).status).toBe(404);
  });

  it('turns a sync throw or a rejection in a handler into a 500 and an error log line, and keeps serving', async () => {
    for (const path of ['/throw', '/reject']) {
      const res = await fetch(`${base}${path}`);
      expect(res.status, path).toBe(500);
      expect(await res.json(), path).toEqual({ code: 'InternalError', message: 'internal error' });
    }
    const errors = logLines.filter((l) => l.msg === 'http handler failed');
    expect(errors.map((l) => l.err?.message)).toEqual(['handler bug', 'async handler bug']);
    expect(errors.every((l) => l.level === 50)).toBe(true);
    expect((await fetch(`${base}/status`)).status).toBe(200);
  });

  it('answers an HttpError thrown by a handler with its own status', async () => {
    const res = await fetch(`${base}/teapot`);
    expect(res.status).toBe(418);
    expect(await res.json()).toEqual({ code: 'Teapot', message: 'short and stout' });
  });

  it.each([
    ['garbage', 'hello\r\n\r\n'],
    ['a method node does not know', 'FOO /status HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a NUL in the target', 'GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a header without a colon', 'GET /status HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n'],
    ['no Host header', 'GET /status HTTP/1.1\r\n\r\n'],
    ['a bad Content-Length', 'POST /live/a/1.ts HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'],
    ['binary bytes', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a])],
    ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
  ])('answers a malformed request (%s) with 400 and closes', async (_what, raw) => {
    expect(statusOf(await rawRequest(port, raw))).toBe(400);
  });

  it('answers headers over maxHeaderBytes with 431', async () => {
    const res = await rawRequest(
      port,
      `GET /status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8_000)}\r\n\r\n`,
    );
    expect(statusOf(res)).toBe(431);
    const viaFetch = await fetch(`${base}/status`, { headers: { 'x-big': 'a'.repeat(8_000) } });
    expect(viaFetch.status).toBe(431);
  });

  it('closes a connection whose headers arrive too slowly (408), within a few seconds', async () => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.write('GET /status HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => socket.write('X-A: b\r\n'), 200);
    await new Promise((resolve) => socket.once('close', resolve));
    clearInterval(drip);
    expect(statusOf(Buffer.concat(chunks).toString())).toBe(408);
    expect(performance.now() - started).toBeLessThan(8_000);
  });

  it('drops connections above maxConnections and serves again once they are gone', async () => {
    const sockets = await Promise.all(
      Array.from(
        { length: 25 },
        () =>
          new Promise<import('node:net').Socket>((resolve) => {
            const s = connect(port, '127.0.0.1', () => resolve(s));
            s.on('error', () => undefined);
          }),
      ),
    );
    const closed = await Promise.all(
      sockets.map(
        (s) =>
          new Promise<boolean>((resolve) => {
            if (s.destroyed) return resolve(true);
            s.once('close', () => resolve(true));
            setTimeout(() => resolve(false), 1_500);
          }),
      ),
    );
    expect(closed.filter(Boolean).length).toBeGreaterThanOrEqual(5);
    for (const s of sockets) s.destroy();
    const deadline = performance.now() + 10_000;
    let status = 0;
    while (performance.now() < deadline) {
      status = await fetch(`${base}/status`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
  });

  it('close() ends connections whose handler never answers', async () => {
    const other = new HttpServer({}, {}).route('GET', '/hang', () => undefined);
    await other.listen();
    const pending = fetch(`${other.url}/hang`).catch((err: unknown) => err);
    // Wait until the request is inside the handler: the server has one connection.
    const deadline = performance.now() + 5_000;
    while (performance.now() < deadline) {
      const n = await new Promise<number>((r) => other.server.getConnections((_e, c) => r(c)));
      if (n > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await other.close();
    expect(await pending).toBeInstanceOf(Error);
    await other.close();
  });
});

describe('HttpServer logs', () => {
  it('logs a failing handler with the path its redactPath masks, never the query', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
    const server = new HttpServer(
      {},
      { logger, redactPath: (p) => p.replace(/^(\/live\/[^/]+\/)[^/]+(\/[^/]+)$/, '$1…$2') },
    ).route('PUT', '/live/*', () => {
      throw new TypeError('handler bug');
    });
    await server.listen();
    try {
      const res = await fetch(`${server.url}/live/cam/s3cr3tkey/1.ts?token=qu3ry`, {
        method: 'PUT',
        body: 'x',
      });
      expect(res.status).toBe(500);
      const failed = lines.find((l) => l.includes('http handler failed'));
      expect(failed).toBeDefined();
      expect(failed).toContain('/live/cam/…/1.ts');
      expect(lines.join('\n')).not.toContain('s3cr3tkey');
      expect(lines.join('\n')).not.toContain('qu3ry');
    } finally {
      await server.close();
    }
  });
});
