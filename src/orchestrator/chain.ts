import { type Address, type Hex, zeroAddress } from 'viem';
import { regionCode, serviceId } from '../broadcaster/discovery.js';
import type { SignerConnection } from '../chain/client.js';
import { streamflowContracts } from '../chain/contracts.js';
import type { DeploymentManifest } from '../chain/manifest.js';
import { RoundClock, type RoundStatus, withInitializedRound } from '../chain/round-clock.js';
import { revertErrorName, waitForSuccess } from '../chain/tx.js';
import { sleep } from '../node/abort.js';
import { type Logger, silentLogger } from '../node/logger.js';
import type { OrchestratorState } from './state.js';

/** What `streamflow orchestrator` may do on chain at start. */
export interface RegistrationOptions {
  /**
   * Self-bonded stake to reach, LPT wei: the missing amount is approved and bonded (nothing when the stake,
   * rewards included, is already there). Undefined: bond nothing.
   */
  bond?: bigint | undefined;
  /** Parts per million of rewards kept; with `feeShare`, (re-)registers with these cuts when they differ. */
  rewardCut?: bigint | undefined;
  /** Parts per million of fees passed to delegators. */
  feeShare?: bigint | undefined;
  serviceUri: string;
  services: readonly string[];
  regions: readonly string[];
}

export interface RegistrationResult {
  address: Address;
  bonded: bigint;
  registered: boolean;
  registryUpdated: boolean;
}

/**
 * Brings the orchestrator's on-chain record to what the operator asked for, sending only the transactions
 * that change something: bond, register (or change cuts), and write URI, services and regions to the
 * ServiceRegistry. Safe to run on every start.
 */
export async function ensureRegistered(
  options: RegistrationOptions,
  deps: { conn: SignerConnection; manifest: DeploymentManifest; logger?: Logger; signal?: AbortSignal },
): Promise<RegistrationResult> {
  const { conn, manifest } = deps;
  const log = (deps.logger ?? silentLogger).child({ module: 'orchestrator-chain' });
  const c = streamflowContracts(conn, manifest);
  const me = conn.account.address;
  const wait = (what: string) => (hash: Hex) =>
    waitForSuccess(conn, hash, what, deps.signal ? { signal: deps.signal } : {});
  // Bonding and registering revert in a round nobody initialised yet; initialise it rather than fail.
  const inRound = <T>(write: () => Promise<T>) => withInitializedRound(conn, c, write);
  let bonded = 0n;
  if (options.bond !== undefined && options.bond > 0n) {
    // A target, not an increment: a restart with the same flags must not bond again.
    const d = await c.bondingManager.read.getDelegator([me]);
    const self = d.delegate.toLowerCase() === me.toLowerCase() ? d.bondedAmount : 0n;
    const missing = options.bond > self ? options.bond - self : 0n;
    if (missing > 0n) {
      await c.token.write.approve([manifest.contracts.BondingManager, missing]).then(wait('approve'));
      await inRound(() => c.bondingManager.write.bond([missing, me]).then(wait('bond')));
      bonded = missing;
      log.info({ amount: missing.toString(), target: options.bond.toString() }, 'bonded to self');
    }
  }
  const info = await c.bondingManager.read.getOrchestrator([me]);
  let registered = false;
  if (options.rewardCut !== undefined && options.feeShare !== undefined) {
    const same =
      info.registered &&
      info.pendingRewardCut === options.rewardCut &&
      info.pendingFeeShare === options.feeShare;
    if (!same) {
      // Cuts cannot change in the last part of a round (THREATS.md 11): wait for the next one rather than fail.
      if (await c.roundsManager.read.currentRoundLocked()) {
        log.info('the round is locked for cut changes; registering at the start of the next round');
        const clock = new RoundClock({}, { conn, contracts: c });
        const from = (await clock.read()).round;
        for (;;) {
          await sleep(500, deps.signal);
          const st = await clock.read();
          if (st.round > from && !st.locked) break;
        }
      }
      const cuts = [options.rewardCut, options.feeShare] as const;
      await inRound(() =>
        c.bondingManager.write.registerOrchestrator([...cuts]).then(wait('registerOrchestrator')),
      );
      registered = true;
      log.info(
        { rewardCut: options.rewardCut.toString(), feeShare: options.feeShare.toString() },
        'registered as orchestrator',
      );
    }
  } else if (!info.registered) {
    throw new Error(
      `${me} is not a registered orchestrator: pass --reward-cut and --fee-share (and --bond if it has no stake)`,
    );
  }

  const wantServices = options.services.map((s) => serviceId(s));
  const wantRegions = options.regions.map((r) => regionCode(r));
  const [uri, services, regions] = await Promise.all([
    c.serviceRegistry.read.getServiceURI([me]),
    c.serviceRegistry.read.getServices([me]),
    c.serviceRegistry.read.getRegions([me]),
  ]);
  const sameList = (a: readonly Hex[], b: readonly Hex[]) =>
    a.length === b.length && a.every((x, i) => x.toLowerCase() === b[i]?.toLowerCase());
  let registryUpdated = false;
  if (
    uri !== options.serviceUri ||
    !sameList(
      services.map((s) => s.id),
      wantServices,
    ) ||
    !sameList(regions, wantRegions)
  ) {
    await c.serviceRegistry.write
      .setAll([options.serviceUri, wantServices.map((id) => ({ id, verifier: zeroAddress })), wantRegions])
      .then(wait('serviceRegistry.setAll'));
    registryUpdated = true;
    log.info({ serviceUri: options.serviceUri }, 'service registry updated');
  }
  return { address: me, bonded, registered, registryUpdated };
}

/**
 * Calls `reward()` once in every round in which the orchestrator is active, when the round is initialised
 * (initialising it first if nobody has, when the clock was built with `autoInitialize`). Remembers the last
 * round it rewarded in the node's state so a restart does not try again.
 */
export class RewardService {
  private readonly log: Logger;
  private readonly listener = (s: RoundStatus) => {
    this.running = this.running.then(() => this.tryReward(s.round)).catch(() => undefined);
  };
  private running: Promise<unknown> = Promise.resolve();
  private started = false;

  constructor(
    private readonly deps: {
      conn: SignerConnection;
      manifest: DeploymentManifest;
      clock: RoundClock;
      state?: OrchestratorState;
      logger?: Logger;
      onReward?: (round: bigint) => void;
    },
  ) {
    this.log = (deps.logger ?? silentLogger).child({ module: 'reward' });
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.deps.clock.on('initialized', this.listener);
    const s = this.deps.clock.status;
    if (s?.initialized) this.listener(s);
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.deps.clock.off('initialized', this.listener);
    await this.running;
  }

  /** Calls `reward()` for `round` unless done already or not active. Returns whether it did. */
  async tryReward(round: bigint): Promise<boolean> {
    const { conn, manifest, state } = this.deps;
    if (state && BigInt(state.getMeta('lastRewardRound') ?? '0') >= round) return false;
    const c = streamflowContracts(conn, manifest);
    const me = conn.account.address;
    try {
      const [active, info] = await Promise.all([
        c.bondingManager.read.isActiveOrchestrator([me]),
        c.bondingManager.read.getOrchestrator([me]),
      ]);
      if (!active || info.lastRewardRound >= round) {
        state?.setMeta('lastRewardRound', round.toString());
        return false;
      }
      await waitForSuccess(conn, await c.bondingManager.write.reward(), 'reward');
      state?.setMeta('lastRewardRound', round.toString());
      this.log.info({ round: round.toString() }, 'reward called');
      this.deps.onReward?.(round);
      return true;
    } catch (err) {
      const name = revertErrorName(err);
      if (name === 'RewardAlreadyCalled') {
        state?.setMeta('lastRewardRound', round.toString());
        return false;
      }
      this.log.warn({ round: round.toString(), err, revert: name }, 'reward failed; will retry next round');
      return false;
    }
  }
}
