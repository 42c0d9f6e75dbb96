import { join } from 'node:path';
import { parseEther } from 'viem';
import { BroadcasterNode, type BroadcasterNodeOptions } from '../broadcaster/node.js';
import { streamflowContracts } from '../chain/contracts.js';
import { type Devnet, type DevnetOptions, startDevnet } from '../chain/devnet.js';
import { withInitializedRound } from '../chain/round-clock.js';
import { mineToNextRound } from '../chain/staking.js';
import { waitForSuccess } from '../chain/tx.js';
import type { MediaTools } from '../media/ffmpeg.js';
import { Lifecycle } from '../node/lifecycle.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { OrchestratorNode, type OrchestratorNodeOptions } from '../orchestrator/node.js';
import { RemoteTranscoder } from '../transcoder/transcoder.js';

/** One orchestrator of a local network. */
export interface OrchestratorSpec {
  name: string;
  /** Wei per output pixel. */
  pricePerPixel: bigint;
  regions?: string[];
  /** Self-bonded LPT wei. @default 1000 LPT */
  stake?: bigint;
  rewardCut?: bigint;
  feeShare?: bigint;
  /** Remote transcoders started for it (its local transcoding is then off). @default 0 */
  remoteTranscoders?: number;
  /** Extra node options (pm, pool …). */
  node?: Partial<OrchestratorNodeOptions>;
}

export interface DelegatorSpec {
  /** Orchestrator name it bonds to. */
  to: string;
  amount: bigint;
}

export interface NetworkSpec {
  orchestrators: OrchestratorSpec[];
  delegators?: DelegatorSpec[];
  broadcaster: Omit<BroadcasterNodeOptions, 'orchestrators'> & { staticList?: boolean };
  devnet?: DevnetOptions;
  /** Directory for the nodes' data (one folder per orchestrator). */
  dataDir: string;
}

export interface RunningOrchestrator {
  spec: OrchestratorSpec;
  node: OrchestratorNode;
  transcoders: RemoteTranscoder[];
  accountIndex: number;
}

export interface Network {
  devnet: Devnet;
  orchestrators: RunningOrchestrator[];
  broadcaster: BroadcasterNode;
  /** Account indices of the delegators, in spec order. */
  delegators: number[];
  stop(): Promise<void>;
}

/**
 * A whole Streamflow network on one machine: devnet, orchestrators (bonded, registered, in the active set),
 * their remote transcoders, delegators and a funded broadcaster. Used by `streamflow demo`, the end-to-end
 * tests and the e2e benchmark. One {@link Lifecycle}: anything started is stopped again (in reverse) when a later
 * step fails or `signal` aborts the start.
 */
export async function startNetwork(
  spec: NetworkSpec,
  deps: { logger?: Logger; tools?: MediaTools; signal?: AbortSignal } = {},
): Promise<Network> {
  const logger = deps.logger ?? silentLogger;
  const log = logger.child({ module: 'network' });
  const nO = spec.orchestrators.length;
  const nD = spec.delegators?.length ?? 0;
  const bIndex = 1 + nO + nD;
  const life = new Lifecycle({ name: 'network' }, { logger });
  const started: RunningOrchestrator[] = [];
  const delegators: number[] = [];
  let devnet: Devnet | undefined;
  let broadcaster: BroadcasterNode | undefined;
  // Each part is deferred as soon as it exists: the lifecycle closes it (in reverse) when a later step fails.
  await life.start(async (signal) => {
    const chain = await startDevnet({ accounts: bIndex + 1, ...spec.devnet }, { logger, signal });
    devnet = chain;
    life.defer('devnet', () => chain.stop());
    for (const [i, o] of spec.orchestrators.entries()) {
      const accountIndex = 1 + i;
      const remote = o.remoteTranscoders ?? 0;
      const secret = remote > 0 ? `demo-secret-${o.name}` : undefined;
      const node = new OrchestratorNode(
        {
          dataDir: join(spec.dataDir, o.name),
          pricePerPixel: o.pricePerPixel,
          regions: o.regions ?? [],
          registration: {
            bond: o.stake ?? parseEther('1000'),
            rewardCut: o.rewardCut ?? 100_000n,
            feeShare: o.feeShare ?? 500_000n,
          },
          ...o.node,
          pool: { ...(remote > 0 ? { localCapacity: 0, secret } : {}), ...o.node?.pool },
        },
        {
          conn: chain.signer(accountIndex),
          manifest: chain.manifest,
          logger: logger.child({ node: o.name }),
          ...(deps.tools ? { tools: deps.tools } : {}),
        },
      );
      const running: RunningOrchestrator = { spec: o, node, transcoders: [], accountIndex };
      started.push(running);
      life.defer(`orchestrator ${o.name}`, () => node.stop());
      await node.start(signal);
      for (let t = 0; t < remote; t++) {
        const transcoder = new RemoteTranscoder(
          { orchestrator: node.url, secret: secret as string, capacity: 1 },
          { logger: logger.child({ node: `${o.name}-t${t}` }), ...(deps.tools ? { tools: deps.tools } : {}) },
        );
        running.transcoders.push(transcoder);
        life.defer(`transcoder ${o.name}-t${t}`, () => transcoder.stop());
        transcoder.start();
      }
    }
    for (const [i, d] of (spec.delegators ?? []).entries()) {
      const index = 1 + nO + i;
      const target = started.find((o) => o.spec.name === d.to);
      if (!target) throw new RangeError(`delegator ${i} bonds to unknown orchestrator ${d.to}`);
      const conn = chain.signer(index);
      const c = streamflowContracts(conn, chain.manifest);
      await waitForSuccess(
        conn,
        await c.token.write.approve([chain.manifest.contracts.BondingManager, d.amount]),
        'approve',
      );
      await withInitializedRound(conn, c, async () =>
        waitForSuccess(conn, await c.bondingManager.write.bond([d.amount, target.node.address]), 'bond'),
      );
      delegators.push(index);
    }
    // The active set is fixed at a round's start: move to the next round so every orchestrator is active.
    await mineToNextRound(chain.signer(0), chain.manifest);
    for (const o of started) await o.node.syncChain();

    const b = spec.broadcaster;
    const { staticList, ...bOptions } = b;
    const node = new BroadcasterNode(
      {
        ...bOptions,
        ...(staticList ? { orchestrators: started.map((o) => o.node.url) } : {}),
      },
      {
        conn: chain.signer(bIndex),
        manifest: chain.manifest,
        privateKey: (chain.accounts[bIndex] as { privateKey: `0x${string}` }).privateKey,
        logger: logger.child({ node: 'broadcaster' }),
        ...(deps.tools ? { tools: deps.tools } : {}),
      },
    );
    broadcaster = node;
    life.defer('broadcaster', () => node.stop());
    await node.start();
  }, deps.signal);
  log.info({ orchestrators: started.length, delegators: delegators.length }, 'network started');
  return {
    devnet: devnet as Devnet,
    orchestrators: started,
    broadcaster: broadcaster as BroadcasterNode,
    delegators,
    stop: () => life.stop(),
  };
}
