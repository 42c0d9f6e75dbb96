import { type Address, getContract, type GetContractReturnType } from 'viem';
import {
  bondingManagerAbi,
  livepeerTokenAbi,
  minterAbi,
  roundsManagerAbi,
  serviceRegistryAbi,
} from './generated/index.js';
import type { ChainConnection, SignerConnection, StreamflowPublicClient, StreamflowWalletClient } from './client.js';
import type { DeploymentManifest } from './manifest.js';

export const abis = {
  LivepeerToken: livepeerTokenAbi,
  RoundsManager: roundsManagerAbi,
  Minter: minterAbi,
  BondingManager: bondingManagerAbi,
  ServiceRegistry: serviceRegistryAbi,
} as const;

type Clients = { public: StreamflowPublicClient; wallet: StreamflowWalletClient };
type ReadClients = { public: StreamflowPublicClient };

/** Typed handles on every Streamflow contract; with a signer, `write` methods are there too. */
export interface StreamflowContracts<C extends Clients | ReadClients = Clients | ReadClients> {
  token: GetContractReturnType<typeof livepeerTokenAbi, C, Address>;
  roundsManager: GetContractReturnType<typeof roundsManagerAbi, C, Address>;
  minter: GetContractReturnType<typeof minterAbi, C, Address>;
  bondingManager: GetContractReturnType<typeof bondingManagerAbi, C, Address>;
  serviceRegistry: GetContractReturnType<typeof serviceRegistryAbi, C, Address>;
}

export function streamflowContracts(conn: SignerConnection, manifest: DeploymentManifest): StreamflowContracts<Clients>;
export function streamflowContracts(conn: ChainConnection, manifest: DeploymentManifest): StreamflowContracts<ReadClients>;
export function streamflowContracts(
  conn: ChainConnection | SignerConnection,
  manifest: DeploymentManifest,
): StreamflowContracts {
  const client =
    'walletClient' in conn ? { public: conn.publicClient, wallet: conn.walletClient } : { public: conn.publicClient };
  const c = manifest.contracts;
  return {
    token: getContract({ address: c.LivepeerToken, abi: livepeerTokenAbi, client }),
    roundsManager: getContract({ address: c.RoundsManager, abi: roundsManagerAbi, client }),
    minter: getContract({ address: c.Minter, abi: minterAbi, client }),
    bondingManager: getContract({ address: c.BondingManager, abi: bondingManagerAbi, client }),
    serviceRegistry: getContract({ address: c.ServiceRegistry, abi: serviceRegistryAbi, client }),
  };
}
