import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, chmodSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Readable, Writable } from 'node:stream';
import { redactUrl } from '../node/errors.js';
import type { Logger } from '../node/logger.js';
import { FfmpegError } from './errors.js';

/** Absolute paths of the two binaries every media function runs. */
export interface MediaTools {
  ffmpeg: string;
  ffprobe: string;
}

/**
 * Where ffmpeg and ffprobe come from: an explicit path (the `--ffmpeg` / `--ffprobe` flags), then
 * `STREAMFLOW_FFMPEG` / `STREAMFLOW_FFPROBE`, then the binaries shipped in npm packages.
 *
 * ffprobe prefers `ffprobe-static` over `@ffprobe-installer/ffprobe`: the latter's linux-x64 build (2023-07
 * static) segfaults on every MPEG-TS input, which is the one format we probe most.
 */
export function resolveMediaTools(
  options: { ffmpegPath?: string | undefined; ffprobePath?: string | undefined } = {},
  env: NodeJS.ProcessEnv = process.env,
): MediaTools {
  const ffmpeg = options.ffmpegPath ?? env.STREAMFLOW_FFMPEG ?? packagedBinary('ffmpeg');
  const ffprobe = options.ffprobePath ?? env.STREAMFLOW_FFPROBE ?? packagedBinary('ffprobe');
  return { ffmpeg: ensureExecutable(ffmpeg), ffprobe: ensureExecutable(ffprobe) };
}

const require = createRequire(import.meta.url);

function packagedBinary(name: 'ffmpeg' | 'ffprobe'): string {
  const candidates =
    name === 'ffmpeg'
      ? [() => (require('@ffmpeg-installer/ffmpeg') as { path: string }).path]
      : [
          () => (require('ffprobe-static') as { path: string }).path,
          () => (require('@ffprobe-installer/ffprobe') as { path: string }).path,
        ];
  const tried: string[] = [];
  for (const candidate of candidates) {
    try {
      return candidate();
    } catch (err) {
      tried.push(String(err instanceof Error ? err.message : err));
    }
  }
  throw new FfmpegError(
    'FfmpegNotFound',
    `No packaged ${name} binary for ${process.platform}-${process.arch}. Install one and pass --${name} PATH or set STREAMFLOW_${name.toUpperCase()}.`,
    { binary: name, stderrTail: tried.join('\n') },
  );
}

/**
 * npm here runs no install scripts, so a packaged binary can arrive without its exec bit; set it once.
 * A path the user gave that does not exist is reported, not created.
 */
function ensureExecutable(path: string): string {
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    // fall through: either missing or not executable
  }
  try {
    const mode = statSync(path).mode;
    chmodSync(path, mode | 0o111);
    accessSync(path, constants.X_OK);
    return path;
  } catch (err) {
    throw new FfmpegError(
      'FfmpegNotFound',
      `Cannot execute ${path}: ${(err as Error).message}. Pass --ffmpeg/--ffprobe PATH or set STREAMFLOW_FFMPEG/STREAMFLOW_FFPROBE.`,
      { binary: path },
      { cause: err },
    );
  }
}

/** How one ffmpeg/ffprobe process is run. */
export interface FfmpegRunOptions {
  /** Arguments after the binary. */
  args: readonly string[];
  /** Bytes written to stdin then closed, or a stream piped to stdin; none means stdin is closed at once. */
  input?: Uint8Array | Readable | undefined;
  /** Whether stdout is collected into `stdout`, exposed as a stream, or discarded. @default 'ignore' */
  stdout?: 'collect' | 'stream' | 'ignore';
  /** Extra output pipes at fds 3, 4, … (ffmpeg writes them as `pipe:3`, `pipe:4`, …), each collected. @default 0 */
  outputPipes?: number;
  /** Kill the process after this long. @default 60_000 ms; 0 disables (long-running ingest) */
  timeoutMs?: number;
  /** Killed, and the run rejects with the signal's reason, when aborted. */
  signal?: AbortSignal | undefined;
  /** Bytes of stderr kept (the end) for error messages. @default 16_384 */
  stderrTailBytes?: number;
  /** Any collected output (stdout or a pipe) beyond this kills the run: a hostile input must not fill memory. @default 256 MiB */
  maxOutputBytes?: number;
}

export interface FfmpegRunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Collected stdout when `stdout: 'collect'`, else empty. */
  stdout: Buffer;
  /** One buffer per extra output pipe, fd 3 first. */
  outputs: Buffer[];
  /** The last `stderrTailBytes` of stderr. */
  stderrTail: string;
  /** Wall time from spawn to exit, ms. */
  elapsedMs: number;
}

/**
 * A running ffmpeg: abort, timeout and output cap all end in SIGKILL (ffmpeg is one process, no children), and
 * `exited` resolves only on `close`, i.e. after the child is reaped and every pipe drained, so no zombie and no
 * late write outlives it.
 */
export class FfmpegProcess {
  readonly child: ChildProcess;
  /** stdout as a stream, when run with `stdout: 'stream'`. */
  readonly stdout: Readable | null;
  readonly exited: Promise<FfmpegRunResult>;
  private readonly stderrChunks: Buffer[] = [];
  private stderrBytes = 0;
  private killReason: FfmpegError | 'abort' | undefined;

  constructor(
    readonly binary: string,
    private readonly options: FfmpegRunOptions,
    private readonly logger?: Logger,
  ) {
    const started = performance.now();
    const pipes = options.outputPipes ?? 0;
    const stdoutMode = options.stdout ?? 'ignore';
    const stdio: ('pipe' | 'ignore')[] = [
      'pipe',
      stdoutMode === 'ignore' ? 'ignore' : 'pipe',
      'pipe',
      ...Array.from({ length: pipes }, () => 'pipe' as const),
    ];
    const signal = options.signal;
    this.child = spawn(binary, options.args as string[], { stdio, windowsHide: true });
    this.stdout = stdoutMode === 'stream' ? (this.child.stdout ?? null) : null;
    const tailLimit = options.stderrTailBytes ?? 16_384;
    const maxOutput = options.maxOutputBytes ?? 256 * 1024 * 1024;

    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.stderrChunks.push(chunk);
      this.stderrBytes += chunk.length;
      while (
        this.stderrBytes - (this.stderrChunks[0]?.length ?? 0) > tailLimit &&
        this.stderrChunks.length > 1
      ) {
        this.stderrBytes -= this.stderrChunks.shift()?.length ?? 0;
      }
    });

    const collect = (stream: Readable | null | undefined): Buffer[] => {
      const chunks: Buffer[] = [];
      let total = 0;
      stream?.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (total > maxOutput) {
          this.kill(
            new FfmpegError(
              'FfmpegFailed',
              `${label(binary)} produced more than ${maxOutput} bytes; killed`,
              {
                binary,
              },
            ),
          );
          return;
        }
        chunks.push(chunk);
      });
      return chunks;
    };
    const stdoutChunks = stdoutMode === 'collect' ? collect(this.child.stdout) : [];
    const pipeChunks = Array.from({ length: pipes }, (_, i) => collect(this.child.stdio[3 + i] as Readable));

    const onAbort = () => this.kill('abort');
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () =>
              this.kill(
                new FfmpegError(
                  'FfmpegTimeout',
                  `${label(binary)} did not finish within ${timeoutMs} ms; killed`,
                  {
                    binary,
                    timeoutMs,
                  },
                ),
              ),
            timeoutMs,
          )
        : undefined;
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();

    this.exited = new Promise<FfmpegRunResult>((resolve, reject) => {
      let spawnError: Error | undefined;
      this.child.once('error', (err) => {
        spawnError = err;
      });
      this.child.once('close', (exitCode, exitSignal) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const result: FfmpegRunResult = {
          exitCode,
          signal: exitSignal,
          stdout: Buffer.concat(stdoutChunks),
          outputs: pipeChunks.map((c) => Buffer.concat(c)),
          stderrTail: this.stderrTail(),
          elapsedMs: performance.now() - started,
        };
        if (this.killReason === 'abort') {
          reject(signal?.reason ?? new Error('aborted'));
        } else if (this.killReason) {
          this.killReason.details.stderrTail = result.stderrTail;
          reject(this.killReason);
        } else if (spawnError) {
          reject(
            new FfmpegError(
              'FfmpegSpawnFailed',
              `Cannot start ${binary}: ${spawnError.message}`,
              { binary },
              { cause: spawnError },
            ),
          );
        } else {
          resolve(result);
        }
      });
    });
    // The caller may only look at `exited` later; a rejection must not count as unhandled meanwhile.
    this.exited.catch(() => undefined);

    const stdin = this.child.stdin;
    if (stdin) {
      // ffmpeg closes stdin early when it gives up on an input; the exit status says why, EPIPE adds nothing.
      stdin.on('error', () => undefined);
      const input = options.input;
      if (input === undefined) stdin.end();
      else if (input instanceof Uint8Array) stdin.end(input);
      else {
        input.on('error', (err) => {
          this.logger?.debug({ err: err.message }, 'ffmpeg input stream failed');
          stdin.end();
        });
        input.pipe(stdin as Writable);
      }
    }
    this.logger?.debug({ binary: label(binary), args: redactArgs(options.args) }, 'ffmpeg started');
  }

  /** The end of stderr so far. */
  stderrTail(): string {
    const text = Buffer.concat(this.stderrChunks).toString('utf8');
    const limit = this.options.stderrTailBytes ?? 16_384;
    return text.length > limit ? text.slice(text.length - limit) : text;
  }

  /** Kills the process now (SIGKILL). The first reason given wins. Await `exited` to know it is gone. */
  kill(reason: FfmpegError | 'abort' = 'abort'): void {
    if (this.killReason === undefined) this.killReason = reason;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * Runs ffmpeg/ffprobe to completion. Rejects with {@link FfmpegError} `FfmpegFailed` on a non-zero exit (message
 * carries the stderr tail), `FfmpegTimeout` on timeout, `FfmpegSpawnFailed` when it cannot start, or with the
 * signal's reason when aborted; in every case the process has exited before the promise settles.
 */
export async function runFfmpeg(
  binary: string,
  options: FfmpegRunOptions,
  deps: { logger?: Logger } = {},
): Promise<FfmpegRunResult> {
  const proc = new FfmpegProcess(binary, options, deps.logger);
  const result = await proc.exited;
  if (result.exitCode !== 0) {
    throw new FfmpegError(
      'FfmpegFailed',
      `${label(binary)} exited with ${result.exitCode ?? result.signal}: ${lastLines(result.stderrTail, 3)}`,
      { binary, exitCode: result.exitCode, signal: result.signal, stderrTail: result.stderrTail },
    );
  }
  return result;
}

/** The last `n` non-empty lines of a stderr tail, joined for a one-line message. */
export function lastLines(text: string, n: number): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.slice(-n).join(' | ') || '(no output on stderr)';
}

function label(binary: string): string {
  return /ffprobe/i.test(binary) ? 'ffprobe' : 'ffmpeg';
}

/** Input URLs may carry credentials, and an RTMP URL's last path segment is the stream key: never log them raw. */
export function redactArgs(args: readonly string[]): string[] {
  return args.map((a) => {
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) return a;
    const redacted = redactUrl(a);
    return /^rtmps?:/i.test(redacted)
      ? redacted.replace(/^(rtmps?:\/\/[^/]+\/[^/?]+\/)[^?]+/i, '$1***')
      : redacted;
  });
}
