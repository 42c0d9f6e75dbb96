import { parseEther, zeroAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { regionCode, serviceId } from '../../src/broadcaster/discovery.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { listOrchestrators } from '../../src/chain/orchestrators.js';
import { bondAndRegister, mineToNextRound } from '../../src/chain/staking.js';
import { waitForSuccess } from '../../src/chain/tx.js';

// What `streamflow orchestrators` shows an operator or a delegator choosing where to bond: the whole pool in
// stake order, active or not, with cuts and the ServiceRegistry entry in readable form.
describe('listing the orchestrator pool', () => {
  let devnet: Devnet;

  beforeAll(async () => {
    devnet = await startDevnet({ accounts: 4, blockTime: 0, parameters: { roundLength: 100n } });
    const big = devnet.signer(1);
    await bondAndRegister(big, devnet.manifest, {
      stake: parseEther('3000'),
      rewardCut: 50_000n,
      feeShare: 800_000n,
    });
    const c = streamflowContracts(big, devnet.manifest);
    await waitForSuccess(
      big,
      await c.serviceRegistry.write.setAll([
        'https://big.example:8935',
        [{ id: serviceId('transcode/h264'), verifier: zeroAddress }],
        [regionCode('eu-west'), regionCode('us-east')],
      ]),
      'setAll',
    );
    await mineToNextRound(devnet.signer(0), devnet.manifest);
    // Joins after the round started: in the pool, not active yet.
    await bondAndRegister(devnet.signer(2), devnet.manifest, {
      stake: parseEther('1000'),
      rewardCut: 0n,
      feeShare: 1_000_000n,
    });
  });
  afterAll(async () => {
    await devnet?.stop();
  });

  it('lists every orchestrator in stake order with activity, cuts, URI, service names and regions', async () => {
    const list = await listOrchestrators(devnet.signer(0), devnet.manifest);
    expect(list.map((o) => o.address)).toEqual([devnet.accounts[1]?.address, devnet.accounts[2]?.address]);
    const [big, late] = list;
    expect(big).toMatchObject({
      active: true,
      totalStake: parseEther('3000'),
      rewardCut: 50_000n,
      feeShare: 800_000n,
      serviceUri: 'https://big.example:8935',
      services: ['transcode/h264'],
      regions: ['eu-west', 'us-east'],
      pendingCuts: undefined,
    });
    expect(late).toMatchObject({
      active: false,
      totalStake: parseEther('1000'),
      serviceUri: '',
      services: [],
    });
  });
});
