import type { Address, Hex } from 'viem';
import type { Ticket } from './ticket.js';

/**
 * What an orchestrator asks a broadcaster to sign against: everything in a ticket but the sender's nonce.
 * Fresh params travel with every reply. They are bound, through `recipientRandHash`, to the sender and to
 * every field here (recipientRand = HMAC(secret, seed ‖ fields)), so a sender that edits any field gets
 * `InvalidRecipientRandHash`, and a restarted orchestrator can still check params it issued before.
 */
export interface TicketParams {
  recipient: Address;
  /** The sender the params were issued to. */
  sender: Address;
  /** Wei paid by a winning ticket. */
  faceValue: bigint;
  /** Win probability as a fraction of 2^256. */
  winProb: bigint;
  /** keccak256(uint256 recipientRand): the recipient's commitment. */
  recipientRandHash: Hex;
  /** 32 random bytes; the sender echoes them so the recipient can re-derive recipientRand. */
  seed: Hex;
  creationRound: bigint;
  creationRoundBlockHash: Hex;
  /** Last round in which the recipient accepts tickets under these params. */
  expirationRound: bigint;
  /** Unix time (ms) after which the recipient refuses tickets under these params. */
  expiresAt: number;
}

/** One ticket of a payment: what varies between tickets sharing the same params. */
export interface PaymentTicket {
  senderNonce: bigint;
  /** 65-byte r ‖ s ‖ v signature of the ticket's EIP-712 digest; hex or raw bytes. */
  signature: Hex | Uint8Array;
}

/** Tickets sent with one segment, all under the same params. */
export interface Payment {
  sender: Address;
  params: TicketParams;
  tickets: PaymentTicket[];
}

/** The ticket a payment entry stands for. */
export function paymentTicket(params: TicketParams, senderNonce: bigint): Ticket {
  return {
    recipient: params.recipient,
    sender: params.sender,
    faceValue: params.faceValue,
    winProb: params.winProb,
    senderNonce,
    recipientRandHash: params.recipientRandHash,
    creationRound: params.creationRound,
    creationRoundBlockHash: params.creationRoundBlockHash,
  };
}

/** A round and the hash of the block it started at, as the RoundsManager records it. */
export interface RoundInfo {
  round: bigint;
  blockHash: Hex;
}

/** A sender's funds in the TicketBroker, as seen by one recipient. */
export interface SenderInfo {
  /** Wei. Shared by every orchestrator the sender pays, so no orchestrator can count on it. */
  deposit: bigint;
  /** Wei, the whole reserve. */
  reserve: bigint;
  /**
   * Wei of the reserve this recipient could still claim this round (its share, reserve / active
   * orchestrators, minus what it already claimed). The only money guaranteed to this recipient.
   */
  claimableReserve: bigint;
  /** Round from which the sender may withdraw; 0 when it is not unlocking. */
  withdrawRound: bigint;
}

/**
 * What the recipient side needs from the chain. The lead implements it over the TicketBroker and
 * RoundsManager clients; tests use a fake. None of these is called per ticket: results are cached.
 */
export interface RecipientChain {
  /**
   * The round tickets are created in and judged against: the last initialised round and the hash of its start
   * block. Not the round the block number is in: that one has no block hash until someone initialises it, and a
   * ticket carrying the zero hash can never be redeemed (nor can any ticket until the round is initialised).
   */
  currentRound(signal?: AbortSignal): Promise<RoundInfo>;
  /** The sender's deposit, reserve, the part of the reserve `recipient` may claim, and its unlock state. */
  senderInfo(sender: Address, recipient: Address, signal?: AbortSignal): Promise<SenderInfo>;
  /** Gas price a redemption transaction would pay now, wei per gas. */
  gasPrice(signal?: AbortSignal): Promise<bigint>;
  /** Gas to redeem one winning ticket, estimated against the deployed TicketBroker (not a constant). */
  estimateRedeemGas(signal?: AbortSignal): Promise<bigint>;
}

/** A winning ticket with everything the TicketBroker needs to pay it. */
export interface SignedTicket {
  ticket: Ticket;
  /** 65-byte signature. */
  signature: Hex;
  /** The revealed recipientRand, as uint256. */
  recipientRand: bigint;
  /** EIP-712 digest: the ticket's identity on chain and in the store. */
  ticketHash: Hex;
}

/**
 * Outcome of one ticket of a redemption batch.
 * - `redeemed`: paid (`txHash` of the transaction);
 * - `alreadyRedeemed`: the broker reports it used (a transaction from before a crash landed);
 * - `retry`: not paid for a reason that may pass (nonce clash, revert on a transient state, gas);
 * - `rejected`: will never be paid (bad signature, expired on chain, recipient not active …); counted as lost.
 */
export type RedeemResult =
  | { status: 'redeemed'; txHash: Hex }
  | { status: 'alreadyRedeemed'; txHash?: Hex }
  | { status: 'retry'; reason: string }
  | { status: 'rejected'; reason: string };

/** The chain side of redemption; the lead implements it over TicketBroker.batchRedeemWinningTickets. */
export interface TicketRedeemer {
  /**
   * Redeems the tickets (one or many in one transaction) and returns one result per ticket, in order.
   * Throwing means nothing is known to have happened: every ticket is retried. Thrown errors carry a one-line
   * message (it is logged as is) and the code `ROUND_NOT_INITIALIZED` while no ticket can be paid until the
   * current round is initialised.
   */
  redeemBatch(tickets: readonly SignedTicket[], signal?: AbortSignal): Promise<RedeemResult[]>;
}

/** The broadcaster's own funds, as its chain watcher last saw them. Read synchronously per payment. */
export interface SenderFunds {
  /** The sender's TicketBroker deposit, wei. */
  deposit(): bigint;
  /** The last initialised round, if known; params whose expirationRound is behind it are refused. */
  currentRound?(): bigint | undefined;
}
