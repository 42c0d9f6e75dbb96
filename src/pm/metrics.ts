import { Counter, Gauge, type Registry } from 'prom-client';
import type { WinningTicketStatus } from './store.js';

/**
 * Prometheus metrics of the payment engine. Optional in every deps object. Wei amounts are counted as
 * floats: exact to 2^53 wei (0.009 ETH) per increment, good enough for dashboards; SQLite holds exact sums.
 */
export interface PMMetrics {
  /** Tickets received by the recipient, by result (`accepted` or an error code). */
  ticketsReceived: Counter<'result'>;
  winningTickets: Counter;
  winningFaceValue: Counter;
  /** Senders refused after exceeding their error budget. */
  sendersRefused: Counter;
  /** Ticket signature recoveries (secp256k1): what a flood of invalid tickets costs (THREATS.md 10). */
  signatureRecoveries?: Counter;
  /** Redemption outcomes per ticket. */
  redemptions: Counter<'result'>;
  redemptionTransactions: Counter;
  redeemedFaceValue: Counter;
  /** Face value of winning tickets that will never be paid, by reason (`expired`, `rejected`). */
  lostFaceValue: Counter<'reason'>;
  queueTickets: Gauge<'status'>;
  /** Tickets signed by the sender. */
  ticketsSent: Counter;
  /** Params the sender refused, by code. */
  paramsRefused: Counter<'code'>;
}

/** Registers the payment metrics in `registry`. */
export function createPMMetrics(registry: Registry): PMMetrics {
  const registers = [registry];
  return {
    ticketsReceived: new Counter({
      name: 'streamflow_pm_tickets_received_total',
      help: 'Tickets received by the recipient, by result (accepted or error code)',
      labelNames: ['result'],
      registers,
    }),
    winningTickets: new Counter({
      name: 'streamflow_pm_winning_tickets_total',
      help: 'Winning tickets accepted and stored',
      registers,
    }),
    winningFaceValue: new Counter({
      name: 'streamflow_pm_winning_face_value_wei_total',
      help: 'Face value of winning tickets accepted, wei',
      registers,
    }),
    sendersRefused: new Counter({
      name: 'streamflow_pm_senders_refused_total',
      help: 'Times a sender exceeded its error budget and was refused for a while',
      registers,
    }),
    signatureRecoveries: new Counter({
      name: 'streamflow_pm_signature_recoveries_total',
      help: 'Ticket signature recoveries performed by the recipient',
      registers,
    }),
    redemptions: new Counter({
      name: 'streamflow_pm_redemptions_total',
      help: 'Winning ticket redemption outcomes',
      labelNames: ['result'],
      registers,
    }),
    redemptionTransactions: new Counter({
      name: 'streamflow_pm_redemption_transactions_total',
      help: 'Redemption transactions (batches) sent',
      registers,
    }),
    redeemedFaceValue: new Counter({
      name: 'streamflow_pm_redeemed_face_value_wei_total',
      help: 'Face value of winning tickets redeemed, wei',
      registers,
    }),
    lostFaceValue: new Counter({
      name: 'streamflow_pm_lost_face_value_wei_total',
      help: 'Face value of winning tickets that will never be paid, wei',
      labelNames: ['reason'],
      registers,
    }),
    queueTickets: new Gauge({
      name: 'streamflow_pm_redemption_queue_tickets',
      help: 'Stored winning tickets by status',
      labelNames: ['status'],
      registers,
    }),
    ticketsSent: new Counter({
      name: 'streamflow_pm_tickets_sent_total',
      help: 'Tickets signed by the sender',
      registers,
    }),
    paramsRefused: new Counter({
      name: 'streamflow_pm_params_refused_total',
      help: 'Ticket params the sender refused, by code',
      labelNames: ['code'],
      registers,
    }),
  };
}

/** Sets the queue gauge from the store's counts per status. */
export function setQueueGauge(
  metrics: PMMetrics | undefined,
  counts: Record<WinningTicketStatus, number>,
): void {
  if (!metrics) return;
  for (const [status, count] of Object.entries(counts)) metrics.queueTickets.set({ status }, count);
}
