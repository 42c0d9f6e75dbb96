import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Address, Hex } from 'viem';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type ChainConnection, connectChain } from '../../src/chain/client.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import type { DeploymentManifest } from '../../src/chain/manifest.js';
import { RoundClock, type RoundStatus } from '../../src/chain/round-clock.js';
import type { DemoSummary } from '../../src/demo/demo.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import { makeSource, tempDir, tools } from '../unit/media/fixtures.js';
import { BIN, Cli } from './fixtures/cli.js';
import { readHls } from './fixtures/hls-check.js';

// The CLI as an operator uses it: `streamflow demo` as one process, and a network built from separate
// `devnet`, `orchestrator`, `transcoder` and `broadcaster` processes. Every process must stop on SIGINT with
// exit code 0, promptly, and take its anvil and ffmpeg children with it.

const started: Cli[] = [];
function cli(name: string, args: string[]): Cli {
  const c = new Cli(name, args);
  started.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((c) => c.kill()));
}, 30_000);

describe('streamflow demo', () => {
  it('runs a whole network for --duration seconds and prints one JSON summary whose figures add up', async () => {
    const demo = cli('demo', ['demo', '--duration', '45', '--json', '--http-port', '0']);
    // 45 s of stream counted from the publish, after a setup that takes what it takes on a loaded machine, then
    // the stream's end and up to 20 s for the last winners' redemptions.
    const { code } = await demo.exited(200_000);
    expect(code, demo.stderr).toBe(0);

    const summary = JSON.parse(demo.stdout) as DemoSummary;
    const { segments, tickets } = summary;
    // --duration is stream time: the source streamed 45 s however long the setup took (2 s segments: ~22).
    expect(summary.durationSec).toBeGreaterThanOrEqual(45);
    expect(summary.durationSec).toBeLessThan(60);
    // The demo stops its publisher and waits for the stream to end (every segment in flight settled) before it
    // summarises: nothing is cut off, every ingested segment was transcoded (none went out as the source).
    expect(segments.transcoded).toBeGreaterThanOrEqual(15);
    expect(segments.sourceOnly).toBe(0);
    expect(segments.transcoded).toBe(segments.ingested);
    expect(summary.renditions).toBe(3 * segments.transcoded);
    expect(tickets.sent).toBeGreaterThanOrEqual(1);
    expect(tickets.redeemed).toBeGreaterThanOrEqual(1);
    expect(tickets.redeemed).toBe(tickets.winning);
    expect(BigInt(summary.wei.redeemed)).toBeGreaterThan(0n);

    expect(summary.orchestrators).toHaveLength(3);
    for (const o of summary.orchestrators) {
      expect(o.segments).toBeTypeOf('number');
      expect(o.weiEarned).toMatch(/^\d+$/);
    }
    expect(summary.orchestrators.reduce((n, o) => n + o.segments, 0)).toBe(segments.transcoded);
    expect(summary.orchestrators.reduce((n, o) => n + BigInt(o.weiEarned), 0n)).toBe(
      BigInt(summary.wei.redeemed),
    );
    expect(summary.hls.master).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/hls\/demo\/index\.m3u8$/);

    // It did run anvil and ffmpeg, and none of them outlived it.
    const commands = [...demo.spawned.values()];
    expect(commands.some((c) => /anvil/.test(c))).toBe(true);
    expect(commands.some((c) => /ffmpeg/.test(c))).toBe(true);
    expect(demo.leftovers()).toEqual([]);
  }, 240_000);
});

describe('streamflow demo until Ctrl-C (npm start)', () => {
  it('prints an HLS URL a player can open, and stops everything cleanly on SIGINT', async () => {
    const demo = cli('demo', ['demo', '--http-port', '0']);
    const [, master] = await demo.line(/^watch: (http:\/\/\S+)$/);
    // A player's view: ffprobe opens the master playlist over HTTP, picks a variant and decodes its video.
    const probe = await until(
      'the live stream to be playable',
      async () => {
        try {
          const out = execFileSync(
            tools.ffprobe,
            [
              '-v',
              'error',
              '-show_entries',
              'stream=codec_type,width,height',
              '-of',
              'json',
              master as string,
            ],
            { encoding: 'utf8', timeout: 20_000 },
          );
          const streams = (JSON.parse(out) as { streams: { codec_type: string; width?: number }[] }).streams;
          return streams.some((x) => x.codec_type === 'video' && (x.width ?? 0) > 0) ? streams : undefined;
        } catch {
          return undefined;
        }
      },
      60_000,
    );
    expect(probe.some((x) => x.codec_type === 'audio')).toBe(true);

    const { code, ms } = await demo.stop('SIGINT', 40_000);
    expect(code, demo.stderr).toBe(0);
    expect(ms).toBeLessThan(40_000);
    expect(demo.stdout).toMatch(/^done: \d+\/\d+ segments transcoded/m);
    expect(demo.leftovers()).toEqual([]);
  }, 120_000);
});

/** Polls `f` until it gives a value (a rejection counts as none yet). */
async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('a network of separate streamflow processes', () => {
  const tmp = tempDir('cli-network');
  afterAll(() => tmp.remove());
  const profiles = resolveProfiles('240p30,144p30');

  async function rpc(url: string, method: string, params: unknown[]): Promise<unknown> {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const body = (await res.json()) as { result?: unknown; error?: { message: string } };
    if (body.error) throw new Error(`${method}: ${body.error.message}`);
    return body.result;
  }

  /** Mines to the next round with anvil_mine and waits until the devnet's round clock has initialised it. */
  async function nextRound(rpcUrl: string, clock: RoundClock): Promise<RoundStatus> {
    const before = await clock.read();
    await rpc(rpcUrl, 'anvil_mine', [`0x${before.blocksLeft.toString(16)}`]);
    return until('the next round to be initialised', async () => {
      const s = await clock.read();
      return s.round > before.round && s.initialized ? s : undefined;
    });
  }

  /** Polls every rendition playlist of `master` until it ends, then reads it as a player would. */
  async function endedHls(master: string) {
    const base = master.slice(0, master.lastIndexOf('/') + 1);
    await until(
      `${master} to end`,
      async () => {
        for (const p of profiles) {
          const res = await fetch(`${base}${p.name}/index.m3u8`);
          if (!res.ok || !(await res.text()).includes('#EXT-X-ENDLIST')) return undefined;
        }
        return true;
      },
      60_000,
    );
    return readHls(master, profiles);
  }

  it('runs devnet, orchestrator, transcoder and broadcasters as separate processes, streams through them and stops each on SIGINT', async () => {
    const input = makeSource(tmp.dir, 'input', { width: 640, height: 360, fps: 30, seconds: 10, ext: 'mp4' });
    const manifestPath = join(tmp.dir, 'm.json');

    // 1. The chain: one JSON line with the RPC URL, the manifest and the funded accounts' keys.
    // Rounds of 100 blocks (one a second): step 3 needs the orchestrator bonded but not yet active, i.e. the
    // round it registered in must last until the early broadcaster has started (see there).
    const devnet = cli('devnet', [
      ...['devnet', '--port', '0', '--manifest', manifestPath, '--json', '--round-length', '100'],
    ]);
    const info = JSON.parse((await devnet.line(/^\{.*\}$/))[0]) as {
      rpcUrl: string;
      chainId: number;
      manifest: DeploymentManifest;
      accounts: Array<{ address: Address; privateKey: Hex }>;
    };
    expect(info.accounts.length).toBeGreaterThanOrEqual(4);
    expect(JSON.parse(readFileSync(manifestPath, 'utf8'))).toEqual(info.manifest);
    const keyFile = async (i: number) => {
      const file = join(tmp.dir, `key-${i}`);
      await writeFile(file, `${info.accounts[i]?.privateKey}\n`, { mode: 0o600 });
      return file;
    };
    const conn: ChainConnection = await connectChain(info.rpcUrl);
    const contracts = streamflowContracts(conn, info.manifest);
    const clock = new RoundClock({}, { conn, contracts });

    // 2. The orchestrator registers (bond, cuts, service URI). Registering reverts with CutsLocked in the last
    //    blocks of a round (the round lock), so start it in a fresh round. Until step 4 the chain makes a block
    //    only per transaction (automine instead of one a second): however slow this machine is at starting the
    //    orchestrator and the early broadcaster, the round cannot pass before step 3 has looked at it; their
    //    dozen transactions or so leave more than half of the round.
    if ((await clock.read()).blocksLeft < 60n) await nextRound(info.rpcUrl, clock);
    await rpc(info.rpcUrl, 'evm_setAutomine', [true]);
    const orchestrator = cli('orchestrator', [
      'orchestrator',
      ...['--rpc', info.rpcUrl, '--manifest', manifestPath, '--key-file', await keyFile(1)],
      ...['--data-dir', join(tmp.dir, 'orchestrator'), '--price', '2000000', '--port', '0'],
      ...['--bond', '1000', '--reward-cut', '100000', '--fee-share', '500000'],
      ...['--local-capacity', '0', '--transcoder-secret', 's'],
    ]);
    const [, orchAddress, orchUrl] = await orchestrator.line(
      /^orchestrator (0x[0-9a-fA-F]{40}) serving (\S+);/,
    );
    expect(orchAddress).toBe(info.accounts[1]?.address);
    expect(orchUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // --port 0: the ServiceRegistry holds the URL it really serves on.
    expect(await contracts.serviceRegistry.read.getServiceURI([orchAddress as Address])).toBe(orchUrl);

    const transcoder = cli('transcoder', [
      'transcoder',
      '--orchestrator',
      orchUrl as string,
      '--secret',
      's',
    ]);
    await transcoder.line(/^transcoder serving /);

    const broadcasterArgs = async (i: number) => [
      'broadcaster',
      ...['--rpc', info.rpcUrl, '--manifest', manifestPath, '--key-file', await keyFile(i)],
      ...['--http-port', '0', '--rtmp-port', '0', '--deposit', '1', '--reserve', '1'],
      ...['--profiles', profiles.map((p) => p.name).join(',')],
    ];

    // 3. A broadcaster started while the orchestrator is bonded but not yet active finds nobody on chain; it
    //    must pick the orchestrator up once it is active, without a restart.
    expect(await contracts.bondingManager.read.isActiveOrchestrator([orchAddress as Address])).toBe(false);
    const early = cli('early broadcaster', await broadcasterArgs(3));
    const [, earlyRtmp] = await early.line(/^ {2}publish: +(rtmp:\/\/\S+)\/<stream>/);
    const [, earlyHttp] = await early.line(/^ {2}status: +(http:\/\/\S+)\/status$/);
    const earlyStatus = (await (await fetch(`${earlyHttp}/status`)).json()) as { orchestrators: unknown[] };
    expect(earlyStatus.orchestrators).toEqual([]);

    // 4. The next round: the orchestrator is active. Blocks come once a second again from here on.
    await rpc(info.rpcUrl, 'evm_setIntervalMining', [1]);
    await nextRound(info.rpcUrl, clock);
    await until('the orchestrator to be active', async () =>
      (await contracts.bondingManager.read.isActiveOrchestrator([orchAddress as Address])) ? true : undefined,
    );
    // What an operator or delegator sees of it with `streamflow orchestrators`.
    const listing = JSON.parse(
      execFileSync(
        process.execPath,
        [BIN, 'orchestrators', '--rpc', info.rpcUrl, '--manifest', manifestPath, '--json'],
        {
          encoding: 'utf8',
        },
      ),
    ) as { address: string; active: boolean; totalStake: string; services: string[] }[];
    expect(listing).toEqual([
      expect.objectContaining({ address: orchAddress, active: true, services: ['transcode/h264'] }),
    ]);
    // Its bond, plus the round's reward if its reward service was quicker than this listing.
    expect(BigInt(listing[0]?.totalStake ?? 0)).toBeGreaterThanOrEqual(10n ** 21n);

    // 5. A broadcaster ingesting a 10 s file, and the early one fed the same file over RTMP, at once.
    const broadcaster = cli('broadcaster', [...(await broadcasterArgs(2)), '--input', input]);
    const [, fileHls] = await broadcaster.line(/^ {2}file: +(http:\/\/\S+)$/);
    const [, statusUrl] = await broadcaster.line(/^ {2}status: +(http:\/\/\S+)$/);
    const publisher = spawn(
      tools.ffmpeg,
      [
        '-hide_banner',
        '-loglevel',
        'error',
        '-re',
        '-i',
        input,
        '-c',
        'copy',
        '-f',
        'flv',
        `${earlyRtmp}/late`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let publisherErr = '';
    publisher.stderr?.on('data', (d: Buffer) => (publisherErr += d.toString()));
    const publisherExit = new Promise<number | null>((resolve) => publisher.once('exit', (c) => resolve(c)));

    try {
      // Every segment of the 10 s file, in every rendition, transcoded (no source stand-ins), at its size.
      const views = await endedHls(fileHls as string);
      for (const v of views)
        expect(v, v.name).toEqual({ name: v.name, seqs: [0, 1, 2, 3, 4], standIns: [], bad: [] });
      const status = (await (await fetch(statusUrl as string)).json()) as {
        streams: Array<{
          id: string;
          transcoded: number;
          sourceOnly: number;
          byOrchestrator: Record<string, number>;
        }>;
      };
      expect(status.streams.find((s) => s.id === 'file')).toMatchObject({
        transcoded: 5,
        sourceOnly: 0,
        byOrchestrator: { [(orchAddress as string).toLowerCase()]: 5 },
      });

      expect(await publisherExit, publisherErr).toBe(0);
      const late = await endedHls(`${earlyHttp}/hls/late/index.m3u8`);
      for (const v of late) {
        expect(v.seqs.length, v.name).toBeGreaterThanOrEqual(4);
        expect(v.seqs, v.name).toEqual(v.seqs.map((_, i) => i));
        expect({ name: v.name, standIns: v.standIns, bad: v.bad }).toEqual({
          name: v.name,
          standIns: [],
          bad: [],
        });
      }
    } finally {
      if (publisher.exitCode === null) publisher.kill('SIGKILL');
    }

    // 6. Ctrl-C each, front to back: exit code 0, promptly, nothing left running.
    for (const p of [broadcaster, early, transcoder, orchestrator, devnet]) {
      const r = await p.stop('SIGINT');
      expect({ name: p.name, code: r.code, signal: r.signal }, p.stderr).toEqual({
        name: p.name,
        code: 0,
        signal: null,
      });
      expect(r.ms, `${p.name} took ${Math.round(r.ms)} ms to stop`).toBeLessThan(10_000);
      expect(p.leftovers(), p.name).toEqual([]);
    }
    expect([...devnet.spawned.values()].some((c) => /anvil/.test(c))).toBe(true);
    await expect(connectChain(info.rpcUrl)).rejects.toMatchObject({ code: 'CHAIN_UNREACHABLE' });
  }, 180_000);
});
