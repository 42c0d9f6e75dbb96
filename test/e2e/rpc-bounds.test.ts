import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { type Address, bytesToHex, keccak256, parseEther, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sourceFactsOf } from '../../src/broadcaster/client.js';
import { BroadcasterNode } from '../../src/broadcaster/node.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { writeManifest } from '../../src/chain/manifest.js';
import { mineToNextRound } from '../../src/chain/staking.js';
import { startTestPublisher } from '../../src/demo/demo.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import { LocalTranscoder } from '../../src/media/transcode.js';
import { createLogger } from '../../src/node/logger.js';
import { JobService } from '../../src/orchestrator/service.js';
import { OrchestratorState } from '../../src/orchestrator/state.js';
import { Recipient } from '../../src/pm/recipient.js';
import { Sender } from '../../src/pm/sender.js';
import { PMStore } from '../../src/pm/store.js';
import { signDigest } from '../../src/pm/ticket.js';
import type { Payment } from '../../src/pm/types.js';
import { ChallengeGuard } from '../../src/rpc/challenge.js';
import { paymentToProto, profileToProto } from '../../src/rpc/convert.js';
import { fromConnectError } from '../../src/rpc/errors.js';
import { Orchestrator, TranscodeRequestSchema } from '../../src/rpc/gen/streamflow/v1/orchestrator_pb.js';
import { expectedPixels } from '../../src/rpc/pricing.js';
import { createRpcServer } from '../../src/rpc/server.js';
import { createRpcTransport } from '../../src/rpc/transport.js';
import { cut, makeSource, tempDir, tools } from '../unit/media/fixtures.js';
import { domain, ETH, FakeChain, keyFor, recipientKey, secretA } from '../unit/pm/helpers.js';
import { exited } from './fixtures/hls-check.js';

// D4 of issue 9: HTTP/2 streams on the orchestrator's RPC port that declare huge messages and drip them. The
// orchestrator runs in its own process so its RSS is its own; the attack comes from raw node:http2 sessions,
// as an attacker would send it, while an honest broadcaster streams through the same orchestrator.
const fixture = fileURLToPath(new URL('./fixtures/node-process.ts', import.meta.url));
const profiles = resolveProfiles('360p30,240p30');
const pm = { expectedValue: 200_000_000_000_000n, txCostMultiplier: 2.5, redeemMargin: 1.2 };
const MiB = 1024 * 1024;
const TRANSCODE = '/streamflow.v1.Orchestrator/Transcode';
const children: ChildProcess[] = [];

function spawnOrchestrator(
  spec: Record<string, unknown>,
): Promise<{ child: ChildProcess; url: string; address: Address }> {
  const arg = JSON.stringify(spec, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
  const child = fork(fixture, [arg], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, STREAMFLOW_LOG_LEVEL: process.env.ORCH_LOG ?? 'silent' },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`orchestrator process exited early (${code})`)));
    child.on('message', (m: { type: string; url?: string; address?: Address; message?: string }) => {
      if (m.type === 'ready') resolve({ child, url: m.url as string, address: m.address as Address });
      if (m.type === 'error') reject(new Error(m.message));
    });
  });
}

/** Resident set of a process, MB (Linux). */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function prefix(length: number): Uint8Array {
  const p = new Uint8Array(5);
  new DataView(p.buffer).setUint32(1, length);
  return p;
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

describe('the RPC port under a slowloris (D4)', () => {
  const tmp = tempDir('rpc-bounds');
  let devnet: Devnet;
  let o: { child: ChildProcess; url: string; address: Address };
  let b: BroadcasterNode;

  beforeAll(async () => {
    devnet = await startDevnet({ accounts: 3, blockTime: 1 });
    const manifestPath = join(tmp.dir, 'manifest.json');
    await writeManifest(manifestPath, devnet.manifest);
    o = await spawnOrchestrator({
      kind: 'orchestrator',
      rpcUrl: devnet.rpcUrl,
      manifestPath,
      pm,
      privateKey: devnet.accounts[1]?.privateKey,
      dataDir: join(tmp.dir, 'o'),
      port: 0,
      pricePerPixel: 3_000_000n,
      localCapacity: 2,
    });
    await mineToNextRound(devnet.signer(0), devnet.manifest);
    // The orchestrator's round clock polls once a second; let it see the new round before negotiating.
    await new Promise((r) => setTimeout(r, 1_500));
    b = new BroadcasterNode(
      {
        profiles,
        deposit: parseEther('2'),
        reserve: parseEther('2'),
        rtmpPort: 0,
        hlsWindow: 100,
        sender: { maxExpectedValue: 10n ** 15n },
        jobs: { refreshMs: 2_000, segmentTimeoutMs: 20_000 },
      },
      {
        conn: devnet.signer(2),
        manifest: devnet.manifest,
        privateKey: (devnet.accounts[2] as { privateKey: `0x${string}` }).privateKey,
        tools,
        ...(process.env.E2E_LOG ? { logger: createLogger({ level: process.env.E2E_LOG }) } : {}),
      },
    );
    await b.start();
  }, 120_000);

  afterAll(async () => {
    await b?.stop();
    o?.child.send({ type: 'stop' });
    if (o) await exited(o.child);
    await devnet?.stop();
    tmp.remove();
  });

  it('drops hundreds of dripping streams within seconds, stays within its memory and keeps transcoding', async () => {
    const pid = o.child.pid as number;
    const baseline = rssMb(pid);
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMb(pid));
    }, 100);

    const sessions: http2.ClientHttp2Session[] = [];
    const drips: { stream: http2.ClientHttp2Stream; closed: boolean; rstCode?: number }[] = [];
    const attack = (n: number, declared: number) => {
      for (let i = 0; i < n; i++) {
        if (i % 100 === 0) {
          const s = http2.connect(o.url);
          s.on('error', () => {});
          sessions.push(s);
        }
        const s = sessions.at(-1) as http2.ClientHttp2Session;
        const stream = s.request({
          ':method': 'POST',
          ':path': TRANSCODE,
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        const d: (typeof drips)[number] = { stream, closed: false };
        stream.on('error', () => {});
        stream.on('data', () => {});
        stream.once('close', () => {
          d.closed = true;
          d.rstCode = stream.rstCode;
        });
        stream.write(prefix(declared));
        stream.write(new Uint8Array(1024));
        drips.push(d);
      }
    };
    const dripTimer = setInterval(() => {
      for (const d of drips) if (!d.closed) d.stream.write(new Uint8Array(1024));
    }, 3_000);

    try {
      const key = 'under-attack';
      const publisher = startTestPublisher(`${b.rtmpUrl}/${key}`, tools, 12);
      children.push(publisher);
      await until(
        'the stream to start transcoding',
        () => (b.streams.get(key)?.snapshot().transcoded ?? 0) >= 1,
        60_000,
      );
      // 500 streams under the Transcode limit (only the rate rule stops them) and 12 far above it (D4's figures).
      const started = Date.now();
      attack(500, 20 * MiB);
      attack(12, 60 * MiB);
      await until('every attacking stream to be closed', () => drips.every((d) => d.closed), 45_000);
      const droppedAfterMs = Date.now() - started;
      // A second wave while the stream goes on: the orchestrator is still serving, and still dropping.
      attack(300, 20 * MiB);
      await until('the second wave to be closed', () => drips.every((d) => d.closed), 45_000);

      await exited(publisher);
      expect(publisher.exitCode).toBe(0);
      expect(await b.waitForEnd(key, 60_000)).toBe(true);
      const s = b.streams.get(key)?.snapshot();
      clearInterval(sampler);
      console.log(
        `rpc-bounds: ${drips.length} attacking streams, first wave dropped in ${droppedAfterMs} ms; ` +
          `orchestrator RSS ${baseline.toFixed(0)} → peak ${peak.toFixed(0)} MB; ` +
          `segments ${s?.transcoded}/${s?.ingested} transcoded`,
      );
      // 5 s of grace, then the rate rule; a loaded machine stretches it (the watchdog pauses while starved).
      expect(droppedAfterMs).toBeLessThan(30_000);
      expect(s?.ingested).toBeGreaterThanOrEqual(4);
      expect(s?.sourceOnly).toBe(0);
      expect(s?.transcoded).toBe(s?.ingested);
      // 812 declarations of 20–60 MiB would be 17 GB if allocated; received bytes are a few MB.
      expect(peak - baseline).toBeLessThan(200);
      expect(peak).toBeLessThan(600);
      expect(o.child.exitCode).toBeNull();
    } finally {
      clearInterval(sampler);
      clearInterval(dripTimer);
      for (const s of sessions) s.destroy();
    }
  }, 180_000);
});

// D5 of issue 9: a funded sender sends payments of 600 tickets with bad signatures, each over a new connection.
// The error budget used to be keyed by ip:port, so every connection started a fresh budget: 265,200 signature
// recoveries. The orchestrator's job service here is the real one on a real RPC server (only the chain under
// the recipient is a fake), and the flood goes over real sockets.
describe('a bad-signature flood over fresh connections (D5)', () => {
  const tmp = tempDir('rpc-bounds-d5');
  const orchestrator = privateKeyToAccount(bytesToHex(recipientKey));
  const aliceKey = keyFor('rpc-bounds alice');
  const alice = privateKeyToAccount(bytesToHex(aliceKey));
  const malloryKey = keyFor('rpc-bounds mallory');
  const mallory = privateKeyToAccount(bytesToHex(malloryKey));
  const flood = profiles.slice(0, 1);

  afterAll(() => tmp.remove());

  it('refuses the flooding sender after its budget, bounds the recoveries, and serves an honest sender', async () => {
    const [seg] = cut(makeSource(tmp.dir, 'src', { width: 320, height: 180, fps: 30, seconds: 2 }));
    if (!seg) throw new Error('no segment');
    const chain = new FakeChain();
    chain.fund(alice.address);
    chain.fund(mallory.address);
    const store = new PMStore(':memory:');
    const recipient = new Recipient(
      { address: orchestrator.address, domain, expectedValue: 1_000_000n, nonceCheckpointMs: 3_600_000 },
      { chain, store, secret: secretA },
    );
    await recipient.start();
    const state = new OrchestratorState(':memory:');
    const service = new JobService(
      { serviceUri: '', pricePerPixel: 1n, regionPrices: {}, services: ['transcode/h264'], regions: [] },
      {
        address: orchestrator.address,
        signer: orchestrator,
        recipient,
        transcoder: new LocalTranscoder({ preset: 'ultrafast', threads: 1 }, { tools }),
        capacityLeft: () => 3,
        challenges: new ChallengeGuard(),
        state,
      },
    );
    const server = await createRpcServer({ host: '127.0.0.1', port: 0 }, (router) =>
      router.service(Orchestrator, service.service()),
    );
    /** One call over a connection of its own; the code it was refused with, or 'ok'. */
    const call = async (payment: Payment, streamId: string): Promise<string> => {
      const controller = new AbortController();
      const c = createClient(Orchestrator, createRpcTransport(server.url, { signal: controller.signal }));
      try {
        const reply = await c.transcode(
          create(TranscodeRequestSchema, {
            metadata: {
              streamId,
              seq: 0n,
              durationMs: Math.round(seg.duration * 1000),
              profiles: flood.map(profileToProto),
            },
            segment: seg.bytes,
            payment: paymentToProto(payment),
          }),
        );
        return reply.result.case === 'error' ? reply.result.value.code : 'ok';
      } catch (err) {
        return fromConnectError(err).code;
      } finally {
        controller.abort();
      }
    };
    try {
      const params = await recipient.ticketParams(mallory.address);
      const garbage = (round: number): Payment => ({
        sender: mallory.address,
        params,
        tickets: Array.from({ length: 600 }, (_, i) => ({
          senderNonce: BigInt(round * 1000 + i + 1),
          signature: signDigest(keccak256(toHex(`${round}/${i}`)), malloryKey),
        })),
      });
      const codes: string[] = [];
      for (let round = 0; round < 40; round++) codes.push(await call(garbage(round), 'mallory'));
      const recoveries = recipient.stats.recoveries;
      console.log(
        `rpc-bounds D5: 40 payments × 600 bad tickets → ${recoveries} signature recoveries; codes ${[...new Set(codes)].join(',')}`,
      );
      expect(codes[0]).toBe('InvalidSignature');
      expect(
        codes.slice(1).every((c) => c === 'TooManyErrors'),
        codes.join(','),
      ).toBe(true);
      // The default budget: 20 errors, the 21st refuses. 24,000 without the budget.
      expect(recoveries).toBeLessThanOrEqual(21);

      // Alice, from the same address, pays and is served.
      const sender = new Sender({ privateKey: aliceKey, domain }, { funds: { deposit: () => ETH } });
      const fee = expectedPixels(flood, sourceFactsOf(seg.bytes).duration);
      const payment = sender.createPayment(await recipient.ticketParams(alice.address), fee, {
        recipient: orchestrator.address,
      });
      expect(await call(payment, 'alice')).toBe('ok');
    } finally {
      await server.close();
      await recipient.stop();
      store.close();
      state.close();
    }
  }, 120_000);
});
