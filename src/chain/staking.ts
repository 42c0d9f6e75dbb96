import { createTestClient, http } from 'viem';
import type { SignerConnection } from './client.js';
import { streamflowContracts } from './contracts.js';
import type { DeploymentManifest } from './manifest.js';
import { RoundClock } from './round-clock.js';
import { waitForSuccess } from './tx.js';

export interface OrchestratorStake {
  /** LPT wei bonded to itself. */
  stake: bigint;
  /** Parts per million of rewards kept. */
  rewardCut: bigint;
  /** Parts per million of fees passed to delegators. */
  feeShare: bigint;
}

/** Approves, bonds `stake` to itself and registers the signer as an orchestrator with the given cuts. */
export async function bondAndRegister(
  conn: SignerConnection,
  manifest: DeploymentManifest,
  o: OrchestratorStake,
  signal?: AbortSignal,
): Promise<void> {
  const c = streamflowContracts(conn, manifest);
  const opts = signal ? { signal } : {};
  await waitForSuccess(
    conn,
    await c.token.write.approve([manifest.contracts.BondingManager, o.stake]),
    'approve',
    opts,
  );
  await waitForSuccess(
    conn,
    await c.bondingManager.write.bond([o.stake, conn.account.address]),
    'bond',
    opts,
  );
  await waitForSuccess(
    conn,
    await c.bondingManager.write.registerOrchestrator([o.rewardCut, o.feeShare]),
    'registerOrchestrator',
    opts,
  );
}

/**
 * On an anvil chain: mines to the start of the next round and initialises it. Returns the new round. For
 * devnets and tests, where waiting a round's worth of block times is pointless.
 */
export async function mineToNextRound(conn: SignerConnection, manifest: DeploymentManifest): Promise<bigint> {
  const clock = new RoundClock({}, { conn, contracts: streamflowContracts(conn, manifest) });
  const s = await clock.read();
  await createTestClient({ mode: 'anvil', transport: http(conn.rpcUrl) }).mine({
    blocks: Number(s.blocksLeft),
  });
  await clock.initializeIfDue();
  return (await clock.read()).round;
}
