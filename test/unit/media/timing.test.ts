import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PTS_HZ } from '../../../src/media/mpegts.js';
import { defaultSegmentLimits } from '../../../src/media/options.js';
import { type Profile, resolveProfiles } from '../../../src/media/profiles.js';
import type { Segment } from '../../../src/media/segmenter.js';
import {
  checkTiming,
  frameInterval,
  TIMESTAMP_JITTER_S,
  type TimingFacts,
  type TimingMismatchReason,
} from '../../../src/media/timing.js';
import { LocalTranscoder, segmentFacts, validateSegment } from '../../../src/media/transcode.js';
import { cut, tempDir, tools } from './fixtures.js';

/** Facts of a segment starting at `start` seconds (on the 90 kHz clock) with `frames` at `fps`. */
function facts(start: number, frames: number, fps: number, duration = frames / fps): TimingFacts {
  return { startPts: Math.round(start * PTS_HZ), duration, frames, fps: frames > 1 ? fps : 0 };
}

describe('frameInterval', () => {
  const cases: { source: number; profile: number; want: number }[] = [
    { source: 30, profile: 30, want: 1 / 30 },
    { source: 25, profile: 30, want: 1 / 25 },
    { source: 60, profile: 30, want: 1 / 30 },
    { source: 0, profile: 30, want: 1 / 30 },
    { source: 29.97, profile: 60, want: 1 / 29.97 },
  ];
  for (const c of cases) {
    it(`is one frame of the coarser rate: ${c.source} fps source into ${c.profile} fps`, () => {
      expect(frameInterval(c.source, c.profile)).toBeCloseTo(c.want, 12);
    });
  }
});

describe('checkTiming', () => {
  // Measured on LocalTranscoder output (veryfast, B-frames on both sides where noted): the honest rendition's
  // first PTS is the source's rounded onto the profile's grid, its length the source's to within a frame.
  const honest: { name: string; source: TimingFacts; rendition: TimingFacts; fps: number }[] = [
    { name: '30 fps into 30 fps', source: facts(1.4232, 60, 30), rendition: facts(1.4333, 60, 30), fps: 30 },
    {
      name: '25 fps (B-frames) into 30 fps: frames repeated, start on the 30 fps grid',
      source: facts(3.4, 50, 25),
      rendition: facts(3.4 - 0.0133, 60, 30),
      fps: 30,
    },
    {
      name: '60 fps (B-frames) into 30 fps: frames dropped',
      source: facts(5.4, 120, 60),
      rendition: facts(5.4, 60, 30),
      fps: 30,
    },
    {
      name: '30 fps into 60 fps: start half a source frame early',
      source: facts(1.4232, 60, 30),
      rendition: facts(1.4232 - 0.0066, 120, 60),
      fps: 60,
    },
    {
      name: '29.97 fps into 30 fps: 2.002 s in 60 frames',
      source: facts(7.4, 60, 30_000 / 1001),
      rendition: facts(7.4 - 0.0021, 60, 30),
      fps: 30,
    },
    {
      name: 'the short last segment of a 24 fps stream (7 frames) into 30 fps',
      source: facts(5.4, 7, 24),
      rendition: facts(5.4 + 0.0167, 8, 30),
      fps: 30,
    },
    {
      name: 'an RTMP-cut segment: millisecond timestamps, 29.995 fps measured',
      source: facts(12.4, 60, 29.995, 2.0003),
      rendition: facts(12.4 - 0.0003, 60, 30),
      fps: 30,
    },
    {
      name: 'a source with dropped frames (44 of 60 over 2 s, 21.9 fps measured)',
      source: facts(1.4, 44, 21.86, 2.0124),
      rendition: facts(1.4, 60, 30),
      fps: 30,
    },
    {
      name: 'a single-frame segment into 60 fps (two frames out, the source frame has no measured length)',
      source: facts(1.4, 1, 30, 0),
      rendition: facts(1.4, 2, 60),
      fps: 60,
    },
    {
      name: 'across the 33-bit PTS wrap',
      source: { startPts: 2 ** 33 - 900, duration: 2, frames: 60, fps: 30 },
      rendition: { startPts: 900, duration: 2, frames: 60, fps: 30 },
      fps: 30,
    },
    {
      name: 'a source without timestamps (nothing to hold the start to)',
      source: { startPts: undefined, duration: 0, frames: 60, fps: 0 },
      rendition: facts(0, 1, 30, 0),
      fps: 30,
    },
  ];
  for (const c of honest) {
    it(`passes an honest rendition: ${c.name}`, () => {
      expect(checkTiming(c.rendition, c.source, c.fps), c.name).toBeUndefined();
    });
  }

  const source = facts(3.4, 60, 30);
  const cheats: { name: string; rendition: TimingFacts; fps?: number; reason: TimingMismatchReason }[] = [
    {
      name: 'the next segment’s rendition (2 s later)',
      rendition: facts(5.4, 60, 30),
      reason: 'StartShifted',
    },
    { name: 'the previous segment’s rendition', rendition: facts(1.4, 60, 30), reason: 'StartShifted' },
    { name: 'a segment 10 s away', rendition: facts(13.4, 60, 30), reason: 'StartShifted' },
    { name: 'shifted by 0.2 s', rendition: facts(3.6, 60, 30), reason: 'StartShifted' },
    {
      name: 'shifted by two frames',
      rendition: facts(3.4 + 2 / 30, 60, 30),
      reason: 'StartShifted',
    },
    {
      name: 'no timestamps',
      rendition: { startPts: undefined, duration: 2, frames: 60, fps: 30 },
      reason: 'NoTimestamps',
    },
    {
      name: '60 frames stretched over 2.07 s (29 fps, within the fps check)',
      rendition: facts(3.4, 60, 29.016),
      reason: 'DurationDiffers',
    },
    { name: 'the first 1.5 s only', rendition: facts(3.4, 45, 30), reason: 'DurationDiffers' },
    {
      name: 'two frames too few (58 over the whole 2 s)',
      rendition: facts(3.4, 58, 28.98, 2.0012),
      reason: 'FrameCount',
    },
    { name: 'two frames too many (62 at 31 fps)', rendition: facts(3.4, 62, 31), reason: 'FrameCount' },
    {
      name: 'a 30 fps rendition for a 60 fps profile',
      rendition: facts(3.4, 60, 30),
      fps: 60,
      reason: 'FrameCount',
    },
  ];
  for (const c of cheats) {
    it(`flags a rendition ${c.name}: ${c.reason}`, () => {
      const verdict = checkTiming(c.rendition, source, c.fps ?? 30);
      expect(verdict?.reason, c.name).toBe(c.reason);
      expect(verdict?.message, c.name).toBeTruthy();
    });
  }

  it('allows exactly one frame interval of start shift and no more', () => {
    const edge = 1 / 30 + TIMESTAMP_JITTER_S;
    expect(checkTiming(facts(3.4 + edge - 1e-4, 60, 30), source, 30)).toBeUndefined();
    expect(checkTiming(facts(3.4 + edge + 1e-3, 60, 30), source, 30)?.reason).toBe('StartShifted');
    expect(checkTiming(facts(3.4 - edge - 1e-3, 60, 30), source, 30)?.reason).toBe('StartShifted');
  });

  it('says by how much and in which direction a rendition is shifted', () => {
    const verdict = checkTiming(facts(5.4, 60, 30), source, 30);
    expect(verdict?.message).toMatch(/starts 2\.000 s after the source segment/);
    expect(verdict?.expected).toBeCloseTo(3.4, 4);
    expect(verdict?.actual).toBeCloseTo(5.4, 4);
  });
});

describe('checkTiming on real ffmpeg output', () => {
  const tmp = tempDir('timing');
  // Low resolution keeps the runs cheap; 60 fps covers upsampling as 144p30 covers downsampling.
  const p144: Profile[] = [
    ...resolveProfiles('144p30'),
    { name: '144p60', width: 256, height: 144, fps: 60, bitrate: 300_000, gop: 2 },
  ];
  // The orchestrator's own settings: veryfast puts B-frames in the renditions (first DTS before first PTS).
  const transcoder = new LocalTranscoder({ threads: 1 }, { tools });
  const sources: Record<string, Segment[]> = {};

  /** A 160×90 test source, encoded with `preset` (veryfast: B-frames), keyframes every `gop` seconds. */
  function source(name: string, o: { fps: string; seconds: number; gop: number; flv?: boolean }): Segment[] {
    const out = join(tmp.dir, `${name}.${o.flv ? 'flv' : 'ts'}`);
    execFileSync(tools.ffmpeg, [
      ...['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi'],
      ...['-i', `testsrc2=size=160x90:rate=${o.fps}`, '-f', 'lavfi', '-i', 'sine=frequency=440'],
      ...['-t', String(o.seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p'],
      ...['-force_key_frames', `expr:gte(t,n_forced*${o.gop})`, '-c:a', 'aac', out],
    ]);
    if (!o.flv) return cut(out);
    // RTMP ingest: FLV's millisecond timestamps, stream-copied to TS as the broadcaster does.
    const ts = join(tmp.dir, `${name}.ts`);
    execFileSync(tools.ffmpeg, ['-hide_banner', '-loglevel', 'error', '-y', '-i', out, '-c', 'copy', ts]);
    return cut(ts);
  }

  beforeAll(() => {
    sources['25 fps'] = source('f25', { fps: '25', seconds: 4.5, gop: 2 });
    sources['60 fps'] = source('f60', { fps: '60', seconds: 4, gop: 2 });
    sources['24 fps, 1 s keyframes, short last segment'] = source('f24', { fps: '24', seconds: 2.3, gop: 1 });
    sources['29.97 fps'] = source('f2997', { fps: '30000/1001', seconds: 4, gop: 2 });
    sources['30 fps over RTMP (FLV)'] = source('rtmp', { fps: '30', seconds: 4.5, gop: 2, flv: true });
  });
  afterAll(() => tmp.remove());

  it('passes every honest rendition of every segment', async () => {
    const checked: string[] = [];
    for (const [name, segments] of Object.entries(sources)) {
      expect(segments.length, name).toBeGreaterThanOrEqual(2);
      for (const seg of segments) {
        const src = segmentFacts(validateSegment(seg.bytes, defaultSegmentLimits));
        const { renditions } = await transcoder.transcode(seg.bytes, p144);
        for (const r of renditions) {
          const label = `${name}, segment ${seg.seq} (${src.frames} frames), ${r.profile.name}`;
          expect(checkTiming(r, src, r.profile.fps), label).toBeUndefined();
          checked.push(label);
        }
      }
    }
    expect(checked.length).toBeGreaterThanOrEqual(20);
  });

  it('passes the honest renditions of a single-frame segment (taken under minFrames 1)', async () => {
    const out = join(tmp.dir, 'one.ts');
    execFileSync(tools.ffmpeg, [
      ...['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=160x90:rate=30'],
      ...['-frames:v', '1', '-c:v', 'libx264', '-preset', 'veryfast', out],
    ]);
    const bytes = readFileSync(out);
    const limits = { ...defaultSegmentLimits, minFrames: 1 };
    const src = segmentFacts(validateSegment(bytes, limits));
    expect(src.frames).toBe(1);
    const one = new LocalTranscoder({ threads: 1, limits }, { tools });
    for (const r of (await one.transcode(bytes, p144)).renditions) {
      expect(checkTiming(r, src, r.profile.fps), r.profile.name).toBeUndefined();
    }
  });

  it('flags the honest renditions of another segment of the same stream', async () => {
    const [first, second] = sources['25 fps'] ?? [];
    if (!first || !second) throw new Error('two segments expected');
    const src = segmentFacts(validateSegment(first.bytes, defaultSegmentLimits));
    const { renditions } = await transcoder.transcode(second.bytes, p144);
    for (const r of renditions) {
      expect(checkTiming(r, src, r.profile.fps)?.reason, r.profile.name).toBe('StartShifted');
    }
  });
});
