import { StreamflowError } from './errors.js';
import { type Logger, silentLogger } from './logger.js';

export type LifecycleStatus = 'idle' | 'starting' | 'started' | 'stopping' | 'stopped';

/** `Stopped`: `start()` after (or interrupted by) `stop()`. */
export class LifecycleError extends StreamflowError<'Stopped', { name: string }> {}

/**
 * The start/stop discipline of a composition root, once: one AbortController whose signal every long-running
 * part of the node takes, a status guard (`idle → starting → started → stopping → stopped`), and closers run in
 * reverse order of registration.
 *
 * - `start(run)` runs `run` once; later calls return the same promise (idempotent). A failed start runs the
 *   closers of whatever did start, then rethrows.
 * - `stop()` aborts the signal, waits for a start in progress to settle, then runs every closer in reverse order
 *   (one that throws is logged; the others still run). Idempotent; a node is not restarted after it.
 */
export class Lifecycle {
  readonly name: string;
  private readonly controller = new AbortController();
  private readonly log: Logger;
  private readonly closers: Array<{ name: string; close: () => unknown }> = [];
  private state: LifecycleStatus = 'idle';
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;

  constructor(options: { name: string }, deps: { logger?: Logger } = {}) {
    this.name = options.name;
    this.log = (deps.logger ?? silentLogger).child({ module: 'lifecycle', node: options.name });
  }

  get status(): LifecycleStatus {
    return this.state;
  }

  /** Aborted when `stop()` begins. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /**
   * Registers how to close something that has just started (or was built and must be closed even without a
   * start); closers run in reverse order of registration.
   */
  defer(name: string, close: () => unknown): void {
    this.closers.push({ name, close });
  }

  /**
   * Runs `run(signal)` once. `signal` is aborted by `stop()`, and by `external` when given.
   * @throws {LifecycleError} `Stopped` after `stop()`, or when `stop()` came while `run` was still going.
   */
  start(run: (signal: AbortSignal) => Promise<void>, external?: AbortSignal): Promise<void> {
    if (this.starting) return this.starting;
    if (this.stopping) return Promise.reject(this.stoppedError('cannot start after stop()'));
    this.state = 'starting';
    const signal = external ? AbortSignal.any([external, this.controller.signal]) : this.controller.signal;
    this.starting = (async () => {
      try {
        await run(signal);
        if (this.stopping) throw this.stoppedError('stop() was called while starting');
        this.state = 'started';
      } catch (err) {
        // stop() (if it came) waits for this promise before closing, so closing here never races it.
        await this.closeAll();
        if (!this.stopping) this.state = 'stopped';
        throw err;
      }
    })();
    return this.starting;
  }

  /** Aborts, waits for a start in progress, then closes in reverse order. Idempotent. */
  stop(reason?: unknown): Promise<void> {
    this.stopping ??= (async () => {
      const starting = this.starting;
      this.state = 'stopping';
      this.controller.abort(reason ?? this.stoppedError('stopping'));
      if (starting) await starting.catch(() => undefined);
      await this.closeAll();
      this.state = 'stopped';
    })();
    return this.stopping;
  }

  /** @throws {LifecycleError} `Stopped` unless started and not stopping. */
  assertStarted(): void {
    if (this.state !== 'started') throw this.stoppedError(`not started (${this.state})`);
  }

  private async closeAll(): Promise<void> {
    for (let c = this.closers.pop(); c; c = this.closers.pop()) {
      try {
        await c.close();
      } catch (err) {
        this.log.warn({ err, part: c.name }, 'close failed');
      }
    }
  }

  private stoppedError(why: string): LifecycleError {
    return new LifecycleError('Stopped', `${this.name}: ${why}`, { name: this.name });
  }
}
