import { parseEther } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { startTestPublisher } from '../../src/demo/demo.js';
import { type Network, type OrchestratorSpec, startNetwork } from '../../src/demo/network.js';
import { resolveProfiles } from '../../src/media/profiles.js';
import { cut, makeSource, tempDir, tools } from '../unit/media/fixtures.js';
import { exited, readHls } from './fixtures/hls-check.js';

// The whole network on one machine: devnet, three orchestrators (one farming out to two remote transcoders),
// two delegators and a broadcaster, fed 30 s of a real ffmpeg RTMP publish. Every segment must reach every
// rendition of the HLS output, in order; tickets must flow, win and be redeemed on chain; the fees must reach
// the orchestrators and their delegators.
describe('the network end to end', () => {
  const tmp = tempDir('network');
  const profiles = resolveProfiles('480p30,360p30,240p30');
  // A ticket worth 2e14 wei on average against a face value of 2.5× the redemption cost (~3.6e14 wei at 1 gwei):
  // most tickets win, so 30 s of stream cannot end without a winner (see src/demo/demo.ts for the rationale).
  const pm = { expectedValue: 200_000_000_000_000n, txCostMultiplier: 2.5, redeemMargin: 1.2 };
  const orchestrators: OrchestratorSpec[] = [
    { name: 'amsterdam', pricePerPixel: 4_000_000n, regions: ['eu-west'], node: { pm, metricsPort: 0 } },
    { name: 'virginia', pricePerPixel: 3_000_000n, regions: ['us-east'], remoteTranscoders: 2, node: { pm } },
    { name: 'frankfurt', pricePerPixel: 5_000_000n, regions: ['eu-west'], node: { pm } },
  ];
  let net: Network;
  const feesBefore = new Map<string, bigint>();

  beforeAll(async () => {
    net = await startNetwork(
      {
        dataDir: tmp.dir,
        orchestrators,
        delegators: [
          { to: 'amsterdam', amount: parseEther('2000') },
          { to: 'virginia', amount: parseEther('1500') },
        ],
        broadcaster: {
          profiles,
          deposit: parseEther('2'),
          reserve: parseEther('2'),
          rtmpPort: 0,
          // Long enough to list every segment of the run, so the test sees them all.
          hlsWindow: 100,
          sender: { maxExpectedValue: 10n ** 15n },
        },
        devnet: { blockTime: 1 },
      },
      { tools },
    );
    const c = streamflowContracts(net.devnet.signer(0), net.devnet.manifest);
    for (const o of net.orchestrators) {
      feesBefore.set(o.node.address, await c.bondingManager.read.pendingFees([o.node.address]));
    }
    for (const i of net.delegators) {
      const a = net.devnet.accounts[i]?.address as `0x${string}`;
      feesBefore.set(a, await c.bondingManager.read.pendingFees([a]));
    }
  }, 120_000);

  afterAll(async () => {
    await net?.stop();
    tmp.remove();
  });

  it('transcodes 30 s of RTMP into every rendition, pays with tickets and redeems winners on chain', async () => {
    const publisher = startTestPublisher(`${net.broadcaster.rtmpUrl}/e2e`, tools, 30);
    await exited(publisher);
    expect(publisher.exitCode).toBe(0);
    expect(await net.broadcaster.waitForEnd('e2e', 30_000)).toBe(true);

    const stream = net.broadcaster.streams.get('e2e')?.snapshot();
    expect(stream?.ingested).toBeGreaterThanOrEqual(14);
    expect(stream?.sourceOnly).toBe(0);
    expect(stream?.transcoded).toBe(stream?.ingested);

    // What a player gets: every segment, in order, in every rendition, at the rendition's size.
    const views = await readHls(net.broadcaster.hlsUrl('e2e'), profiles);
    const expected = Array.from({ length: stream?.ingested ?? 0 }, (_, i) => i);
    for (const v of views) {
      expect(v.seqs, v.name).toEqual(expected);
      expect(v.standIns, v.name).toEqual([]);
      expect(v.bad, v.name).toEqual([]);
    }

    // Tickets flowed and winners were cashed on chain.
    expect(net.broadcaster.jobs.stats.ticketsSent).toBeGreaterThan(0);
    const pending = () => net.orchestrators.reduce((n, o) => n + o.node.stats().tickets.pending, 0);
    for (let i = 0; i < 40 && pending() > 0; i++) {
      await Promise.all(
        net.orchestrators.map((o) => o.node.engine.queue.processOnce().catch(() => undefined)),
      );
      await new Promise((r) => setTimeout(r, 250));
    }
    const stats = net.orchestrators.map((o) => o.node.stats());
    const winning = stats.reduce((n, s) => n + s.tickets.winning, 0);
    const redeemed = stats.reduce((n, s) => n + s.tickets.redeemed, 0);
    expect(winning).toBeGreaterThan(0);
    expect(redeemed).toBe(winning);
    // Every transcoded segment is accounted for by exactly one orchestrator.
    const segments = stats.map((s) => s.segments);
    expect(segments.reduce((a, b) => a + b, 0)).toBe(stream?.transcoded);

    // The fees reached the orchestrators' and their delegators' claimable earnings.
    const c = streamflowContracts(net.devnet.signer(0), net.devnet.manifest);
    let orchestratorGain = 0n;
    for (const o of net.orchestrators) {
      const now = await c.bondingManager.read.pendingFees([o.node.address]);
      orchestratorGain += now - (feesBefore.get(o.node.address) ?? 0n);
    }
    expect(orchestratorGain).toBeGreaterThan(0n);
    // Each delegator gains once its orchestrator redeemed a ticket, and at least one did.
    let delegatorGain = 0n;
    for (const [k, i] of net.delegators.entries()) {
      const name = k === 0 ? 'amsterdam' : 'virginia';
      const o = net.orchestrators.find((x) => x.spec.name === name);
      const a = net.devnet.accounts[i]?.address as `0x${string}`;
      const gain = (await c.bondingManager.read.pendingFees([a])) - (feesBefore.get(a) ?? 0n);
      if ((o?.node.stats().tickets.redeemed ?? 0) > 0) expect(gain, name).toBeGreaterThan(0n);
      else expect(gain, name).toBe(0n);
      delegatorGain += gain;
    }
    expect(delegatorGain).toBeGreaterThan(0n);

    // What an operator watches: the node's own status and metrics agree with what happened.
    const amsterdam = net.orchestrators.find((x) => x.spec.name === 'amsterdam')?.node;
    const status = (await (await fetch(`${amsterdam?.statusUrl}/status`)).json()) as { segments: number };
    expect(status.segments).toBe(amsterdam?.stats().segments);
    const metrics = await (await fetch(`${amsterdam?.statusUrl}/metrics`)).text();
    expect(metrics).toContain('streamflow_orchestrator_segments_total');
    expect(metrics).toContain('streamflow_pool_dispatches_total');
  }, 180_000);

  it('takes segments pushed over HTTP and a file, and answers each push with who transcoded it', async () => {
    const src = makeSource(tmp.dir, 'push', { width: 640, height: 360, fps: 30, seconds: 6 });
    const segments = cut(src);
    for (const seg of segments) {
      const res = await fetch(`${net.broadcaster.httpUrl}/live/pushed/${seg.seq}.ts`, {
        method: 'PUT',
        headers: { 'Content-Type': 'video/mp2t' },
        body: seg.bytes,
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { seq: number; orchestrator?: string };
      expect(body.seq).toBe(seg.seq);
      expect(net.orchestrators.map((o) => o.node.address)).toContain(body.orchestrator);
    }
    const pushed = await readHls(net.broadcaster.hlsUrl('pushed'), profiles);
    for (const v of pushed) {
      expect(v.seqs, v.name).toEqual(segments.map((s) => s.seq));
      expect(v.standIns, v.name).toEqual([]);
      expect(v.bad, v.name).toEqual([]);
    }

    const file = await net.broadcaster.ingestFile('file', src);
    expect(file.ingested).toBe(segments.length);
    expect(file.transcoded).toBe(file.ingested);
  }, 120_000);
});
