/**
 * End-to-end latency benchmark: a devnet, one orchestrator transcoding locally and a funded broadcaster, all
 * in this process on loopback. Each of 30 two-second 720p30 segments goes through
 * `broadcaster.jobs.transcode` (pay with tickets, send, transcode into 480p30/360p30/240p30, verify receipt and
 * renditions) and, in the same run, through a bare `LocalTranscoder` (`transcodeOnly`), alternating which goes
 * first segment by segment. `overhead.p50Ms` is the difference of the two medians: what the network path adds
 * to transcoding. Prints and writes bench/results/e2e.json.
 *
 *   npm run bench:e2e            BENCH_SEGMENTS=60 npm run bench:e2e
 *
 * Warm-up: the first WARMUP segments of the source go through both paths unmeasured, so the HTTP/2
 * connection, the orchestrator's ticket params, the sender's session and the ffmpeg binary and page cache are
 * in place. The source is therefore (WARMUP + SEGMENTS) × 2 s plus one spare segment long, and the measured
 * segments continue the warm-up's stream (same stream id, next sequence numbers), as a live stream would.
 *
 * `overhead.p50Ms` compares two noisy distributions; on a busy machine their medians move by more than the
 * target. Two steadier figures come with it: `overhead.pairedP50Ms`, the median of the per-segment differences,
 * and `overhead.outsideTranscodeP50Ms`, the median of each segment's latency minus the time the orchestrator's
 * transcoder pool held it (everything but the transcode itself, measured on the same segment).
 *
 * Breakdown: the orchestrator's `Transcode` handler and its transcoder pool are wrapped (timing only, behaviour
 * unchanged) to split each segment's latency into medians of: `requestLeg` (jobs.transcode called → handler
 * entered: selection, ticket signing, protobuf and gRPC envelope, HTTP/2 on loopback, decoding),
 * `orchestratorBeforeTranscode` (payment, credit, segment checks), `orchestratorTranscode` (the pool: checks
 * and LocalTranscoder; `ffmpeg` is the ffmpeg run inside it), `orchestratorAfterTranscode` (fee, session
 * write, receipt hashing and signing), `replyLeg` (handler returned → outcome: encoding, transfer, decoding,
 * verification). `verifyReplay` repeats the broadcaster's verification off the clock to size its share;
 * `requestSignature` does the same for the request signature every `Transcode` carries (issue 9 §1): signing
 * on the broadcaster, checking on the orchestrator, each including the segment's SHA-256.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { hexToBytes, parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import type { SegmentOutcome } from '../src/broadcaster/jobs.js';
import { startNetwork } from '../src/demo/network.js';
import { resolveMediaTools } from '../src/media/ffmpeg.js';
import { defaultTranscodeOptions } from '../src/media/options.js';
import { resolveProfiles } from '../src/media/profiles.js';
import { type Segment, TsSegmenter } from '../src/media/segmenter.js';
import { LocalTranscoder, readRendition } from '../src/media/transcode.js';
import { profileToProto } from '../src/rpc/convert.js';
import { signTranscodeRequest, TranscodeRequestGuard } from '../src/rpc/request-auth.js';
import { contentHash, receiptDigest, recoverWireSigner } from '../src/rpc/signing.js';

const SEGMENTS = Number(process.env.BENCH_SEGMENTS ?? 30);
const WARMUP = 2;
const SEGMENT_SECONDS = 2;
const SOURCE_SECONDS = (WARMUP + SEGMENTS + 1) * SEGMENT_SECONDS;
const PROFILES = '480p30,360p30,240p30';
const STREAM = 'bench-e2e';
/** As in `streamflow demo`: about one ticket per segment, one in four winning. */
const PM = { expectedValue: 100_000_000_000_000n, txCostMultiplier: 3 };
const PRICE_PER_PIXEL = 2_000_000n;
const TARGET_OVERHEAD_MS = 60;
const TARGET_P95_SLACK_MS = 150;

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  // Linear interpolation between closest ranks; q = 0.5 is the usual median.
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function stats(xs: readonly number[]): { p50Ms: number; p95Ms: number; minMs: number; maxMs: number } {
  return {
    p50Ms: round(median(xs)),
    p95Ms: round(quantile(xs, 0.95)),
    minMs: round(Math.min(...xs)),
    maxMs: round(Math.max(...xs)),
  };
}

interface Marks {
  handlerStart?: number;
  handlerEnd?: number;
  poolStart?: number;
  poolEnd?: number;
  ffmpegMs?: number;
}

/**
 * The broadcaster's checks of a reply done once more, off the clock (the client does them inside its call):
 * content hashes of the segment and every rendition, each rendition's facts from its bytes, the receipt
 * signer's recovery. Tells the reply leg's verification from its transfer.
 */
async function replayVerification(s: Segment, outcome: SegmentOutcome): Promise<number> {
  const t0 = performance.now();
  const inputHash = contentHash(s.bytes);
  const renditions = outcome.renditions.map((r) => {
    readRendition(r.profile, r.bytes);
    return { profile: r.profile.name, hash: contentHash(r.bytes) };
  });
  await recoverWireSigner(
    receiptDigest({ streamId: STREAM, seq: BigInt(s.seq), inputHash, renditions }),
    outcome.receipt.signature,
  );
  return performance.now() - t0;
}

/**
 * The request signature's cost for one segment, off the clock (the same work is inside `requestLeg` and
 * `orchestratorBeforeTranscode`): the broadcaster hashing the segment and signing (viem, pure JS), the
 * orchestrator checking freshness and nonce, hashing the segment and recovering the signer (libsecp256k1).
 */
const requestSigner = privateKeyToAccount(generatePrivateKey());
const requestGuard = new TranscodeRequestGuard();
async function replayRequestSignature(s: Segment): Promise<{ signMs: number; checkMs: number }> {
  const metadata = {
    durationMs: Math.round(s.duration * 1000),
    profiles: resolveProfiles(PROFILES).map(profileToProto),
  };
  const t0 = performance.now();
  const signed = await signTranscodeRequest(requestSigner, {
    orchestrator: requestSigner.address,
    sender: requestSigner.address,
    streamId: STREAM,
    seq: BigInt(s.seq),
    segmentHash: contentHash(s.bytes),
    metadata,
  });
  const t1 = performance.now();
  await requestGuard.check({
    orchestrator: requestSigner.address,
    sender: requestSigner.address,
    streamId: STREAM,
    seq: BigInt(s.seq),
    segment: s.bytes,
    metadata,
    issuedAtMs: signed.issuedAtMs,
    nonce: signed.nonce,
    signature: hexToBytes(signed.signature),
  });
  return { signMs: t1 - t0, checkMs: performance.now() - t1 };
}

/** `{ a: { b: 1 } }` → `{ 'a.b': 1 }`: the results files are one flat object of dotted keys. */
function flatten(o: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      Object.assign(out, flatten(v as Record<string, unknown>, `${prefix}${k}.`));
    } else out[`${prefix}${k}`] = v;
  }
  return out;
}

async function main(): Promise<void> {
  const tools = resolveMediaTools();
  const dir = await mkdtemp(join(tmpdir(), 'streamflow-bench-e2e-'));
  try {
    const source = join(dir, 'source.ts');
    // 720p30 test picture and tone, AAC, a keyframe every SEGMENT_SECONDS (as OBS set up for streaming).
    const args = ['-hide_banner', '-loglevel', 'error', '-y'];
    args.push('-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30');
    args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(SOURCE_SECONDS));
    args.push('-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '4M', '-pix_fmt', 'yuv420p');
    args.push('-force_key_frames', `expr:gte(t,n_forced*${SEGMENT_SECONDS})`);
    args.push('-c:a', 'aac', '-b:a', '96k', '-f', 'mpegts', source);
    await promisify(execFile)(tools.ffmpeg, args, { timeout: 600_000 });
    const segmenter = new TsSegmenter({ targetDuration: SEGMENT_SECONDS });
    const all = [...segmenter.push(await readFile(source)), ...segmenter.end()];
    // Only full-length segments: the last one may be cut short by the end of the source.
    const full = all.filter((s) => Math.abs(s.duration - SEGMENT_SECONDS) < 0.05);
    if (full.length < WARMUP + SEGMENTS) {
      throw new Error(`the source cut into ${full.length} full segments; ${WARMUP + SEGMENTS} needed`);
    }
    const warmup = full.slice(0, WARMUP);
    const measured = full.slice(WARMUP, WARMUP + SEGMENTS);

    const profiles = resolveProfiles(PROFILES);
    const net = await startNetwork(
      {
        dataDir: join(dir, 'nodes'),
        orchestrators: [{ name: 'bench', pricePerPixel: PRICE_PER_PIXEL, node: { pm: PM } }],
        broadcaster: {
          profiles,
          deposit: parseEther('1'),
          reserve: parseEther('1'),
          rtmpPort: false,
          staticList: true,
        },
      },
      { tools },
    );
    try {
      const orchestrator = (net.orchestrators[0] as (typeof net.orchestrators)[number]).node;
      /** Timestamps (performance.now) of the segment in flight; one at a time, so no key is needed. */
      let marks: Marks = {};
      const jobs = orchestrator.jobs;
      const handle = jobs.transcode.bind(jobs);
      jobs.transcode = async (req, ctx) => {
        marks.handlerStart = performance.now();
        try {
          return await handle(req, ctx);
        } finally {
          marks.handlerEnd = performance.now();
        }
      };
      const pool = orchestrator.pool;
      const poolTranscode = pool.transcode.bind(pool);
      pool.transcode = async (segment, ps, opts) => {
        marks.poolStart = performance.now();
        const result = await poolTranscode(segment, ps, opts);
        marks.poolEnd = performance.now();
        marks.ffmpegMs = result.timings.ffmpegMs;
        return result;
      };

      const transcoder = new LocalTranscoder({}, { tools });
      const e2e = async (s: Segment) => {
        marks = {};
        const start = performance.now();
        const outcome = await net.broadcaster.jobs.transcode({
          streamId: STREAM,
          seq: s.seq,
          duration: s.duration,
          bytes: s.bytes,
          profiles,
        });
        const end = performance.now();
        if (outcome.renditions.length !== profiles.length) {
          throw new Error(
            `segment ${s.seq}: ${outcome.renditions.length} renditions, ${profiles.length} asked`,
          );
        }
        const verifyMs = await replayVerification(s, outcome);
        return { start, end, marks, verifyMs, request: await replayRequestSignature(s) };
      };
      const local = async (s: Segment) => {
        const t0 = performance.now();
        await transcoder.transcode(s.bytes, profiles);
        return performance.now() - t0;
      };

      for (const s of warmup) {
        await e2e(s);
        await local(s);
      }
      const ticketsBefore = net.broadcaster.jobs.stats.ticketsSent;
      const winningBefore = orchestrator.stats().tickets.winning;
      const failoversBefore = net.broadcaster.jobs.stats.failovers;

      const runs: Awaited<ReturnType<typeof e2e>>[] = [];
      const localMs: number[] = [];
      for (const [i, s] of measured.entries()) {
        // Alternating by segment: neither path always runs first (warmer cache) nor always right after the
        // other's background work (the orchestrator's session write and ticket redemption after a segment).
        if (i % 2 === 0) {
          runs.push(await e2e(s));
          localMs.push(await local(s));
        } else {
          localMs.push(await local(s));
          runs.push(await e2e(s));
        }
      }
      // A winning ticket is recorded when its payment is received; redeeming it later does not change the count.
      const winning = orchestrator.stats().tickets.winning - winningBefore;

      const latencyMs = runs.map((r) => r.end - r.start);
      const latency = stats(latencyMs);
      const transcodeOnly = stats(localMs);
      const overheadP50 = round(latency.p50Ms - transcodeOnly.p50Ms);
      const p95Limit = round(transcodeOnly.p50Ms + TARGET_P95_SLACK_MS);
      const p50 = (f: (r: (typeof runs)[number], m: Required<Marks>, i: number) => number) =>
        round(median(runs.map((r, i) => f(r, r.marks as Required<Marks>, i))));
      const report = flatten({
        segments: runs.length,
        warmupSegments: WARMUP,
        segmentDuration: round(median(measured.map((s) => s.duration)), 3),
        segmentBytesP50: Math.round(median(measured.map((s) => s.bytes.length))),
        source: {
          width: 1280,
          height: 720,
          fps: 30,
          seconds: SOURCE_SECONDS,
          videoBitrate: '4M',
          audio: 'aac',
        },
        profiles: profiles.map((p) => p.name).join(','),
        preset: defaultTranscodeOptions.preset,
        order: 'alternating: e2e first on even segments, transcodeOnly first on odd',
        latency,
        transcodeOnly,
        overhead: {
          p50Ms: overheadP50,
          pairedP50Ms: p50((r, _, i) => r.end - r.start - (localMs[i] ?? 0)),
          outsideTranscodeP50Ms: p50((r, m) => r.end - r.start - (m.poolEnd - m.poolStart)),
        },
        breakdown: {
          requestLegP50Ms: p50((r, m) => m.handlerStart - r.start),
          orchestratorBeforeTranscodeP50Ms: p50((_, m) => m.poolStart - m.handlerStart),
          orchestratorTranscodeP50Ms: p50((_, m) => m.poolEnd - m.poolStart),
          ffmpegP50Ms: p50((_, m) => m.ffmpegMs),
          orchestratorAfterTranscodeP50Ms: p50((_, m) => m.handlerEnd - m.poolEnd),
          replyLegP50Ms: p50((r, m) => r.end - m.handlerEnd),
          verifyReplayP50Ms: p50((r) => r.verifyMs),
        },
        requestSignature: {
          signP50Ms: round(median(runs.map((r) => r.request.signMs)), 2),
          signP95Ms: round(
            quantile(
              runs.map((r) => r.request.signMs),
              0.95,
            ),
            2,
          ),
          checkP50Ms: round(median(runs.map((r) => r.request.checkMs)), 2),
          checkP95Ms: round(
            quantile(
              runs.map((r) => r.request.checkMs),
              0.95,
            ),
            2,
          ),
        },
        tickets: { sent: net.broadcaster.jobs.stats.ticketsSent - ticketsBefore, winning },
        failovers: net.broadcaster.jobs.stats.failovers - failoversBefore,
        targets: {
          [`overhead.p50Ms<=${TARGET_OVERHEAD_MS}`]: overheadP50 <= TARGET_OVERHEAD_MS,
          [`latency.p95Ms<=transcodeOnly.p50Ms+${TARGET_P95_SLACK_MS}`]: latency.p95Ms <= p95Limit,
        },
        machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
      });
      // npm runs scripts from the package root, compiled (dist/bench) or not.
      const out = resolve(process.cwd(), 'bench', 'results', 'e2e.json');
      await mkdir(dirname(out), { recursive: true });
      await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } finally {
      await net.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:e2e failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
