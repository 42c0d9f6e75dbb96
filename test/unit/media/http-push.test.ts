import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SegmentFormatError } from '../../../src/media/errors.js';
import { createHttpPushHandler, type PushedSegment } from '../../../src/media/http-push.js';
import { makeSource, tempDir } from './fixtures.js';

describe('HTTP push ingest', () => {
  const tmp = tempDir('push');
  const received: PushedSegment[] = [];
  let segment: Buffer;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    segment = readFileSync(makeSource(tmp.dir, 'seg', { width: 64, height: 36, fps: 10, seconds: 2 }));
    const handler = createHttpPushHandler(
      { maxBytes: 200_000 },
      {
        onSegment: async (s) => {
          if (s.stream === 'refuse') throw new SegmentFormatError('TooFewFrames', 'test refusal');
          received.push(s);
          return { accepted: s.seq, duration: s.duration };
        },
      },
    );
    server = createServer((req, res) => {
      if (!handler(req, res)) res.writeHead(418).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.close();
    await once(server, 'close');
    tmp.remove();
  });

  /** A raw request, so bodies can be chunked without Content-Length. */
  function send(
    method: string,
    path: string,
    body: Buffer | Buffer[],
    headers: Record<string, string> = { 'content-type': 'video/mp2t' },
  ): Promise<{ status: number; json: Record<string, unknown> | undefined }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
        });
      });
      // The server may answer 413 and close before reading everything we send.
      req.on('error', (err: NodeJS.ErrnoException) =>
        err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err),
      );
      for (const part of Array.isArray(body) ? body : [body]) req.write(part);
      req.end();
    });
  }

  it('accepts a segment and hands it over with stream, seq and duration', async () => {
    const res = await send('PUT', '/live/cam1/7.ts', segment);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ accepted: 7, duration: 2 });
    expect(received.at(-1)).toMatchObject({ stream: 'cam1', seq: 7, duration: 2 });
    expect(received.at(-1)?.bytes.equals(segment)).toBe(true);
  });

  it('refuses a body over the limit, declared or streamed', async () => {
    const big = Buffer.alloc(300_000, 0x47);
    const declared = await send('PUT', '/live/cam1/8.ts', big, {
      'content-type': 'video/mp2t',
      'content-length': String(big.length),
    });
    expect(declared.status).toBe(413);
    expect(declared.json?.code).toBe('SegmentTooLarge');
    const chunked = await send('PUT', '/live/cam1/9.ts', [big.subarray(0, 150_000), big.subarray(150_000)], {
      'content-type': 'video/mp2t',
      'transfer-encoding': 'chunked',
    });
    expect(chunked.status).toBe(413);
  });

  it('answers garbage with 422 and the wire error code', async () => {
    const res = await send('PUT', '/live/cam1/10.ts', Buffer.from('definitely not video'.repeat(50)));
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({
      code: 'SegmentFormatDidntMatchJobInputParams',
      details: { reason: 'NotMpegTs' },
    });
    const refused = await send('PUT', '/live/refuse/1.ts', segment);
    expect(refused.status).toBe(422);
    expect(refused.json?.details).toMatchObject({ reason: 'TooFewFrames' });
  });

  it('rejects bad paths, methods and content types', async () => {
    expect((await send('PUT', '/live/cam1/x.ts', segment)).status).toBe(404);
    expect((await send('PUT', '/live/..%2Fetc/1.ts', segment)).status).toBe(404);
    // Dot segments are refused before routing: a path never climbs out of the route it names.
    expect((await send('PUT', '/live/../etc/1.ts', segment)).status).toBe(400);
    // `/live/<stream>/<key>/<seq>.ts` carries a key; one level more is no push URL.
    expect((await send('PUT', '/live/a/b/c/1.ts', segment)).status).toBe(404);
    expect((await send('PUT', '/live/a/b%2Fc/1.ts', segment)).status).toBe(404);
    expect((await send('GET', '/live/cam1/1.ts', Buffer.alloc(0))).status).toBe(405);
    expect((await send('PUT', '/live/cam1/1.ts', segment, { 'content-type': 'text/plain' })).status).toBe(
      415,
    );
    expect((await send('PUT', '/elsewhere', segment)).status).toBe(418);
  });

  it('answers request targets that new URL() and decodeURIComponent throw on, and keeps serving', async () => {
    const bad = await send('PUT', '/live/%E0%A4%A/1.ts', segment);
    expect(bad.status).toBe(400);
    expect(bad.json?.code).toBe('BadRequestTarget');
    expect((await send('PUT', '//', segment)).status).toBe(418);
    expect((await send('PUT', '/live/cam1/11.ts', segment)).status).toBe(200);
  });
});
