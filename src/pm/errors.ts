import { StreamflowError } from '../node/errors.js';

/**
 * Why an orchestrator refused a payment or one of its tickets. These strings cross the wire unchanged, so a
 * broadcaster can act on them: fetch fresh params (`InvalidRecipientRandHash`, `TicketParamsExpired`,
 * `InvalidTicketExpiry`), top up (`LowPMBalance`), cancel its unlock (`SenderUnlocking`), back off
 * (`TooManyErrors`), wait for the first round (`RoundNotInitialized`), or fix a bug (the rest).
 */
export const PAYMENT_ERROR_CODES = [
  'InvalidPayment',
  'InvalidSignature',
  'InvalidRecipient',
  'InvalidRecipientRandHash',
  'InvalidSenderNonce',
  'NonceAlreadySeen',
  'TicketParamsExpired',
  'InvalidTicketExpiry',
  'SenderUnlocking',
  'LowPMBalance',
  'TooManyErrors',
  'RoundNotInitialized',
] as const;

export type PaymentErrorCode = (typeof PAYMENT_ERROR_CODES)[number];

export interface PaymentErrorDetails {
  /** The sender the payment claims to come from (lower-case). */
  sender?: string;
  /** Index of the refused ticket in the payment, when the error is about one ticket. */
  index?: number;
  [fact: string]: unknown;
}

/** A payment or ticket refused by the recipient. Branch on `code`; `details` carries the facts. */
export class PaymentError extends StreamflowError<PaymentErrorCode, PaymentErrorDetails> {}

/** Whether a code received over the wire is one of ours. */
export function isPaymentErrorCode(code: string): code is PaymentErrorCode {
  return (PAYMENT_ERROR_CODES as readonly string[]).includes(code);
}

export interface InsufficientCreditDetails {
  sender: string;
  session: string;
  /** What the work costs, wei, when it is known yet (a request without tickets is refused before that). */
  required?: bigint;
}

/**
 * Work refused because the session's ticket credit does not cover it. Crosses the wire. Neither the message
 * nor the details say what the session holds: a balance is nobody's business but the orchestrator's, and
 * a shortfall would give it away.
 */
export class InsufficientCreditError extends StreamflowError<
  'InsufficientCredit',
  InsufficientCreditDetails
> {
  constructor(details: InsufficientCreditDetails) {
    super(
      'InsufficientCredit',
      `Session ${details.session} of ${details.sender} lacks the credit for this work` +
        (details.required === undefined ? '' : ` (${details.required} wei)`) +
        ': send more tickets with the segment.',
      details.required === undefined
        ? { sender: details.sender, session: details.session }
        : { sender: details.sender, session: details.session, required: details.required },
    );
  }
}

/**
 * Why a broadcaster refuses ticket params an orchestrator offered. Local to the sender, but stable so the
 * broadcaster can drop or re-negotiate with that orchestrator.
 */
export type UnsafeTicketParamsCode =
  | 'InvalidTicketParams'
  | 'InvalidRecipient'
  | 'FaceValueTooHigh'
  | 'ExpectedValueTooHigh'
  | 'TicketParamsExpiring'
  | 'TooManyTickets';

/** Ticket params the sender will not sign against. */
export class UnsafeTicketParamsError extends StreamflowError<
  UnsafeTicketParamsCode,
  Record<string, unknown>
> {}

/** The recipient's secret file exists but cannot be used. */
export class SecretFileError extends StreamflowError<'SecretFileInvalid', { path: string }> {}
