import { type Hash, keccak256, parseEther, parseEventLogs, toHex, zeroAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignerConnection } from '../../src/chain/client.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { bondingManagerAbi } from '../../src/chain/generated/index.js';
import { mineToNextRound } from '../../src/chain/staking.js';
import { revertErrorName, waitForSuccess } from '../../src/chain/tx.js';

// The chain client against the real contracts on anvil: an orchestrator registers and advertises, a delegator
// bonds, rounds pass, rewards accrue, stake unbonds and is withdrawn — the life cycle every node relies on.
describe('staking through the typed chain client', () => {
  let devnet: Devnet;
  let o: SignerConnection;
  let d: SignerConnection;
  const done = (conn: SignerConnection, what: string) => (hash: Hash) => waitForSuccess(conn, hash, what);

  beforeAll(async () => {
    // Automine makes a block per transaction; 100-block rounds keep each test's transactions in one round.
    devnet = await startDevnet({ accounts: 3, blockTime: 0, parameters: { roundLength: 100n } });
    o = devnet.signer(1);
    d = devnet.signer(2);
  });
  afterAll(async () => {
    await devnet?.stop();
  });

  const nextRound = () => mineToNextRound(devnet.signer(0), devnet.manifest);

  it('reports a bond to an unregistered address by its contract error name', async () => {
    const c = streamflowContracts(d, devnet.manifest);
    await c.token.write
      .approve([devnet.manifest.contracts.BondingManager, parseEther('1')])
      .then(done(d, 'approve'));
    const err = await c.bondingManager.simulate
      .bond([parseEther('1'), o.account.address], { account: d.account.address })
      .catch((e: unknown) => e);
    expect(revertErrorName(err)).toBe('NotRegisteredOrchestrator');
  });

  it('registers an orchestrator that advertises its services and regions', async () => {
    const c = streamflowContracts(o, devnet.manifest);
    await c.token.write
      .approve([devnet.manifest.contracts.BondingManager, parseEther('1000')])
      .then(done(o, 'approve'));
    await c.bondingManager.write.bond([parseEther('1000'), o.account.address]).then(done(o, 'bond'));
    await c.bondingManager.write.registerOrchestrator([100_000n, 500_000n]).then(done(o, 'register'));
    const h264 = keccak256(toHex('transcode/h264'));
    const euWest = toHex('eu-west', { size: 32 });
    await c.serviceRegistry.write
      .setAll(['https://127.0.0.1:8935', [{ id: h264, verifier: zeroAddress }], [euWest]])
      .then(done(o, 'setAll'));

    expect(await c.bondingManager.read.isRegisteredOrchestrator([o.account.address])).toBe(true);
    expect(await c.serviceRegistry.read.getServiceURI([o.account.address])).toBe('https://127.0.0.1:8935');
    expect(await c.serviceRegistry.read.offersService([o.account.address, h264])).toBe(true);
    expect(await c.serviceRegistry.read.servesRegion([o.account.address, euWest])).toBe(true);
    expect(await c.serviceRegistry.read.getRegions([o.account.address])).toEqual([euWest]);
  });

  it('pays the delegator its share of inflation after the orchestrator calls reward', async () => {
    const cd = streamflowContracts(d, devnet.manifest);
    await cd.token.write
      .approve([devnet.manifest.contracts.BondingManager, parseEther('500')])
      .then(done(d, 'approve'));
    await cd.bondingManager.write.bond([parseEther('500'), o.account.address]).then(done(d, 'bond'));
    expect(await cd.bondingManager.read.orchestratorTotalStake([o.account.address])).toBe(parseEther('1500'));

    await nextRound();
    const co = streamflowContracts(o, devnet.manifest);
    expect(await co.bondingManager.read.isActiveOrchestrator([o.account.address])).toBe(true);
    const receipt = await co.bondingManager.write.reward().then(done(o, 'reward'));
    const [reward] = parseEventLogs({ abi: bondingManagerAbi, logs: receipt.logs, eventName: 'Reward' });
    expect(reward?.args.amount ?? 0n).toBeGreaterThan(0n);

    const stake = await cd.bondingManager.read.pendingStake([d.account.address]);
    // The delegator holds a third of the stake and the orchestrator keeps a 10 % cut of the reward.
    const expected = parseEther('500') + ((reward?.args.amount ?? 0n) * 900_000n) / 1_000_000n / 3n;
    expect(stake).toBeGreaterThan(parseEther('500'));
    expect(stake - expected).toBeLessThanOrEqual(2n);
    expect(expected - stake).toBeLessThanOrEqual(2n);
  });

  it('locks unbonded stake for the unbonding period, then pays it out', async () => {
    const c = streamflowContracts(d, devnet.manifest);
    await c.bondingManager.write.unbond([parseEther('100')]).then(done(d, 'unbond'));
    const lock = await c.bondingManager.read.getUnbondingLock([d.account.address, 0n]);
    const early = await c.bondingManager.simulate
      .withdrawStake([0n], { account: d.account.address })
      .catch((e: unknown) => e);
    expect(revertErrorName(early)).toBe('UnbondingLockNotWithdrawable');
    const before = await c.token.read.balanceOf([d.account.address]);
    let round = await nextRound();
    while (round < lock[1]) round = await nextRound();
    await c.bondingManager.write.withdrawStake([0n]).then(done(d, 'withdrawStake'));
    expect(await c.token.read.balanceOf([d.account.address])).toBe(before + parseEther('100'));
  });
});
