import { type Logger, silentLogger } from '../node/logger.js';
import { type PMMetrics, setQueueGauge } from './metrics.js';
import {
  defaultRedemptionQueueOptions,
  mulRatio,
  type RedemptionQueueOptions,
  withDefaults,
} from './options.js';
import type { PMStore, StoredWinningTicket } from './store.js';
import type { RecipientChain, SignedTicket, TicketRedeemer } from './types.js';

export type SettledOutcome = 'redeemed' | 'failed' | 'expired';

export type RedemptionStore = Pick<
  PMStore,
  | 'resetSubmitted'
  | 'expire'
  | 'due'
  | 'nextDueAt'
  | 'markSubmitted'
  | 'markRedeemed'
  | 'markRetry'
  | 'markFailed'
  | 'counts'
>;

export interface RedemptionQueueDeps {
  store: RedemptionStore;
  chain: Pick<RecipientChain, 'currentRound' | 'gasPrice' | 'estimateRedeemGas'>;
  redeemer: TicketRedeemer;
  logger?: Logger;
  metrics?: PMMetrics;
  now?: () => number;
  /** A ticket left the queue for good; the sender monitor stops counting it as pending. */
  onSettled?: (ticket: StoredWinningTicket, outcome: SettledOutcome) => void;
}

/** What one pass over the queue did. */
export interface QueuePass {
  /** Redemption transactions (batches) sent. */
  batches: number;
  redeemed: number;
  retried: number;
  failed: number;
  expired: number;
  /** Due tickets left pending because gas makes them not worth redeeming yet. */
  waiting: number;
}

function toSigned(t: StoredWinningTicket): SignedTicket {
  return {
    ticket: t.ticket,
    signature: t.signature,
    recipientRand: t.recipientRand,
    ticketHash: t.ticketHash,
  };
}

/**
 * Cashes stored winning tickets. A pass expires what the TicketBroker would no longer pay (logged, counted as
 * lost value, status `expired`), then redeems due tickets whose face value is at least `redeemMargin` × the
 * current transaction cost, soonest-to-expire first, up to `maxBatch` per transaction. Failures are retried
 * with exponential backoff until the ticket pays, is rejected for good, or expires; nothing leaves the queue
 * without a log line and a status. All state is in SQLite, so a restart resumes where the crash left off.
 */
export class RedemptionQueue {
  readonly options: RedemptionQueueOptions;
  private readonly deps: RedemptionQueueDeps;
  private readonly log: Logger;
  private readonly now: () => number;
  private running: Promise<QueuePass> | undefined;
  private wake: (() => void) | undefined;
  private notified = false;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private status: 'idle' | 'started' | 'closing' | 'closed' = 'idle';

  constructor(options: Partial<RedemptionQueueOptions>, deps: RedemptionQueueDeps) {
    this.options = withDefaults(defaultRedemptionQueueOptions, options);
    this.deps = deps;
    this.log = (deps.logger ?? silentLogger).child({ module: 'pm-redemption' });
    this.now = deps.now ?? Date.now;
  }

  /** Puts tickets a crash left `submitted` back in line and starts the loop. Idempotent. */
  start(): void {
    if (this.status === 'started') return;
    if (this.status !== 'idle') throw new Error('RedemptionQueue: cannot restart after stop()');
    const reset = this.deps.store.resetSubmitted();
    if (reset > 0)
      this.log.warn({ count: reset }, 'tickets were being redeemed at the last stop; retrying them');
    this.controller = new AbortController();
    this.loop = this.run(this.controller.signal);
    this.status = 'started';
  }

  /** Stops the loop, abandoning (to the next start) a redemption in flight. Idempotent. */
  async stop(): Promise<void> {
    if (this.status !== 'started') {
      this.status = 'closed';
      return;
    }
    this.status = 'closing';
    this.controller?.abort(new Error('RedemptionQueue stopped'));
    this.wake?.();
    await this.loop;
    this.status = 'closed';
  }

  /** New winning tickets were stored: run a pass now. */
  notify(): void {
    this.notified = true;
    this.wake?.();
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.notified = false;
      let failed = false;
      try {
        await this.processOnce(signal);
      } catch (err) {
        if (signal.aborted) return;
        failed = true;
        this.log.warn({ err }, 'redemption pass failed; retrying');
      }
      if (this.notified) continue;
      const next = this.deps.store.nextDueAt();
      // A pass that failed before reaching the tickets (the chain unreachable) leaves them due: wait a poll
      // interval rather than retry at once, in a loop, for the whole outage.
      const untilDue = failed
        ? this.options.pollIntervalMs
        : next === undefined
          ? Number.POSITIVE_INFINITY
          : Math.max(0, next - this.now());
      await this.idle(Math.min(this.options.pollIntervalMs, untilDue), signal);
    }
  }

  /** Resolves after `ms`, on `notify()`, or on abort; removes its timer and listener either way. */
  private idle(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
      if (this.notified || signal.aborted) done();
    });
  }

  /** One pass over the queue; concurrent calls share the pass in progress. */
  processOnce(signal?: AbortSignal): Promise<QueuePass> {
    if (this.running) return this.running;
    this.running = this.pass(signal).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private settle(t: StoredWinningTicket, outcome: SettledOutcome): void {
    try {
      this.deps.onSettled?.(t, outcome);
    } catch (err) {
      this.log.error({ err }, 'onSettled hook failed');
    }
  }

  private async pass(signal?: AbortSignal): Promise<QueuePass> {
    const { store, chain, metrics } = this.deps;
    const out: QueuePass = { batches: 0, redeemed: 0, retried: 0, failed: 0, expired: 0, waiting: 0 };
    const round = await chain.currentRound(signal);
    for (const t of store.expire(round.round, this.now())) {
      out.expired++;
      metrics?.lostFaceValue.inc({ reason: 'expired' }, Number(t.ticket.faceValue));
      this.log.warn(
        {
          ticketHash: t.ticketHash,
          sender: t.ticket.sender,
          faceValue: t.ticket.faceValue.toString(),
          expiresRound: t.expiresRound.toString(),
          attempts: t.attempts,
          lastError: t.lastError,
        },
        'winning ticket expired unredeemed; its value is lost',
      );
      this.settle(t, 'expired');
    }
    const [gasPrice, redeemGas] = await Promise.all([
      chain.gasPrice(signal),
      chain.estimateRedeemGas(signal),
    ]);
    const txCost = gasPrice * redeemGas;
    const minFaceValue = mulRatio(txCost, this.options.redeemMargin);
    const due = store.due(this.now(), 1_000);
    const eligible = due.filter(
      (t) =>
        t.ticket.faceValue >= minFaceValue ||
        (t.expiresRound - 1n <= round.round && t.ticket.faceValue > txCost),
    );
    out.waiting = due.length - eligible.length;
    if (out.waiting > 0) {
      this.log.info(
        { waiting: out.waiting, minFaceValue: minFaceValue.toString(), gasPrice: gasPrice.toString() },
        'winning tickets wait for cheaper gas',
      );
    }
    for (let i = 0; i < eligible.length && !signal?.aborted; i += this.options.maxBatch) {
      await this.redeem(eligible.slice(i, i + this.options.maxBatch), out, signal);
    }
    setQueueGauge(metrics, store.counts());
    return out;
  }

  private async redeem(batch: StoredWinningTicket[], out: QueuePass, signal?: AbortSignal): Promise<void> {
    const { store, metrics } = this.deps;
    // Durable before the transaction: after a crash these are retried, and a landed one reports
    // `alreadyRedeemed` instead of vanishing.
    store.markSubmitted(batch.map((t) => t.id));
    out.batches++;
    metrics?.redemptionTransactions.inc();
    let results: Awaited<ReturnType<TicketRedeemer['redeemBatch']>>;
    try {
      results = await this.deps.redeemer.redeemBatch(batch.map(toSigned), signal);
      if (results.length !== batch.length) {
        throw new Error(`redeemer returned ${results.length} results for ${batch.length} tickets`);
      }
    } catch (err) {
      if (signal?.aborted) return; // left `submitted`; the next start retries them
      // The redeemer's errors are one line (see TicketRedeemer); the whole error object of a chain client can
      // be kilobytes, so it is not logged.
      const reason = err instanceof Error ? err.message : String(err);
      if ((err as { code?: unknown } | undefined)?.code === 'ROUND_NOT_INITIALIZED') {
        this.log.info({ count: batch.length }, 'waiting for the round to be initialised to redeem');
      } else {
        this.log.warn({ reason, count: batch.length }, 'redemption transaction failed; will retry');
      }
      for (const t of batch) this.retry(t, reason, out);
      return;
    }
    const now = this.now();
    for (let i = 0; i < batch.length; i++) {
      const t = batch[i] as StoredWinningTicket;
      const r = results[i] as (typeof results)[number];
      switch (r.status) {
        case 'redeemed':
        case 'alreadyRedeemed':
          store.markRedeemed(t.id, r.txHash ?? null, now);
          out.redeemed++;
          metrics?.redemptions.inc({ result: r.status });
          metrics?.redeemedFaceValue.inc(Number(t.ticket.faceValue));
          this.log.info(
            {
              ticketHash: t.ticketHash,
              txHash: r.txHash,
              faceValue: t.ticket.faceValue.toString(),
              result: r.status,
            },
            'winning ticket redeemed',
          );
          this.settle(t, 'redeemed');
          break;
        case 'retry':
          this.retry(t, r.reason, out);
          break;
        case 'rejected':
          store.markFailed(t.id, r.reason, now);
          out.failed++;
          metrics?.redemptions.inc({ result: 'rejected' });
          metrics?.lostFaceValue.inc({ reason: 'rejected' }, Number(t.ticket.faceValue));
          this.log.error(
            {
              ticketHash: t.ticketHash,
              sender: t.ticket.sender,
              faceValue: t.ticket.faceValue.toString(),
              reason: r.reason,
            },
            'winning ticket rejected by the TicketBroker; its value is lost',
          );
          this.settle(t, 'failed');
          break;
      }
    }
  }

  private retry(t: StoredWinningTicket, reason: string, out: QueuePass): void {
    const attempts = t.attempts + 1;
    const delay = Math.min(this.options.retryBaseMs * 2 ** (attempts - 1), this.options.retryMaxMs);
    this.deps.store.markRetry(t.id, this.now() + delay, reason);
    out.retried++;
    this.deps.metrics?.redemptions.inc({ result: 'retry' });
  }
}
