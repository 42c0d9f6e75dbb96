import { type Address, type GetContractReturnType, getContract } from 'viem';
import type {
  ChainConnection,
  SignerConnection,
  StreamflowPublicClient,
  StreamflowWalletClient,
} from './client.js';
import {
  bondingManagerAbi,
  livepeerTokenAbi,
  minterAbi,
  roundsManagerAbi,
  serviceRegistryAbi,
  ticketBrokerAbi,
} from './generated/index.js';
import type { DeploymentManifest } from './manifest.js';

export const abis = {
  LivepeerToken: livepeerTokenAbi,
  RoundsManager: roundsManagerAbi,
  Minter: minterAbi,
  BondingManager: bondingManagerAbi,
  ServiceRegistry: serviceRegistryAbi,
  TicketBroker: ticketBrokerAbi,
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
  ticketBroker: GetContractReturnType<typeof ticketBrokerAbi, C, Address>;
}

export function streamflowContracts(
  conn: SignerConnection,
  manifest: DeploymentManifest,
): StreamflowContracts<Clients>;
export function streamflowContracts(
  conn: ChainConnection,
  manifest: DeploymentManifest,
): StreamflowContracts<ReadClients>;
export function streamflowContracts(
  conn: ChainConnection | SignerConnection,
  manifest: DeploymentManifest,
): StreamflowContracts {
  const client =
    'walletClient' in conn
      ? { public: conn.publicClient, wallet: conn.walletClient }
      : { public: conn.publicClient };
  const c = manifest.contracts;
  return {
    token: getContract({ address: c.LivepeerToken, abi: livepeerTokenAbi, client }),
    roundsManager: getContract({ address: c.RoundsManager, abi: roundsManagerAbi, client }),
    minter: getContract({ address: c.Minter, abi: minterAbi, client }),
    bondingManager: getContract({ address: c.BondingManager, abi: bondingManagerAbi, client }),
    serviceRegistry: getContract({ address: c.ServiceRegistry, abi: serviceRegistryAbi, client }),
    ticketBroker: getContract({ address: c.TicketBroker, abi: ticketBrokerAbi, client }),
  };
}
