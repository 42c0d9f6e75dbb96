import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FfmpegError, SegmentFormatError } from '../../../src/media/errors.js';
import { createMediaMetrics } from '../../../src/media/metrics.js';
import { analyzeTs, PTS_HZ } from '../../../src/media/mpegts.js';
import { defaultSegmentLimits } from '../../../src/media/options.js';
import { type Profile, resolveProfiles } from '../../../src/media/profiles.js';
import type { Segment } from '../../../src/media/segmenter.js';
import { LocalTranscoder } from '../../../src/media/transcode.js';
import { childMediaProcesses, cut, makeSource, rejection, tempDir, tools } from './fixtures.js';

const transcoder = new LocalTranscoder({ preset: 'ultrafast' }, { tools });
const profiles = resolveProfiles('240p30,144p30');

describe('LocalTranscoder', () => {
  const tmp = tempDir('transcode');
  let wide25: Segment[];
  let square30: Segment[];
  let mp3: Segment[];
  let videoOnly: Segment[];
  const bad: Record<string, Buffer> = {};

  beforeAll(() => {
    wide25 = cut(makeSource(tmp.dir, 'wide25', { width: 320, height: 180, fps: 25, seconds: 4 }));
    square30 = cut(makeSource(tmp.dir, 'square30', { width: 320, height: 240, fps: 30, seconds: 4 }));
    mp3 = cut(makeSource(tmp.dir, 'mp3', { width: 160, height: 120, fps: 30, seconds: 2, audio: 'mp3' }));
    videoOnly = cut(
      makeSource(tmp.dir, 'vonly', { width: 160, height: 90, fps: 30, seconds: 2, audio: 'none' }),
    );
    // An audio-only transport stream: drop the video from a normal one.
    const aonly = `${tmp.dir}/audio-only.ts`;
    makeSource(tmp.dir, 'av', { width: 64, height: 36, fps: 10, seconds: 1 });
    bad.audioOnly = ffmpegOut(['-i', `${tmp.dir}/av.ts`, '-vn', '-c:a', 'copy', aonly], aonly);
    bad.singleFrame = readFileSync(makeSource(tmp.dir, 'one', { width: 64, height: 36, fps: 1, seconds: 1 }));
    bad.tooLong = readFileSync(
      makeSource(tmp.dir, 'long', { width: 64, height: 36, fps: 5, seconds: 12, gop: 20, audio: 'none' }),
    );
    bad.manyFrames = readFileSync(
      makeSource(tmp.dir, 'many', { width: 32, height: 18, fps: 100, seconds: 12, gop: 20, audio: 'none' }),
    );
    bad.mpeg2 = readFileSync(
      makeSource(tmp.dir, 'mpeg2', { width: 64, height: 36, fps: 10, seconds: 1, vcodec: 'mpeg2video' }),
    );
  });
  afterAll(() => tmp.remove());

  function ffmpegOut(args: string[], out: string): Buffer {
    execFileSync(tools.ffmpeg, ['-hide_banner', '-loglevel', 'error', '-y', ...args]);
    return readFileSync(out);
  }

  it('makes every rendition at the asked size, fps and duration from a 16:9 25 fps source', async () => {
    const seg = wide25[0] as Segment;
    const r = await transcoder.transcode(seg.bytes, profiles);
    expect(r.source).toMatchObject({ frames: 50, fps: 25, width: 320, height: 180, audioCodec: 'aac' });
    const want: Record<string, [number, number]> = { '240p30': [426, 240], '144p30': [256, 144] };
    for (const rendition of r.renditions) {
      const name = rendition.profile.name;
      const [w, h] = want[name] as [number, number];
      expect([rendition.width, rendition.height], name).toEqual([w, h]);
      expect(rendition.fps, name).toBe(30);
      expect(rendition.frames, name).toBe(60);
      expect(rendition.duration, name).toBeCloseTo(2, 6);
      expect(rendition.pixels, name).toBe(60 * w * h);
      expect(rendition.hasAudio, name).toBe(true);
      expect(rendition.codecs, name).toMatch(/^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
      const facts = analyzeTs(rendition.bytes);
      expect(facts.video?.startsWithKeyframe, name).toBe(true);
      expect(facts.audio?.codec, name).toBe('aac');
    }
  });

  it('keeps a 4:3 source at 4:3 inside 16:9 boxes (30 fps)', async () => {
    const r = await transcoder.transcode((square30[1] as Segment).bytes, profiles);
    expect(r.renditions.map((x) => [x.profile.name, x.width, x.height, x.frames])).toEqual([
      ['240p30', 320, 240, 60],
      ['144p30', 192, 144, 60],
    ]);
  });

  it('keeps source timestamps so renditions align with each other and play back to back', async () => {
    const results = [];
    for (const seg of square30) results.push(await transcoder.transcode(seg.bytes, profiles));
    const frame = PTS_HZ / 30;
    for (const [i, r] of results.entries()) {
      const starts = r.renditions.map((x) => x.startPts);
      expect(new Set(starts).size, `segment ${i}: renditions share a start`).toBe(1);
      expect(
        Math.abs((starts[0] ?? 0) - (r.source.startPts ?? 0)),
        `segment ${i}: within a frame of source`,
      ).toBeLessThan(frame);
      const next = results[i + 1];
      if (next) {
        for (const [k, x] of r.renditions.entries()) {
          const following = next.renditions[k];
          // Segment i ends exactly where segment i+1 starts: no gap, no overlap.
          expect(
            (following?.startPts ?? 0) - (x.startPts ?? 0),
            `segment ${i} ${x.profile.name}`,
          ).toBeCloseTo(x.duration * PTS_HZ, 0);
        }
      }
    }
  });

  it('re-encodes non-AAC audio to AAC and carries no audio when there is none', async () => {
    const withMp3 = await transcoder.transcode((mp3[0] as Segment).bytes, profiles);
    expect(withMp3.source.audioCodec).toBe('mp3');
    for (const r of withMp3.renditions) expect(analyzeTs(r.bytes).audio?.codec, r.profile.name).toBe('aac');
    const silent = await transcoder.transcode((videoOnly[0] as Segment).bytes, profiles);
    for (const r of silent.renditions) {
      expect(r.hasAudio, r.profile.name).toBe(false);
      expect(r.codecs, r.profile.name).not.toContain('mp4a');
    }
  });

  it('rejects hostile or wrong input with SegmentFormatDidntMatchJobInputParams and the reason', async () => {
    const garbage = Buffer.alloc(64 * 1024);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) % 251;
    const cases: Array<[string, Uint8Array, string]> = [
      ['garbage bytes', garbage, 'NotMpegTs'],
      ['empty', Buffer.alloc(0), 'Empty'],
      ['audio only', bad.audioOnly as Buffer, 'NoVideo'],
      ['a single frame', bad.singleFrame as Buffer, 'TooFewFrames'],
      ['longer than 10 s', bad.tooLong as Buffer, 'TooLong'],
      ['over the size limit', Buffer.alloc(defaultSegmentLimits.maxBytes + 1, 0x47), 'TooLarge'],
      ['an unsupported codec', bad.mpeg2 as Buffer, 'UnsupportedCodec'],
      ['cut mid-GOP', (wide25[0] as Segment).bytes.subarray(188 * 600), 'NoKeyframe'],
    ];
    for (const [name, bytes, reason] of cases) {
      const err = await rejection(transcoder.transcode(bytes, profiles), SegmentFormatError);
      expect(err.code, name).toBe('SegmentFormatDidntMatchJobInputParams');
      expect(err.details.reason, name).toBe(reason);
    }
    expect(childMediaProcesses()).toEqual([]);
  });

  it('counts frames, not claimed timestamps, against the duration limit', async () => {
    // 1200 frames whose timestamps all claim the same instant: 0 s by the clock, 12 s at 100 fps.
    const forged = forgedTimestamps(bad.manyFrames as Buffer);
    expect(analyzeTs(forged).video?.duration).toBe(0);
    const strict = new LocalTranscoder({ limits: { ...defaultSegmentLimits, maxDuration: 2 } }, { tools });
    const err = await rejection(strict.transcode(forged, profiles), SegmentFormatError);
    expect(err.details).toMatchObject({ reason: 'TooLong', frames: 1200 });
  });

  it('answers, never hangs, on a transport stream whose pictures are corrupted', async () => {
    const bytes = Buffer.from((wide25[0] as Segment).bytes);
    // Keep every TS header and PES header, scramble the rest of each video packet's payload.
    for (let off = 0; off + 188 <= bytes.length; off += 188) {
      const pid = ((bytes[off + 1] ?? 0) & 0x1f) * 256 + (bytes[off + 2] ?? 0);
      const pusi = ((bytes[off + 1] ?? 0) & 0x40) !== 0;
      if (pid !== 256 || pusi) continue;
      for (let i = off + 4; i < off + 188; i++) bytes[i] = (i * 31) & 0xff;
    }
    const outcome = await transcoder.transcode(bytes, profiles).then(
      (r) => r.renditions.length,
      (e: unknown) => (e as SegmentFormatError).code,
    );
    expect([profiles.length, 'SegmentFormatDidntMatchJobInputParams']).toContain(outcome);
  });

  it('reports time, pixels and rejections as Prometheus metrics', async () => {
    const registry = new Registry();
    const counted = new LocalTranscoder(
      { preset: 'ultrafast' },
      { tools, metrics: createMediaMetrics(registry) },
    );
    const r = await counted.transcode((wide25[0] as Segment).bytes, profiles);
    await counted.transcode(Buffer.from('nope'), profiles).catch(() => undefined);
    const text = await registry.metrics();
    const pixels = r.renditions.reduce((a, x) => a + x.pixels, 0);
    expect(text).toContain(`streamflow_media_transcoded_pixels_total ${pixels}`);
    expect(text).toContain('streamflow_media_rejected_segments_total{reason="NotMpegTs"} 1');
    expect(text).toMatch(/streamflow_media_transcode_seconds_count\{outcome="ok"\} 1/);
  });

  it('is bounded by its timeout', async () => {
    const slow = new LocalTranscoder({ timeoutMs: 1 }, { tools });
    const err = await slow.transcode((wide25[0] as Segment).bytes, profiles).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FfmpegError);
    expect((err as FfmpegError).code).toBe('FfmpegTimeout');
    expect(childMediaProcesses()).toEqual([]);
  });

  it('stops ffmpeg when aborted', async () => {
    const controller = new AbortController();
    const reason = new Error('viewer left');
    const big: Profile[] = resolveProfiles('720p30');
    const run = transcoder.transcode((wide25[1] as Segment).bytes, big, { signal: controller.signal });
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(childMediaProcesses()).toEqual([]);
  });
});

/** Rewrites every video PTS/DTS to the same instant: the frames stay, the claimed duration goes to zero. */
function forgedTimestamps(ts: Buffer): Buffer {
  const out = Buffer.from(ts);
  for (let off = 0; off + 188 <= out.length; off += 188) {
    const pusi = ((out[off + 1] ?? 0) & 0x40) !== 0;
    const afc = ((out[off + 3] ?? 0) >> 4) & 3;
    const start = off + (afc & 2 ? 5 + (out[off + 4] ?? 0) : 4);
    if (!pusi || out[start] !== 0 || out[start + 1] !== 0 || out[start + 2] !== 1 || out[start + 3] !== 0xe0)
      continue;
    const flags = out[start + 7] ?? 0;
    // PTS = 90000, DTS = 90000: marker bits kept, value bits fixed.
    const stamp = [0x21, 0x00, 0x05, 0xbf, 0x21];
    if (flags & 0x80) out.set(stamp, start + 9);
    if ((flags & 0xc0) === 0xc0) out.set([0x11, ...stamp.slice(1)], start + 14);
  }
  return out;
}
