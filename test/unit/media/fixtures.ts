import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { type MediaTools, resolveMediaTools } from '../../../src/media/ffmpeg.js';
import { type Segment, TsSegmenter } from '../../../src/media/segmenter.js';

export const tools: MediaTools = resolveMediaTools();

export interface SourceSpec {
  width: number;
  height: number;
  fps: number;
  /** Seconds. */
  seconds: number;
  /** Keyframe interval, seconds. @default 2 */
  gop?: number;
  /** 'aac' | 'mp3' | 'none' @default 'aac' */
  audio?: 'aac' | 'mp3' | 'none';
  /** @default 'libx264' */
  vcodec?: 'libx264' | 'mpeg2video' | 'mpeg4';
  /** Container, by file extension. @default 'ts' */
  ext?: 'ts' | 'mp4' | 'flv' | 'mkv';
}

/**
 * Makes a test source with ffmpeg's lavfi testsrc2 + sine: deterministic content, exact keyframes every `gop`
 * seconds (forced), ultrafast so the suite stays quick on two cores.
 */
export function makeSource(dir: string, name: string, spec: SourceSpec): string {
  const ext = spec.ext ?? 'ts';
  const out = join(dir, `${name}.${ext}`);
  const audio = spec.audio ?? 'aac';
  const vcodec = spec.vcodec ?? 'libx264';
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${spec.width}x${spec.height}:rate=${spec.fps}`,
  ];
  if (audio !== 'none') args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=44100');
  args.push('-t', String(spec.seconds), '-c:v', vcodec);
  if (vcodec === 'libx264') args.push('-preset', 'ultrafast', '-pix_fmt', 'yuv420p');
  args.push('-force_key_frames', `expr:gte(t,n_forced*${spec.gop ?? 2})`);
  if (vcodec !== 'libx264') args.push('-g', String(Math.round((spec.gop ?? 2) * spec.fps)));
  if (audio === 'aac') args.push('-c:a', 'aac', '-b:a', '64k');
  if (audio === 'mp3') args.push('-c:a', 'libmp3lame', '-b:a', '64k');
  args.push(out);
  execFileSync(tools.ffmpeg, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

/** Cuts a TS file into segments in-process. */
export function cut(file: string, targetDuration = 2): Segment[] {
  const segmenter = new TsSegmenter({ targetDuration });
  return [...segmenter.push(readFileSync(file)), ...segmenter.end()];
}

export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `streamflow-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** ffmpeg/ffprobe processes that are children of this test process right now. */
export function childMediaProcesses(): string[] {
  try {
    const out = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)], { encoding: 'utf8' });
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /ffmpeg|ffprobe/.test(l));
  } catch {
    return [];
  }
}

/** The error `p` rejects with, checked to be a `type`. */
export async function rejection<E extends Error>(
  p: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  return err as E;
}
