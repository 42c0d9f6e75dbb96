import type { Address } from 'viem';
import type { Logger } from '../node/logger.js';
import type { RecipientChain, SenderInfo } from './types.js';

export interface SenderState extends SenderInfo {
  /** Unix ms of the chain read. */
  fetchedAt: number;
  /**
   * Marked for a re-read by an event (or read while one happened). Kept apart from `fetchedAt` so that a
   * round change, which invalidates every sender, does not make them all look idle to {@link sweep}: a
   * forgotten sender gets no fresh params with its refusals (issue 9, D8).
   */
  invalidated: boolean;
}

export interface SenderMonitorOptions {
  /** Chain data older than this is re-read, ms. @default 60_000 */
  senderInfoTtlMs: number;
}

export interface SenderMonitorDeps {
  chain: Pick<RecipientChain, 'senderInfo'>;
  /** The recipient whose share of each reserve is watched. */
  recipient: Address;
  logger?: Logger;
  now?: () => number;
}

/**
 * What each sender can pay this recipient: deposit, reserve share and unlock state from the chain, and the
 * face value of this recipient's own winning tickets not yet redeemed (pending). Max float — the most a new
 * ticket may be worth — is the claimable reserve share minus pending: the only money no other orchestrator
 * can take first. Chain data is cached; `invalidate`/`refresh` let a TicketBroker event watcher (deposit,
 * reserve, unlock, withdrawal, redemption, round change) update it at once instead of at the TTL.
 */
export class SenderMonitor {
  private readonly options: SenderMonitorOptions;
  private readonly deps: SenderMonitorDeps;
  private readonly now: () => number;
  private readonly states = new Map<string, SenderState>();
  private readonly pendingBySender = new Map<string, bigint>();
  private readonly inflight = new Map<string, Promise<SenderState>>();
  /** Bumped by every invalidation, so a read that started before an event cannot pass for fresh after it. */
  private readonly generation = new Map<string, number>();

  constructor(options: Partial<SenderMonitorOptions>, deps: SenderMonitorDeps) {
    this.options = { senderInfoTtlMs: options.senderInfoTtlMs ?? 60_000 };
    this.deps = deps;
    this.now = deps.now ?? Date.now;
  }

  /** The cached state of a sender, fresh or not. */
  get(sender: string): SenderState | undefined {
    return this.states.get(sender.toLowerCase());
  }

  /** Whether a cached state should be re-read. */
  isStale(state: SenderState, now = this.now()): boolean {
    return state.invalidated || now - state.fetchedAt >= this.options.senderInfoTtlMs;
  }

  /** The sender's state, read from the chain when missing or stale; concurrent reads share one call. */
  async ensure(sender: Address, signal?: AbortSignal): Promise<SenderState> {
    const s = this.states.get(sender.toLowerCase());
    if (s && !this.isStale(s)) return s;
    return this.refresh(sender, signal);
  }

  /** Re-reads the sender from the chain (joining a read already in flight). */
  refresh(sender: Address, signal?: AbortSignal): Promise<SenderState> {
    const key = sender.toLowerCase();
    const running = this.inflight.get(key);
    if (running) return running;
    const gen = this.generation.get(key) ?? 0;
    const p = this.deps.chain
      .senderInfo(sender, this.deps.recipient, signal)
      .then((info) => {
        const stale = (this.generation.get(key) ?? 0) !== gen;
        const state: SenderState = { ...info, fetchedAt: this.now(), invalidated: stale };
        this.states.set(key, state);
        return state;
      })
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** Sets a sender's chain data directly, e.g. from an event that carries it. */
  update(sender: Address, info: SenderInfo): void {
    const key = sender.toLowerCase();
    this.generation.set(key, (this.generation.get(key) ?? 0) + 1);
    this.states.set(key, { ...info, fetchedAt: this.now(), invalidated: false });
  }

  /** Marks one sender (or all, e.g. at a new round, when reserve shares change) for a re-read. */
  invalidate(sender?: string): void {
    const keys = sender === undefined ? [...this.states.keys()] : [sender.toLowerCase()];
    for (const key of keys) {
      this.generation.set(key, (this.generation.get(key) ?? 0) + 1);
      const s = this.states.get(key);
      if (s) s.invalidated = true;
    }
  }

  /** Face value of this recipient's unsettled winning tickets from the sender, wei. */
  pending(sender: string): bigint {
    return this.pendingBySender.get(sender.toLowerCase()) ?? 0n;
  }

  addPending(sender: string, wei: bigint): void {
    const key = sender.toLowerCase();
    this.pendingBySender.set(key, (this.pendingBySender.get(key) ?? 0n) + wei);
  }

  /** A pending ticket was redeemed, rejected or expired. */
  settlePending(sender: string, wei: bigint): void {
    const key = sender.toLowerCase();
    const left = (this.pendingBySender.get(key) ?? 0n) - wei;
    if (left > 0n) this.pendingBySender.set(key, left);
    else this.pendingBySender.delete(key);
  }

  /** Replaces all pending amounts (at start, from the store). */
  setPending(bySender: ReadonlyMap<string, bigint>): void {
    this.pendingBySender.clear();
    for (const [k, v] of bySender) this.pendingBySender.set(k.toLowerCase(), v);
  }

  /** claimableReserve − pending, at least 0; undefined for a sender never read. */
  maxFloat(sender: string): bigint | undefined {
    const s = this.states.get(sender.toLowerCase());
    if (!s) return undefined;
    const m = s.claimableReserve - this.pending(sender);
    return m > 0n ? m : 0n;
  }

  /**
   * What could pay a new winning ticket at best: deposit + claimable reserve − pending. A face value above
   * it is `LowPMBalance`.
   */
  coverage(sender: string): bigint | undefined {
    const s = this.states.get(sender.toLowerCase());
    if (!s) return undefined;
    return s.deposit + s.claimableReserve - this.pending(sender);
  }

  /** Forgets senders not read for `idleMs` and without pending tickets. */
  sweep(idleMs: number, now = this.now()): void {
    for (const [key, s] of this.states) {
      if (now - s.fetchedAt > idleMs && !this.pendingBySender.has(key) && !this.inflight.has(key)) {
        this.states.delete(key);
        this.generation.delete(key);
      }
    }
  }
}
