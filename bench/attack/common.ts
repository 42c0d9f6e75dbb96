/**
 * What the attack bench's parent (bench/attack.ts) and its attacker process (bench/attack/worker.ts) share:
 * the configuration handed to an attack, the tally it returns, and small helpers. Every attack sends to
 * 127.0.0.1 only, stops when its signal aborts and is bounded in count and time on its own.
 */
import { randomBytes } from 'node:crypto';
import { type Agent, request } from 'node:http';
import type { Address, Hex } from 'viem';
import type { Profile } from '../../src/media/profiles.js';
import { StreamflowError } from '../../src/node/errors.js';
import type { TicketParams } from '../../src/pm/types.js';

export const ATTACK_CASES = ['none', 'badSignatureFlood', 'slowloris', 'freeRide', 'ingestFlood'] as const;
export type AttackCase = (typeof ATTACK_CASES)[number];

/** Everything an attack needs to know about its targets; plain JSON (it crosses the IPC channel). */
export interface AttackConfig {
  case: Exclude<AttackCase, 'none'>;
  /** The orchestrator's RPC URL (`http://127.0.0.1:port`). */
  orchestratorUrl: string;
  orchestratorAddress: Address;
  /** The honest broadcaster's HTTP port (HLS, push ingest, status). */
  broadcasterHttpUrl: string;
  /** The victim of D2 (free ride on another sender's credit). */
  honest: { address: Address; streamId: string };
  /** A funded account of the attacker's own (deposit and reserve in the TicketBroker). */
  attackerKey: Hex;
  /** A real 2 s 720p30 segment of the honest source. */
  segmentPath: string;
  /** A small valid segment (1 s of 256×144). */
  tinySegmentPath: string;
  /** The renditions the honest broadcaster asks for. */
  profiles: Profile[];
  /**
   * Source address of every attacker socket (to 127.0.0.1): an address of its own on the loopback network, as
   * a stranger has, so per-address limits tell it from the honest broadcaster. Undefined: 127.0.0.1 too.
   */
  localAddress: string | undefined;
  /** Hard bound on the attack's run time, ms, whether or not it is told to stop. */
  maxMs: number;
}

/** What an attack did. `servedRenditions` counts renditions the attacker got without paying for them. */
export interface AttackResult {
  servedRenditions: number;
  /** Requests (or streams, connections) sent. */
  sent: number;
  /** Outcomes by code: `ok`, wire error codes, HTTP statuses (`http401`), `timeout`, … */
  outcomes: Record<string, number>;
  /** Figures particular to the attack. */
  extra: Record<string, number>;
}

/** Messages between the bench and its attacker process. */
export type ToAttacker = { type: 'start'; config: AttackConfig } | { type: 'stop' };
export type FromAttacker =
  | { type: 'ready' }
  | { type: 'progress'; text: string }
  | { type: 'result'; result: AttackResult }
  | { type: 'failed'; error: string };

/** Counts outcomes by name. */
export class Tally {
  sent = 0;
  servedRenditions = 0;
  readonly outcomes: Record<string, number> = {};
  readonly extra: Record<string, number> = {};

  count(outcome: string, n = 1): void {
    this.outcomes[outcome] = (this.outcomes[outcome] ?? 0) + n;
  }

  add(key: string, n = 1): void {
    this.extra[key] = (this.extra[key] ?? 0) + n;
  }

  max(key: string, value: number): void {
    this.extra[key] = Math.max(this.extra[key] ?? 0, value);
  }

  result(): AttackResult {
    return {
      servedRenditions: this.servedRenditions,
      sent: this.sent,
      outcomes: this.outcomes,
      extra: this.extra,
    };
  }
}

/** The code of whatever a call threw: a StreamflowError's code, `timeout`, or the error's name. */
export function codeOf(err: unknown): string {
  if (err instanceof StreamflowError) return err.code;
  const e = err as { code?: unknown; name?: unknown } | undefined;
  if (typeof e?.code === 'string') return e.code;
  if (e?.name === 'TimeoutError') return 'timeout';
  return typeof e?.name === 'string' ? e.name : 'unknown';
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects: attack loops check the signal). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Ticket params of the right shape that no orchestrator issued: what a payment without tickets carries (the
 * field is required; with no tickets nothing in it is checked today).
 */
export function dummyParams(recipient: Address, sender: Address): TicketParams {
  const hash = () => `0x${randomBytes(32).toString('hex')}` as Hex;
  return {
    recipient,
    sender,
    faceValue: 1n,
    winProb: 1n,
    recipientRandHash: hash(),
    seed: hash(),
    creationRound: 1n,
    creationRoundBlockHash: hash(),
    expirationRound: 2n,
    expiresAt: Date.now() + 60_000,
  };
}

/** One HTTP request's answer. */
export interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * `PUT` (or any method) of `body` to `url` on loopback, answer body read whole (bounded to 64 KiB).
 * Rejects on a network error, after `timeoutMs` or when `signal` aborts.
 */
export function httpRequest(
  url: string,
  init: {
    method: string;
    body?: Uint8Array;
    headers?: Record<string, string>;
    timeoutMs: number;
    signal?: AbortSignal;
    agent?: Agent;
    localAddress?: string | undefined;
  },
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const signals = [AbortSignal.timeout(init.timeoutMs), ...(init.signal ? [init.signal] : [])];
    const req = request(
      url,
      {
        method: init.method,
        headers: {
          ...(init.body ? { 'Content-Length': String(init.body.length) } : {}),
          ...init.headers,
        },
        signal: AbortSignal.any(signals),
        ...(init.agent ? { agent: init.agent } : {}),
        ...(init.localAddress ? { localAddress: init.localAddress } : {}),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < 65_536) body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}
