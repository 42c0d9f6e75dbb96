import { type Address, type Hex, hexToString, keccak256, toHex, zeroAddress } from 'viem';
import type { ChainConnection } from './client.js';
import { streamflowContracts } from './contracts.js';
import type { DeploymentManifest } from './manifest.js';

/** Service names this build knows; ids on chain are keccak256 of the name. */
export const KNOWN_SERVICES = ['transcode/h264'] as const;

/** An orchestrator as the chain describes it, for operators and delegators (`streamflow orchestrators`). */
export interface OrchestratorListing {
  address: Address;
  /** In the active set this round (earns rewards, can be paid with tickets). */
  active: boolean;
  /** Total stake, LPT wei. */
  totalStake: bigint;
  /** Parts per million, in force this round. */
  rewardCut: bigint;
  feeShare: bigint;
  /** The cuts set for a later round, when they differ. */
  pendingCuts: { rewardCut: bigint; feeShare: bigint; fromRound: bigint } | undefined;
  lastRewardRound: bigint;
  serviceUri: string;
  /** Names for known service ids, the hex id otherwise. */
  services: string[];
  regions: string[];
}

/**
 * The BondingManager's orchestrator pool in its order (descending stake). The pool is a linked list, so the
 * walk is sequential; its size bounds it, so a list changing underneath cannot loop forever.
 */
export async function orchestratorPool(
  conn: ChainConnection,
  manifest: DeploymentManifest,
  signal?: AbortSignal,
): Promise<Address[]> {
  const bm = streamflowContracts(conn, manifest).bondingManager.read;
  const size = await bm.getOrchestratorPoolSize();
  const pool: Address[] = [];
  let next = await bm.getFirstOrchestratorInPool();
  while (next !== zeroAddress && BigInt(pool.length) < size) {
    signal?.throwIfAborted();
    pool.push(next);
    next = await bm.getNextOrchestratorInPool([next]);
  }
  return pool;
}

function serviceName(id: Hex): string {
  return KNOWN_SERVICES.find((n) => keccak256(toHex(n)) === id.toLowerCase()) ?? id;
}

function regionName(code: Hex): string {
  try {
    return hexToString(code, { size: 32 }).replace(/\0+$/, '');
  } catch {
    return code;
  }
}

/** Every orchestrator in the pool with its stake, cuts, activity and ServiceRegistry entry. */
export async function listOrchestrators(
  conn: ChainConnection,
  manifest: DeploymentManifest,
  signal?: AbortSignal,
): Promise<OrchestratorListing[]> {
  const c = streamflowContracts(conn, manifest);
  const pool = await orchestratorPool(conn, manifest, signal);
  return Promise.all(
    pool.map(async (address) => {
      const [info, active, serviceUri, services, regions] = await Promise.all([
        c.bondingManager.read.getOrchestrator([address]),
        c.bondingManager.read.isActiveOrchestrator([address]),
        c.serviceRegistry.read.getServiceURI([address]),
        c.serviceRegistry.read.getServices([address]),
        c.serviceRegistry.read.getRegions([address]),
      ]);
      const pendingDiffers =
        info.pendingRewardCut !== info.rewardCut || info.pendingFeeShare !== info.feeShare;
      return {
        address,
        active,
        totalStake: info.totalStake,
        rewardCut: info.rewardCut,
        feeShare: info.feeShare,
        pendingCuts: pendingDiffers
          ? {
              rewardCut: info.pendingRewardCut,
              feeShare: info.pendingFeeShare,
              fromRound: info.pendingCutsRound,
            }
          : undefined,
        lastRewardRound: info.lastRewardRound,
        serviceUri,
        services: services.map((s) => serviceName(s.id)),
        regions: regions.map(regionName),
      };
    }),
  );
}
