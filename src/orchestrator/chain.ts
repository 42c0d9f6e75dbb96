import { type Address, type Hex, zeroAddress } from 'viem';
import { regionCode, serviceId } from '../broadcaster/discovery.js';
import type { SignerConnection } from '../chain/client.js';
import { type StreamflowContracts, streamflowContracts } from '../chain/contracts.js';
import { ChainError } from '../chain/errors.js';
import type { DeploymentManifest } from '../chain/manifest.js';
import { RoundClock, type RoundStatus, withInitializedRound } from '../chain/round-clock.js';
import { revertErrorName, waitForSuccess } from '../chain/tx.js';
import { sleep } from '../node/abort.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { withDefaults } from '../node/options.js';
import { RegistrationError } from './errors.js';
import { defaultRegistrationRetryOptions, type RegistrationRetryOptions } from './options.js';
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
  /** How a cut change gets past the round lock window. */
  retry?: Partial<RegistrationRetryOptions> | undefined;
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
 * ServiceRegistry. Safe to run on every start. A registration or cut change that meets the round lock window
 * (checked against the latest block, landed in a later one) is sent again in the next round's unlocked part,
 * up to `retry.maxAttempts` times; the wait is logged and ends with `deps.signal`.
 * @throws RegistrationError `CutsLocked` after `retry.maxAttempts` attempts that all met the lock,
 *   `CutsAlwaysLocked` when the lock covers the whole round, `NotRegistered` without cuts for a new account
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
      const attempts = await registerAcrossLock([options.rewardCut, options.feeShare], {
        conn,
        contracts: c,
        log,
        retry: withDefaults(defaultRegistrationRetryOptions, options.retry),
        ...(deps.signal ? { signal: deps.signal } : {}),
      });
      registered = true;
      log.info(
        { rewardCut: options.rewardCut.toString(), feeShare: options.feeShare.toString(), attempts },
        'registered as orchestrator',
      );
    }
  } else if (!info.registered) {
    throw new RegistrationError(
      'NotRegistered',
      `${me} is not a registered orchestrator: pass --reward-cut and --fee-share (and --bond if it has no stake)`,
      { address: me },
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

const PPM = 1_000_000n;

interface LockContext {
  conn: SignerConnection;
  contracts: StreamflowContracts<{
    public: SignerConnection['publicClient'];
    wallet: SignerConnection['walletClient'];
  }>;
  log: Logger;
  retry: RegistrationRetryOptions;
  signal?: AbortSignal;
}

/** Where the lock window of the current round starts, with the round's status. */
async function lockWindow(ctx: LockContext, clock: RoundClock) {
  const [st, lockAmount] = await Promise.all([
    clock.read(),
    ctx.contracts.roundsManager.read.roundLockAmount(),
  ]);
  const lockBlocks = (st.roundLength * lockAmount) / PPM;
  return { st, lockBlocks, lockStartBlock: st.roundStartBlock + st.roundLength - lockBlocks };
}

/**
 * Sends `registerOrchestrator(cuts)` in the unlocked part of a round, again in a later round each time it met
 * the lock window (a `CutsLocked` revert at gas estimation, or a receipt that reverted in a locked block).
 * Returns the attempts it took.
 */
async function registerAcrossLock(cuts: readonly [bigint, bigint], ctx: LockContext): Promise<number> {
  const { conn, contracts: c, log, retry, signal } = ctx;
  const clock = new RoundClock({}, { conn, contracts: c });
  let minRound = 0n;
  for (let attempt = 1; ; attempt++) {
    await untilUnlocked(ctx, clock, minRound, attempt);
    try {
      await withInitializedRound(conn, c, () =>
        c.bondingManager.write
          .registerOrchestrator([...cuts])
          .then((hash) => waitForSuccess(conn, hash, 'registerOrchestrator', signal ? { signal } : {})),
      );
      return attempt;
    } catch (err) {
      const lockedIn = await lockedRound(err, ctx);
      if (lockedIn === undefined) throw err;
      if (attempt >= retry.maxAttempts) {
        throw new RegistrationError(
          'CutsLocked',
          `registerOrchestrator met the round lock window ${attempt} times (last in round ${lockedIn}): cut ` +
            'changes are refused near the end of a round and the transaction landed there each time. Check that ' +
            'the chain RPC endpoint answers promptly, then start again (or raise `retry.maxAttempts`).',
          { attempts: attempt, round: lockedIn },
          { cause: err },
        );
      }
      log.warn(
        { attempt, round: lockedIn.toString(), revert: revertErrorName(err) ?? 'reverted' },
        'registerOrchestrator landed in the round lock window; retrying in the next round',
      );
      minRound = lockedIn + 1n;
    }
  }
}

/**
 * Waits until the latest block is in round `minRound` or later and more than `lockMarginBlocks` before its
 * lock window, logging once what it waits for.
 * @throws RegistrationError `CutsAlwaysLocked` when the lock covers the whole round
 */
async function untilUnlocked(ctx: LockContext, clock: RoundClock, minRound: bigint, attempt: number) {
  let logged = false;
  for (;;) {
    const { st, lockBlocks, lockStartBlock } = await lockWindow(ctx, clock);
    const unlocked = st.roundLength - lockBlocks;
    if (unlocked <= 0n) {
      throw new RegistrationError(
        'CutsAlwaysLocked',
        `The round lock covers all ${st.roundLength} blocks of a round (roundLockAmount ${(lockBlocks * PPM) / st.roundLength} ppm): no ` +
          'cut change can ever succeed. The RoundsManager owner must lower setRoundLockAmount.',
        { roundLength: st.roundLength, lockBlocks },
      );
    }
    // A margin the unlocked part cannot hold would wait forever: keep at least its first block usable.
    const margin = BigInt(Math.max(0, ctx.retry.lockMarginBlocks));
    const fit = margin < unlocked ? margin : unlocked - 1n;
    if (st.round >= minRound && st.blockNumber + fit < lockStartBlock) return;
    if (!logged) {
      logged = true;
      const round = st.round >= minRound ? st.round + 1n : minRound;
      ctx.log.info(
        {
          attempt,
          round: st.round.toString(),
          blockNumber: st.blockNumber.toString(),
          lockStartBlock: lockStartBlock.toString(),
          nextRoundStartBlock: (st.roundStartBlock + st.roundLength).toString(),
          waitingForRound: round.toString(),
        },
        `cut changes are locked near the end of round ${st.round}; waiting for round ${round} to register`,
      );
    }
    await sleep(ctx.retry.pollIntervalMs, ctx.signal);
  }
}

/**
 * The round whose lock window `err` met, or undefined for any other failure: a `CutsLocked` revert (at gas
 * estimation, against the pending block: the round of the latest one), or a mined transaction that reverted
 * in a locked block.
 */
async function lockedRound(err: unknown, ctx: LockContext): Promise<bigint | undefined> {
  const rm = ctx.contracts.roundsManager.read;
  if (revertErrorName(err) === 'CutsLocked') return rm.currentRound();
  if (!(err instanceof ChainError) || err.code !== 'TX_REVERTED') return undefined;
  const hash = (err.details as { hash?: Hex }).hash;
  if (!hash) return undefined;
  const receipt = await ctx.conn.publicClient.getTransactionReceipt({ hash });
  const at = { blockNumber: receipt.blockNumber };
  const [locked, round] = await Promise.all([rm.currentRoundLocked(at), rm.currentRound(at)]);
  return locked ? round : undefined;
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
  private retryTimer: NodeJS.Timeout | undefined;
  /** Failed attempts for the round being retried. */
  private attempts = { round: -1n, count: 0 };

  constructor(
    private readonly deps: {
      conn: SignerConnection;
      manifest: DeploymentManifest;
      clock: RoundClock;
      state?: OrchestratorState;
      logger?: Logger;
      onReward?: (round: bigint) => void;
      /**
       * A failed `reward()` (an RPC outage, a dropped transaction) is tried again after this long while the round
       * lasts, at most `maxAttemptsPerRound` times, rather than waiting for the next round and losing this one's
       * inflation. ms. @default 2_000
       */
      retryMs?: number;
      /** @default 30 */
      maxAttemptsPerRound?: number;
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
    clearTimeout(this.retryTimer);
    this.deps.clock.off('initialized', this.listener);
    await this.running;
  }

  private retryLater(round: bigint): boolean {
    if (this.attempts.round !== round) this.attempts = { round, count: 0 };
    this.attempts.count++;
    if (!this.started || this.attempts.count >= (this.deps.maxAttemptsPerRound ?? 30)) return false;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      // The round may have moved on meanwhile: the clock's 'initialized' event then takes the new one.
      if (!this.started || this.deps.clock.status?.round !== round) return;
      this.running = this.running.then(() => this.tryReward(round)).catch(() => undefined);
    }, this.deps.retryMs ?? 2_000);
    this.retryTimer.unref?.();
    return true;
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
      const again = this.retryLater(round);
      this.log.warn(
        { round: round.toString(), err, revert: name, attempt: this.attempts.count },
        again ? 'reward failed; trying again shortly' : 'reward failed; giving up on this round',
      );
      return false;
    }
  }
}
