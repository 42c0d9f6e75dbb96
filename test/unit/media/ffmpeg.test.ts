import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { FfmpegError } from '../../../src/media/errors.js';
import { FfmpegProcess, redactArgs, resolveMediaTools, runFfmpeg } from '../../../src/media/ffmpeg.js';
import { childMediaProcesses, tempDir, tools } from './fixtures.js';

function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('ffmpeg binaries', () => {
  const tmp = tempDir('ffmpeg');
  afterAll(() => tmp.remove());

  it('finds the packaged ffmpeg and ffprobe, executable', async () => {
    const found = resolveMediaTools({}, {});
    expect(found.ffmpeg).toMatch(/ffmpeg$/);
    expect(found.ffprobe).toMatch(/ffprobe$/);
    const version = await runFfmpeg(found.ffprobe, { args: ['-version'], stdout: 'collect' });
    expect(version.stdout.toString()).toMatch(/ffprobe version/);
  });

  it('prefers the explicit path, then STREAMFLOW_FFMPEG / STREAMFLOW_FFPROBE', () => {
    const env = { STREAMFLOW_FFMPEG: tools.ffprobe, STREAMFLOW_FFPROBE: tools.ffmpeg };
    expect(resolveMediaTools({}, env)).toEqual({ ffmpeg: tools.ffprobe, ffprobe: tools.ffmpeg });
    expect(resolveMediaTools({ ffmpegPath: tools.ffmpeg }, env).ffmpeg).toBe(tools.ffmpeg);
  });

  it('sets a missing exec bit (npm ran no install script) and reports a missing binary', () => {
    const script = join(tmp.dir, 'fake-ffmpeg');
    writeFileSync(script, '#!/bin/sh\necho fake\n');
    chmodSync(script, 0o644);
    expect(resolveMediaTools({ ffmpegPath: script }, {}).ffmpeg).toBe(script);
    expect(statSync(script).mode & 0o111).not.toBe(0);
    expect(() => resolveMediaTools({ ffmpegPath: join(tmp.dir, 'nope') }, {})).toThrow(
      expect.objectContaining({ code: 'FfmpegNotFound' }),
    );
  });

  it('rejects a failed run with the stderr tail', async () => {
    const err = await runFfmpeg(tools.ffmpeg, {
      args: ['-hide_banner', '-i', join(tmp.dir, 'missing.ts')],
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FfmpegError);
    expect((err as FfmpegError).code).toBe('FfmpegFailed');
    expect((err as FfmpegError).details.stderrTail).toMatch(/No such file/);
    expect((err as FfmpegError).message).toMatch(/No such file/);
  });

  it('reports a binary that cannot start as FfmpegSpawnFailed', async () => {
    const err = await runFfmpeg(join(tmp.dir, 'absent'), {
      args: [],
      input: Buffer.alloc(8),
      outputPipes: 1,
    }).catch((e: unknown) => e);
    expect((err as FfmpegError).code).toBe('FfmpegSpawnFailed');
  });

  it('kills a run that exceeds its timeout and leaves no process behind', async () => {
    const stdin = new PassThrough(); // never ends: ffmpeg waits on it forever
    const proc = new FfmpegProcess(tools.ffmpeg, {
      args: ['-hide_banner', '-f', 'mpegts', '-i', 'pipe:0', '-f', 'null', '-'],
      input: stdin,
      timeoutMs: 300,
    });
    const err = await proc.exited.catch((e: unknown) => e);
    expect((err as FfmpegError).code).toBe('FfmpegTimeout');
    expect(isAlive(proc.child.pid)).toBe(false);
    expect(childMediaProcesses()).toEqual([]);
  });

  it('kills a run when its signal aborts, rejecting with the reason', async () => {
    const controller = new AbortController();
    const stdin = new PassThrough();
    const run = runFfmpeg(tools.ffmpeg, {
      args: ['-hide_banner', '-f', 'mpegts', '-i', 'pipe:0', '-f', 'null', '-'],
      input: stdin,
      signal: controller.signal,
    });
    // Abort once ffmpeg has certainly started: when it has read our first bytes.
    stdin.write(Buffer.alloc(188 * 4, 0x47));
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect(childMediaProcesses()).toEqual([]);
  });

  it('does not start at all with an already aborted signal', async () => {
    const controller = new AbortController();
    controller.abort(new Error('early'));
    await expect(runFfmpeg(tools.ffmpeg, { args: ['-version'], signal: controller.signal })).rejects.toThrow(
      'early',
    );
  });

  it('never logs a stream key or credentials', () => {
    expect(redactArgs(['-i', 'rtmp://host:1935/live/secretkey', 'https://u:p@x.org/a?token=t'])).toEqual([
      '-i',
      'rtmp://host:1935/live/***',
      'https://***:***@x.org/a?token=***',
    ]);
  });
});
