import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { StreamflowError } from '../node/errors.js';
import { createLogger, type Logger } from '../node/logger.js';
import { resolveMediaTools } from './ffmpeg.js';
import { defaultTranscodeOptions, type TranscodeOptions } from './options.js';
import { probeMedia } from './probe.js';
import { PRESETS, type Profile, parseProfilesJson, resolveProfiles } from './profiles.js';
import { createProgressReporter, type ProgressStream } from './progress.js';
import { transcodeToHls, type VodSummary } from './vod.js';

/** Where the commands write; tests pass their own. */
export interface MediaCliDeps {
  stdout?: { write(text: string): unknown };
  stderr?: ProgressStream;
  logger?: Logger;
}

interface ToolFlags {
  ffmpeg?: string;
  ffprobe?: string;
}

const PRESET_NAMES: readonly TranscodeOptions['preset'][] = [
  'ultrafast',
  'superfast',
  'veryfast',
  'faster',
  'fast',
  'medium',
  'slow',
];

/**
 * Adds `transcode` (local VOD to HLS) and `probe` to a commander program. Errors are printed as
 * `error [Code]: message` on stderr with exit code 1; Ctrl-C stops ffmpeg and exits 130.
 */
export function registerMediaCommands(program: Command, deps: MediaCliDeps = {}): Command {
  const stdout = deps.stdout ?? process.stdout;
  const stderr = deps.stderr ?? process.stderr;

  program
    .command('transcode')
    .description('Segment a file or URL and transcode it into an HLS package (master + renditions), locally')
    .argument('<input>', 'video file or URL')
    .requiredOption('-o, --out <dir>', 'output directory (created if missing)')
    .option(
      '-p, --profiles <list>',
      `comma-separated profiles (${Object.keys(PRESETS).join(', ')})`,
      '360p30,240p30',
    )
    .option('--profiles-file <file>', 'JSON file of custom profiles, usable by name in --profiles')
    .option('--segment-duration <seconds>', 'target segment duration', positiveNumber, 2)
    .option('--preset <preset>', `x264 preset (${PRESET_NAMES.join(', ')})`, defaultTranscodeOptions.preset)
    .option('--concurrency <n>', 'segments transcoded at once', positiveInt, 1)
    .option('--reencode-source', 're-encode the source before cutting (for sources with sparse keyframes)')
    .option('--ffmpeg <path>', 'ffmpeg binary (default: STREAMFLOW_FFMPEG, then the bundled one)')
    .option('--ffprobe <path>', 'ffprobe binary (default: STREAMFLOW_FFPROBE, then the bundled one)')
    .option('--json', 'print the summary as JSON on stdout')
    .option('-q, --quiet', 'no progress output')
    .action(async (input: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<
        ToolFlags & {
          out: string;
          profiles: string;
          profilesFile?: string;
          segmentDuration: number;
          preset: string;
          concurrency: number;
          reencodeSource?: boolean;
          json?: boolean;
          quiet?: boolean;
        }
      >();
      await withCliErrors(stderr, async (signal) => {
        if (!PRESET_NAMES.includes(opts.preset as TranscodeOptions['preset'])) {
          throw new InvalidArgumentError(`--preset must be one of ${PRESET_NAMES.join(', ')}`);
        }
        const custom: Profile[] = opts.profilesFile
          ? parseProfilesJson(await readFile(opts.profilesFile, 'utf8'))
          : [];
        const profiles = resolveProfiles(opts.profiles, custom);
        const tools = resolveMediaTools({ ffmpegPath: opts.ffmpeg, ffprobePath: opts.ffprobe });
        const logger = deps.logger ?? createLogger({ level: process.env.STREAMFLOW_LOG_LEVEL ?? 'warn' });
        const progress = opts.quiet ? undefined : createProgressReporter(stderr);
        const outDir = resolve(opts.out);
        const summary = await transcodeToHls(
          {
            input,
            outDir,
            profiles,
            segmentDuration: opts.segmentDuration,
            concurrency: opts.concurrency,
            reencodeSource: opts.reencodeSource ? true : 'auto',
            transcode: { preset: opts.preset as TranscodeOptions['preset'] },
            signal,
            onProgress: (p) => progress?.update(p),
          },
          { tools, logger },
        ).finally(() => progress?.done());
        stdout.write(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(summary));
      });
    });

  program
    .command('probe')
    .description('Show container, video and audio facts of a media file or URL')
    .argument('<file>', 'media file or URL')
    .option('--json', 'print JSON')
    .option('--count-frames', 'decode to count frames exactly (MPEG-TS files are counted without decoding)')
    .option('--ffmpeg <path>', 'ffmpeg binary')
    .option('--ffprobe <path>', 'ffprobe binary')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<ToolFlags & { json?: boolean; countFrames?: boolean }>();
      await withCliErrors(stderr, async (signal) => {
        const tools = resolveMediaTools({ ffmpegPath: opts.ffmpeg, ffprobePath: opts.ffprobe });
        // An MPEG-TS file is read whole and counted in-process: exact and far cheaper than decoding.
        const input =
          /\.(ts|m2ts|mts)$/i.test(file) && !/^[a-z]+:\/\//i.test(file) ? await readFile(file) : file;
        const probe = await probeMedia(
          input,
          { countFrames: opts.countFrames ?? input !== file, signal },
          { tools },
        );
        if (opts.json) {
          stdout.write(`${JSON.stringify({ input: file, ...probe }, null, 2)}\n`);
          return;
        }
        const lines = [`${file}: ${probe.format}, ${probe.duration.toFixed(3)} s`];
        if (probe.size !== undefined) lines.push(`  size      ${probe.size} bytes`);
        if (probe.bitrate !== undefined) lines.push(`  bitrate   ${Math.round(probe.bitrate / 1000)} kb/s`);
        const v = probe.video;
        if (v) {
          lines.push(
            `  video     ${v.codec}${v.profile ? ` (${v.profile})` : ''} ${v.width}x${v.height} ${v.fps} fps ${v.pixelFormat ?? ''}`.trimEnd(),
          );
          if (v.frames !== undefined) lines.push(`  frames    ${v.frames}  pixels ${v.pixels}`);
        }
        const a = probe.audio;
        if (a) lines.push(`  audio     ${a.codec} ${a.sampleRate} Hz ${a.channels} ch`);
        stdout.write(`${lines.join('\n')}\n`);
      });
    });
  return program;
}

function formatSummary(s: VodSummary): string {
  const lines = [
    `Wrote ${s.master}`,
    `  ${s.segments} segments, ${s.duration.toFixed(1)} s of media in ${(s.elapsedMs / 1000).toFixed(1)} s (${s.realtimeFactor.toFixed(2)}x realtime)`,
    `  source    ${s.source.codec} ${s.source.width ?? '?'}x${s.source.height ?? '?'} ${s.source.fps} fps${s.source.reencoded ? ' (re-encoded)' : ''}`,
  ];
  for (const r of s.renditions) {
    lines.push(
      `  ${r.name.padEnd(9)} ${r.width}x${r.height} ${r.fps} fps  ${r.frames} frames  ${Math.round(r.averageBitrate / 1000)} kb/s  ${r.bytes} bytes`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Runs a command body with a signal aborted by Ctrl-C, and turns errors into one line and an exit code. */
async function withCliErrors(
  stderr: { write(text: string): unknown },
  body: (signal: AbortSignal) => Promise<void>,
): Promise<void> {
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  try {
    await body(controller.signal);
  } catch (err) {
    if (controller.signal.aborted) {
      stderr.write('interrupted\n');
      process.exitCode = 130;
      return;
    }
    const code = err instanceof StreamflowError ? ` [${err.code}]` : '';
    stderr.write(`error${code}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}
