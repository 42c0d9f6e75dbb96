import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHlsHandler, LiveHlsStream } from '../../src/media/hls.js';
import { analyzeTs } from '../../src/media/mpegts.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import { type RtmpPublish, RtmpServer, segmentRtmpPublish } from '../../src/media/rtmp.js';
import type { Segment } from '../../src/media/segmenter.js';
import { LocalTranscoder } from '../../src/media/transcode.js';
import { toSegmentSet } from '../../src/media/vod.js';
import { childMediaProcesses, makeSource, tempDir, tools } from '../unit/media/fixtures.js';

const run = promisify(execFile);

/** Publishes a file like OBS would, with ffmpeg; resolves with its exit code and stderr. */
function publish(
  file: string,
  url: string,
  realtime: boolean,
): Promise<{ code: number | null; stderr: string }> {
  const args = ['-hide_banner', '-loglevel', 'error', ...(realtime ? ['-re'] : []), '-i', file];
  const child = spawn(tools.ffmpeg, [...args, '-c', 'copy', '-f', 'flv', url], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })));
}

describe('RTMP ingest from a real ffmpeg publisher', () => {
  const tmp = tempDir('rtmp');
  const streams: Array<{ publish: RtmpPublish; segments: Promise<Segment[]> }> = [];
  const waiters = new Map<string, () => void>();
  /** Resolves when the server has accepted a publish on `key`. */
  const published = (key: string) => new Promise<void>((resolve) => waiters.set(key, resolve));
  let source: string;
  let short: string;
  let server: RtmpServer;
  let port: number;

  beforeAll(async () => {
    source = makeSource(tmp.dir, 'cam', { width: 320, height: 180, fps: 30, seconds: 4, ext: 'flv' });
    short = makeSource(tmp.dir, 'short', { width: 64, height: 36, fps: 10, seconds: 2, ext: 'flv' });
    server = new RtmpServer(
      { port: 0 },
      {
        authorize: ({ key }) => key !== 'forbidden',
        onPublish: (p) => {
          const segments = (async () => {
            const out: Segment[] = [];
            for await (const s of segmentRtmpPublish(p, {}, { tools })) out.push(s);
            return out;
          })();
          streams.push({ publish: p, segments });
          waiters.get(p.key)?.();
        },
      },
    );
    port = (await server.start()).port;
  });
  afterAll(async () => {
    await server.stop();
    tmp.remove();
  });

  it('cuts a -re publish into 2 s segments at keyframes and sees the end of the stream', async () => {
    const result = await publish(source, `rtmp://127.0.0.1:${port}/live/cam-1`, true);
    expect(result.code, result.stderr).toBe(0);
    const stream = streams.find((s) => s.publish.key === 'cam-1');
    expect(stream?.publish.app).toBe('live');
    expect(await stream?.publish.ended).toBe('unpublished');
    const segments = (await stream?.segments) ?? [];
    expect(segments.map((s) => [s.seq, Number(s.duration.toFixed(2))])).toEqual([
      [0, 2],
      [1, 2],
    ]);
    for (const s of segments) {
      const facts = analyzeTs(s.bytes);
      expect(facts.video?.startsWithKeyframe, `seq ${s.seq}`).toBe(true);
      expect(facts.video?.frames, `seq ${s.seq}`).toBe(60);
      expect(facts.audio?.codec, `seq ${s.seq}`).toBe('aac');
    }
    expect(server.active.size).toBe(0);
  });

  it('refuses an unauthorized key and a second publisher on a live key', async () => {
    const before = streams.length;
    const refused = await publish(source, `rtmp://127.0.0.1:${port}/live/forbidden`, false);
    expect(refused.code).not.toBe(0);
    expect(streams.length).toBe(before);

    // Hold "dup" open with a realtime publish, then try to take the same key.
    const started = published('dup');
    const first = publish(short, `rtmp://127.0.0.1:${port}/live/dup`, true);
    await started;
    const second = await publish(short, `rtmp://127.0.0.1:${port}/live/dup`, false);
    expect(second.code).not.toBe(0);
    expect((await first).code).toBe(0);
    await streams.find((s) => s.publish.key === 'dup')?.segments;
  });

  it('goes from RTMP through transcoding to live HLS that ffmpeg plays over HTTP', async () => {
    const profiles = resolveProfiles('240p30,144p30');
    const transcoder = new LocalTranscoder({ preset: 'ultrafast' }, { tools });
    const live = new LiveHlsStream({ renditions: profiles.map((p) => p.name), windowSize: 10 });
    const handler = createHlsHandler({}, { lookup: (name) => (name === 'show' ? live : undefined) });
    const http: Server = createServer((req, res) => {
      if (!handler(req, res)) res.writeHead(404).end();
    });
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    try {
      const published = await publish(source, `rtmp://127.0.0.1:${port}/live/show`, false);
      expect(published.code, published.stderr).toBe(0);
      const segments = (await streams.find((s) => s.publish.key === 'show')?.segments) ?? [];
      for (const s of segments) live.append(toSegmentSet(s, await transcoder.transcode(s.bytes, profiles)));
      live.end();
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/hls/show/master.m3u8`;
      const check = await run(tools.ffmpeg, ['-v', 'error', '-i', url, '-map', '0', '-f', 'null', '-']);
      expect(check.stderr).toBe('');
    } finally {
      http.close();
      await once(http, 'close');
    }
    expect(childMediaProcesses()).toEqual([]);
  });
});
