import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { Parser } from 'm3u8-parser';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registerMediaCommands } from '../../src/media/cli.js';
import { analyzeTs } from '../../src/media/mpegts.js';
import type { VodSummary } from '../../src/media/vod.js';
import { makeSource, tempDir, tools } from '../unit/media/fixtures.js';

const run = promisify(execFile);

function parse(text: string) {
  const p = new Parser();
  p.push(text);
  p.end();
  return p.manifest;
}

/** Runs `streamflow <args>` through commander in-process, capturing stdout and stderr. */
async function cli(...args: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  let stdout = '';
  let stderr = '';
  const program = new Command('streamflow').exitOverride();
  registerMediaCommands(program, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t), isTTY: false },
  });
  process.exitCode = 0;
  await program.parseAsync(['node', 'streamflow', ...args]);
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { stdout, stderr, exitCode };
}

describe('streamflow transcode (local VOD to HLS)', () => {
  const tmp = tempDir('vod');
  let wide25: string;
  let square30: string;
  let mpeg4: string;

  beforeAll(() => {
    wide25 = makeSource(tmp.dir, 'wide25', { width: 320, height: 180, fps: 25, seconds: 6, ext: 'mp4' });
    square30 = makeSource(tmp.dir, 'square30', { width: 320, height: 240, fps: 30, seconds: 5, ext: 'mp4' });
    mpeg4 = makeSource(tmp.dir, 'mpeg4', {
      width: 160,
      height: 120,
      fps: 25,
      seconds: 4,
      vcodec: 'mpeg4',
      ext: 'mkv',
    });
  });
  afterAll(() => tmp.remove());
  afterEach(() => {
    process.exitCode = 0;
  });

  for (const [label, source, want] of [
    ['16:9 25 fps', () => wide25, { '240p30': [426, 240], '144p30': [256, 144], segments: 3 }],
    ['4:3 30 fps', () => square30, { '240p30': [320, 240], '144p30': [192, 144], segments: 3 }],
  ] as const) {
    it(`writes a complete, aligned, playable HLS package from a ${label} file`, async () => {
      const out = join(tmp.dir, `out-${label.replace(/\W+/g, '')}`);
      const res = await cli(
        'transcode',
        source(),
        '--out',
        out,
        '--profiles',
        '240p30,144p30',
        '--json',
        '--preset',
        'ultrafast',
      );
      expect(res.exitCode, res.stderr).toBe(0);
      expect(res.stderr).toMatch(/^progress: .*100%/m);
      const summary = JSON.parse(res.stdout) as VodSummary;
      expect(summary.segments).toBe(want.segments);

      const master = parse(readFileSync(join(out, 'master.m3u8'), 'utf8'));
      const variants = master.playlists ?? [];
      expect(variants.map((v) => v.uri)).toEqual([
        'source/index.m3u8',
        '240p30/index.m3u8',
        '144p30/index.m3u8',
      ]);
      for (const v of variants) {
        expect(v.attributes.BANDWIDTH, v.uri).toBeGreaterThan(0);
        expect(v.attributes.CODECS, v.uri).toMatch(/^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
        expect(v.attributes['FRAME-RATE'], v.uri).toBeGreaterThan(0);
      }
      for (const name of ['240p30', '144p30'] as const) {
        const v = variants.find((x) => x.uri.startsWith(name));
        expect([v?.attributes.RESOLUTION?.width, v?.attributes.RESOLUTION?.height], name).toEqual([
          ...want[name],
        ]);
        expect(v?.attributes['FRAME-RATE'], name).toBe(30);
      }

      // Every variant lists the same segments with the same durations, and each rendition segment starts at
      // the same PTS in every rendition: players can switch at any boundary.
      const lists = ['source', '240p30', '144p30'].map((name) => ({
        name,
        m: parse(readFileSync(join(out, name, 'index.m3u8'), 'utf8')),
      }));
      for (const { name, m } of lists) {
        expect(m.endList, name).toBe(true);
        expect(m.playlistType, name).toBe('VOD');
        expect(m.targetDuration, name).toBe(2);
        expect(
          m.segments.map((s) => s.duration),
          name,
        ).toEqual(lists[0]?.m.segments.map((s) => s.duration));
      }
      const total = lists[0]?.m.segments.reduce((a, s) => a + s.duration, 0) ?? 0;
      expect(total).toBeCloseTo(summary.duration, 6);
      for (let seq = 0; seq < want.segments; seq++) {
        const starts = ['240p30', '144p30'].map(
          (name) => analyzeTs(readFileSync(join(out, name, `${seq}.ts`))).video,
        );
        expect(starts[0]?.startPts, `segment ${seq}`).toBe(starts[1]?.startPts);
        expect(starts[0]?.startsWithKeyframe, `segment ${seq}`).toBe(true);
        expect(starts[0]?.fps, `segment ${seq}`).toBeCloseTo(30, 3);
      }
      for (const r of summary.renditions) {
        expect(r.frames, r.name).toBe(Math.round(summary.duration * 30));
        expect(r.pixels, r.name).toBe(r.frames * r.width * r.height);
      }

      // The real test of a package: ffmpeg reads every variant end to end without an error.
      const check = await run(tools.ffmpeg, [
        '-v',
        'error',
        '-i',
        join(out, 'master.m3u8'),
        '-map',
        '0',
        '-f',
        'null',
        '-',
      ]);
      expect(check.stderr).toBe('');
      expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    });
  }

  it('re-encodes a source whose codec the transcoder does not take', async () => {
    const out = join(tmp.dir, 'out-mpeg4');
    const res = await cli('transcode', mpeg4, '--out', out, '--profiles', '144p30', '--json', '-q');
    expect(res.exitCode, res.stderr).toBe(0);
    expect(res.stderr).toBe('');
    const summary = JSON.parse(res.stdout) as VodSummary;
    expect(summary.source).toMatchObject({ codec: 'h264', reencoded: true });
    expect(summary.segments).toBe(2);
  });

  it('prints a human summary without --json', async () => {
    const res = await cli('transcode', wide25, '--out', join(tmp.dir, 'human'), '-p', '144p30', '-q');
    expect(res.stdout).toMatch(/Wrote .*master\.m3u8/);
    expect(res.stdout).toMatch(/144p30 +256x144 30 fps {2}180 frames/);
  });

  it('probes a file as JSON and as text', async () => {
    const json = await cli('probe', square30, '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({
      video: { codec: 'h264', width: 320, height: 240, fps: 30, frames: 150, pixels: 150 * 320 * 240 },
      audio: { codec: 'aac' },
    });
    const text = await cli('probe', square30);
    expect(text.stdout).toMatch(/video +h264 .*320x240 30 fps/);
  });

  it('reports errors with their code and exit status 1', async () => {
    const missing = await cli('transcode', join(tmp.dir, 'missing.mp4'), '--out', join(tmp.dir, 'x'));
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/^error \[ProbeFailed\]: Cannot read .*missing\.mp4/);
    const unknown = await cli('transcode', wide25, '--out', join(tmp.dir, 'y'), '--profiles', '123p4');
    expect(unknown.stderr).toMatch(/^error \[UnknownProfile\]/);
  });

  it('takes custom profiles from a JSON file', async () => {
    const file = join(tmp.dir, 'profiles.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, JSON.stringify([{ name: 'tiny', width: 96, height: 54, fps: 15, bitrate: '100k' }]));
    const res = await cli(
      'transcode',
      wide25,
      '--out',
      join(tmp.dir, 'custom'),
      '-p',
      'tiny',
      '--profiles-file',
      file,
      '--json',
      '-q',
    );
    expect(res.exitCode, res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout) as VodSummary;
    expect(summary.renditions[0]).toMatchObject({ name: 'tiny', width: 96, height: 54, fps: 15, frames: 90 });
  });
});
