/** How many errors a sender may cause before the recipient stops looking at its tickets (THREATS.md 10). */
/**
 * Output pixels of the reference segment both sides size a ticket's expected value by: 2 s of 480p30 + 360p30 +
 * 240p30 (44.6 M pixels), rounded up. An orchestrator's default EV is one such segment's fee at its price
 * ({@link referenceExpectedValue}); a broadcaster's default cap is a multiple of it at the price the
 * orchestrator quotes ({@link expectedValueCap}). Both follow the price, so the defaults fit at any price.
 */
export const REFERENCE_SEGMENT_PIXELS = 50_000_000n;

/**
 * Default ticket EV of a recipient selling at `pricePerPixel` (wei per pixel): the fee of one reference
 * segment, so a segment costs one or two tickets. At least 1 wei.
 */
export function referenceExpectedValue(pricePerPixel: bigint): bigint {
  const ev = pricePerPixel * REFERENCE_SEGMENT_PIXELS;
  return ev > 0n ? ev : 1n;
}

export interface ErrorBudgetOptions {
  /** Errors tolerated within `windowMs`; one more and the sender is refused. @default 20 */
  maxErrors: number;
  /** Window over which errors are counted, ms. @default 60_000 */
  windowMs: number;
  /** How long a sender over budget is refused, ms. @default 300_000 */
  refuseMs: number;
}

export const defaultErrorBudgetOptions: Readonly<ErrorBudgetOptions> = Object.freeze({
  maxErrors: 20,
  windowMs: 60_000,
  refuseMs: 300_000,
});

export interface RecipientOptions {
  /**
   * faceValue = redeem gas × gas price × this, so redeeming a ticket costs at most 1/this of its value.
   * @default 100
   */
  txCostMultiplier: number;
  /**
   * Wei a ticket is worth on average (EV); winProb = EV / faceValue. Set it from the price: about the fee of
   * one segment keeps one or two tickets per segment (the orchestrator node's default is
   * {@link referenceExpectedValue} of its price, which a broadcaster's default cap accepts at any price).
   * @default 1_000_000_000_000n (1e12 wei, go-livepeer's)
   */
  expectedValue: bigint;
  /**
   * A ticket must be worth at least this many times the cost of redeeming it: params whose face value the
   * sender's max float caps below that are refused with `LowPMBalance`, and the redemption queue waits for
   * cheaper gas below it. @default 2
   */
  redeemMargin: number;
  /**
   * Rounds after their creation round in which params are still accepted; 0 = only in the creation round. A
   * new round brings new params anyway (with the longest redemption window), and refusals for expired params
   * carry fresh ones, so a round boundary costs an in-flight payment one retry, not the stream. @default 0
   */
  paramsValidityRounds: number;
  /**
   * Rounds after its creation round in which the TicketBroker still pays a ticket; must match the contract
   * and be ≥ `paramsValidityRounds` + 2, so a winning ticket accepted at the last moment still has one whole
   * round to be redeemed. @default 2
   */
  ticketValidityRounds: number;
  /** Wall-clock life of params, ms. @default 600_000 */
  paramsTtlMs: number;
  /** Params with less life left than this are replaced in the next reply, ms. @default 120_000 */
  reissueBeforeMs: number;
  /** New params are issued when the target face value moves by more than this, basis points. @default 1_000 */
  reissueOnChangeBps: number;
  /** Gas price, redeem gas and the current round are re-read from the chain after this, ms. @default 15_000 */
  chainCacheMs: number;
  /** A sender's deposit and reserve are re-read after this, ms (events refresh them sooner). @default 60_000 */
  senderInfoTtlMs: number;
  /**
   * Nonces remembered per recipientRand above a moving floor; older nonces count as seen. Senders count up,
   * so only reordering deeper than half of this is refused. @default 1_024
   */
  nonceWindow: number;
  /**
   * How often the highest nonce seen per recipientRand is written to SQLite, ms. After a crash, tickets
   * accepted within the last interval could be replayed once for credit (never for an extra lottery draw:
   * the same signature and rand give the same outcome). @default 1_000
   */
  nonceCheckpointMs: number;
  /** Tickets in one payment, at most. @default 600 */
  maxTicketsPerPayment: number;
  errorBudget: ErrorBudgetOptions;
}

export const defaultRecipientOptions: Readonly<RecipientOptions> = Object.freeze({
  txCostMultiplier: 100,
  expectedValue: 1_000_000_000_000n,
  redeemMargin: 2,
  paramsValidityRounds: 0,
  ticketValidityRounds: 2,
  paramsTtlMs: 600_000,
  reissueBeforeMs: 120_000,
  reissueOnChangeBps: 1_000,
  chainCacheMs: 15_000,
  senderInfoTtlMs: 60_000,
  nonceWindow: 1_024,
  nonceCheckpointMs: 1_000,
  maxTicketsPerPayment: 600,
  errorBudget: defaultErrorBudgetOptions,
});

export interface RedemptionQueueOptions {
  /**
   * Redeem only tickets whose face value is at least this many times the transaction cost — except in a
   * ticket's last redeemable round, where any profit beats losing it. @default 2
   */
  redeemMargin: number;
  /** Tickets per redemption transaction, at most. @default 20 */
  maxBatch: number;
  /** Rounds after its creation round in which the TicketBroker pays a ticket (as the contract). @default 2 */
  ticketValidityRounds: number;
  /** The queue re-reads gas price and the round, and looks for due tickets, at least this often, ms. @default 5_000 */
  pollIntervalMs: number;
  /** First retry delay after a failed redemption, doubled each attempt, ms. @default 2_000 */
  retryBaseMs: number;
  /** Longest retry delay, ms. @default 300_000 */
  retryMaxMs: number;
}

export const defaultRedemptionQueueOptions: Readonly<RedemptionQueueOptions> = Object.freeze({
  redeemMargin: 2,
  maxBatch: 20,
  ticketValidityRounds: 2,
  pollIntervalMs: 5_000,
  retryBaseMs: 2_000,
  retryMaxMs: 300_000,
});

export interface SenderOptions {
  /** Face values above deposit / this are refused: one winning ticket may take at most that share. @default 1 */
  depositMultiplier: number;
  /**
   * Hard cap on a ticket's expected value, wei: params above it are refused (`ExpectedValueTooHigh`). Unset
   * (the default), the cap follows the orchestrator's quoted price, see {@link expectedValueCap}.
   */
  maxExpectedValue: bigint | undefined;
  /**
   * Without a hard cap, params whose EV exceeds this many reference segments' fees at the quoted price
   * ({@link REFERENCE_SEGMENT_PIXELS}) are refused; an orchestrator's default EV is one. @default 2
   */
  maxExpectedValueSegments: number;
  /**
   * Without a hard cap, an EV up to this is accepted whatever the price, wei: a prepayment this small is no
   * risk, and an orchestrator pricing near zero still needs a face value that pays for its redemption.
   * @default 100_000_000_000_000n (1e14)
   */
  expectedValueFloor: bigint;
  /** Params with less wall-clock life left than this are refused, ms. @default 10_000 */
  minParamsLifetimeMs: number;
  /** A payment needing more tickets than this is refused (`TooManyTickets`). @default 600 */
  maxTicketsPerPayment: number;
}

export const defaultSenderOptions: Readonly<SenderOptions> = Object.freeze({
  depositMultiplier: 1,
  maxExpectedValue: undefined,
  maxExpectedValueSegments: 2,
  expectedValueFloor: 100_000_000_000_000n,
  minParamsLifetimeMs: 10_000,
  maxTicketsPerPayment: 600,
});

/**
 * The highest ticket EV a sender accepts from an orchestrator quoting `pricePerPixel` (wei per pixel; unknown:
 * the floor alone): `maxExpectedValue` when set, else the larger of `expectedValueFloor` and
 * `maxExpectedValueSegments` reference segments' fees at the price. A broadcaster's price ceiling therefore
 * bounds it too: no offer above `maxPricePerPixel` is used.
 */
export function expectedValueCap(
  options: Pick<SenderOptions, 'maxExpectedValue' | 'maxExpectedValueSegments' | 'expectedValueFloor'>,
  pricePerPixel?: bigint,
): bigint {
  if (options.maxExpectedValue !== undefined) return options.maxExpectedValue;
  if (pricePerPixel === undefined || pricePerPixel <= 0n) return options.expectedValueFloor;
  const floor: bigint = options.expectedValueFloor;
  const relative: bigint = mulRatio(
    pricePerPixel * REFERENCE_SEGMENT_PIXELS,
    options.maxExpectedValueSegments,
  );
  // bigints: Math.max does not take them.
  if (relative > floor) return relative;
  return floor;
}

export interface CreditLedgerOptions {
  /** A session without credit or debit for this long is forgotten, ms. @default 3_600_000 */
  sessionIdleMs: number;
}

export const defaultCreditLedgerOptions: Readonly<CreditLedgerOptions> = Object.freeze({
  sessionIdleMs: 3_600_000,
});

export { withDefaults } from '../node/options.js';

/** `value × ratio` for a bigint and a positive decimal ratio, rounded up (to 1/10_000). */
export function mulRatio(value: bigint, ratio: number): bigint {
  const scaled = BigInt(Math.round(ratio * 10_000));
  return (value * scaled + 9_999n) / 10_000n;
}
