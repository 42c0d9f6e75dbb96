import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Parser } from 'm3u8-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createHlsHandler,
  DirectoryHlsSource,
  HlsPlaylists,
  type HlsSegmentSet,
  LiveHlsStream,
  renderMasterPlaylist,
  renderMediaPlaylist,
} from '../../../src/media/hls.js';
import { tempDir } from './fixtures.js';

function parse(text: string) {
  const p = new Parser();
  p.push(text);
  p.end();
  return p.manifest;
}

function set(seq: number, missing: string[] = [], duration = 2): HlsSegmentSet {
  const media = (kb: number, width: number, height: number) => ({
    bytes: Buffer.alloc(kb * 1000, seq),
    width,
    height,
    fps: 30,
    codecs: 'avc1.64001e,mp4a.40.2',
  });
  const renditions: HlsSegmentSet['renditions'] = {
    '360p30': missing.includes('360p30') ? undefined : media(200, 640, 360),
    '240p30': missing.includes('240p30') ? undefined : media(100, 426, 240),
  };
  return { seq, duration, source: media(500, 1280, 720), renditions };
}

describe('playlists', () => {
  it('renders a VOD media playlist players parse', () => {
    const text = renderMediaPlaylist({
      entries: [
        { seq: 0, duration: 2, uri: '0.ts', discontinuity: false },
        { seq: 1, duration: 1.5, uri: '1.ts', discontinuity: false },
      ],
      targetDuration: 2,
      mediaSequence: 0,
      ended: true,
      playlistType: 'VOD',
    });
    const m = parse(text);
    expect(m).toMatchObject({ targetDuration: 2, mediaSequence: 0, endList: true, playlistType: 'VOD' });
    expect(m.segments.map((s) => [s.uri, s.duration])).toEqual([
      ['0.ts', 2],
      ['1.ts', 1.5],
    ]);
  });

  it('renders a master playlist with BANDWIDTH, RESOLUTION, CODECS and FRAME-RATE', () => {
    const m = parse(
      renderMasterPlaylist([
        {
          uri: 'a/index.m3u8',
          bandwidth: 800_000,
          width: 640,
          height: 360,
          frameRate: 30,
          codecs: 'avc1.64001e',
        },
      ]),
    );
    expect(m.playlists?.[0]).toMatchObject({
      uri: 'a/index.m3u8',
      attributes: { BANDWIDTH: 800000, RESOLUTION: { width: 640, height: 360 }, CODECS: 'avc1.64001e' },
    });
    expect(m.playlists?.[0]?.attributes['FRAME-RATE']).toBe(30);
  });

  it('slides a live window with the right media sequence, then ends', () => {
    const p = new HlsPlaylists(['360p30', '240p30'], { kind: 'live', windowSize: 3 });
    expect(p.master()).toBeUndefined();
    for (let seq = 0; seq < 10; seq++) p.append(set(seq));
    for (const name of ['source', '360p30', '240p30']) {
      const m = parse(p.mediaPlaylist(name) ?? '');
      expect(m.mediaSequence, name).toBe(7);
      expect(
        m.segments.map((s) => s.uri),
        name,
      ).toEqual(['7.ts', '8.ts', '9.ts']);
      expect(m.endList, name).toBeFalsy();
      expect(m.targetDuration, name).toBe(2);
    }
    p.end();
    expect(parse(p.mediaPlaylist('360p30') ?? '').endList).toBe(true);
    const master = parse(p.master() ?? '');
    expect(master.playlists?.map((v) => [v.uri, v.attributes.RESOLUTION?.height])).toEqual([
      ['source/index.m3u8', 720],
      ['360p30/index.m3u8', 360],
      ['240p30/index.m3u8', 240],
    ]);
    // 200 kB per 2 s segment.
    expect(master.playlists?.[1]?.attributes.BANDWIDTH).toBe(800_000);
  });

  it('plays the source segment, marked by discontinuities, where a rendition failed', () => {
    const p = new HlsPlaylists(['360p30', '240p30'], { kind: 'live', windowSize: 4 });
    p.append(set(0));
    p.append(set(1, ['360p30']));
    p.append(set(2));
    const m = parse(p.mediaPlaylist('360p30') ?? '');
    expect(m.segments.map((s) => [s.uri, Boolean(s.discontinuity)])).toEqual([
      ['0.ts', false],
      ['../source/1.ts', true],
      ['2.ts', true],
    ]);
    expect(parse(p.mediaPlaylist('240p30') ?? '').segments.every((s) => !s.discontinuity)).toBe(true);
    for (let seq = 3; seq < 8; seq++) p.append(set(seq));
    // Both discontinuities scrolled out of the window: the count moves to the header.
    expect(p.mediaPlaylist('360p30')).toContain('#EXT-X-DISCONTINUITY-SEQUENCE:2');
  });

  it('refuses out-of-order segments and marks gaps', () => {
    const p = new HlsPlaylists([], { kind: 'vod' });
    p.append(set(0));
    expect(() => p.append(set(0))).toThrow(RangeError);
    p.append(set(2));
    expect(parse(p.mediaPlaylist('source') ?? '').segments[1]?.discontinuity).toBe(true);
    expect(p.mediaPlaylist('source')).toContain('#EXT-X-PLAYLIST-TYPE:EVENT');
    p.end();
    expect(p.mediaPlaylist('source')).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
  });

  it('keeps the target duration at least every rounded EXTINF', () => {
    const p = new HlsPlaylists([], { kind: 'vod' });
    p.append(set(0, [], 2.4));
    p.append(set(1, [], 3.6));
    expect(parse(p.mediaPlaylist('source') ?? '').targetDuration).toBe(4);
  });
});

describe('HLS over HTTP', () => {
  const tmp = tempDir('hls');
  const live = new LiveHlsStream({ renditions: ['360p30', '240p30'], windowSize: 2, keepAfterWindow: 1 });
  let server: Server;
  let base: string;

  beforeAll(async () => {
    for (let seq = 0; seq < 5; seq++) live.append(set(seq));
    mkdirSync(join(tmp.dir, 'source'));
    writeFileSync(join(tmp.dir, 'master.m3u8'), '#EXTM3U\n');
    writeFileSync(join(tmp.dir, 'source', '0.ts'), Buffer.alloc(188, 0x47));
    writeFileSync(join(tmp.dir, 'secret.txt'), 'no');
    const vod = new DirectoryHlsSource(tmp.dir);
    const handler = createHlsHandler(
      {},
      { lookup: (name) => (name === 'live' ? live : name === 'vod' ? vod : undefined) },
    );
    server = createServer((req, res) => {
      if (!handler(req, res)) res.writeHead(418).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.close();
    await once(server, 'close');
    tmp.remove();
  });

  it('serves playlists and segments with HLS content types and CORS', async () => {
    const master = await fetch(`${base}/hls/live/master.m3u8`);
    expect(master.status).toBe(200);
    expect(master.headers.get('content-type')).toBe('application/vnd.apple.mpegurl');
    expect(master.headers.get('access-control-allow-origin')).toBe('*');
    expect(master.headers.get('cache-control')).toBe('no-cache');
    expect(parse(await master.text()).playlists).toHaveLength(3);

    const media = await fetch(`${base}/hls/live/360p30/index.m3u8`);
    expect(parse(await media.text()).segments.map((s) => s.uri)).toEqual(['3.ts', '4.ts']);

    const segment = await fetch(`${base}/hls/live/360p30/4.ts`);
    expect(segment.status).toBe(200);
    expect(segment.headers.get('content-type')).toBe('video/mp2t');
    expect((await segment.arrayBuffer()).byteLength).toBe(200_000);
  });

  it('keeps a segment briefly after it leaves the window, then forgets it', async () => {
    expect((await fetch(`${base}/hls/live/360p30/2.ts`)).status).toBe(200);
    expect((await fetch(`${base}/hls/live/360p30/1.ts`)).status).toBe(404);
  });

  it('answers CORS preflight, HEAD, wrong methods, unknown streams and foreign prefixes', async () => {
    const pre = await fetch(`${base}/hls/live/master.m3u8`, { method: 'OPTIONS' });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-methods')).toContain('GET');
    const head = await fetch(`${base}/hls/live/master.m3u8`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBeGreaterThan(0);
    expect((await fetch(`${base}/hls/live/master.m3u8`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/hls/nope/master.m3u8`)).status).toBe(404);
    expect((await fetch(`${base}/other`)).status).toBe(418);
  });

  it('answers request targets that new URL() and decodeURIComponent throw on, instead of crashing', async () => {
    const raw = (target: string) =>
      new Promise<number>((resolve, reject) => {
        const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
        let text = '';
        socket.on('data', (c: Buffer) => {
          text += c.toString('latin1');
        });
        socket.on('error', reject);
        socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to GET ${target}`)));
        socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
        socket.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      });
    expect(await raw('/hls/%E0%A4%A/index.m3u8')).toBe(400);
    expect(await raw('/hls/live/%ZZ/index.m3u8')).toBe(400);
    expect(await raw('//')).toBe(418);
    expect(await raw('/hls//index.m3u8')).toBe(404);
    expect(await raw('/hls/live/../live/master.m3u8')).toBe(400);
    expect((await fetch(`${base}/hls/live/master.m3u8`)).status).toBe(200);
  });

  it('serves a directory package and nothing outside its layout', async () => {
    expect((await fetch(`${base}/hls/vod/master.m3u8`)).status).toBe(200);
    expect((await fetch(`${base}/hls/vod/source/0.ts`)).status).toBe(200);
    for (const path of ['secret.txt', 'source/../secret.txt', '..%2F..%2Fetc%2Fpasswd', 'source/1.ts']) {
      expect((await fetch(`${base}/hls/vod/${path}`)).status, path).toBe(404);
    }
  });
});
