import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Address, Hex } from 'viem';
import { afterAll, describe, expect, it } from 'vitest';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { writeManifest } from '../../src/chain/manifest.js';
import { mineToNextRound } from '../../src/chain/staking.js';
import { ticketDomain } from '../../src/chain/ticket-broker.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import { tempDir, tools } from '../unit/media/fixtures.js';
import { Cli } from './fixtures/cli.js';
import { exited, watchHls } from './fixtures/hls-check.js';
import {
  freePort,
  freshRound,
  kill9,
  killSpawnedNodes,
  prng,
  type Spawned,
  spawnNode,
  startPublisher,
  waitFor,
} from './fixtures/processes.js';
import { type RpcRecorder, startRpcRecorder } from './fixtures/rpc-recorder.js';
import { ticketOracle } from './fixtures/ticket-oracle.js';

// §8 of issue 9: the orchestrator that is doing the work is SIGKILLed 10 times, at random moments of a
// 2-minute RTMP stream, and restarted each time on the same data directory and port. Three orchestrators, so
// the broadcaster always has one to fail over to while the victim restarts; the victim is the one with a segment
// in flight (waited for up to 3 s after the random moment), else the one that received the latest segment, so
// kills force a failover of real work rather than hitting an idle standby. The broadcaster is the CLI (`streamflow broadcaster`); each
// orchestrator runs in its own process (fixtures/node-process.ts: the same OrchestratorNode as
// `streamflow orchestrator`, with payment options the CLI does not expose) behind a recording gRPC proxy, so
// the tickets the broadcaster sent, and which of them the orchestrator acknowledged, are read off the wire.
//
// Claims, all counted:
// - no segment is missing from the HLS output a player sees, none went out as the source;
// - no winning ticket is lost: every winning ticket of every acknowledged segment (decided by the test itself
//   from the orchestrator's secret, fixtures/ticket-oracle.ts) is in that orchestrator's SQLite after the last
//   restart, redeemed on chain (TicketBroker.usedTickets) or still queued; none failed or expired.

const SEED = Number(process.env.CHAOS_SEED ?? 9);
const KILLS = 10;
const STREAM_SECONDS = 120;
const profiles = resolveProfiles('240p30,144p30');
// CHAOS_NODE_LOG=info: the nodes' JSON logs on stderr (the broadcaster's at that level too), for a failure's story.
const nodeEnv = { STREAMFLOW_LOG_LEVEL: process.env.CHAOS_NODE_LOG ?? 'silent' };
const cliEnv = { ...process.env, STREAMFLOW_LOG_LEVEL: process.env.CHAOS_NODE_LOG ?? 'warn' };
// About one ticket per segment (the fee of a 2 s segment into 240p30 + 144p30 at 1.2e7 wei/pixel is ~1e14 wei,
// the broadcaster's default cap on a ticket's expected value) and a face value of 2.5 × the redemption's gas
// cost: on a fresh devnet (gas ~1 gwei) a third of the tickets win, more as the base fee falls; a few dozen
// winners in the stream. Small renditions of a small source: the machine is shared, the size is not what this
// tests.
const PRICE = 12_000_000n;
const pm = { expectedValue: 100_000_000_000_000n, txCostMultiplier: 2.5, redeemMargin: 1.2 };

interface Orch {
  name: string;
  spec: Record<string, unknown>;
  node: Spawned;
  recorder: RpcRecorder;
  dataDir: string;
  address: Address;
  kills: number;
  /** Kills that found a Transcode call in flight through its proxy. */
  killsMidSegment: number;
}

interface StoredTicket {
  ticket_hash: Hex;
  recipient_rand_hash: string;
  sender_nonce: string;
  status: string;
}

function storedTickets(dataDir: string): StoredTicket[] {
  const db = new Database(join(dataDir, 'pm.db'), { readonly: true });
  try {
    return db
      .prepare('SELECT ticket_hash, recipient_rand_hash, sender_nonce, status FROM pm_winning_tickets')
      .all() as StoredTicket[];
  } finally {
    db.close();
  }
}

describe('chaos: orchestrators SIGKILLed mid-stream', () => {
  const tmp = tempDir('chaos-orchestrator');
  let devnet: Devnet | undefined;
  const clis: Cli[] = [];
  const orchs: Orch[] = [];

  afterAll(async () => {
    await Promise.all(clis.map((c) => c.kill()));
    killSpawnedNodes();
    await Promise.all(orchs.map((o) => o.recorder.close()));
    await devnet?.stop();
    tmp.remove();
  }, 60_000);

  it(`SIGKILLs the orchestrator doing the work ${KILLS} times in a ${STREAM_SECONDS} s stream: no segment missing, no acknowledged winning ticket lost`, async () => {
    const t0 = performance.now();
    const rnd = prng(SEED);
    devnet = await startDevnet({ accounts: 5, blockTime: 1 });
    const dn = devnet;
    const manifestPath = join(tmp.dir, 'manifest.json');
    await writeManifest(manifestPath, dn.manifest);

    for (let i = 0; i < 3; i++) {
      const dataDir = join(tmp.dir, `o${i}`);
      const spec = {
        kind: 'orchestrator',
        rpcUrl: dn.rpcUrl,
        manifestPath,
        privateKey: dn.accounts[1 + i]?.privateKey,
        dataDir,
        // Fixed ports: a restarted orchestrator is where the broadcaster (through its proxy) knew it.
        port: await freePort(),
        metricsPort: await freePort(),
        pricePerPixel: PRICE,
        localCapacity: 1,
        pm,
      };
      await freshRound(dn.signer(0), dn.manifest);
      const node = await spawnNode(spec, nodeEnv);
      const recorder = await startRpcRecorder(node.url as string);
      orchs.push({
        name: `o${i}`,
        spec,
        node,
        recorder,
        dataDir,
        address: node.address as Address,
        kills: 0,
        killsMidSegment: 0,
      });
    }
    // Active from the next round; wait until every orchestrator's clock has seen it, so the first params it
    // hands out are of the round the broadcaster sees.
    const round = await mineToNextRound(dn.signer(0), dn.manifest);
    await waitFor(
      'every orchestrator to see the new round',
      async () => {
        for (const o of orchs) {
          const s = (await (await fetch(`${o.node.statusUrl}/status`)).json()) as { round?: string };
          if (BigInt(s.round ?? 0) < round) return false;
        }
        return true;
      },
      30_000,
    );

    const keyFile = join(tmp.dir, 'broadcaster.key');
    await writeFile(keyFile, `${dn.accounts[4]?.privateKey}\n`, { mode: 0o600 });
    const broadcaster = new Cli(
      'broadcaster',
      [
        'broadcaster',
        ...['--rpc', dn.rpcUrl, '--manifest', manifestPath, '--key-file', keyFile],
        ...['--orchestrators', orchs.map((o) => o.recorder.url).join(',')],
        ...['--profiles', profiles.map((p) => p.name).join(','), '--http-port', '0', '--rtmp-port', '0'],
        ...['--deposit', '2', '--reserve', '2'],
      ],
      cliEnv,
    );
    clis.push(broadcaster);
    const [, rtmp] = await broadcaster.line(/^ {2}publish: +(rtmp:\/\/\S+)\/<stream>/);
    const [, statusUrl] = await broadcaster.line(/^ {2}status: +(http:\/\/\S+\/status)$/);
    const httpBase = (statusUrl as string).replace(/\/status$/, '');
    const key = 'chaos';
    const watch = watchHls(`${httpBase}/hls/${key}/index.m3u8`, profiles);
    const setUpMs = performance.now() - t0;

    const publisher = startPublisher(`${rtmp}/${key}`, tools, STREAM_SECONDS, '426x240');
    let publisherErr = '';
    publisher.stderr?.on('data', (d: Buffer) => {
      publisherErr = (publisherErr + d.toString()).slice(-4_000);
    });
    const published = new Promise<number | null>((resolve) => publisher.once('exit', (c) => resolve(c)));
    const streamStart = performance.now();
    const transcodes = () => orchs.reduce((n, o) => n + o.recorder.transcodes.filter((t) => t.ok).length, 0);

    const schedule: { atS: number; victim: string; midSegment: boolean; restartMs: number }[] = [];
    try {
      await waitFor('the first segments to be transcoded', () => transcodes() >= 2, 60_000);
      for (let k = 0; k < KILLS; k++) {
        // The schedule is random (seeded); the restarts and the final checks wait on conditions.
        await new Promise((r) => setTimeout(r, 3_000 + rnd() * 6_000));
        // The one with a segment in flight if one shows up within a moment (transcoding is a fraction of each
        // 2 s segment), else the one that got the latest segment.
        const busy = await waitFor(
          'an orchestrator with a segment in flight',
          () => orchs.find((o) => o.recorder.inFlight > 0),
          3_000,
          20,
        ).catch(() => undefined);
        const victim =
          busy ?? orchs.reduce((a, b) => (b.recorder.lastTranscodeAt > a.recorder.lastTranscodeAt ? b : a));
        const midSegment = victim.recorder.inFlight > 0;
        await kill9(victim.node.child);
        victim.kills++;
        if (midSegment) victim.killsMidSegment++;
        const killedAt = performance.now();
        victim.node = await spawnNode(victim.spec, nodeEnv);
        schedule.push({
          atS: Math.round((killedAt - streamStart) / 100) / 10,
          victim: victim.name,
          midSegment,
          restartMs: Math.round(performance.now() - killedAt),
        });
      }
      const chaosEndS = (performance.now() - streamStart) / 1000;
      expect(await published, publisherErr).toBe(0);

      // The player's view: every segment, in every rendition, transcoded and decodable at its size.
      const views = await watch.ended(90_000);
      const status = (await (await fetch(statusUrl as string)).json()) as {
        streams: {
          id: string;
          ingested: number;
          transcoded: number;
          sourceOnly: number;
          failovers: number;
        }[];
      };
      const s = status.streams.find((x) => x.id === key);
      expect(s).toBeDefined();
      const ingested = s?.ingested ?? 0;
      expect(ingested).toBeGreaterThan(0);
      expect({ transcoded: s?.transcoded, sourceOnly: s?.sourceOnly }).toEqual({
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

      // The broadcaster's side: the winning tickets of every acknowledged segment, as sent on the wire.
      let ticketsAcked = 0;
      const acked = orchs.flatMap((o) => {
        const oracle = ticketOracle(o.dataDir, o.address, ticketDomain(dn.manifest));
        return o.recorder.transcodes
          .filter((t) => t.ok)
          .flatMap((t) => {
            ticketsAcked += t.payment.tickets.length;
            return oracle.winners(t.payment).map((nonce) => ({
              orch: o,
              seq: t.seq,
              key: `${t.payment.params.recipientRandHash.toLowerCase()}:${nonce}`,
            }));
          });
      });
      // Enough winners for "none lost" to mean something.
      expect(acked.length).toBeGreaterThanOrEqual(3);

      // Let each orchestrator cash what it holds, then stop them cleanly and read their databases.
      await waitFor(
        'every orchestrator to redeem its winning tickets',
        () => orchs.every((o) => storedTickets(o.dataDir).every((t) => t.status === 'redeemed')),
        120_000,
        1_000,
      ).catch(() => undefined); // still queued is allowed; counted below
      for (const o of orchs) {
        o.node.child.send({ type: 'stop' });
        await exited(o.node.child);
      }
      const broker = streamflowContracts(dn.signer(0), dn.manifest).ticketBroker;
      const lost: string[] = [];
      const byStatus: Record<string, number> = {};
      let onChain = 0;
      const storedByOrch = new Map(
        orchs.map((o) => [
          o.name,
          new Map(
            storedTickets(o.dataDir).map((t) => [
              `${t.recipient_rand_hash.toLowerCase()}:${t.sender_nonce}`,
              t,
            ]),
          ),
        ]),
      );
      for (const a of acked) {
        const stored = storedByOrch.get(a.orch.name)?.get(a.key);
        if (!stored) {
          lost.push(`${a.orch.name} seq ${a.seq} ticket ${a.key}: not stored`);
          continue;
        }
        byStatus[stored.status] = (byStatus[stored.status] ?? 0) + 1;
        if (stored.status === 'redeemed') {
          if (await broker.read.usedTickets([stored.ticket_hash])) onChain++;
          else lost.push(`${a.orch.name} ticket ${a.key}: marked redeemed, not used on chain`);
        } else if (stored.status !== 'pending' && stored.status !== 'submitted') {
          lost.push(`${a.orch.name} ticket ${a.key}: ${stored.status}`);
        }
      }
      const storedTotal = [...storedByOrch.values()].reduce((n, m) => n + m.size, 0);
      // Reported with the test: what it did and measured (see the chaos section of the README).
      console.log(
        JSON.stringify({
          test: 'chaos-orchestrator',
          seed: SEED,
          setUpS: Math.round(setUpMs / 100) / 10,
          chaosEndS: Math.round(chaosEndS * 10) / 10,
          totalS: Math.round((performance.now() - t0) / 100) / 10,
          segments: ingested,
          failovers: s?.failovers,
          kills: schedule,
          killsMidSegment: orchs.reduce((n, o) => n + o.killsMidSegment, 0),
          ticketsAcked,
          winnersAcked: acked.length,
          winnersStored: storedTotal,
          byStatus,
          redeemedOnChain: onChain,
          lost: lost.length,
        }),
      );
      expect(schedule).toHaveLength(KILLS);
      expect(lost).toEqual([]);
      expect(onChain + (byStatus.pending ?? 0) + (byStatus.submitted ?? 0)).toBe(acked.length);
    } finally {
      if (publisher.exitCode === null) publisher.kill('SIGKILL');
      watch.stop();
      if (process.env.CHAOS_DEBUG) {
        await writeFile(
          process.env.CHAOS_DEBUG,
          JSON.stringify(
            {
              schedule,
              calls: orchs.map((o) => ({
                name: o.name,
                calls: o.recorder.transcodes.map((t) => ({ at: t.at, seq: t.seq, ok: t.ok, error: t.error })),
              })),
              stderr: broadcaster.stderr,
            },
            null,
            1,
          ),
        );
      }
    }
  }, 600_000);
});
