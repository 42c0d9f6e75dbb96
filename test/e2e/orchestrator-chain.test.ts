import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { parseEther } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { regionCode, serviceId } from '../../src/broadcaster/discovery.js';
import { connectChain, type SignerConnection, withSigner } from '../../src/chain/client.js';
import { streamflowContracts } from '../../src/chain/contracts.js';
import { type Devnet, startDevnet } from '../../src/chain/devnet.js';
import { RoundClock } from '../../src/chain/round-clock.js';
import { mineToNextRound } from '../../src/chain/staking.js';
import { ensureRegistered, type RegistrationOptions, RewardService } from '../../src/orchestrator/chain.js';
import { OrchestratorState } from '../../src/orchestrator/state.js';
import { startTcpProxy } from './fixtures/tcp-proxy.js';

// What the orchestrator does on chain by itself: on every start it brings its registration to what the
// operator asked for, sending only the transactions that change something, and once a round it calls reward().
// Transactions are counted by the account nonce, so "sent nothing" means exactly that.
describe('orchestrator on a devnet', () => {
  let devnet: Devnet;
  /** Registers in the first round. */
  let o: SignerConnection;
  /** Registers a round later. */
  let late: SignerConnection;
  let dir: string;
  const states: OrchestratorState[] = [];

  const first: RegistrationOptions = {
    bond: parseEther('1000'),
    rewardCut: 100_000n,
    feeShare: 500_000n,
    serviceUri: 'https://127.0.0.1:8935',
    services: ['transcode/h264'],
    regions: ['eu-west'],
  };
  const deps = (conn: SignerConnection) => ({ conn, manifest: devnet.manifest });
  const nonce = (conn: SignerConnection) =>
    conn.publicClient.getTransactionCount({ address: conn.account.address, blockTag: 'pending' });
  const currentRound = () => streamflowContracts(o, devnet.manifest).roundsManager.read.currentRound();

  function openState(name: string): OrchestratorState {
    const s = new OrchestratorState(join(dir, name, 'orchestrator.db'));
    states.push(s);
    return s;
  }
  function rewards(conn: SignerConnection, state?: OrchestratorState): RewardService {
    const clock = new RoundClock({}, { conn, contracts: streamflowContracts(conn, devnet.manifest) });
    return new RewardService({ ...deps(conn), clock, ...(state ? { state } : {}) });
  }

  beforeAll(async () => {
    devnet = await startDevnet({ accounts: 3, blockTime: 0, parameters: { roundLength: 100n } });
    o = devnet.signer(1);
    late = devnet.signer(2);
    dir = mkdtempSync(join(tmpdir(), 'sf-orch-chain-'));
  });
  afterAll(async () => {
    for (const s of states) s.close();
    await devnet?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('ensureRegistered', () => {
    it('bonds, registers and writes the ServiceRegistry on the first call', async () => {
      const before = await nonce(o);
      const result = await ensureRegistered(first, deps(o));

      expect(result).toEqual({
        address: o.account.address,
        bonded: parseEther('1000'),
        registered: true,
        registryUpdated: true,
      });
      const c = streamflowContracts(o, devnet.manifest);
      const info = await c.bondingManager.read.getOrchestrator([o.account.address]);
      expect(info.registered).toBe(true);
      expect(info.pendingRewardCut).toBe(100_000n);
      expect(info.pendingFeeShare).toBe(500_000n);
      expect((await c.bondingManager.read.getDelegator([o.account.address])).bondedAmount).toBe(
        parseEther('1000'),
      );
      expect(await c.serviceRegistry.read.getServiceURI([o.account.address])).toBe('https://127.0.0.1:8935');
      expect((await c.serviceRegistry.read.getServices([o.account.address])).map((s) => s.id)).toEqual([
        serviceId('transcode/h264'),
      ]);
      expect(await c.serviceRegistry.read.getRegions([o.account.address])).toEqual([regionCode('eu-west')]);
      // approve, bond, registerOrchestrator, setAll (and initializeRound when the round needed it)
      expect(await nonce(o)).toBeGreaterThanOrEqual(before + 4);
    });

    it('sends no transaction when called again with the same cuts and registry entries', async () => {
      const before = await nonce(o);
      const { bond: _bond, ...again } = first;
      const result = await ensureRegistered(again, deps(o));
      expect(result).toEqual({
        address: o.account.address,
        bonded: 0n,
        registered: false,
        registryUpdated: false,
      });
      expect(await nonce(o)).toBe(before);
    });

    it('sends no transaction on a second identical call, bond included', async () => {
      // `streamflow orchestrator --bond 1000` runs this on every start with the same options.
      const before = await nonce(o);
      const stake = (
        await streamflowContracts(o, devnet.manifest).bondingManager.read.getDelegator([o.account.address])
      ).bondedAmount;
      const result = await ensureRegistered(first, deps(o));
      expect.soft(await nonce(o), 'transactions sent').toBe(before);
      expect
        .soft(
          (
            await streamflowContracts(o, devnet.manifest).bondingManager.read.getDelegator([
              o.account.address,
            ])
          ).bondedAmount,
          'self-bond after the second call',
        )
        .toBe(stake);
      expect(result.registered).toBe(false);
      expect(result.registryUpdated).toBe(false);
    });

    it('sends one setAll when only the URI changed', async () => {
      const before = await nonce(o);
      const { bond: _bond, ...again } = first;
      const result = await ensureRegistered({ ...again, serviceUri: 'https://127.0.0.1:9935' }, deps(o));
      expect(result).toMatchObject({ bonded: 0n, registered: false, registryUpdated: true });
      expect(await nonce(o)).toBe(before + 1);
      const c = streamflowContracts(o, devnet.manifest);
      expect(await c.serviceRegistry.read.getServiceURI([o.account.address])).toBe('https://127.0.0.1:9935');
      expect(await c.serviceRegistry.read.getRegions([o.account.address])).toEqual([regionCode('eu-west')]);
    });
  });

  describe('RewardService.tryReward', () => {
    it('returns false for an orchestrator registered this round, sending nothing', async () => {
      const round = await currentRound();
      const state = openState('o-early');
      const before = await nonce(o);
      expect(await rewards(o, state).tryReward(round)).toBe(false);
      expect(await nonce(o)).toBe(before);
    });

    it('calls reward() once for an active orchestrator and remembers the round in the node state', async () => {
      const round = await mineToNextRound(devnet.signer(0), devnet.manifest);
      const bm = streamflowContracts(o, devnet.manifest).bondingManager.read;
      expect(await bm.isActiveOrchestrator([o.account.address])).toBe(true);
      const state = openState('o');
      const service = rewards(o, state);

      const before = await nonce(o);
      expect(await service.tryReward(round)).toBe(true);
      expect(await nonce(o)).toBe(before + 1);
      expect((await bm.getOrchestrator([o.account.address])).lastRewardRound).toBe(round);
      expect(state.getMeta('lastRewardRound')).toBe(round.toString());

      expect(await service.tryReward(round), 'second call in the same round').toBe(false);
      // A node that lost its state learns from the chain that the round was rewarded.
      expect(await rewards(o).tryReward(round), 'without state').toBe(false);
      expect(await nonce(o)).toBe(before + 1);
    });

    it('returns false for an orchestrator not yet active, then rewards once it is', async () => {
      const { bond: _bond, ...rest } = first;
      await ensureRegistered(
        { ...rest, bond: parseEther('500'), serviceUri: 'https://127.0.0.1:7935' },
        deps(late),
      );
      const round = await currentRound();
      const bm = streamflowContracts(late, devnet.manifest).bondingManager.read;
      expect(await bm.isActiveOrchestrator([late.account.address])).toBe(false);
      const state = openState('late');
      const before = await nonce(late);

      expect(await rewards(late, state).tryReward(round)).toBe(false);
      expect(await nonce(late)).toBe(before);
      expect(state.getMeta('lastRewardRound')).toBe(round.toString());

      const next = await mineToNextRound(devnet.signer(0), devnet.manifest);
      expect(next).toBe(round + 1n);
      expect(await rewards(late, state).tryReward(next)).toBe(true);
      expect(await nonce(late)).toBe(before + 1);
      expect(state.getMeta('lastRewardRound')).toBe(next.toString());
    });

    it('does not call reward() again for a round remembered in a reopened state file', async () => {
      const round = await mineToNextRound(devnet.signer(0), devnet.manifest);
      const path = join(dir, 'reopen', 'orchestrator.db');
      const s1 = new OrchestratorState(path);
      const before = await nonce(o);
      expect(await rewards(o, s1).tryReward(round)).toBe(true);
      s1.close();

      const s2 = openState('reopen');
      expect(s2.getMeta('lastRewardRound')).toBe(round.toString());
      expect(await rewards(o, s2).tryReward(round)).toBe(false);
      // An older round than the one remembered is never rewarded either.
      expect(await rewards(o, s2).tryReward(round - 1n)).toBe(false);
      expect(await nonce(o)).toBe(before + 1);
    });

    it('tries reward() again in the same round after the chain RPC failed, instead of losing the round', async () => {
      const round = await mineToNextRound(devnet.signer(0), devnet.manifest);
      // The orchestrator reaches anvil through a proxy that refuses every connection until restored.
      const url = new URL(devnet.rpcUrl);
      const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
      const conn = withSigner(await connectChain(proxy.url), o.account);
      const clock = new RoundClock({}, { conn, contracts: streamflowContracts(conn, devnet.manifest) });
      clock.on('error', () => undefined);
      clock.start();
      const until = async (what: string, ok: () => boolean) => {
        const deadline = performance.now() + 30_000;
        while (!ok()) {
          if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      await until('the round clock', () => clock.status?.round === round);
      const rewarded: bigint[] = [];
      const logs: string[] = [];
      const service = new RewardService({
        ...deps(conn),
        clock,
        logger: pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }),
        retryMs: 200,
        onReward: (r) => rewarded.push(r),
      });
      try {
        await proxy.cut();
        // Starting sees the initialised round and tries at once: the call fails while the RPC is down.
        service.start();
        await until('a failed attempt', () => logs.some((l) => l.includes('reward failed')));
        expect(rewarded, 'nothing while the RPC is down').toEqual([]);
        await proxy.restore();
        // No new round comes (blockTime 0): only a retry within this round can reward it.
        await until('reward() after the RPC came back', () => rewarded.includes(round));
        expect(rewarded).toEqual([round]);
        const bm = streamflowContracts(o, devnet.manifest).bondingManager.read;
        expect((await bm.getOrchestrator([o.account.address])).lastRewardRound).toBe(round);
      } finally {
        await service.stop();
        await clock.stop();
        await proxy.close();
      }
    }, 60_000);
  });
});
