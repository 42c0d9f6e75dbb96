import { type Abi, type Address, encodeFunctionData, getContractAddress, type Hex } from 'viem';
import type { Logger } from '../node/logger.js';
import type { SignerConnection } from './client.js';
import {
  bondingManagerAbi,
  bondingManagerBytecode,
  livepeerTokenAbi,
  livepeerTokenBytecode,
  minterAbi,
  minterBytecode,
  roundsManagerAbi,
  roundsManagerBytecode,
  SOLC_VERSION,
  serviceRegistryAbi,
  serviceRegistryBytecode,
  ticketBrokerAbi,
  ticketBrokerBytecode,
} from './generated/index.js';
import type { DeploymentManifest } from './manifest.js';
import { waitForSuccess } from './tx.js';

/** Protocol parameters set at deployment; all can be changed later by the owner. */
export interface DeployParameters {
  /** Blocks per round. @default 5760 (a day of 15 s blocks) */
  roundLength: bigint;
  /** Parts per million of a round, at its end, in which orchestrators cannot change cuts. @default 100_000 */
  roundLockAmount: bigint;
  /** Rounds before unbonded stake can be withdrawn. @default 7n */
  unbondingPeriod: bigint;
  /** Inflation per round in parts per billion of total supply. @default 500_000n (0.05 %) */
  inflation: bigint;
  /** Parts per billion the inflation moves each round toward the target bonding rate. @default 500n */
  inflationChange: bigint;
  /** Parts per million of supply that should be bonded. @default 500_000n */
  targetBondingRate: bigint;
  /** LPT wei an orchestrator needs to enter the active set. @default 1 LPT */
  minimumStake: bigint;
  /** Size bound of the active set. @default 1000n */
  maxActiveOrchestrators: bigint;
  /** Parts per million of a slash paid to whoever proved the fault. @default 50_000n (5 %) */
  finderFee: bigint;
  /** How many rounds back a ticket's fees may still be credited to its creation round. @default 2n */
  maxFeeBackfillRounds: bigint;
  /** Rounds after its creation round a winning ticket stays payable (≤ maxFeeBackfillRounds). @default 2n */
  ticketValidityRounds: bigint;
  /** Rounds a broadcaster waits between unlock and withdrawal (> ticketValidityRounds). @default 5n */
  unlockPeriod: bigint;
}

export const DEFAULT_DEPLOY_PARAMETERS: DeployParameters = {
  roundLength: 5760n,
  roundLockAmount: 100_000n,
  unbondingPeriod: 7n,
  inflation: 500_000n,
  inflationChange: 500n,
  targetBondingRate: 500_000n,
  minimumStake: 10n ** 18n,
  maxActiveOrchestrators: 1000n,
  finderFee: 50_000n,
  maxFeeBackfillRounds: 2n,
  ticketValidityRounds: 2n,
  unlockPeriod: 5n,
};

export interface DeployOptions {
  parameters?: Partial<DeployParameters>;
  /** LPT minted at deployment, before the Minter takes over minting (devnets, tests). */
  genesis?: ReadonlyArray<{ address: Address; amount: bigint }>;
  /** Initialize the first round so the network can be used at once. @default true */
  initializeFirstRound?: boolean;
  signal?: AbortSignal;
}

interface Step {
  what: string;
  to?: Address;
  data: Hex;
}

/**
 * Deploys and wires every Streamflow contract on any JSON-RPC endpoint, then returns the manifest.
 * Transactions go out in bursts with explicit nonces (addresses are known from the deployer's nonce), so the
 * whole deployment takes a few blocks instead of one block per transaction.
 */
export async function deployStreamflow(
  conn: SignerConnection,
  options: DeployOptions = {},
  deps: { logger?: Logger } = {},
): Promise<DeploymentManifest> {
  const log = deps.logger?.child({ module: 'deploy' });
  const p: DeployParameters = { ...DEFAULT_DEPLOY_PARAMETERS, ...options.parameters };
  const deployer = conn.account.address;
  let nonce = await conn.publicClient.getTransactionCount({ address: deployer, blockTag: 'pending' });

  const at = (offset: number) => getContractAddress({ from: deployer, nonce: BigInt(nonce + offset) });
  const addr = {
    LivepeerToken: at(0),
    RoundsManager: at(1),
    Minter: at(2),
    BondingManager: at(3),
    ServiceRegistry: at(4),
    TicketBroker: at(5),
  };

  const creations: Array<{ what: string; abi: Abi; bytecode: Hex; args: readonly unknown[] }> = [
    { what: 'LivepeerToken', abi: livepeerTokenAbi, bytecode: livepeerTokenBytecode, args: [] },
    { what: 'RoundsManager', abi: roundsManagerAbi, bytecode: roundsManagerBytecode, args: [p.roundLength] },
    {
      what: 'Minter',
      abi: minterAbi,
      bytecode: minterBytecode,
      args: [addr.LivepeerToken, p.inflation, p.inflationChange, p.targetBondingRate],
    },
    {
      what: 'BondingManager',
      abi: bondingManagerAbi,
      bytecode: bondingManagerBytecode,
      args: [addr.LivepeerToken, addr.Minter, addr.RoundsManager, p.unbondingPeriod],
    },
    {
      what: 'ServiceRegistry',
      abi: serviceRegistryAbi,
      bytecode: serviceRegistryBytecode,
      args: [addr.BondingManager],
    },
    {
      what: 'TicketBroker',
      abi: ticketBrokerAbi,
      bytecode: ticketBrokerBytecode,
      args: [addr.BondingManager, addr.RoundsManager, addr.Minter, p.unlockPeriod, p.ticketValidityRounds],
    },
  ];
  const deployHashes = [];
  for (const c of creations) {
    options.signal?.throwIfAborted();
    deployHashes.push({
      what: `deploy ${c.what}`,
      hash: await conn.walletClient.deployContract({
        abi: c.abi,
        bytecode: c.bytecode,
        args: c.args,
        nonce: nonce++,
      }),
    });
  }
  const receipts = await Promise.all(
    deployHashes.map(({ what, hash }) => waitForSuccess(conn, hash, what, { ...signalOpt(options.signal) })),
  );
  for (const [i, r] of receipts.entries()) {
    const expected = Object.values(addr)[i];
    if (r.contractAddress?.toLowerCase() !== expected?.toLowerCase()) {
      throw new Error(`deployment address mismatch for ${creations[i]?.what}: nonce moved during deployment`);
    }
  }
  log?.info({ contracts: addr }, 'contracts deployed');

  const call = (
    what: string,
    to: Address,
    abi: Abi,
    functionName: string,
    args: readonly unknown[],
  ): Step => ({
    what,
    to,
    // The wiring list mixes contracts, so it is checked by the deployment tests rather than by viem's types.
    data: encodeFunctionData({ abi, functionName, args } as Parameters<typeof encodeFunctionData>[0]),
  });
  const steps: Step[] = [];
  const genesis = options.genesis ?? [];
  if (genesis.length > 0) {
    steps.push(
      call('token.setMinter(deployer)', addr.LivepeerToken, livepeerTokenAbi, 'setMinter', [deployer]),
    );
    for (const g of genesis) {
      steps.push(
        call(`mint genesis LPT to ${g.address}`, addr.LivepeerToken, livepeerTokenAbi, 'mint', [
          g.address,
          g.amount,
        ]),
      );
    }
  }
  steps.push(
    call('token.setMinter', addr.LivepeerToken, livepeerTokenAbi, 'setMinter', [addr.Minter]),
    call('minter.setBondingManager', addr.Minter, minterAbi, 'setBondingManager', [addr.BondingManager]),
    call('minter.setRoundsManager', addr.Minter, minterAbi, 'setRoundsManager', [addr.RoundsManager]),
    call('roundsManager.setBondingManager', addr.RoundsManager, roundsManagerAbi, 'setBondingManager', [
      addr.BondingManager,
    ]),
    call('roundsManager.setMinter', addr.RoundsManager, roundsManagerAbi, 'setMinter', [addr.Minter]),
    call('roundsManager.setRoundLockAmount', addr.RoundsManager, roundsManagerAbi, 'setRoundLockAmount', [
      p.roundLockAmount,
    ]),
    call('bondingManager.setMinimumStake', addr.BondingManager, bondingManagerAbi, 'setMinimumStake', [
      p.minimumStake,
    ]),
    call(
      'bondingManager.setMaxActiveOrchestrators',
      addr.BondingManager,
      bondingManagerAbi,
      'setMaxActiveOrchestrators',
      [p.maxActiveOrchestrators],
    ),
    call('bondingManager.setFinderFee', addr.BondingManager, bondingManagerAbi, 'setFinderFee', [
      p.finderFee,
    ]),
    call(
      'bondingManager.setMaxFeeBackfillRounds',
      addr.BondingManager,
      bondingManagerAbi,
      'setMaxFeeBackfillRounds',
      [p.maxFeeBackfillRounds],
    ),
    call('bondingManager.setTicketBroker', addr.BondingManager, bondingManagerAbi, 'setTicketBroker', [
      addr.TicketBroker,
    ]),
  );
  await sendBurst(conn, steps, nonce, options.signal);
  nonce += steps.length;
  if (options.initializeFirstRound ?? true) {
    await sendBurst(
      conn,
      [call('roundsManager.initializeRound', addr.RoundsManager, roundsManagerAbi, 'initializeRound', [])],
      nonce,
      options.signal,
    );
  }
  log?.info({ steps: steps.length }, 'contracts wired');

  return {
    version: 1,
    chainId: conn.chain.id,
    deployBlock: Number(receipts[0]?.blockNumber ?? 0n),
    deployer,
    solcVersion: SOLC_VERSION,
    contracts: addr,
    parameters: Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.toString()])),
  };
}

async function sendBurst(conn: SignerConnection, steps: Step[], firstNonce: number, signal?: AbortSignal) {
  const sent = [];
  let nonce = firstNonce;
  for (const s of steps) {
    signal?.throwIfAborted();
    // A fixed gas limit: estimating would run against state the earlier transactions of the burst have not
    // produced yet. These calls are simple setters and mints.
    const hash = await conn.walletClient.sendTransaction({
      to: s.to,
      data: s.data,
      nonce: nonce++,
      gas: 500_000n,
    });
    sent.push({ what: s.what, hash });
  }
  await Promise.all(sent.map(({ what, hash }) => waitForSuccess(conn, hash, what, signalOpt(signal))));
}

function signalOpt(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {};
}
