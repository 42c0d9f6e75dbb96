import { createTestClient, http } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { RoundClock } from '../../src/chain/round-clock.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('devnet', () => {
  let devnet: Devnet;

  beforeAll(async () => {
    devnet = await startDevnet({ accounts: 4, blockTime: 1, parameters: { roundLength: 10n } });
  });
  afterAll(async () => {
    await devnet?.stop();
  });

  it('deploys every contract with code at the manifest addresses', async () => {
    const pc = devnet.signer(0).publicClient;
    expect(devnet.manifest.chainId).toBe(devnet.chainId);
    for (const [name, address] of Object.entries(devnet.manifest.contracts)) {
      const code = await pc.getCode({ address });
      expect(code?.length ?? 0, `${name} has code`).toBeGreaterThan(2);
    }
  });

  it('funds every account with ETH and LPT and hands minting to the Minter', async () => {
    const c = streamflowContracts(devnet.signer(0), devnet.manifest);
    const pc = devnet.signer(0).publicClient;
    for (const a of devnet.accounts) {
      expect(await c.token.read.balanceOf([a.address]), a.address).toBe(10_000n * 10n ** 18n);
      expect(await pc.getBalance({ address: a.address }), a.address).toBeGreaterThan(10n ** 21n);
    }
    expect((await c.token.read.minter()).toLowerCase()).toBe(devnet.manifest.contracts.Minter.toLowerCase());
  });

  it('starts with the first round initialized', async () => {
    const c = streamflowContracts(devnet.signer(0), devnet.manifest);
    expect(await c.roundsManager.read.currentRoundInitialized()).toBe(true);
  });

  it('round clock initializes a new round once the chain crosses into it', async () => {
    const conn = devnet.signer(1);
    const contracts = streamflowContracts(conn, devnet.manifest);
    const clock = new RoundClock({ autoInitialize: true, pollIntervalMs: 100 }, { conn, contracts });
    const before = await clock.read();
    const initialized = new Promise<bigint>((resolve) => {
      clock.on('initialized', (s) => {
        if (s.round > before.round) resolve(s.round);
      });
    });
    clock.start();
    const test = createTestClient({ mode: 'anvil', transport: http(devnet.rpcUrl) });
    await test.mine({ blocks: Number(before.blocksLeft) });
    const round = await initialized;
    await clock.stop();
    await clock.stop();
    expect(round).toBe(before.round + 1n);
    expect(await contracts.roundsManager.read.currentRoundInitialized()).toBe(true);
    const after = await clock.read();
    expect(after.blocksLeft).toBeGreaterThan(0n);
    expect(after.blocksLeft).toBeLessThanOrEqual(after.roundLength);
  });

  it('two nodes racing to initialise a round: the one mined second is told it is done, not failed', async () => {
    const test = createTestClient({ mode: 'anvil', transport: http(devnet.rpcUrl) });
    const conn = devnet.signer(2);
    const clock = new RoundClock({}, { conn, contracts: streamflowContracts(conn, devnet.manifest) });
    const before = await clock.read();
    await test.mine({ blocks: Number(before.blocksLeft) });
    await test.setIntervalMining({ interval: 0 });
    try {
      const pending = async (n: number) => {
        const deadline = Date.now() + 10_000;
        while ((await test.getTxpoolStatus()).pending < n && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20));
        }
        expect((await test.getTxpoolStatus()).pending).toBe(n);
      };
      // Our node's transaction passes its gas estimate and waits in the pool...
      const ours = clock.initializeIfDue();
      await pending(1);
      // ...while another node's, paying a higher tip (and so ordered first in the block), initialises the round.
      const other = streamflowContracts(devnet.signer(3), devnet.manifest);
      const theirs = await other.roundsManager.write.initializeRound({
        gas: 500_000n,
        maxPriorityFeePerGas: 100n * 10n ** 9n,
        maxFeePerGas: 200n * 10n ** 9n,
      });
      await pending(2);
      await test.mine({ blocks: 1 });
      expect(await ours).toBe(false);
      const receipt = await conn.publicClient.getTransactionReceipt({ hash: theirs });
      expect(receipt.status).toBe('success');
    } finally {
      await test.setIntervalMining({ interval: 1 });
    }
    expect((await clock.read()).initialized).toBe(true);
  });

  it('stop ends the anvil process and is idempotent', async () => {
    const other = await startDevnet({ accounts: 1, blockTime: 0 });
    expect(isAlive(other.anvil.pid)).toBe(true);
    await Promise.all([other.stop(), other.stop()]);
    expect(isAlive(other.anvil.pid)).toBe(false);
  });
});
