import { join } from 'node:path';
import { type Logger, silentLogger } from '../node/logger.js';
import type { PMMetrics } from './metrics.js';
import type { RedemptionQueueOptions } from './options.js';
import { Recipient, type RecipientInit } from './recipient.js';
import { RedemptionQueue } from './redemption-queue.js';
import { loadOrCreateSecret } from './secret.js';
import { PMStore } from './store.js';
import type { RecipientChain, TicketRedeemer } from './types.js';

export interface RecipientEngineInit extends RecipientInit {
  /** Directory holding `pm.db` (SQLite) and `pm.secret` (the recipientRand secret, 0600). */
  dataDir: string;
  /** Queue options; `redeemMargin` and `ticketValidityRounds` default to the recipient's. */
  queue?: Partial<RedemptionQueueOptions>;
}

export interface RecipientEngineDeps {
  chain: RecipientChain;
  redeemer: TicketRedeemer;
  logger?: Logger;
  metrics?: PMMetrics;
  now?: () => number;
}

/**
 * The orchestrator's payment subsystem wired together: store, secret, recipient (with its sender monitor
 * and credit ledger) and redemption queue, started in that order and stopped in reverse.
 */
export class RecipientEngine {
  readonly store: PMStore;
  readonly recipient: Recipient;
  readonly queue: RedemptionQueue;
  private readonly log: Logger;
  private status: 'idle' | 'started' | 'closing' | 'closed' = 'idle';

  constructor(init: RecipientEngineInit, deps: RecipientEngineDeps) {
    const { dataDir, queue: queueOptions, ...recipientInit } = init;
    const logger = deps.logger ?? silentLogger;
    this.log = logger.child({ module: 'pm' });
    const secret = loadOrCreateSecret(join(dataDir, 'pm.secret'), logger);
    this.store = new PMStore(join(dataDir, 'pm.db'), logger);
    const common = {
      logger,
      ...(deps.metrics ? { metrics: deps.metrics } : {}),
      ...(deps.now ? { now: deps.now } : {}),
    };
    let recipient: Recipient | undefined;
    this.queue = new RedemptionQueue(
      {
        ...(recipientInit.redeemMargin !== undefined ? { redeemMargin: recipientInit.redeemMargin } : {}),
        ...(recipientInit.ticketValidityRounds !== undefined
          ? { ticketValidityRounds: recipientInit.ticketValidityRounds }
          : {}),
        ...queueOptions,
      },
      {
        store: this.store,
        chain: deps.chain,
        redeemer: deps.redeemer,
        onSettled: (t, outcome) => {
          recipient?.monitor.settlePending(t.ticket.sender, t.ticket.faceValue);
          // A payment moved the sender's deposit and reserve: re-read them rather than wait for the TTL.
          if (outcome === 'redeemed') recipient?.monitor.invalidate(t.ticket.sender);
        },
        ...common,
      },
    );
    recipient = new Recipient(recipientInit, {
      chain: deps.chain,
      store: this.store,
      secret,
      queue: this.queue,
      ...common,
    });
    this.recipient = recipient;
  }

  /** Starts the recipient then the queue. Idempotent; a failed start stops what started. */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.status === 'started') return;
    if (this.status !== 'idle') throw new Error('RecipientEngine: cannot restart after stop()');
    try {
      await this.recipient.start(signal);
      this.queue.start();
      this.status = 'started';
      this.log.info({ recipient: this.recipient.address }, 'payment engine started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops the queue, the recipient (last nonce checkpoint), then closes the store. Idempotent. */
  async stop(): Promise<void> {
    if (this.status === 'closing' || this.status === 'closed') return;
    this.status = 'closing';
    await this.queue.stop();
    await this.recipient.stop();
    this.store.close();
    this.status = 'closed';
  }
}
