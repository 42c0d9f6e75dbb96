import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../node/logger.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS orch_sessions (
  sender TEXT NOT NULL,
  session TEXT NOT NULL,
  balance TEXT NOT NULL,
  segments INTEGER NOT NULL DEFAULT 0,
  fees TEXT NOT NULL DEFAULT '0',
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (sender, session)
);
CREATE TABLE IF NOT EXISTS orch_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;

/** One broadcaster session as the orchestrator keeps it across restarts. */
export interface SessionRecord {
  sender: string;
  session: string;
  /** Ticket credit left, wei. */
  balance: bigint;
  /** Segments transcoded in it. */
  segments: number;
  /** Fees debited in it, wei. */
  fees: bigint;
  updatedAt: number;
}

/**
 * The orchestrator's own durable state (the payment engine keeps tickets and nonces in its `pm.db`): the
 * credit and totals of each session, written through on every change so a restart keeps them, and small
 * facts such as the last round it called `reward()` for.
 */
export class OrchestratorState {
  readonly db: Database.Database;
  private readonly stmts;

  constructor(path: string, logger?: Logger) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new Database(path);
    const mode = this.db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal' && path !== ':memory:') logger?.warn({ mode }, 'SQLite refused WAL mode');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmts = {
      upsert: db.prepare(
        `INSERT INTO orch_sessions (sender, session, balance, segments, fees, updated_at)
         VALUES (@sender, @session, @balance, @segments, @fees, @now)
         ON CONFLICT (sender, session) DO UPDATE SET balance = excluded.balance,
           segments = orch_sessions.segments + excluded.segments,
           fees = CAST(CAST(orch_sessions.fees AS INTEGER) + CAST(excluded.fees AS INTEGER) AS TEXT),
           updated_at = excluded.updated_at`,
      ),
      live: db.prepare('SELECT * FROM orch_sessions WHERE updated_at >= ? ORDER BY updated_at'),
      prune: db.prepare('DELETE FROM orch_sessions WHERE updated_at < ?'),
      totals: db.prepare('SELECT segments, fees FROM orch_sessions'),
      getMeta: db.prepare('SELECT value FROM orch_meta WHERE key = ?').pluck(),
      setMeta: db.prepare(
        'INSERT INTO orch_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
    };
  }

  /**
   * Records a session's new credit balance, adding `segments` and `fees` (wei) to its totals. Fees fit in
   * SQLite's 64-bit integers for any one session (9.2 ETH of fees); the totals are informational.
   */
  saveSession(
    sender: string,
    session: string,
    balance: bigint,
    add: { segments?: number; fees?: bigint } = {},
    now = Date.now(),
  ): void {
    this.stmts.upsert.run({
      sender: sender.toLowerCase(),
      session,
      balance: balance.toString(),
      segments: add.segments ?? 0,
      fees: (add.fees ?? 0n).toString(),
      now,
    });
  }

  /** Sessions touched at or after `since` (ms), oldest first. */
  sessions(since = 0): SessionRecord[] {
    return (this.stmts.live.all(since) as Array<Record<string, string | number>>).map((r) => ({
      sender: String(r.sender),
      session: String(r.session),
      balance: BigInt(r.balance as string),
      segments: Number(r.segments),
      fees: BigInt(r.fees as string),
      updatedAt: Number(r.updated_at),
    }));
  }

  /** Forgets sessions idle since before `before` (ms). */
  prune(before: number): number {
    return this.stmts.prune.run(before).changes;
  }

  /** Segments and fees over every session kept. */
  totals(): { segments: number; fees: bigint } {
    let segments = 0;
    let fees = 0n;
    for (const r of this.stmts.totals.all() as Array<{ segments: number; fees: string }>) {
      segments += r.segments;
      fees += BigInt(r.fees);
    }
    return { segments, fees };
  }

  getMeta(key: string): string | undefined {
    return (this.stmts.getMeta.get(key) as string | undefined) ?? undefined;
  }

  setMeta(key: string, value: string): void {
    this.stmts.setMeta.run(key, value);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
