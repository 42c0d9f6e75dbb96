/**
 * Transcode overhead benchmark: the project's pipeline (LocalTranscoder: in-process probe, stdin in, one pipe
 * per rendition out, in-process facts) against one bare ffmpeg command with the very same arguments reading a
 * file and writing files, alternating segment by segment in the same run. Prints and writes
 * bench/results/transcode.json.
 *
 *   npm run bench:transcode            BENCH_ROUNDS=5 npm run bench:transcode
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { resolveMediaTools, runFfmpeg } from '../src/media/ffmpeg.js';
import { defaultTranscodeOptions } from '../src/media/options.js';
import { resolveProfiles } from '../src/media/profiles.js';
import { type Segment, segmentSource } from '../src/media/segmenter.js';
import { buildTranscodeArgs, LocalTranscoder } from '../src/media/transcode.js';

const SOURCE_SECONDS = 20;
const SEGMENT_SECONDS = 2;
const PROFILES = '480p30,360p30,240p30';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function round(n: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Wall time of one bare ffmpeg run, spawn to exit, ms. */
function bare(ffmpeg: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(ffmpeg, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(performance.now() - t0);
      else reject(new Error(`bare ffmpeg exited ${code}: ${stderr.slice(-500)}`));
    });
  });
}

async function main(): Promise<void> {
  const tools = resolveMediaTools();
  const dir = await mkdtemp(join(tmpdir(), 'streamflow-bench-'));
  try {
    const source = join(dir, 'source.ts');
    await runFfmpeg(tools.ffmpeg, {
      args: [
        ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30'],
        ...['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(SOURCE_SECONDS)],
        ...['-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '4M', '-pix_fmt', 'yuv420p'],
        ...[
          '-force_key_frames',
          `expr:gte(t,n_forced*${SEGMENT_SECONDS})`,
          '-c:a',
          'aac',
          '-f',
          'mpegts',
          source,
        ],
      ],
      timeoutMs: 300_000,
    });
    const segments: Segment[] = [];
    for await (const s of segmentSource({ input: source, targetDuration: SEGMENT_SECONDS }, { tools })) {
      segments.push(s);
      await writeFile(join(dir, `seg${s.seq}.ts`), s.bytes);
    }

    const profiles = resolveProfiles(PROFILES);
    const options = defaultTranscodeOptions;
    const transcoder = new LocalTranscoder({}, { tools });
    const bareArgs = (s: Segment) => [
      '-y',
      ...buildTranscodeArgs(profiles, {
        ...options,
        audio: 'copy',
        input: join(dir, `seg${s.seq}.ts`),
        outputs: profiles.map((p) => join(dir, `out-${s.seq}-${p.name}.ts`)),
      }),
    ];

    const first = segments[0] as Segment;
    // Warm the page cache and the binary once each; not measured.
    await transcoder.transcode(first.bytes, profiles);
    await bare(tools.ffmpeg, bareArgs(first));

    const pipelineMs: number[] = [];
    const bareMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, s] of segments.entries()) {
        const runPipeline = async () => {
          const t0 = performance.now();
          await transcoder.transcode(s.bytes, profiles);
          pipelineMs.push(performance.now() - t0);
        };
        const runBare = async () => {
          bareMs.push(await bare(tools.ffmpeg, bareArgs(s)));
        };
        // Alternate which goes first so neither always gets the warmer cache or the cooler CPU.
        if ((i + round) % 2 === 0) {
          await runPipeline();
          await runBare();
        } else {
          await runBare();
          await runPipeline();
        }
      }
    }

    const pipelineSps = median(pipelineMs) / 1000;
    const bareSps = median(bareMs) / 1000;
    const segmentDuration = median(segments.map((s) => s.duration));
    const report = {
      segments: segments.length,
      segmentDuration,
      source: { width: 1280, height: 720, fps: 30, seconds: SOURCE_SECONDS },
      profiles: profiles.map((p) => p.name),
      preset: options.preset,
      rounds: ROUNDS,
      samples: pipelineMs.length,
      pipeline: {
        secondsPerSegment: round(pipelineSps),
        minSeconds: round(Math.min(...pipelineMs) / 1000),
        maxSeconds: round(Math.max(...pipelineMs) / 1000),
      },
      bare: {
        secondsPerSegment: round(bareSps),
        minSeconds: round(Math.min(...bareMs) / 1000),
        maxSeconds: round(Math.max(...bareMs) / 1000),
      },
      overheadRatio: round(pipelineSps / bareSps),
      realtimeFactor: round(segmentDuration / pipelineSps, 3),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
    };
    // npm runs scripts from the package root, compiled (dist/bench) or not.
    const out = resolve(process.cwd(), 'bench', 'results', 'transcode.json');
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:transcode failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
