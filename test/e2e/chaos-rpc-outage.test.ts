import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Address, Hex } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { writeManifest } from '../../src/chain/manifest.js';
import { RoundClock } from '../../src/chain/round-clock.js';
import { mineToNextRound } from '../../src/chain/staking.js';
import { ticketDomain } from '../../src/chain/ticket-broker.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import { tempDir, tools } from '../unit/media/fixtures.js';
import { Cli } from './fixtures/cli.js';
import { exited, watchHls } from './fixtures/hls-check.js';
import {
  freePort,
  freshRound,
  killSpawnedNodes,
  type Spawned,
  spawnNode,
  startPublisher,
  waitFor,
} from './fixtures/processes.js';
import { type RpcRecorder, startRpcRecorder } from './fixtures/rpc-recorder.js';
import { startTcpProxy, type TcpProxy } from './fixtures/tcp-proxy.js';
import { ticketOracle } from './fixtures/ticket-oracle.js';

// §8 of issue 9: the chain's JSON-RPC endpoint goes away for 30 s in the middle of a stream. Every node (the
// orchestrator and the `streamflow broadcaster`) reaches anvil only through a TCP proxy that, for 30 s,
// resets every open connection and refuses new ones; the outage is timed to cover a round boundary, so the
// new round must be initialised and rewarded after it. Claims, counted:
// - the stream goes on: every segment transcoded, none missing from the HLS output;
// - redemptions resume: every winning ticket of every acknowledged segment (read off the wire by a recording
//   proxy, the winners decided by the test from the orchestrator's secret) is redeemed on chain after the
//   outage, including those won during it; none failed or expired;
// - `reward()` resumes: the orchestrator rewards every round from its first active one to the last, the
//   round that began during the outage included.

const OUTAGE_MS = 30_000;
const STREAM_SECONDS = 110;
// 40-block rounds (40 s at 1 s blocks): the round that starts inside the outage has 20–30 s left after it.
const ROUND_LENGTH = 40n;
const profiles = resolveProfiles('240p30,144p30');
// CHAOS_NODE_LOG=info: the nodes' JSON logs on stderr (the broadcaster's at that level too), for a failure's story.
const nodeEnv = { STREAMFLOW_LOG_LEVEL: process.env.CHAOS_NODE_LOG ?? 'silent' };
const cliEnv = { ...process.env, STREAMFLOW_LOG_LEVEL: process.env.CHAOS_NODE_LOG ?? 'warn' };
// About two tickets per segment (the fee of a 2 s segment into 240p30 + 144p30 at 2.4e7 wei/pixel is ~2e14 wei,
// twice the broadcaster's default cap on a ticket's expected value) and a face value of 2.5 × the redemption's
// gas cost: on a fresh devnet a third of the tickets win, more as the base fee falls, so there are winners to
// queue while the chain is away.
const PRICE = 24_000_000n;
const pm = { expectedValue: 100_000_000_000_000n, txCostMultiplier: 2.5, redeemMargin: 1.2 };

interface StoredTicket {
  ticket_hash: Hex;
  recipient_rand_hash: string;
  sender_nonce: string;
  status: string;
  received_at: number;
  settled_at: number | null;
}

function storedTickets(dataDir: string): StoredTicket[] {
  const db = new Database(join(dataDir, 'pm.db'), { readonly: true });
  try {
    return db
      .prepare(
        'SELECT ticket_hash, recipient_rand_hash, sender_nonce, status, received_at, settled_at FROM pm_winning_tickets',
      )
      .all() as StoredTicket[];
  } finally {
    db.close();
  }
}

describe('chaos: chain RPC outage', () => {
  const tmp = tempDir('chaos-rpc');
  let devnet: Devnet | undefined;
  let proxy: TcpProxy | undefined;
  let recorder: RpcRecorder | undefined;
  const clis: Cli[] = [];

  afterAll(async () => {
    await Promise.all(clis.map((c) => c.kill()));
    killSpawnedNodes();
    await recorder?.close();
    await proxy?.close();
    await devnet?.stop();
    tmp.remove();
  }, 60_000);

  it('keeps streaming through a 30 s chain RPC outage, then redeems every winning ticket and calls reward() again', async () => {
    const t0 = performance.now();
    devnet = await startDevnet({ accounts: 3, blockTime: 1, parameters: { roundLength: ROUND_LENGTH } });
    const dn = devnet;
    const anvil = new URL(dn.rpcUrl);
    proxy = await startTcpProxy({ host: anvil.hostname, port: Number(anvil.port) });
    const px = proxy;
    const manifestPath = join(tmp.dir, 'manifest.json');
    await writeManifest(manifestPath, dn.manifest);
    // The test itself reads the chain directly: it is the observer, not a node.
    const contracts = streamflowContracts(dn.signer(0), dn.manifest);
    const clock = new RoundClock({}, { conn: dn.signer(0), contracts });

    const dataDir = join(tmp.dir, 'orchestrator');
    await freshRound(dn.signer(0), dn.manifest);
    const node: Spawned = await spawnNode(
      {
        kind: 'orchestrator',
        rpcUrl: `${px.url}/`,
        manifestPath,
        privateKey: dn.accounts[1]?.privateKey,
        dataDir,
        port: await freePort(),
        metricsPort: await freePort(),
        pricePerPixel: PRICE,
        localCapacity: 1,
        pm,
      },
      nodeEnv,
    );
    const address = node.address as Address;
    recorder = await startRpcRecorder(node.url as string);
    const rec = recorder;
    const firstActive = await mineToNextRound(dn.signer(0), dn.manifest);

    // Every round's reward as it happens, read directly from anvil once a second.
    const rewarded = new Set<bigint>();
    let watching = true;
    const rewardWatch = (async () => {
      while (watching) {
        const o = await contracts.bondingManager.read.getOrchestrator([address]).catch(() => undefined);
        if (o && o.lastRewardRound > 0n) rewarded.add(o.lastRewardRound);
        await new Promise((r) => setTimeout(r, 1_000));
      }
    })();

    const keyFile = join(tmp.dir, 'broadcaster.key');
    await writeFile(keyFile, `${dn.accounts[2]?.privateKey}\n`, { mode: 0o600 });
    const broadcaster = new Cli(
      'broadcaster',
      [
        'broadcaster',
        ...['--rpc', `${px.url}/`, '--manifest', manifestPath, '--key-file', keyFile],
        ...['--orchestrators', rec.url],
        ...['--profiles', profiles.map((p) => p.name).join(','), '--http-port', '0', '--rtmp-port', '0'],
        ...['--deposit', '2', '--reserve', '2'],
      ],
      cliEnv,
      process.env.CHAOS_DEBUG ? 5_000_000 : 20_000,
    );
    clis.push(broadcaster);
    const [, rtmp] = await broadcaster.line(/^ {2}publish: +(rtmp:\/\/\S+)\/<stream>/);
    const [, statusUrl] = await broadcaster.line(/^ {2}status: +(http:\/\/\S+\/status)$/);
    const key = 'outage';
    const watch = watchHls(
      `${(statusUrl as string).replace(/\/status$/, '')}/hls/${key}/index.m3u8`,
      profiles,
    );
    const setUpMs = performance.now() - t0;

    const publisher = startPublisher(`${rtmp}/${key}`, tools, STREAM_SECONDS, '426x240');
    let publisherErr = '';
    publisher.stderr?.on('data', (d: Buffer) => {
      publisherErr = (publisherErr + d.toString()).slice(-4_000);
    });
    const published = new Promise<number | null>((resolve) => publisher.once('exit', (c) => resolve(c)));
    const streamStart = performance.now();
    let outage = { from: 0, to: 0, round: 0n, droppedSockets: 0 };
    try {
      // Before: segments flow and winning tickets are being redeemed.
      await waitFor(
        'a redeemed winning ticket before the outage',
        () => storedTickets(dataDir).some((t) => t.status === 'redeemed'),
        90_000,
        500,
      );
      // Cut shortly before a round boundary, so the next round starts while the chain is unreachable.
      await waitFor(
        'the last blocks of a round',
        async () => (await clock.read()).blocksLeft <= 8n,
        60_000,
        500,
      );
      const before = await clock.read();
      outage.from = Date.now();
      await px.cut();
      await new Promise((r) => setTimeout(r, OUTAGE_MS)); // the outage itself, not a synchronisation
      await px.restore();
      outage = { ...outage, to: Date.now(), round: before.round + 1n, droppedSockets: px.stats.dropped };
      const outageEndS = (performance.now() - streamStart) / 1000;
      expect((await clock.read()).round).toBeGreaterThanOrEqual(outage.round);

      expect(await published, publisherErr).toBe(0);
      const views = await watch.ended(90_000);
      const status = (await (await fetch(statusUrl as string)).json()) as {
        streams: { id: string; ingested: number; transcoded: number; sourceOnly: number }[];
      };
      const s = status.streams.find((x) => x.id === key);
      const ingested = s?.ingested ?? 0;
      expect(ingested).toBeGreaterThan(0);
      expect({ transcoded: s?.transcoded, sourceOnly: s?.sourceOnly }, broadcaster.stderr).toEqual({
        transcoded: ingested,
        sourceOnly: 0,
      });
      const all = Array.from({ length: ingested }, (_, i) => i);
      for (const v of views) {
        expect({ name: v.name, seqs: v.seqs, standIns: v.standIns, bad: v.bad }).toEqual({
          name: v.name,
          seqs: all,
          standIns: [],
          bad: [],
        });
        // Nothing cut off either end: the playlists cover the whole published stream.
        expect(v.seconds, v.name).toBeGreaterThanOrEqual(STREAM_SECONDS - 2.5);
      }

      // reward() resumed: the round that began in the outage is rewarded, and so is every later one.
      const lastRound = (await clock.read()).round;
      await waitFor('reward() for the current round', () => rewarded.has(lastRound), 60_000, 500);
      const missed: bigint[] = [];
      for (let r = firstActive; r <= lastRound; r++) if (!rewarded.has(r)) missed.push(r);

      // Redemptions resumed: every acknowledged winning ticket redeemed on chain.
      const oracle = ticketOracle(dataDir, address, ticketDomain(dn.manifest));
      const acked = rec.transcodes
        .filter((t) => t.ok)
        .flatMap((t) =>
          oracle.winners(t.payment).map((nonce) => ({
            at: t.at,
            key: `${t.payment.params.recipientRandHash.toLowerCase()}:${nonce}`,
          })),
        );
      await waitFor(
        'every winning ticket to be redeemed',
        () => storedTickets(dataDir).every((t) => t.status === 'redeemed'),
        120_000,
        1_000,
      ).catch(() => undefined); // what is left is reported below
      node.child.send({ type: 'stop' });
      await exited(node.child);
      const stored = new Map(
        storedTickets(dataDir).map((t) => [`${t.recipient_rand_hash.toLowerCase()}:${t.sender_nonce}`, t]),
      );
      const lost: string[] = [];
      let onChain = 0;
      for (const a of acked) {
        const t = stored.get(a.key);
        if (!t) lost.push(`${a.key}: not stored`);
        else if (t.status !== 'redeemed') lost.push(`${a.key}: ${t.status}`);
        else if (await contracts.ticketBroker.read.usedTickets([t.ticket_hash])) onChain++;
        else lost.push(`${a.key}: marked redeemed, not used on chain`);
      }
      const wonDuringOutage = [...stored.values()].filter(
        (t) => t.received_at >= outage.from && t.received_at <= outage.to,
      );
      const ackedDuringOutage = acked.filter((a) => a.at >= outage.from && a.at <= outage.to).length;
      console.log(
        JSON.stringify({
          test: 'chaos-rpc-outage',
          setUpS: Math.round(setUpMs / 100) / 10,
          outageEndS: Math.round(outageEndS * 10) / 10,
          totalS: Math.round((performance.now() - t0) / 100) / 10,
          segments: ingested,
          outageRound: outage.round.toString(),
          droppedSockets: outage.droppedSockets,
          rewardedRounds: [...rewarded].sort().map(String),
          missedRewards: missed.map(String),
          winnersAcked: acked.length,
          ackedDuringOutage,
          storedDuringOutage: wonDuringOutage.length,
          redeemedOnChain: onChain,
          lost: lost.length,
        }),
      );
      expect(ackedDuringOutage).toBeGreaterThan(0);
      expect(missed).toEqual([]);
      expect(lost).toEqual([]);
      expect(onChain).toBe(acked.length);
    } finally {
      watching = false;
      await rewardWatch;
      if (publisher.exitCode === null) publisher.kill('SIGKILL');
      watch.stop();
      if (process.env.CHAOS_DEBUG) {
        const calls = rec.transcodes.map((t) => ({ at: t.at, seq: t.seq, ok: t.ok, error: t.error }));
        await writeFile(
          process.env.CHAOS_DEBUG,
          JSON.stringify(
            { outage: { ...outage, round: String(outage.round) }, calls, stderr: broadcaster.stderr },
            null,
            1,
          ),
        );
      }
    }
  }, 600_000);
});
