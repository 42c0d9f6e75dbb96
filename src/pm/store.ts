import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Address, Hex } from 'viem';
import type { Logger } from '../node/logger.js';
import type { SignedTicket } from './types.js';

export type WinningTicketStatus = 'pending' | 'submitted' | 'redeemed' | 'failed' | 'expired';

/** A winning ticket as stored, with its redemption state. */
export interface StoredWinningTicket extends SignedTicket {
  id: number;
  status: WinningTicketStatus;
  /** First round in which the TicketBroker no longer pays it (creationRound + ticketValidityRounds). */
  expiresRound: bigint;
  attempts: number;
  /** Unix ms before which the queue does not try it again. */
  nextAttemptAt: number;
  lastError: string | null;
  txHash: Hex | null;
  receivedAt: number;
  settledAt: number | null;
}

export interface NonceMark {
  recipientRandHash: string;
  /** Highest nonce accepted under that rand. */
  maxNonce: bigint;
  /** Unix ms after which the params, and so the mark, are useless. */
  expiresAt: number;
}

interface TicketRow {
  id: number;
  ticket_hash: string;
  sender: string;
  recipient: string;
  face_value: string;
  win_prob: string;
  sender_nonce: string;
  recipient_rand_hash: string;
  recipient_rand: string;
  creation_round: number;
  creation_round_block_hash: string;
  signature: string;
  expires_round: number;
  status: WinningTicketStatus;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  tx_hash: string | null;
  received_at: number;
  settled_at: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS pm_winning_tickets (
  id INTEGER PRIMARY KEY,
  ticket_hash TEXT NOT NULL UNIQUE,
  sender TEXT NOT NULL,
  recipient TEXT NOT NULL,
  face_value TEXT NOT NULL,
  win_prob TEXT NOT NULL,
  sender_nonce TEXT NOT NULL,
  recipient_rand_hash TEXT NOT NULL,
  recipient_rand TEXT NOT NULL,
  creation_round INTEGER NOT NULL,
  creation_round_block_hash TEXT NOT NULL,
  signature TEXT NOT NULL,
  expires_round INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'submitted', 'redeemed', 'failed', 'expired')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  tx_hash TEXT,
  received_at INTEGER NOT NULL,
  settled_at INTEGER
);
CREATE INDEX IF NOT EXISTS pm_winning_tickets_due ON pm_winning_tickets (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS pm_winning_tickets_rand ON pm_winning_tickets (recipient_rand_hash);
CREATE TABLE IF NOT EXISTS pm_nonce_marks (
  rand_hash TEXT PRIMARY KEY,
  max_nonce TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
`;

function toStored(r: TicketRow): StoredWinningTicket {
  return {
    id: r.id,
    ticketHash: r.ticket_hash as Hex,
    ticket: {
      recipient: r.recipient as Address,
      sender: r.sender as Address,
      faceValue: BigInt(r.face_value),
      winProb: BigInt(r.win_prob),
      senderNonce: BigInt(r.sender_nonce),
      recipientRandHash: r.recipient_rand_hash as Hex,
      creationRound: BigInt(r.creation_round),
      creationRoundBlockHash: r.creation_round_block_hash as Hex,
    },
    signature: r.signature as Hex,
    recipientRand: BigInt(r.recipient_rand),
    status: r.status,
    expiresRound: BigInt(r.expires_round),
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    lastError: r.last_error,
    txHash: r.tx_hash as Hex | null,
    receivedAt: r.received_at,
    settledAt: r.settled_at,
  };
}

/**
 * SQLite state of the payment engine: winning tickets and their redemption, and nonce high-water marks.
 * Every write is synchronous (better-sqlite3) and durable when it returns: WAL with `synchronous = FULL`, so
 * a commit survives a power cut, not only a process crash. Winning tickets are rare (one per 1/winProb
 * tickets) and are the orchestrator's money; an fsync each is cheap next to their value. Non-winning tickets
 * never touch SQLite.
 */
export class PMStore {
  readonly db: Database.Database;
  private readonly ownsDb: boolean;
  private readonly stmts: ReturnType<PMStore['prepare']>;

  /**
   * Opens (creating) the database file at `path`. Pass an open connection to share a node's database; the
   * store then sets `synchronous = FULL` on it and leaves the journal mode (use WAL) to its owner.
   */
  constructor(pathOrDb: string | Database.Database, logger?: Logger) {
    if (typeof pathOrDb === 'string') {
      if (pathOrDb !== ':memory:') mkdirSync(dirname(pathOrDb), { recursive: true, mode: 0o700 });
      this.db = new Database(pathOrDb);
      this.ownsDb = true;
      const mode = this.db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal' && pathOrDb !== ':memory:') logger?.warn({ mode }, 'SQLite refused WAL mode');
      this.db.pragma('busy_timeout = 5000');
    } else {
      this.db = pathOrDb;
      this.ownsDb = false;
    }
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
    this.stmts = this.prepare();
  }

  private prepare() {
    const db = this.db;
    return {
      insert: db.prepare(
        `INSERT OR IGNORE INTO pm_winning_tickets (ticket_hash, sender, recipient, face_value, win_prob,
          sender_nonce, recipient_rand_hash, recipient_rand, creation_round, creation_round_block_hash,
          signature, expires_round, status, received_at)
         VALUES (@ticketHash, @sender, @recipient, @faceValue, @winProb, @senderNonce, @randHash, @rand,
          @creationRound, @blockHash, @signature, @expiresRound, 'pending', @now)`,
      ),
      randUsed: db.prepare('SELECT 1 FROM pm_winning_tickets WHERE recipient_rand_hash = ? LIMIT 1').pluck(),
      saveMark: db.prepare(
        `INSERT INTO pm_nonce_marks (rand_hash, max_nonce, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (rand_hash) DO UPDATE SET max_nonce = excluded.max_nonce, expires_at = excluded.expires_at`,
      ),
      loadMarks: db.prepare('SELECT rand_hash, max_nonce FROM pm_nonce_marks WHERE expires_at >= ?'),
      pruneMarks: db.prepare('DELETE FROM pm_nonce_marks WHERE expires_at < ?'),
      outstanding: db.prepare(
        "SELECT sender, face_value FROM pm_winning_tickets WHERE status IN ('pending', 'submitted')",
      ),
      resetSubmitted: db.prepare(
        "UPDATE pm_winning_tickets SET status = 'pending', next_attempt_at = 0 WHERE status = 'submitted'",
      ),
      expiring: db.prepare(
        "SELECT * FROM pm_winning_tickets WHERE status IN ('pending', 'submitted') AND expires_round <= ?",
      ),
      due: db.prepare(
        `SELECT * FROM pm_winning_tickets WHERE status = 'pending' AND next_attempt_at <= ?
         ORDER BY expires_round, id LIMIT ?`,
      ),
      nextDue: db
        .prepare("SELECT MIN(next_attempt_at) FROM pm_winning_tickets WHERE status = 'pending'")
        .pluck(),
      setStatus: db.prepare(
        `UPDATE pm_winning_tickets SET status = @status, last_error = @error, tx_hash = @txHash,
          settled_at = @settledAt WHERE id = @id`,
      ),
      submit: db.prepare(
        "UPDATE pm_winning_tickets SET status = 'submitted', attempts = attempts + 1 WHERE id = ?",
      ),
      retry: db.prepare(
        "UPDATE pm_winning_tickets SET status = 'pending', next_attempt_at = ?, last_error = ? WHERE id = ?",
      ),
      byHash: db.prepare('SELECT * FROM pm_winning_tickets WHERE ticket_hash = ?'),
      all: db.prepare('SELECT * FROM pm_winning_tickets ORDER BY id'),
      byStatus: db.prepare('SELECT * FROM pm_winning_tickets WHERE status = ? ORDER BY id'),
      counts: db.prepare('SELECT status, face_value FROM pm_winning_tickets'),
      countByStatus: db.prepare('SELECT status, COUNT(*) AS n FROM pm_winning_tickets GROUP BY status'),
    };
  }

  /**
   * Stores winning tickets as `pending`, all in one durable transaction. A ticket already stored (same
   * digest) is left as it is. Returns how many were new.
   */
  insertWinningTickets(rows: readonly { signed: SignedTicket; expiresRound: bigint }[], now: number): number {
    const run = this.db.transaction(() => {
      let inserted = 0;
      for (const { signed, expiresRound } of rows) {
        const t = signed.ticket;
        const r = this.stmts.insert.run({
          ticketHash: signed.ticketHash.toLowerCase(),
          sender: t.sender.toLowerCase(),
          recipient: t.recipient.toLowerCase(),
          faceValue: t.faceValue.toString(),
          winProb: t.winProb.toString(),
          senderNonce: t.senderNonce.toString(),
          randHash: t.recipientRandHash.toLowerCase(),
          rand: `0x${signed.recipientRand.toString(16).padStart(64, '0')}`,
          creationRound: t.creationRound,
          blockHash: t.creationRoundBlockHash.toLowerCase(),
          signature: signed.signature.toLowerCase(),
          expiresRound,
          now,
        });
        inserted += r.changes;
      }
      return inserted;
    });
    return run();
  }

  /** Whether a winning ticket was accepted under this recipientRand: the rand is revealed, so retired. */
  isRandRetired(recipientRandHash: string): boolean {
    return this.stmts.randUsed.get(recipientRandHash.toLowerCase()) !== undefined;
  }

  /** Writes nonce high-water marks in one transaction. */
  saveNonceMarks(marks: readonly NonceMark[]): void {
    if (marks.length === 0) return;
    this.db.transaction(() => {
      for (const m of marks) this.stmts.saveMark.run(m.recipientRandHash, m.maxNonce.toString(), m.expiresAt);
    })();
  }

  /** Marks of params still alive at `now`, by recipientRandHash; drops the dead ones. */
  loadNonceMarks(now: number): Map<string, bigint> {
    this.stmts.pruneMarks.run(now);
    const out = new Map<string, bigint>();
    for (const row of this.stmts.loadMarks.all(now) as { rand_hash: string; max_nonce: string }[]) {
      out.set(row.rand_hash, BigInt(row.max_nonce));
    }
    return out;
  }

  /** Deletes marks of params dead at `now`. */
  pruneNonceMarks(now: number): void {
    this.stmts.pruneMarks.run(now);
  }

  /** Face value of winning tickets not yet settled, by sender (lower-case): what max float subtracts. */
  outstandingBySender(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    for (const row of this.stmts.outstanding.all() as { sender: string; face_value: string }[]) {
      out.set(row.sender, (out.get(row.sender) ?? 0n) + BigInt(row.face_value));
    }
    return out;
  }

  /**
   * Puts tickets left `submitted` by a crash back to `pending`, due now. Their transaction may have landed;
   * the redeemer then reports them `alreadyRedeemed`.
   */
  resetSubmitted(): number {
    return this.stmts.resetSubmitted.run().changes;
  }

  /** Marks every unsettled ticket with `expiresRound ≤ round` expired, and returns them. */
  expire(round: bigint, now: number): StoredWinningTicket[] {
    return this.db.transaction(() => {
      const rows = (this.stmts.expiring.all(round) as TicketRow[]).map(toStored);
      for (const t of rows) {
        this.stmts.setStatus.run({
          id: t.id,
          status: 'expired',
          error: `not redeemed before round ${t.expiresRound}`,
          txHash: null,
          settledAt: now,
        });
      }
      return rows;
    })();
  }

  /** Pending tickets due at `now`, soonest to expire first. */
  due(now: number, limit: number): StoredWinningTicket[] {
    return (this.stmts.due.all(now, limit) as TicketRow[]).map(toStored);
  }

  /** The earliest `nextAttemptAt` of a pending ticket, if any. */
  nextDueAt(): number | undefined {
    const v = this.stmts.nextDue.get() as number | null;
    return v ?? undefined;
  }

  /** Marks tickets as handed to the chain, durably, before the transaction is sent. */
  markSubmitted(ids: readonly number[]): void {
    this.db.transaction(() => {
      for (const id of ids) this.stmts.submit.run(id);
    })();
  }

  markRedeemed(id: number, txHash: Hex | null, now: number): void {
    this.stmts.setStatus.run({ id, status: 'redeemed', error: null, txHash, settledAt: now });
  }

  markRetry(id: number, nextAttemptAt: number, error: string): void {
    this.stmts.retry.run(nextAttemptAt, error, id);
  }

  markFailed(id: number, error: string, now: number): void {
    this.stmts.setStatus.run({ id, status: 'failed', error, txHash: null, settledAt: now });
  }

  /** A stored ticket by its digest. */
  get(ticketHash: string): StoredWinningTicket | undefined {
    const row = this.stmts.byHash.get(ticketHash.toLowerCase()) as TicketRow | undefined;
    return row && toStored(row);
  }

  /** Stored tickets, oldest first, optionally of one status. */
  list(status?: WinningTicketStatus): StoredWinningTicket[] {
    const rows = (status ? this.stmts.byStatus.all(status) : this.stmts.all.all()) as TicketRow[];
    return rows.map(toStored);
  }

  /** Number and face value of stored tickets per status. */
  summary(): Record<WinningTicketStatus, { count: number; faceValue: bigint }> {
    const out = {
      pending: { count: 0, faceValue: 0n },
      submitted: { count: 0, faceValue: 0n },
      redeemed: { count: 0, faceValue: 0n },
      failed: { count: 0, faceValue: 0n },
      expired: { count: 0, faceValue: 0n },
    };
    for (const row of this.stmts.counts.all() as { status: WinningTicketStatus; face_value: string }[]) {
      out[row.status].count++;
      out[row.status].faceValue += BigInt(row.face_value);
    }
    return out;
  }

  /** Number of stored tickets per status (an indexed count, cheap at any table size). */
  counts(): Record<WinningTicketStatus, number> {
    const out = { pending: 0, submitted: 0, redeemed: 0, failed: 0, expired: 0 };
    for (const row of this.stmts.countByStatus.all() as { status: WinningTicketStatus; n: number }[]) {
      out[row.status] = row.n;
    }
    return out;
  }

  /** Closes the connection if the store opened it. */
  close(): void {
    if (this.ownsDb && this.db.open) this.db.close();
  }
}
