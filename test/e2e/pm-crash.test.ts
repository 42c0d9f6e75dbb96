import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Hex } from 'viem';
import { afterEach, describe, expect, it } from 'vitest';
import type { Payment, TicketParams } from '../../src/pm/types.js';
import { makeSender, tempDir } from '../unit/pm/helpers.js';

const fixture = join(import.meta.dirname, 'fixtures', 'pm-recipient.ts');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

interface Msg {
  type: string;
  id?: number;
  winners?: Hex[];
  errors?: string[];
  params?: TicketParams;
  hashes?: Hex[];
  message?: string;
}

/** A recipient process and a way to wait for its next message of a kind. */
function spawnRecipient(dataDir: string, mode: 'hang' | 'redeem') {
  const child = fork(fixture, [dataDir, mode], {
    execArgv: ['--import', 'tsx'],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, STREAMFLOW_LOG_LEVEL: 'silent' },
  });
  children.push(child);
  const waiting = new Map<string, { resolve: (m: Msg) => void; reject: (e: Error) => void }[]>();
  const queued: Msg[] = [];
  let failure: Error | undefined;
  const failAll = (err: Error) => {
    failure ??= err;
    for (const list of waiting.values()) for (const w of list.splice(0)) w.reject(failure);
  };
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      failAll(new Error('recipient exited'));
      resolve();
    }),
  );
  child.on('message', (m: Msg) => {
    if (m.type === 'error') return failAll(new Error(`recipient: ${m.message}`));
    const w = waiting.get(m.type)?.shift();
    if (w) w.resolve(m);
    else queued.push(m);
  });
  const next = (type: string): Promise<Msg> => {
    const i = queued.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(queued.splice(i, 1)[0] as Msg);
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      const list = waiting.get(type) ?? [];
      list.push({ resolve, reject });
      waiting.set(type, list);
    });
  };
  return { child, next, exited };
}

describe('recipient crash (SIGKILL) after acknowledging winning tickets', () => {
  it('redeems every acknowledged winning ticket after a restart on the same data dir', async () => {
    const { dir, cleanup } = tempDir('sf-pm-crash-');
    try {
      const sender = makeSender('crash sender', { deposit: 10n ** 20n }, { maxExpectedValue: 10n ** 20n });
      const r1 = spawnRecipient(dir, 'hang');
      await r1.next('ready');
      r1.child.send({ type: 'params', sender: sender.address });
      let params = (await r1.next('params')).params as TicketParams;
      expect(params.winProb).toBe((1n << 256n) - 1n);

      const acked: Hex[] = [];
      for (let id = 0; id < 12; id++) {
        const payment: Payment = sender.createPayment(params, 3n * (params.faceValue - 1n)); // EV = faceValue − 1 at winProb 2^256 − 1
        r1.child.send({ type: 'pay', id, payment });
        const ack = await r1.next('ack');
        expect(ack.id).toBe(id);
        expect(ack.errors).toEqual([]);
        expect(ack.winners).toHaveLength(3);
        acked.push(...(ack.winners ?? []));
        params = ack.params as TicketParams;
      }
      r1.child.kill('SIGKILL');
      await r1.exited;
      expect(r1.child.signalCode).toBe('SIGKILL');
      // The first incarnation handed some tickets to the chain and never heard back.
      const submitted = readFileSync(join(dir, 'submitted.jsonl'), 'utf8').trim().split('\n');
      expect(submitted.length).toBeGreaterThan(0);

      const r2 = spawnRecipient(dir, 'redeem');
      await r2.next('ready');
      const redeemed = new Set<Hex>();
      while (!acked.every((h) => redeemed.has(h))) {
        for (const h of (await r2.next('redeemed')).hashes ?? []) redeemed.add(h);
      }
      r2.child.send({ type: 'stop' });
      await r2.exited;
      expect(r2.child.exitCode).toBe(0);

      const lines = readFileSync(join(dir, 'redeemed.jsonl'), 'utf8').trim().split('\n');
      expect(new Set(lines)).toEqual(new Set(acked));
      expect(lines).toHaveLength(acked.length); // each exactly once
    } finally {
      cleanup();
    }
  });
});
