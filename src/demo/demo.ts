import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatEther, parseEther } from 'viem';
import { createStreamKey } from '../broadcaster/ingest-auth.js';
import { streamflowContracts } from '../chain/contracts.js';
import { type MediaTools, resolveMediaTools } from '../media/ffmpeg.js';
import { resolveProfiles } from '../media/profiles.js';
import { sleep } from '../node/abort.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { type Network, type OrchestratorSpec, startNetwork } from './network.js';

export interface DemoOptions {
  /**
   * Stop after this many seconds of stream, counted from the broadcaster taking the test source's publish (not
   * from the start: the network's setup takes a varying time); undefined: run until `signal` aborts.
   */
  durationSec?: number;
  /** HTTP port of the broadcaster (HLS). Falls back to a free port when taken. @default 8080 */
  httpPort?: number;
  /** Keep the nodes' data here instead of a temporary directory (removed at the end). */
  dataDir?: string;
  signal?: AbortSignal;
  /** Progress lines (human mode). */
  onProgress?: (line: string) => void;
}

/** How long the test publisher may take to have its publish taken by the broadcaster, ms. */
const PUBLISH_TIMEOUT_MS = 60_000;

/** The `--json` summary of a demo run. Wei amounts are decimal strings. */
export interface DemoSummary {
  /** Seconds the test source streamed (from the broadcaster taking the publish to the publisher's stop). */
  durationSec: number;
  segments: { ingested: number; transcoded: number; sourceOnly: number; failovers: number };
  renditions: number;
  tickets: { sent: number; winning: number; redeemed: number; pending: number };
  wei: { redeemed: string; feesCharged: string };
  orchestrators: Array<{
    name: string;
    address: string;
    region: string;
    pricePerPixel: string;
    transcoders: string;
    segments: number;
    ticketsWon: number;
    ticketsRedeemed: number;
    weiEarned: string;
    feesCharged: string;
    pendingFeesOnChain: string;
  }>;
  delegators: Array<{ address: string; orchestrator: string; pendingFees: string }>;
  hls: { master: string };
}

/**
 * Prices and ticket parameters chosen so a one-minute demo shows the whole payment path: each ticket is worth
 * 1e14 wei on average (below the orchestrators' default of one reference segment's fee, 1.6–2.4e14 here, so more
 * tickets flow; the broadcaster's default cap accepts either) and its face value is 2.5 × the redemption cost at ~1 gwei
 * (~3e14 wei), so one ticket in three to five wins (gas moves), and a segment (44.6 M output pixels at ~4e6 wei)
 * costs about two tickets: ~60 tickets a minute, so even at one in five P(no winner in 45 s) < 1e-4. The
 * redemption margin is lowered to 1.2 so a winner is cashed at once even when the observed redemption gas is
 * above the estimate the face value used.
 */
const DEMO_PM = { expectedValue: 100_000_000_000_000n, txCostMultiplier: 2.5, redeemMargin: 1.2 };

export const DEMO_ORCHESTRATORS: OrchestratorSpec[] = [
  { name: 'amsterdam', pricePerPixel: 4_000_000n, regions: ['eu-west'], node: { pm: DEMO_PM } },
  {
    name: 'virginia',
    pricePerPixel: 3_200_000n,
    regions: ['us-east'],
    remoteTranscoders: 2,
    node: { pm: DEMO_PM },
  },
  { name: 'frankfurt', pricePerPixel: 4_800_000n, regions: ['eu-west'], node: { pm: DEMO_PM } },
];

/** ffmpeg publishing a generated 720p30 test picture with a tone to `url` over RTMP, as OBS would. */
export function startTestPublisher(url: string, tools: MediaTools, seconds?: number): ChildProcess {
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-re',
    '-f',
    'lavfi',
    '-i',
    'testsrc2=size=1280x720:rate=30',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=44100',
    ...(seconds !== undefined ? ['-t', String(seconds)] : []),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-tune',
    'zerolatency',
    '-pix_fmt',
    'yuv420p',
    '-force_key_frames',
    'expr:gte(t,n_forced*2)',
    '-b:v',
    '2500k',
    '-c:a',
    'aac',
    '-b:a',
    '96k',
    '-f',
    'flv',
    url,
  ];
  return spawn(tools.ffmpeg, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * `streamflow demo`: a devnet, three orchestrators (different prices and regions; one farms out to two remote
 * transcoders), two delegators, and a funded broadcaster fed a generated test source over RTMP. Runs until
 * `signal` aborts or `durationSec` passes, then stops everything and returns the summary.
 */
export async function runDemo(
  options: DemoOptions,
  deps: { logger?: Logger; tools?: MediaTools } = {},
): Promise<DemoSummary> {
  const logger = deps.logger ?? silentLogger;
  const tools = deps.tools ?? resolveMediaTools();
  const progress = options.onProgress ?? (() => undefined);
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'streamflow-demo-')));
  const started = performance.now();
  // The demo publishes with a key of its own, as an operator would: the broadcaster takes no other publisher.
  const streamKeysFile = join(dataDir, 'stream-keys.json');
  const { key: streamKey } = await createStreamKey(streamKeysFile, 'demo', { replace: true });
  const spec = (httpPort: number) => ({
    dataDir,
    orchestrators: DEMO_ORCHESTRATORS,
    delegators: [
      { to: 'amsterdam', amount: parseEther('2000') },
      { to: 'virginia', amount: parseEther('1500') },
    ],
    broadcaster: {
      profiles: resolveProfiles('480p30,360p30,240p30'),
      // About 6e15 wei of winning tickets a minute: 10 ETH keeps a demo left running going for a day.
      deposit: parseEther('10'),
      reserve: parseEther('1'),
      httpPort,
      rtmpPort: 0,
      hlsWindow: 10,
      streamKeysFile,
    },
    devnet: { blockTime: 1 },
  });
  progress('starting the devnet, three orchestrators, two remote transcoders and a broadcaster …');
  let net: Network;
  try {
    net = await startNetwork(spec(options.httpPort ?? 8080), { logger, tools });
  } catch (err) {
    if (!/EADDRINUSE/.test(String((err as Error)?.message))) throw err;
    net = await startNetwork(spec(0), { logger, tools });
  }
  const b = net.broadcaster;
  const master = b.hlsUrl('demo');
  let publisher: ChildProcess | undefined;
  /** When the broadcaster took the test source's publish (performance.now()), and how long it streamed, ms. */
  let streamingSince: number | undefined;
  let streamedMs = 0;
  try {
    for (const o of net.orchestrators) {
      progress(
        `  orchestrator ${o.spec.name.padEnd(10)} ${o.node.address}  ${o.spec.pricePerPixel} wei/pixel  ` +
          `${o.spec.regions?.join(',')}  ${o.spec.remoteTranscoders ? `${o.spec.remoteTranscoders} remote transcoders` : 'local transcoding'}`,
      );
    }
    publisher = startTestPublisher(`${b.rtmpUrl}/demo?key=${streamKey}`, tools);
    let publisherError = '';
    publisher.stderr?.on('data', (d: Buffer) => {
      // ffmpeg names the URL in its errors, and the URL carries the stream key.
      publisherError = (publisherError + d.toString().replaceAll(streamKey, '***')).slice(-2000);
    });
    progress(`publishing a 720p30 test source to ${b.rtmpUrl}/demo (with its stream key, ${streamKeysFile})`);
    progress(`watch: ${master}`);

    // `--duration` is stream time, counted from the broadcaster taking the publish: setting the network up (anvil,
    // deployments, registrations that may wait out a round's lock window) takes a varying share of a minute,
    // more on a loaded machine, and a user asking for 60 s wants 60 s of stream.
    const publishBy = performance.now() + PUBLISH_TIMEOUT_MS;
    let deadline = Infinity;
    let lastReport = 0;
    while (!options.signal?.aborted && performance.now() < deadline) {
      if (publisher.exitCode !== null) {
        throw new Error(`the test publisher (ffmpeg) exited: ${publisherError.trim() || publisher.exitCode}`);
      }
      if (streamingSince === undefined) {
        if (b.streams.get('demo')) {
          streamingSince = performance.now();
          if (options.durationSec !== undefined) deadline = streamingSince + options.durationSec * 1000;
        } else if (performance.now() > publishBy) {
          throw new Error(`the test publisher did not start streaming within ${PUBLISH_TIMEOUT_MS / 1000} s`);
        }
      }
      const tick = streamingSince === undefined ? 100 : 1_000;
      await sleep(Math.min(tick, Math.max(0, deadline - performance.now())), options.signal).catch(
        () => undefined,
      );
      if (performance.now() - lastReport >= 10_000) {
        lastReport = performance.now();
        const s = summarize(net, master, started);
        progress(
          `  ${Math.round((performance.now() - started) / 1000)}s: ${s.segments.transcoded} segments transcoded, ` +
            `${s.tickets.sent} tickets sent, ${s.tickets.winning} won, ${s.tickets.redeemed} redeemed ` +
            `(${formatEther(BigInt(s.wei.redeemed))} ETH)`,
        );
      }
    }
    progress('stopping …');
    streamedMs = streamingSince === undefined ? 0 : performance.now() - streamingSince;
    publisher.kill('SIGINT');
    await waitExit(publisher, 5_000);
    await b.waitForEnd('demo');
    // Winning tickets of the last seconds may still be queued (or waiting out a retry at a round boundary): let
    // the queues cash them, for up to 20 s, so the summary shows what the run earned.
    const settleBy = performance.now() + 20_000;
    while (performance.now() < settleBy) {
      const pending = net.orchestrators.reduce((n, o) => n + o.node.stats().tickets.pending, 0);
      if (pending === 0) break;
      await Promise.all(
        net.orchestrators.map((o) => o.node.engine.queue.processOnce().catch(() => undefined)),
      );
      await sleep(500);
    }
    const summary = summarize(net, master, started);
    summary.durationSec = Math.round(streamedMs / 100) / 10;
    await fillChainFigures(net, summary);
    return summary;
  } finally {
    if (publisher && publisher.exitCode === null) publisher.kill('SIGKILL');
    await net.stop();
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
  }
}

function summarize(net: Network, master: string, started: number): DemoSummary {
  const streams = net.broadcaster.streams.get('demo')?.snapshot();
  const jobs = net.broadcaster.jobs.stats;
  let winning = 0;
  let redeemed = 0;
  let pending = 0;
  let redeemedWei = 0n;
  let fees = 0n;
  const orchestrators = net.orchestrators.map((o) => {
    const s = o.node.stats();
    winning += s.tickets.winning;
    redeemed += s.tickets.redeemed;
    pending += s.tickets.pending;
    redeemedWei += s.tickets.redeemedWei;
    fees += s.fees;
    return {
      name: o.spec.name,
      address: o.node.address,
      region: o.spec.regions?.join(',') ?? '',
      pricePerPixel: o.spec.pricePerPixel.toString(),
      transcoders: o.spec.remoteTranscoders ? `${o.spec.remoteTranscoders} remote` : 'local',
      segments: s.segments,
      ticketsWon: s.tickets.winning,
      ticketsRedeemed: s.tickets.redeemed,
      weiEarned: s.tickets.redeemedWei.toString(),
      feesCharged: s.fees.toString(),
      pendingFeesOnChain: '0',
    };
  });
  return {
    durationSec: Math.round((performance.now() - started) / 100) / 10,
    segments: {
      ingested: streams?.ingested ?? 0,
      transcoded: streams?.transcoded ?? 0,
      sourceOnly: streams?.sourceOnly ?? 0,
      failovers: streams?.failovers ?? 0,
    },
    renditions: streams?.renditions ?? 0,
    tickets: { sent: jobs.ticketsSent, winning, redeemed, pending },
    wei: { redeemed: redeemedWei.toString(), feesCharged: fees.toString() },
    orchestrators,
    delegators: [],
    hls: { master },
  };
}

/** Fees the BondingManager credits: each orchestrator's and each delegator's claimable share. */
async function fillChainFigures(net: Network, summary: DemoSummary): Promise<void> {
  const c = streamflowContracts(net.devnet.signer(0), net.devnet.manifest);
  for (const [i, o] of net.orchestrators.entries()) {
    const entry = summary.orchestrators[i];
    if (entry)
      entry.pendingFeesOnChain = (await c.bondingManager.read.pendingFees([o.node.address])).toString();
  }
  for (const index of net.delegators) {
    const conn = net.devnet.signer(index);
    const info = await c.bondingManager.read.getDelegator([conn.account.address]);
    const orchestrator = net.orchestrators.find(
      (o) => o.node.address.toLowerCase() === info.delegate.toLowerCase(),
    );
    summary.delegators.push({
      address: conn.account.address,
      orchestrator: orchestrator?.spec.name ?? info.delegate,
      pendingFees: (await c.bondingManager.read.pendingFees([conn.account.address])).toString(),
    });
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
