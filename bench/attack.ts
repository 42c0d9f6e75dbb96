/**
 * Attack benchmark (issue 9 §9): an honest stream through one orchestrator while one attacker runs on
 * loopback. Prints the JSON report on stdout and writes bench/results/attack.json; progress goes to stderr.
 *
 *   npm run bench:attack        BENCH_CASES=none,slowloris npm run bench:attack
 *
 * Set-up, once: a devnet (anvil, every contract, 1000-block rounds so no round change falls in a case), the
 * orchestrator's account bonded and registered in this process, the attacker's own account funded (1 ETH
 * deposit, 1 ETH reserve: it gets real ticket params), a 720p30 test source made with ffmpeg (testsrc2 and a
 * tone, a keyframe every 2 s) cut into 2 s segments, and a small valid segment (1 s of 256×144).
 *
 * Per case, everything fresh: an orchestrator as its own process (`bin/streamflow.js orchestrator
 * --local-capacity 2 --no-register --metrics-port 0`, new data dir), so its memory is its own; an honest
 * `BroadcasterNode` in this process (static orchestrator list, profiles 480p30,360p30,240p30, HTTP push ingest,
 * a stream key — see `honestIngestAuth`), on a new stream id; the attacker as a third process
 * (bench/attack/worker.ts, one module per attack in bench/attack/), every socket of it to 127.0.0.1 from a
 * loopback address of its own (127.0.0.2, `BENCH_ATTACKER_ADDRESS`): a stranger is not on the honest
 * broadcaster's address, and limits keyed by remote address must be able to tell them apart. Order: the broadcaster pushes 2 warm-up
 * segments (connection, params, ffmpeg page cache), the attacker starts and reports when its attack is up, then
 * the 30 measured segments are pushed over HTTP (`PUT /live/<stream>/<seq>.ts`) on a live schedule, one every
 * 2 s whether or not the previous one is done; then the attacker is stopped.
 *
 * Figures per case:
 * - `honest.successRate`: measured segments transcoded and verified (receipt signature, rendition hashes and
 *   facts: the broadcaster's own checks) ÷ 30; a segment that went out as the source only counts as failed.
 * - `honest.p50Ms` / `p95Ms`: per segment, from the broadcaster's job manager being handed the segment to the
 *   verified outcome, retries and failovers included (the node's own `latencyMs` is the last attempt only).
 * - `orchestrator.rssPeakMb`: the orchestrator process's VmHWM (and the largest VmRSS sampled every 100 ms
 *   from /proc/<pid>/status), over its whole life in the case; its ffmpeg children are not counted.
 * - `attacker.servedRenditions`: renditions the attacker got without paying: every rendition in a reply to the
 *   RPC attacks (none of them pays), and for ingestFlood the renditions the honest broadcaster's deposit paid
 *   for on the attacker's streams (from its stream records).
 * Every attack signs its requests as that attack would (src/rpc/request-auth.ts): the flood with the attacker's
 * own key, D1 with a throwaway key, D2 with a key that is not the victim's. The honest broadcaster publishes with a
 * stream key (src/broadcaster/ingest-auth.ts, `meta.streamKeys`), so the ingest flood is unauthenticated.
 * Targets: successRate 1.0 in every case; p50 ≤ 1.25 × `none.honest.p50Ms`; rssPeakMb ≤ 600;
 * servedRenditions 0. An orchestrator above BENCH_RSS_KILL_MB (default 4096) is killed so the machine survives.
 */
import { type ChildProcess, execFile, fork, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Address, type Hex, parseEther } from 'viem';
import { sourceFactsOf } from '../src/broadcaster/client.js';
import { ensureFunded } from '../src/broadcaster/funds.js';
import { BroadcasterNode, type BroadcasterNodeOptions } from '../src/broadcaster/node.js';
import { streamflowContracts } from '../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../src/chain/devnet.js';
import { writeManifest } from '../src/chain/manifest.js';
import { withInitializedRound } from '../src/chain/round-clock.js';
import { mineToNextRound } from '../src/chain/staking.js';
import { waitForSuccess } from '../src/chain/tx.js';
import { type MediaTools, resolveMediaTools } from '../src/media/ffmpeg.js';
import { resolveProfiles } from '../src/media/profiles.js';
import { type Segment, TsSegmenter } from '../src/media/segmenter.js';
import { sleep } from '../src/node/abort.js';
import { createLogger } from '../src/node/logger.js';
import {
  ATTACK_CASES,
  type AttackCase,
  type AttackConfig,
  type AttackResult,
  type FromAttacker,
  httpRequest,
  type ToAttacker,
} from './attack/common.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = here.endsWith(join('dist', 'bench')) ? join(here, '../..') : join(here, '..');
const BIN = join(root, 'bin', 'streamflow.js');
const WORKER = join(here, 'attack', 'worker.js');

const SEGMENTS = Number(process.env.BENCH_SEGMENTS ?? 30);
const WARMUP = 2;
const SEGMENT_SECONDS = 2;
const SOURCE_SECONDS = (WARMUP + SEGMENTS + 1) * SEGMENT_SECONDS;
const PROFILES = '480p30,360p30,240p30';
/** As bench:e2e and the demo: the orchestrator's default EV (price × 50 M pixels) is then 1e14 wei. */
const PRICE_PER_PIXEL = 2_000_000n;
const LOCAL_CAPACITY = 2;
const RSS_SAMPLE_MS = 100;
const RSS_KILL_MB = Number(process.env.BENCH_RSS_KILL_MB ?? 4096);
/** Longest the bench waits for an attack to report that it is up, ms. */
const READY_TIMEOUT_MS = 20_000;
/** Hard bound on each attacker process, ms. */
const ATTACK_MAX_MS = 180_000;
/**
 * Source address of the attacker's sockets: a loopback address of its own (Linux routes all of 127/8 to lo),
 * as a stranger on the network has one, so limits keyed by remote address can tell it from the honest
 * broadcaster on 127.0.0.1. `BENCH_ATTACKER_ADDRESS=127.0.0.1` puts both on one address (one NAT).
 */
const ATTACKER_ADDRESS = process.env.BENCH_ATTACKER_ADDRESS ?? '127.0.0.2';
const TARGET_P50_RATIO = 1.25;
const TARGET_RSS_MB = 600;

/** Accounts of the devnet. */
const ORCHESTRATOR = 1;
const BROADCASTER = 2;
const ATTACKER = 3;

function progress(msg: string): void {
  process.stderr.write(`[bench:attack ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/**
 * STREAM KEY — the one place the honest broadcaster's ingest credentials are made (issue 9 §6): a key for its
 * stream in a stream-keys file (`createStreamKey`, what `streamflow broadcaster keys create NAME` runs), the file
 * given to the node (`streamKeysFile`, the CLI's `--stream-keys FILE`), the key sent with every push
 * (`Authorization: Bearer <key>`). With a key configured, the ingestFlood attacker's pushes (no key) are
 * refused. On a tree without stream keys (ingest before §6: loopback publishes are all accepted) it returns no
 * options and no headers, and `keyed` is false; the report says which (`meta.streamKeys`).
 */
async function honestIngestAuth(
  dir: string,
  streamId: string,
): Promise<{
  nodeOptions: Partial<BroadcasterNodeOptions>;
  headers: Record<string, string>;
  keyed: boolean;
}> {
  type CreateStreamKey = (file: string, name: string) => Promise<{ key: string }>;
  const mod = (await import(INGEST_AUTH).catch(() => undefined)) as
    | { createStreamKey?: CreateStreamKey }
    | undefined;
  if (!mod?.createStreamKey) return { nodeOptions: {}, headers: {}, keyed: false };
  const file = join(dir, 'stream-keys.json');
  const { key } = await mod.createStreamKey(file, streamId);
  // The option's name as the ingest helper's BroadcasterNodeOptions spells it.
  const nodeOptions = { streamKeysFile: file } as Partial<BroadcasterNodeOptions>;
  return { nodeOptions, headers: { Authorization: `Bearer ${key}` }, keyed: true };
}

/** Loaded by path so the bench also runs on a tree without stream keys. */
const INGEST_AUTH = '../src/broadcaster/ingest-auth.js';

function quantile(xs: readonly number[], q: number): number | null {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

function round(n: number | null, digits = 1): number | null {
  if (n === null || !Number.isFinite(n)) return null;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
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

/** VmRSS and VmHWM of a process, kB, from /proc/<pid>/status; undefined once it is gone. */
function readRss(pid: number): { rssKb: number; hwmKb: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** Samples a process's memory every {@link RSS_SAMPLE_MS}; kills it above {@link RSS_KILL_MB}. */
class RssSampler {
  maxRssKb = 0;
  hwmKb = 0;
  lastRssKb = 0;
  samples = 0;
  killedForRss = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), RSS_SAMPLE_MS);
    this.sample();
  }

  sample(): void {
    const r = readRss(this.pid);
    if (!r) return;
    this.samples++;
    this.lastRssKb = r.rssKb;
    this.maxRssKb = Math.max(this.maxRssKb, r.rssKb);
    this.hwmKb = Math.max(this.hwmKb, r.hwmKb);
    if (r.rssKb > RSS_KILL_MB * 1024 && !this.killedForRss) {
      this.killedForRss = true;
      progress(`orchestrator RSS ${Math.round(r.rssKb / 1024)} MB > ${RSS_KILL_MB} MB: killing it`);
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }

  get peakMb(): number {
    return Math.round(Math.max(this.maxRssKb, this.hwmKb) / 1024);
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}

/** `streamflow orchestrator` as its own process. */
class OrchestratorProcess {
  readonly child: ChildProcess;
  stderr = '';
  url = '';
  statusUrl = '';
  address: Address | undefined;
  private readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, STREAMFLOW_LOG_LEVEL: process.env.STREAMFLOW_LOG_LEVEL ?? 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exit = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-20_000);
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once it printed its RPC and status URLs. */
  ready(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const lines = createInterface({ input: this.child.stdout as NodeJS.ReadableStream });
      const timer = setTimeout(
        () => reject(new Error(`orchestrator not up in ${timeoutMs} ms\n${this.stderr}`)),
        timeoutMs,
      );
      lines.on('line', (line) => {
        const serving = /^orchestrator (0x[0-9a-fA-F]{40}) serving (\S+?);/.exec(line);
        if (serving) {
          this.address = serving[1] as Address;
          this.url = serving[2] as string;
        }
        const status = /status:\s+(\S+)\/status/.exec(line);
        if (status) this.statusUrl = status[1] as string;
        if (this.url && this.statusUrl) {
          clearTimeout(timer);
          resolve();
        }
      });
      void this.exit.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`orchestrator exited (${code ?? signal}) before it was up\n${this.stderr}`));
      });
    });
  }

  exitInfo(): string | undefined {
    if (this.running) return undefined;
    return String(this.child.exitCode ?? this.child.signalCode);
  }

  /** SIGINT, then SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGINT');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exit;
    clearTimeout(timer);
  }
}

/** The attacker process (bench/attack/worker.ts) of one case. */
class AttackerProcess {
  readonly child: ChildProcess;
  readonly ready: Promise<boolean>;
  readonly result: Promise<AttackResult | undefined>;
  private readonly exited: Promise<void>;

  constructor(
    private readonly name: string,
    config: AttackConfig,
  ) {
    if (!existsSync(WORKER))
      throw new Error(`${WORKER} is missing: run the bench through npm run bench:attack`);
    this.child = fork(WORKER, [], { stdio: ['ignore', 2, 2, 'ipc'] });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    let onReady: (ok: boolean) => void = () => undefined;
    let onResult: (r: AttackResult | undefined) => void = () => undefined;
    this.ready = new Promise((resolve) => {
      onReady = resolve;
    });
    this.result = new Promise((resolve) => {
      onResult = resolve;
    });
    this.child.on('message', (msg: FromAttacker) => {
      if (msg.type === 'ready') onReady(true);
      else if (msg.type === 'progress') progress(`${this.name} attacker: ${msg.text}`);
      else if (msg.type === 'result') {
        onReady(false);
        onResult(msg.result);
      } else if (msg.type === 'failed') {
        progress(`${this.name} attacker failed: ${msg.error}`);
        onReady(false);
        onResult(undefined);
      }
    });
    void this.exited.then(() => {
      onReady(false);
      onResult(undefined);
    });
    this.child.send({ type: 'start', config } satisfies ToAttacker);
  }

  /** Tells it to stop; its tally, or undefined when it does not answer in `timeoutMs` (then it is killed). */
  async stop(timeoutMs = 20_000): Promise<AttackResult | undefined> {
    if (this.child.connected) this.child.send({ type: 'stop' } satisfies ToAttacker);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const result = await this.result;
    await this.exited;
    clearTimeout(timer);
    return result;
  }
}

/** Media made once: the honest segments, the small segment and their files for the attacker. */
interface Media {
  warmup: Segment[];
  measured: Segment[];
  segmentPath: string;
  tinySegmentPath: string;
}

async function makeMedia(tools: MediaTools, dir: string): Promise<Media> {
  const run = promisify(execFile);
  const source = join(dir, 'source.ts');
  // 720p30 test picture and tone, AAC, a keyframe every SEGMENT_SECONDS (as bench:e2e).
  const args = ['-hide_banner', '-loglevel', 'error', '-y'];
  args.push('-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30');
  args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(SOURCE_SECONDS));
  args.push('-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '4M', '-pix_fmt', 'yuv420p');
  args.push('-force_key_frames', `expr:gte(t,n_forced*${SEGMENT_SECONDS})`);
  args.push('-c:a', 'aac', '-b:a', '96k', '-f', 'mpegts', source);
  await run(tools.ffmpeg, args, { timeout: 600_000 });
  const segmenter = new TsSegmenter({ targetDuration: SEGMENT_SECONDS });
  const all = [...segmenter.push(await readFile(source)), ...segmenter.end()];
  const full = all.filter((s) => Math.abs(s.duration - SEGMENT_SECONDS) < 0.05);
  if (full.length < WARMUP + SEGMENTS) {
    throw new Error(`the source cut into ${full.length} full segments; ${WARMUP + SEGMENTS} needed`);
  }
  const segments = full.slice(0, WARMUP + SEGMENTS).map((s, i) => ({ ...s, seq: i }));
  const segmentPath = join(dir, 'segment.ts');
  await writeFile(segmentPath, (segments[WARMUP] as Segment).bytes);

  const tinySegmentPath = join(dir, 'tiny.ts');
  const tiny = ['-hide_banner', '-loglevel', 'error', '-y'];
  tiny.push('-f', 'lavfi', '-i', 'testsrc2=size=256x144:rate=30', '-t', '1');
  tiny.push('-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-g', '30');
  tiny.push('-f', 'mpegts', tinySegmentPath);
  await run(tools.ffmpeg, tiny, { timeout: 120_000 });
  sourceFactsOf(await readFile(tinySegmentPath));
  return {
    warmup: segments.slice(0, WARMUP),
    measured: segments.slice(WARMUP),
    segmentPath,
    tinySegmentPath,
  };
}

/** The chain, once: devnet, the orchestrator's account bonded and registered, the attacker funded. */
async function setUpChain(dir: string): Promise<{ devnet: Devnet; manifestPath: string; keyPath: string }> {
  const devnet = await startDevnet({ accounts: 5, parameters: { roundLength: 1000n } });
  try {
    const manifestPath = join(dir, 'manifest.json');
    await writeManifest(manifestPath, devnet.manifest);
    const keyPath = join(dir, 'orchestrator.key');
    await writeFile(keyPath, (devnet.accounts[ORCHESTRATOR] as { privateKey: Hex }).privateKey, {
      mode: 0o600,
    });
    const o = devnet.signer(ORCHESTRATOR);
    const c = streamflowContracts(o, devnet.manifest);
    const stake = parseEther('1000');
    await waitForSuccess(
      o,
      await c.token.write.approve([devnet.manifest.contracts.BondingManager, stake]),
      'approve',
    );
    await withInitializedRound(o, c, async () =>
      waitForSuccess(o, await c.bondingManager.write.bond([stake, o.account.address]), 'bond'),
    );
    await withInitializedRound(o, c, async () =>
      waitForSuccess(o, await c.bondingManager.write.registerOrchestrator([100_000n, 500_000n]), 'register'),
    );
    // The active set is fixed at a round's start.
    await mineToNextRound(devnet.signer(0), devnet.manifest);
    await ensureFunded(
      { deposit: parseEther('1'), reserve: parseEther('1') },
      { conn: devnet.signer(ATTACKER), manifest: devnet.manifest },
    );
    return { devnet, manifestPath, keyPath };
  } catch (err) {
    await devnet.stop();
    throw err;
  }
}

interface Timing {
  ms: number;
  ok: boolean;
  code?: string;
}

/** One case: fresh orchestrator, fresh broadcaster, the attacker (unless `none`), 30 honest segments. */
async function runCase(
  name: AttackCase,
  ctx: {
    devnet: Devnet;
    manifestPath: string;
    keyPath: string;
    dir: string;
    media: Media;
    tools: MediaTools;
  },
): Promise<Record<string, unknown>> {
  const started = performance.now();
  const dataDir = join(ctx.dir, `orchestrator-${name}`);
  const orchestrator = new OrchestratorProcess([
    'orchestrator',
    '--rpc',
    ctx.devnet.rpcUrl,
    '--manifest',
    ctx.manifestPath,
    '--key-file',
    ctx.keyPath,
    '--data-dir',
    dataDir,
    '--price',
    String(PRICE_PER_PIXEL),
    '--port',
    '0',
    '--local-capacity',
    String(LOCAL_CAPACITY),
    '--no-register',
    '--metrics-port',
    '0',
  ]);
  let sampler: RssSampler | undefined;
  let broadcaster: BroadcasterNode | undefined;
  let attacker: AttackerProcess | undefined;
  try {
    await orchestrator.ready(60_000);
    sampler = new RssSampler(orchestrator.pid);
    progress(`${name}: orchestrator ${orchestrator.pid} up at ${orchestrator.url}`);

    const profiles = resolveProfiles(PROFILES);
    const streamId = `honest-${name}`;
    const auth = await honestIngestAuth(ctx.dir, streamId);
    const bKey = (ctx.devnet.accounts[BROADCASTER] as { privateKey: Hex }).privateKey;
    broadcaster = new BroadcasterNode(
      {
        profiles,
        orchestrators: [orchestrator.url],
        deposit: parseEther('1'),
        reserve: parseEther('1'),
        rtmpPort: false,
        httpPort: 0,
        ...auth.nodeOptions,
      },
      {
        conn: ctx.devnet.signer(BROADCASTER),
        manifest: ctx.devnet.manifest,
        privateKey: bKey,
        tools: ctx.tools,
        logger: createLogger({ level: process.env.BENCH_LOG_LEVEL ?? 'silent' }),
      },
    );
    await broadcaster.start();
    const timings = new Map<number, Timing>();
    let inFlight = 0;
    /** Renditions the broadcaster got (and paid for) on streams that are not the honest one. */
    let otherRenditions = 0;
    let otherSegments = 0;
    const jobs = broadcaster.jobs;
    const transcode = jobs.transcode.bind(jobs);
    jobs.transcode = async (task, signal) => {
      const t0 = performance.now();
      inFlight++;
      try {
        const outcome = await transcode(task, signal);
        if (task.streamId === streamId) timings.set(task.seq, { ms: performance.now() - t0, ok: true });
        else {
          otherSegments++;
          otherRenditions += outcome.renditions.length;
        }
        return outcome;
      } catch (err) {
        if (task.streamId === streamId) {
          timings.set(task.seq, {
            ms: performance.now() - t0,
            ok: false,
            code: (err as { code?: string }).code ?? 'error',
          });
        }
        throw err;
      } finally {
        inFlight--;
      }
    };
    const httpUrl = broadcaster.httpUrl;
    const push = (s: Segment) =>
      httpRequest(`${httpUrl}/live/${streamId}/${s.seq}.ts`, {
        method: 'PUT',
        body: s.bytes,
        headers: { 'Content-Type': 'video/mp2t', ...auth.headers },
        timeoutMs: 60_000,
      });
    for (const s of ctx.media.warmup) {
      const r = await push(s);
      if (r.status !== 200)
        progress(`${name}: warm-up segment ${s.seq} answered ${r.status} ${r.body.slice(0, 200)}`);
    }
    sampler.sample();
    const rssBaselineMb = Math.round(sampler.lastRssKb / 1024);

    let attackerReady: boolean | null = null;
    if (name !== 'none') {
      attacker = new AttackerProcess(name, {
        case: name,
        orchestratorUrl: orchestrator.url,
        orchestratorAddress: orchestrator.address as Address,
        broadcasterHttpUrl: httpUrl,
        honest: { address: broadcaster.address, streamId },
        attackerKey: (ctx.devnet.accounts[ATTACKER] as { privateKey: Hex }).privateKey,
        segmentPath: ctx.media.segmentPath,
        tinySegmentPath: ctx.media.tinySegmentPath,
        profiles: [...profiles],
        localAddress: ATTACKER_ADDRESS === '127.0.0.1' ? undefined : ATTACKER_ADDRESS,
        maxMs: ATTACK_MAX_MS,
      });
      const timeout = sleep(READY_TIMEOUT_MS).then(() => false);
      attackerReady = await Promise.race([attacker.ready, timeout]);
      progress(`${name}: attacker ${attackerReady ? 'up' : `not reported up within ${READY_TIMEOUT_MS} ms`}`);
    }

    progress(`${name}: streaming ${ctx.media.measured.length} segments`);
    const pushStatus: Record<string, number> = {};
    const t0 = performance.now();
    await Promise.all(
      ctx.media.measured.map(async (s, i) => {
        const due = t0 + i * SEGMENT_SECONDS * 1000;
        if (due > performance.now()) await sleep(due - performance.now());
        let key: string;
        try {
          key = `http${(await push(s)).status}`;
        } catch (err) {
          key = (err as Error).name === 'TimeoutError' ? 'timeout' : 'error';
        }
        pushStatus[key] = (pushStatus[key] ?? 0) + 1;
      }),
    );
    const streamSeconds = (performance.now() - t0) / 1000;

    const result = attacker ? await attacker.stop() : undefined;
    // The broadcaster's segments in flight (the flood's) settle before its records are counted.
    const settleUntil = performance.now() + 20_000;
    while (inFlight > 0 && performance.now() < settleUntil) await sleep(100);

    const measured = ctx.media.measured.map((s) => timings.get(s.seq));
    const stream = broadcaster.streams.get(streamId);
    const records = new Map((stream?.records ?? []).map((r) => [r.seq, r]));
    // Verified by the job manager and, while the stream's records are still held, published with renditions.
    const ok = ctx.media.measured.filter(
      (s, i) => measured[i]?.ok && (!stream || records.get(s.seq)?.orchestrator !== undefined),
    );
    const okMs = ok.map((s) => (timings.get(s.seq) as Timing).ms);
    const failures: Record<string, number> = {};
    for (const t of measured) {
      if (t && !t.ok) failures[t.code ?? 'error'] = (failures[t.code ?? 'error'] ?? 0) + 1;
      if (!t) failures.neverTranscoded = (failures.neverTranscoded ?? 0) + 1;
    }
    let otherStreamsAtEnd = 0;
    for (const id of broadcaster.streams.keys()) if (id !== streamId) otherStreamsAtEnd++;
    const status = await httpRequest(`${orchestrator.statusUrl}/status`, { method: 'GET', timeoutMs: 5_000 })
      .then((r) => JSON.parse(r.body) as { segments?: number })
      .catch(() => undefined);
    sampler.stop();
    const servedRenditions =
      name === 'ingestFlood' ? otherRenditions : name === 'none' ? 0 : (result?.servedRenditions ?? null);
    return {
      honest: {
        successRate: round(ok.length / ctx.media.measured.length, 3),
        p50Ms: round(quantile(okMs, 0.5)),
        p95Ms: round(quantile(okMs, 0.95)),
        maxMs: round(okMs.length > 0 ? Math.max(...okMs) : null),
        transcoded: ok.length,
        streamKey: auth.keyed,
        failed: failures,
        pushes: pushStatus,
        streamSeconds: round(streamSeconds),
      },
      orchestrator: {
        rssPeakMb: sampler.peakMb,
        rssBaselineMb,
        rssEndMb: Math.round(sampler.lastRssKb / 1024),
        alive: orchestrator.running,
        exit: orchestrator.exitInfo() ?? null,
        killedForRss: sampler.killedForRss,
        segments: status?.segments ?? null,
        rssSamples: sampler.samples,
      },
      attacker: {
        servedRenditions,
        ready: attackerReady,
        sent: result?.sent ?? null,
        outcomes: result?.outcomes ?? {},
        ...(result?.extra ?? {}),
        ...(name === 'ingestFlood'
          ? { segmentsPaidByBroadcaster: otherSegments, streamsAtBroadcasterAtEnd: otherStreamsAtEnd }
          : {}),
      },
      durationS: round((performance.now() - started) / 1000),
      loadavg1mAtEnd: round(loadavg()[0] ?? 0, 2),
    };
  } finally {
    await attacker?.stop().catch(() => undefined);
    await broadcaster?.stop().catch(() => undefined);
    sampler?.stop();
    await orchestrator.stop();
    if (orchestrator.stderr.trim() && process.env.BENCH_VERBOSE)
      progress(`${name}: orchestrator stderr\n${orchestrator.stderr}`);
  }
}

async function gitHead(): Promise<{ sha: string; dirty: boolean }> {
  const run = promisify(execFile);
  try {
    const sha = (await run('git', ['rev-parse', 'HEAD'], { cwd: root })).stdout.trim();
    const dirty = (
      await run('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root })
    ).stdout.trim();
    return { sha, dirty: dirty.length > 0 };
  } catch {
    return { sha: 'unknown', dirty: false };
  }
}

async function main(): Promise<void> {
  const benchStart = performance.now();
  const wanted = (process.env.BENCH_CASES ?? ATTACK_CASES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const w of wanted) {
    if (!(ATTACK_CASES as readonly string[]).includes(w))
      throw new Error(`unknown case ${w}: ${ATTACK_CASES.join(', ')}`);
  }
  // `none` is the baseline every p50 target is measured against: always first.
  const cases = ATTACK_CASES.filter((c) => c === 'none' || wanted.includes(c));
  const tools = resolveMediaTools();
  const dir = await mkdtemp(join(tmpdir(), 'streamflow-bench-attack-'));
  const head = await gitHead();
  const load = loadavg();
  try {
    progress(`making the source (${SOURCE_SECONDS} s of 720p30) in ${dir}`);
    const media = await makeMedia(tools, dir);
    progress('starting the devnet, registering the orchestrator, funding the attacker');
    const chain = await setUpChain(dir);
    const results: Record<string, Record<string, unknown>> = {};
    try {
      for (const name of cases) {
        progress(`case ${name}`);
        results[name] = await runCase(name, { ...chain, dir, media, tools });
        progress(`case ${name} done: ${JSON.stringify(flatten(results[name] as Record<string, unknown>))}`);
      }
    } finally {
      await chain.devnet.stop();
    }

    const base = (results.none?.honest as { p50Ms: number | null } | undefined)?.p50Ms ?? null;
    const targets: Record<string, boolean> = {};
    for (const name of cases) {
      const r = results[name] as {
        honest: { successRate: number | null; p50Ms: number | null };
        orchestrator: { rssPeakMb: number };
        attacker: { servedRenditions: number | null };
      };
      targets[`${name}.honest.successRate==1`] = r.honest.successRate === 1;
      targets[`${name}.honest.p50Ms<=${TARGET_P50_RATIO}*none`] =
        base !== null && r.honest.p50Ms !== null && r.honest.p50Ms <= TARGET_P50_RATIO * base;
      targets[`${name}.orchestrator.rssPeakMb<=${TARGET_RSS_MB}`] = r.orchestrator.rssPeakMb <= TARGET_RSS_MB;
      targets[`${name}.attacker.servedRenditions==0`] = r.attacker.servedRenditions === 0;
    }
    const report = flatten({
      meta: {
        sha: head.sha,
        streamKeys: Object.values(results).some((r) => (r.honest as { streamKey?: boolean }).streamKey),
        signedRequests: true,
        dirty: head.dirty,
        cases: cases.join(','),
        segments: SEGMENTS,
        warmupSegments: WARMUP,
        segmentSeconds: SEGMENT_SECONDS,
        source: '1280x720 30 fps libx264 veryfast 4M + aac, keyframe every 2 s',
        profiles: PROFILES,
        pushSchedule: `one PUT every ${SEGMENT_SECONDS} s, not waiting for the previous`,
        orchestrator: `own process, fresh per case (new data dir), --local-capacity ${LOCAL_CAPACITY}, price ${PRICE_PER_PIXEL} wei/pixel`,
        broadcaster: 'in the bench process, fresh per case, new stream id per case',
        attacker: 'own process per case (bench/attack/worker.js), traffic to 127.0.0.1 only',
        attackerSourceAddress: ATTACKER_ADDRESS,
        rssSampleMs: RSS_SAMPLE_MS,
        roundLengthBlocks: 1000,
        machine: {
          cpus: cpus().length,
          cpu: cpus()[0]?.model ?? 'unknown',
          memMb: Math.round(totalmem() / 2 ** 20),
          loadavg1mAtStart: round(load[0] ?? 0, 2),
          node: process.version,
        },
        durationS: round((performance.now() - benchStart) / 1000),
      },
      ...results,
      targets: { ...targets, allMet: Object.values(targets).every(Boolean) },
    });
    const out = resolve(root, 'bench', 'results', 'attack.json');
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    if (process.env.BENCH_KEEP) progress(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:attack failed: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
