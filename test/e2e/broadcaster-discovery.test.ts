import { type Address, parseEther, zeroAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  discoverOrchestrators,
  discoverWithReport,
  regionCode,
  serviceId,
} from '../../src/broadcaster/discovery.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { bondAndRegister, mineToNextRound } from '../../src/chain/staking.js';
import { waitForSuccess } from '../../src/chain/tx.js';

// Discovery against the real BondingManager pool and ServiceRegistry: orchestrators that fail one filter each
// (stake, service, region) must be left out, and every one that passes all of them must be found.
describe('broadcaster discovery on a devnet', () => {
  let devnet: Devnet;
  const h264 = serviceId('transcode/h264');
  const av1 = serviceId('transcode/av1');
  const euWest = regionCode('eu-west');
  const usEast = regionCode('us-east');
  const minStake = parseEther('1000');
  const orchestrators = [
    { name: 'good', stake: parseEther('2000'), services: [h264], regions: [euWest] },
    { name: 'lowStake', stake: parseEther('500'), services: [h264], regions: [euWest] },
    { name: 'noService', stake: parseEther('3000'), services: [av1], regions: [euWest] },
    { name: 'otherRegion', stake: parseEther('1500'), services: [h264], regions: [usEast] },
    { name: 'twoRegions', stake: parseEther('1000'), services: [av1, h264], regions: [usEast, euWest] },
  ];
  const address: Record<string, Address> = {};

  beforeAll(async () => {
    devnet = await startDevnet({
      accounts: orchestrators.length + 2,
      blockTime: 0,
      parameters: { roundLength: 100n },
    });
    for (const [i, o] of orchestrators.entries()) {
      const conn = devnet.signer(i + 1);
      address[o.name] = conn.account.address;
      await bondAndRegister(conn, devnet.manifest, { stake: o.stake, rewardCut: 0n, feeShare: 1_000_000n });
      const c = streamflowContracts(conn, devnet.manifest);
      const services = o.services.map((id) => ({ id, verifier: zeroAddress }));
      const hash = await c.serviceRegistry.write.setAll([
        `https://127.0.0.1:${9000 + i}`,
        services,
        o.regions,
      ]);
      await waitForSuccess(conn, hash, 'setAll');
    }
    // Registration joins the pool; the active set is fixed at the next round's start.
    await mineToNextRound(devnet.signer(0), devnet.manifest);
    // Joins the pool after the round started, so it is not active yet despite passing every other filter.
    const late = devnet.signer(orchestrators.length + 1);
    address.late = late.account.address;
    await bondAndRegister(late, devnet.manifest, {
      stake: parseEther('5000'),
      rewardCut: 0n,
      feeShare: 1_000_000n,
    });
    const hash = await streamflowContracts(late, devnet.manifest).serviceRegistry.write.setAll([
      'https://127.0.0.1:9999',
      [{ id: h264, verifier: zeroAddress }],
      [euWest],
    ]);
    await waitForSuccess(late, hash, 'setAll');
  });
  afterAll(async () => {
    await devnet?.stop();
  });

  const deps = () => ({ conn: devnet.signer(0), manifest: devnet.manifest });

  it('returns exactly the active orchestrators with the service, the region and enough stake', async () => {
    const bm = streamflowContracts(devnet.signer(0), devnet.manifest).bondingManager.read;
    expect(await bm.getOrchestratorPoolSize()).toBe(BigInt(orchestrators.length + 1));
    expect(await bm.isActiveOrchestrator([address.late as Address])).toBe(false);
    const found = await discoverOrchestrators({ service: h264, region: euWest, minStake }, deps());
    expect(found.map((c) => c.address)).toEqual([address.good, address.twoRegions]);
    const good = found[0];
    expect(good).toMatchObject({
      serviceUri: 'https://127.0.0.1:9000',
      stake: parseEther('2000'),
      services: [h264],
      regions: [euWest],
      source: 'chain',
    });
  });

  it('counts every orchestrator it leaves out by the first filter it failed', async () => {
    const report = await discoverWithReport({ service: h264, region: euWest, minStake }, deps());
    expect(report.candidates.map((c) => c.address)).toEqual([address.good, address.twoRegions]);
    // late: not active yet; lowStake: below the floor; noService: av1 only; otherRegion: us-east only.
    expect(report.filtered).toEqual({ inactive: 1, stake: 1, service: 1, region: 1, noServiceUri: 0 });
  });

  it('ignores the region when none is asked for', async () => {
    const found = await discoverOrchestrators({ service: h264, minStake }, deps());
    expect(new Set(found.map((c) => c.address))).toEqual(
      new Set([address.good, address.otherRegion, address.twoRegions]),
    );
  });

  it('finds nobody when the stake floor is above every orchestrator', async () => {
    const found = await discoverOrchestrators({ service: h264, minStake: parseEther('1000000') }, deps());
    expect(found).toEqual([]);
  });

  it('gives the same answer with a concurrency of one', async () => {
    const found = await discoverOrchestrators({ service: av1, minStake: 0n }, deps(), { concurrency: 1 });
    expect(new Set(found.map((c) => c.address))).toEqual(new Set([address.noService, address.twoRegions]));
  });

  it('stops with the abort reason when the signal is aborted', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stopped'));
    await expect(
      discoverOrchestrators({ service: h264, minStake }, { ...deps(), signal: ac.signal }),
    ).rejects.toThrow('stopped');
  });
});
