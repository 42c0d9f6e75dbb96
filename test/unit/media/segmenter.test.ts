import { once } from 'node:events';
import { createReadStream, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IngestError } from '../../../src/media/errors.js';
import { analyzeTs } from '../../../src/media/mpegts.js';
import { type Segment, segmentSource, TsSegmenter } from '../../../src/media/segmenter.js';
import { childMediaProcesses, makeSource, tempDir, tools } from './fixtures.js';

function segmentInChunks(data: Buffer, sizes: number[], options = {}): Segment[] {
  const s = new TsSegmenter(options);
  const out: Segment[] = [];
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const n = sizes[i++ % sizes.length] as number;
    out.push(...s.push(data.subarray(pos, pos + n)));
    pos += n;
  }
  out.push(...s.end());
  return out;
}

describe('TsSegmenter', () => {
  const tmp = tempDir('segmenter');
  let gop2: Buffer;
  let gop1: Buffer;
  let gop6: Buffer;

  beforeAll(() => {
    gop2 = readFileSync(makeSource(tmp.dir, 'gop2', { width: 160, height: 90, fps: 30, seconds: 6 }));
    gop1 = readFileSync(makeSource(tmp.dir, 'gop1', { width: 160, height: 90, fps: 25, seconds: 5, gop: 1 }));
    gop6 = readFileSync(
      makeSource(tmp.dir, 'gop6', { width: 160, height: 90, fps: 10, seconds: 12, gop: 6 }),
    );
  });
  afterAll(() => tmp.remove());

  it('cuts 2 s segments at keyframes, each decodable alone, whatever the chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 20 }), (sizes) => {
        const segments = segmentInChunks(gop2, sizes);
        expect(segments.map((s) => s.seq)).toEqual([0, 1, 2]);
        for (const s of segments) {
          expect(s.duration, `seq ${s.seq}`).toBeCloseTo(2, 6);
          // PAT first, so the segment can be demuxed on its own.
          expect([s.bytes[0], (s.bytes[1] ?? 0) & 0x1f, s.bytes[2]], `seq ${s.seq}`).toEqual([0x47, 0, 0]);
          const v = analyzeTs(s.bytes).video;
          expect(v?.startsWithKeyframe, `seq ${s.seq}`).toBe(true);
          expect(v?.frames, `seq ${s.seq}`).toBe(60);
        }
      }),
      { numRuns: 15, seed: 3 },
    );
  });

  it('waits for the target before cutting when keyframes come more often', () => {
    const segments = segmentInChunks(gop1, [65_536]);
    expect(segments.map((s) => Number(s.duration.toFixed(3)))).toEqual([2, 2, 1]);
  });

  it('honours a longer target duration', () => {
    const segments = segmentInChunks(gop2, [65_536], { targetDuration: 4 });
    expect(segments.map((s) => Number(s.duration.toFixed(3)))).toEqual([4, 2]);
  });

  it('fails the stream when keyframes are further apart than maxDuration', () => {
    expect(() => segmentInChunks(gop6, [65_536], { maxDuration: 4 })).toThrow(
      expect.objectContaining({ code: 'KeyframeIntervalTooLong' }),
    );
  });

  it('numbers from firstSeq and keeps start timestamps increasing by the durations', () => {
    const segments = segmentInChunks(gop2, [65_536], { firstSeq: 10 });
    expect(segments.map((s) => s.seq)).toEqual([10, 11, 12]);
    for (let i = 1; i < segments.length; i++) {
      const prev = segments[i - 1] as Segment;
      expect((segments[i] as Segment).startPts - prev.startPts).toBe(Math.round(prev.duration * 90_000));
    }
  });
});

describe('segmentSource', () => {
  const tmp = tempDir('source');
  let mp4: string;
  let ts: string;
  let live: string;

  beforeAll(() => {
    mp4 = makeSource(tmp.dir, 'file', { width: 160, height: 120, fps: 25, seconds: 4, ext: 'mp4' });
    ts = makeSource(tmp.dir, 'stream', { width: 160, height: 90, fps: 30, seconds: 4 });
    live = makeSource(tmp.dir, 'live', { width: 64, height: 36, fps: 20, seconds: 4, gop: 0.25, ext: 'mp4' });
  });
  afterAll(() => tmp.remove());

  it('segments an MP4 file (stream copy to MPEG-TS)', async () => {
    const segments: Segment[] = [];
    for await (const s of segmentSource({ input: mp4 }, { tools })) segments.push(s);
    expect(segments.map((s) => [s.seq, Number(s.duration.toFixed(3))])).toEqual([
      [0, 2],
      [1, 2],
    ]);
    expect(analyzeTs((segments[0] as Segment).bytes).audio?.codec).toBe('aac');
  });

  it('segments a URL (VOD from an HTTP server that supports ranges)', async () => {
    const body = readFileSync(mp4);
    const server = createServer((req, res) => {
      // ffmpeg seeks in an MP4 whose index is at the end: answer byte ranges.
      const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      const end = range?.[2] ? Number(range[2]) : body.length - 1;
      res.writeHead(range ? 206 : 200, {
        'Content-Type': 'video/mp4',
        'Accept-Ranges': 'bytes',
        'Content-Length': end - start + 1,
        ...(range ? { 'Content-Range': `bytes ${start}-${end}/${body.length}` } : {}),
      });
      res.end(body.subarray(start, end + 1));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/movie.mp4`;
      const segments: Segment[] = [];
      for await (const s of segmentSource({ input: url }, { tools })) segments.push(s);
      expect(segments.map((s) => Number(s.duration.toFixed(3)))).toEqual([2, 2]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('segments a byte stream given its format', async () => {
    const segments: Segment[] = [];
    for await (const s of segmentSource({ input: createReadStream(ts), inputFormat: 'mpegts' }, { tools })) {
      segments.push(s);
    }
    expect(segments).toHaveLength(2);
  });

  it('re-encodes on request with keyframes every target duration', async () => {
    const segments: Segment[] = [];
    for await (const s of segmentSource({ input: mp4, reencode: true, targetDuration: 1 }, { tools })) {
      segments.push(s);
    }
    expect(segments).toHaveLength(4);
  });

  it('kills ffmpeg when the consumer stops early or aborts', async () => {
    const fast = { input: live, realtime: true, targetDuration: 0.25 };
    for await (const _ of segmentSource(fast, { tools })) break;
    expect(childMediaProcesses()).toEqual([]);
    const controller = new AbortController();
    const reason = new Error('stop');
    const run = (async () => {
      for await (const _ of segmentSource({ ...fast, signal: controller.signal }, { tools })) {
        controller.abort(reason);
      }
    })();
    await expect(run).rejects.toBe(reason);
    expect(childMediaProcesses()).toEqual([]);
  });

  it('reports an unreadable source as IngestFailed with ffmpeg’s reason', async () => {
    const run = (async () => {
      for await (const _ of segmentSource({ input: `${tmp.dir}/missing.mp4` }, { tools })) {
        // nothing to read
      }
    })();
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IngestError);
    expect((err as IngestError).code).toBe('IngestFailed');
    expect((err as IngestError).message).toMatch(/No such file/);
  });
});
