/**
 * The attacker process of `npm run bench:attack` (forked by bench/attack.ts with an IPC channel): runs one
 * attack on `start`, stops it on `stop`, on a lost parent or after `config.maxMs`, and sends its tally back.
 * A process of its own so the attacker's CPU and memory are not the measured nodes'.
 */
import { setMaxListeners } from 'node:events';
import { badSignatureFlood } from './bad-signature-flood.js';
import type { AttackConfig, AttackResult, FromAttacker, ToAttacker } from './common.js';
import { freeRide } from './free-ride.js';
import { ingestFlood } from './ingest-flood.js';
import { slowloris } from './slowloris.js';

type Attack = (
  cfg: AttackConfig,
  signal: AbortSignal,
  hooks: { ready(): void; progress(text: string): void },
) => Promise<AttackResult>;

const ATTACKS: Record<AttackConfig['case'], Attack> = { badSignatureFlood, slowloris, freeRide, ingestFlood };

const controller = new AbortController();
/**
 * Errors no attack code could catch (an HTTP/2 session of the client library emitting 'error' with no listener,
 * e.g. a ping timing out on an overloaded target): counted and survived, since an attacker does not give up.
 */
let uncaught = 0;
process.on('uncaughtException', (err) => {
  uncaught++;
  if (uncaught <= 3) process.stderr.write(`attacker: survived ${(err as Error)?.message ?? err}\n`);
});
// Every connection of a flood listens to the one signal: not a leak.
setMaxListeners(0, controller.signal);

/** Resolves once the message is handed to the channel (so a last message is not lost to disconnect()). */
function send(msg: FromAttacker): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(msg, undefined, {}, () => resolve());
  });
}

async function run(config: AttackConfig): Promise<void> {
  const timer = setTimeout(() => controller.abort(new Error('attack time is up')), config.maxMs);
  let ready = false;
  try {
    const result = await ATTACKS[config.case](config, controller.signal, {
      ready: () => {
        if (ready) return;
        ready = true;
        void send({ type: 'ready' });
      },
      progress: (text) => void send({ type: 'progress', text }),
    });
    if (uncaught > 0) result.extra.uncaughtErrors = uncaught;
    await send({ type: 'result', result });
  } catch (err) {
    await send({ type: 'failed', error: (err as Error)?.stack ?? String(err) });
  } finally {
    clearTimeout(timer);
    // Sockets the attack left behind must not keep the process alive.
    if (process.connected) process.disconnect?.();
    setTimeout(() => process.exit(0), 1_000).unref();
  }
}

process.on('message', (msg: ToAttacker) => {
  if (msg.type === 'start') void run(msg.config);
  else if (msg.type === 'stop') controller.abort(new Error('told to stop'));
});
process.on('disconnect', () => controller.abort(new Error('the bench went away')));
