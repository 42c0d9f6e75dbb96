import { describe, expect, it } from 'vitest';
import { Lifecycle, LifecycleError } from '../../../src/node/lifecycle.js';

/** A promise and the functions that settle it, for starts that are still running when the test acts. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('Lifecycle', () => {
  it('closes what started in reverse order of start', async () => {
    const order: string[] = [];
    const life = new Lifecycle({ name: 't' });
    await life.start(async () => {
      for (const part of ['db', 'engine', 'server']) {
        order.push(`start ${part}`);
        life.defer(part, () => void order.push(`close ${part}`));
      }
    });
    expect(life.status).toBe('started');
    await life.stop();
    expect(life.status).toBe('stopped');
    expect(order).toEqual([
      'start db',
      'start engine',
      'start server',
      'close server',
      'close engine',
      'close db',
    ]);
  });

  it('runs start once however often it is called, and stop once', async () => {
    let starts = 0;
    let closes = 0;
    const life = new Lifecycle({ name: 't' });
    const run = async () => {
      starts++;
      life.defer('x', () => {
        closes++;
      });
    };
    await Promise.all([life.start(run), life.start(run)]);
    await life.start(run);
    await Promise.all([life.stop(), life.stop()]);
    await life.stop();
    expect({ starts, closes }).toEqual({ starts: 1, closes: 1 });
  });

  it('a failed start closes only what did start, then rethrows the failure', async () => {
    const closed: string[] = [];
    const life = new Lifecycle({ name: 't' });
    const boom = new Error('port in use');
    await expect(
      life.start(async () => {
        life.defer('engine', () => void closed.push('engine'));
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(closed).toEqual(['engine']);
    expect(life.status).toBe('stopped');
    await life.stop();
    expect(closed).toEqual(['engine']);
  });

  it('stop() during start aborts the signal, waits for the start to settle, then closes everything', async () => {
    const gate = deferred();
    const events: string[] = [];
    const life = new Lifecycle({ name: 't' });
    let seen: AbortSignal | undefined;
    const started = life.start(async (signal) => {
      seen = signal;
      life.defer('first', () => void events.push('close first'));
      await gate.promise;
      events.push('start finished');
      life.defer('second', () => void events.push('close second'));
    });
    const stopped = life.stop();
    expect(seen?.aborted).toBe(true);
    expect(life.status).toBe('stopping');
    gate.resolve();
    await expect(started).rejects.toBeInstanceOf(LifecycleError);
    await stopped;
    expect(events).toEqual(['start finished', 'close second', 'close first']);
    expect(life.status).toBe('stopped');
  });

  it('a start that gives up on the abort is closed once, by whichever side gets there', async () => {
    let closes = 0;
    const life = new Lifecycle({ name: 't' });
    const started = life.start(async (signal) => {
      life.defer('x', () => {
        closes++;
      });
      await new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    });
    await life.stop();
    await expect(started).rejects.toMatchObject({ code: 'Stopped' });
    expect(closes).toBe(1);
  });

  it('refuses to start after stop()', async () => {
    const life = new Lifecycle({ name: 't' });
    await life.stop();
    await expect(life.start(async () => undefined)).rejects.toMatchObject({ code: 'Stopped' });
    expect(() => life.assertStarted()).toThrow(LifecycleError);
  });

  it('a closer that throws does not keep the others from running', async () => {
    const closed: string[] = [];
    const life = new Lifecycle({ name: 't' });
    await life.start(async () => {
      life.defer('a', () => void closed.push('a'));
      life.defer('b', () => {
        throw new Error('b broke');
      });
      life.defer('c', async () => void closed.push('c'));
    });
    await life.stop();
    expect(closed).toEqual(['c', 'a']);
  });

  it('an external signal aborts the start as well', async () => {
    const external = new AbortController();
    const life = new Lifecycle({ name: 't' });
    const started = life.start(
      (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      external.signal,
    );
    external.abort(new Error('ctrl-c'));
    await expect(started).rejects.toThrow('ctrl-c');
    expect(life.status).toBe('stopped');
  });

  it('closers deferred before start (things built in a constructor) are closed by a stop without start', async () => {
    const closed: string[] = [];
    const life = new Lifecycle({ name: 't' });
    life.defer('db', () => void closed.push('db'));
    await life.stop();
    expect(closed).toEqual(['db']);
  });
});
