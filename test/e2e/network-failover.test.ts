import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseEther } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BroadcasterNode } from '../../src/broadcaster/node.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { writeManifest } from '../../src/chain/manifest.js';
import { mineToNextRound } from '../../src/chain/staking.js';
import { startTestPublisher } from '../../src/demo/demo.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import { createLogger } from '../../src/node/logger.js';
import { tempDir, tools } from '../unit/media/fixtures.js';
import { exited, readHls } from './fixtures/hls-check.js';
import { freePort, kill9, killSpawnedNodes, type Spawned, spawnNode } from './fixtures/processes.js';

const profiles = resolveProfiles('360p30,240p30');
const pm = { expectedValue: 200_000_000_000_000n, txCostMultiplier: 2.5, redeemMargin: 1.2 };
const children: ChildProcess[] = [];

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Publishes `seconds` of test source, runs `during` meanwhile (it may end the publish early with SIGINT), and
 * waits until the stream has ended.
 */
async function stream(
  b: BroadcasterNode,
  key: string,
  seconds: number,
  during: (publisher: ChildProcess) => Promise<void>,
) {
  const publisher = startTestPublisher(`${b.rtmpUrl}/${key}`, tools, seconds);
  children.push(publisher);
  await during(publisher);
  await exited(publisher);
  expect(await b.waitForEnd(key, 30_000)).toBe(true);
  return b.streams.get(key)?.snapshot();
}

async function expectCompleteHls(b: BroadcasterNode, key: string, segments: number) {
  const views = await readHls(b.hlsUrl(key), profiles);
  const all = Array.from({ length: segments }, (_, i) => i);
  for (const v of views) {
    expect(v.seqs, v.name).toEqual(all);
    expect(v.standIns, v.name).toEqual([]);
    expect(v.bad, v.name).toEqual([]);
  }
}

afterAll(() => {
  killSpawnedNodes();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

async function setUp(dir: string, accounts: number) {
  const devnet = await startDevnet({ accounts, blockTime: 1 });
  const manifestPath = join(dir, 'manifest.json');
  await writeManifest(manifestPath, devnet.manifest);
  const base = { kind: 'orchestrator', rpcUrl: devnet.rpcUrl, manifestPath, pm };
  return { devnet, base };
}

function broadcaster(devnet: Devnet, index: number, extra: { orchestrators?: string[] } = {}) {
  return new BroadcasterNode(
    {
      profiles,
      deposit: parseEther('2'),
      reserve: parseEther('2'),
      rtmpPort: 0,
      hlsWindow: 100,
      sender: { maxExpectedValue: 10n ** 15n },
      // Re-negotiate often, so a node that comes back is used again within the test's seconds.
      jobs: { refreshMs: 2_000, segmentTimeoutMs: 15_000 },
      ...extra,
    },
    {
      conn: devnet.signer(index),
      manifest: devnet.manifest,
      privateKey: (devnet.accounts[index] as { privateKey: `0x${string}` }).privateKey,
      tools,
      ...(process.env.E2E_LOG ? { logger: createLogger({ level: process.env.E2E_LOG }) } : {}),
    },
  );
}

// Orchestrators and remote transcoders in their own processes, SIGKILLed while a real RTMP stream runs: the
// broadcaster moves the segment in flight elsewhere at once (and the orchestrator re-dispatches a dropped
// transcoder's segment), so no segment is missing from any rendition.
describe('failover', () => {
  const tmp = tempDir('failover');
  let devnet: Devnet;
  let b: BroadcasterNode;
  let a: Spawned;
  let o: Spawned;
  const transcoders: Spawned[] = [];

  beforeAll(async () => {
    const set = await setUp(tmp.dir, 4);
    devnet = set.devnet;
    // A: local transcoding and the better price, so it takes the stream until it dies. B: two remote transcoders.
    a = await spawnNode({
      ...set.base,
      privateKey: devnet.accounts[1]?.privateKey,
      dataDir: join(tmp.dir, 'a'),
      port: 0,
      pricePerPixel: 3_000_000n,
      localCapacity: 1,
    });
    o = await spawnNode({
      ...set.base,
      privateKey: devnet.accounts[2]?.privateKey,
      dataDir: join(tmp.dir, 'b'),
      port: 0,
      pricePerPixel: 9_000_000n,
      localCapacity: 0,
      secret: 'transcoders of b',
    });
    for (let i = 0; i < 2; i++) {
      transcoders.push(
        await spawnNode({ kind: 'transcoder', orchestrator: o.url, secret: 'transcoders of b' }),
      );
    }
    await mineToNextRound(devnet.signer(0), devnet.manifest);
    // The orchestrators' round clocks poll once a second; let them see the new round before negotiating.
    await new Promise((r) => setTimeout(r, 1_500));
    b = broadcaster(devnet, 3);
    await b.start();
  }, 120_000);

  afterAll(async () => {
    await b?.stop();
    await devnet?.stop();
    tmp.remove();
  });

  it('keeps every segment when the orchestrator doing the work is SIGKILLed mid-stream', async () => {
    const key = 'orchestrator-killed';
    const s = await stream(b, key, 16, async () => {
      const aKey = (a.address as string).toLowerCase();
      await until(
        'orchestrator A to transcode',
        () => (b.streams.get(key)?.snapshot().byOrchestrator[aKey] ?? 0) >= 2,
      );
      await kill9(a.child);
    });
    expect(s?.sourceOnly).toBe(0);
    expect(s?.transcoded).toBe(s?.ingested);
    // B took over after A died.
    expect(s?.byOrchestrator[(o.address as string).toLowerCase()] ?? 0).toBeGreaterThan(0);
    await expectCompleteHls(b, key, s?.ingested ?? 0);
  }, 120_000);

  it('keeps every segment when a remote transcoder is SIGKILLed mid-stream', async () => {
    const key = 'transcoder-killed';
    const oKey = (o.address as string).toLowerCase();
    const s = await stream(b, key, 14, async () => {
      await until(
        'orchestrator B to transcode',
        () => (b.streams.get(key)?.snapshot().byOrchestrator[oKey] ?? 0) >= 2,
      );
      await kill9((transcoders[0] as Spawned).child);
    });
    expect(s?.sourceOnly).toBe(0);
    expect(s?.byOrchestrator[oKey]).toBe(s?.ingested);
    await expectCompleteHls(b, key, s?.ingested ?? 0);
  }, 120_000);
});

// An orchestrator SIGKILLed and started again on the same data directory and port: the broadcaster holds the
// segment until it is back, and it carries on with its session and tickets.
describe('restart', () => {
  const tmp = tempDir('restart');
  let devnet: Devnet;
  let b: BroadcasterNode;

  afterAll(async () => {
    await b?.stop();
    await devnet?.stop();
    tmp.remove();
  });

  it('comes back with its tickets and session and keeps earning', async () => {
    const set = await setUp(tmp.dir, 3);
    devnet = set.devnet;
    const dataDir = join(tmp.dir, 'r');
    const spec = {
      ...set.base,
      // Every ticket wins (EV above any face value the devnet's gas asks for), so "won after the restart" does
      // not depend on luck or on how many segments a loaded machine gets through after it.
      pm: { ...pm, expectedValue: 10n ** 16n },
      privateKey: devnet.accounts[1]?.privateKey,
      dataDir,
      port: await freePort(),
      pricePerPixel: 3_000_000n,
      localCapacity: 1,
    };
    let r = await spawnNode(spec);
    await mineToNextRound(devnet.signer(0), devnet.manifest);
    await new Promise((res) => setTimeout(res, 1_500));
    b = broadcaster(devnet, 2, { orchestrators: [r.url as string] });
    await b.start();

    const key = 'restarted';
    const pmDb = () => new Database(join(dataDir, 'pm.db'), { readonly: true });
    const winners = () => {
      const db = pmDb();
      try {
        return db.prepare('SELECT COUNT(*) FROM pm_winning_tickets').pluck().get() as number;
      } finally {
        db.close();
      }
    };
    let beforeKill = { segments: 0, winners: 0 };
    const transcoded = () => b.streams.get(key)?.snapshot().transcoded ?? 0;
    const s = await stream(b, key, 90, async (publisher) => {
      await until('winning tickets before the kill', () => transcoded() >= 3 && winners() > 0);
      beforeKill = { segments: transcoded(), winners: winners() };
      await kill9(r.child);
      r = await spawnNode(spec);
      await until(
        'segments and a winning ticket after the restart',
        () => transcoded() >= beforeKill.segments + 3 && winners() > beforeKill.winners,
        60_000,
      );
      publisher.kill('SIGINT');
    });
    expect(s?.sourceOnly).toBe(0);
    expect(s?.transcoded).toBe(s?.ingested);
    expect(s?.transcoded ?? 0).toBeGreaterThan(beforeKill.segments);
    await expectCompleteHls(b, key, s?.ingested ?? 0);

    // Let the restarted node cash what it holds (its queue retries with backoff; on a loaded machine that takes
    // a while), then stop it cleanly and read its databases.
    const unsettled = () => {
      const db = pmDb();
      try {
        return db
          .prepare("SELECT COUNT(*) FROM pm_winning_tickets WHERE status IN ('pending', 'submitted')")
          .pluck()
          .get() as number;
      } finally {
        db.close();
      }
    };
    await until('the restarted node to redeem every winning ticket', () => unsettled() === 0, 60_000);
    r.child.send({ type: 'stop' });
    await exited(r.child);
    const db = pmDb();
    const statuses = db
      .prepare('SELECT status, COUNT(*) AS n FROM pm_winning_tickets GROUP BY status')
      .all() as {
      status: string;
      n: number;
    }[];
    db.close();
    const count = (st: string) => statuses.find((x) => x.status === st)?.n ?? 0;
    // Every winning ticket, from before the kill and after, was kept and redeemed; more were won after.
    expect(count('redeemed')).toBeGreaterThan(beforeKill.winners);
    expect(count('pending') + count('submitted') + count('failed') + count('expired')).toBe(0);
    // The session survived the restart: its segment count spans both runs.
    const odb = new Database(join(dataDir, 'orchestrator.db'), { readonly: true });
    const row = odb.prepare('SELECT segments FROM orch_sessions WHERE session = ?').get(key) as {
      segments: number;
    };
    odb.close();
    expect(row.segments).toBe(s?.transcoded);
  }, 180_000);
});
