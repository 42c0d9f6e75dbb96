import { type Client, createClient } from '@connectrpc/connect';
import { type MediaTools, resolveMediaTools } from '../media/ffmpeg.js';
import { validateProfiles } from '../media/profiles.js';
import { LocalTranscoder, type SegmentTranscoder, type TranscodeResult } from '../media/transcode.js';
import { sleep } from '../node/abort.js';
import { redactUrl, StreamflowError } from '../node/errors.js';
import { Lifecycle } from '../node/lifecycle.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { profileFromProto, renditionToProto } from '../rpc/convert.js';
import { fromConnectError, toWireErrorMessage, WireError } from '../rpc/errors.js';
import { Transcoder, type WorkItem } from '../rpc/gen/streamflow/v1/transcoder_pb.js';
import { createRpcTransport } from '../rpc/transport.js';
import { defaultRemoteTranscoderOptions, type RemoteTranscoderOptions } from './options.js';

export interface RemoteTranscoderDeps {
  /** ffmpeg; resolved with `resolveMediaTools()` when absent and `transcoder` is not given. */
  tools?: MediaTools;
  /** What does the work; a `LocalTranscoder` when absent. */
  transcoder?: SegmentTranscoder;
  logger?: Logger;
  /** Source of the backoff jitter, [0, 1). @default Math.random */
  random?: () => number;
}

/** What happens to the transcoder, for logs and for tests that await a state rather than sleep. */
export type RemoteTranscoderEvent =
  | { type: 'connecting'; attempt: number }
  | { type: 'work'; taskId: string }
  | { type: 'submitted'; taskId: string; ok: boolean }
  | { type: 'disconnected'; code: string; retryInMs: number };

/**
 * Reconnect delay after `failures` consecutive failed connections, ms: `initialMs × 2^(failures−1)` capped
 * at `maxMs`, then "equal jitter" (a random point in its upper half) so transcoders cut off together by an
 * orchestrator restart do not all come back in the same instant.
 */
export function backoffDelay(
  failures: number,
  options: { initialMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const exp = Math.min(options.maxMs, options.initialMs * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return Math.round(exp / 2 + (exp / 2) * random());
}

/**
 * A remote transcoder: no chain, no keys. Registers with an orchestrator's Transcoder service using the shared
 * secret, transcodes up to `capacity` work items at once with the local ffmpeg and returns each result with
 * `SubmitResult`. When the stream ends or fails it drops the work in flight (the orchestrator has already
 * sent it elsewhere) and reconnects with capped exponential backoff plus jitter.
 */
export class RemoteTranscoder {
  readonly options: RemoteTranscoderOptions;
  private readonly log: Logger;
  private readonly transcoder: SegmentTranscoder;
  private readonly random: () => number;
  private readonly life: Lifecycle;
  private readonly listeners = new Set<(event: RemoteTranscoderEvent) => void>();
  private running = 0;

  constructor(
    options: Pick<RemoteTranscoderOptions, 'orchestrator' | 'secret'> & Partial<RemoteTranscoderOptions>,
    deps: RemoteTranscoderDeps = {},
  ) {
    this.options = { ...defaultRemoteTranscoderOptions, ...options };
    const { capacity } = this.options;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 64) {
      throw new RangeError(`capacity ${capacity} is outside 1–64`);
    }
    this.log = (deps.logger ?? silentLogger).child({
      module: 'transcoder',
      orchestrator: redactUrl(this.options.orchestrator),
    });
    this.transcoder =
      deps.transcoder ??
      new LocalTranscoder(this.options.transcode, {
        tools: deps.tools ?? resolveMediaTools(),
        ...(deps.logger ? { logger: deps.logger } : {}),
      });
    this.random = deps.random ?? Math.random;
    this.life = new Lifecycle({ name: 'transcoder' }, deps.logger ? { logger: deps.logger } : {});
  }

  /** Subscribes to events; returns the unsubscribe function. */
  on(listener: (event: RemoteTranscoderEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Segments being transcoded now. */
  get inFlight(): number {
    return this.running;
  }

  /** Starts connecting in the background. Idempotent; does nothing after `stop()`. */
  start(): void {
    if (this.life.status !== 'idle') return;
    this.life
      .start(async (signal) => {
        const loop = this.run(signal).catch((err: unknown) => {
          this.log.error({ err }, 'transcoder loop failed');
        });
        this.life.defer('connection loop', () => loop);
      })
      .catch(() => undefined);
  }

  /** Closes the connection, aborts work in flight and resolves once all of it has ended. Idempotent. */
  stop(): Promise<void> {
    return this.life.stop(new WireError('Canceled', 'the transcoder is stopping'));
  }

  private async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    for (let attempt = 1; !signal.aborted; attempt++) {
      const connection = new AbortController();
      const connSignal = AbortSignal.any([signal, connection.signal]);
      const transport = createRpcTransport(this.options.orchestrator, {
        signal: connSignal,
        maxMessageBytes: this.options.maxMessageBytes,
      });
      const client = createClient(Transcoder, transport);
      const work = new Set<Promise<void>>();
      const opened = performance.now();
      let gotWork = false;
      let code = 'StreamEnded';
      this.emit({ type: 'connecting', attempt });
      try {
        const stream = client.registerTranscoder(
          { secret: this.options.secret, capacity: this.options.capacity },
          { signal: connSignal },
        );
        for await (const item of stream) {
          gotWork = true;
          const job = this.handle(client, item, connSignal).finally(() => work.delete(job));
          work.add(job);
        }
      } catch (err) {
        const wire = fromConnectError(err);
        code = wire.code;
        if (!signal.aborted) {
          const level = code === 'Unauthenticated' ? 'error' : 'warn';
          this.log[level]({ code, err: wire.message }, 'orchestrator stream failed');
        }
      }
      // The orchestrator re-dispatched everything it gave this stream the moment the stream ended: finishing it
      // here would only waste ffmpeg time.
      connection.abort();
      await Promise.allSettled(work);
      if (signal.aborted) break;
      // A stream that carried work or stayed up a while was a working connection: start the backoff over.
      failures = gotWork || performance.now() - opened >= this.options.backoffMaxMs ? 1 : failures + 1;
      const retryInMs = backoffDelay(
        failures,
        { initialMs: this.options.backoffInitialMs, maxMs: this.options.backoffMaxMs },
        this.random,
      );
      this.log.info({ code, retryInMs }, 'disconnected from the orchestrator; reconnecting');
      this.emit({ type: 'disconnected', code, retryInMs });
      try {
        await sleep(retryInMs, signal);
      } catch {
        break;
      }
    }
  }

  private async handle(
    client: Client<typeof Transcoder>,
    item: WorkItem,
    signal: AbortSignal,
  ): Promise<void> {
    const taskId = item.taskId;
    this.emit({ type: 'work', taskId });
    let result: TranscodeResult | undefined;
    let failure: WireError | undefined;
    if (this.running >= this.options.capacity) {
      failure = new WireError(
        'OrchestratorBusy',
        `transcoder is at its capacity of ${this.options.capacity}`,
      );
    } else {
      this.running++;
      try {
        const profiles = validateProfiles(item.profiles.map(profileFromProto));
        result = await this.transcoder.transcode(item.segment, profiles, { signal });
      } catch (err) {
        if (signal.aborted) return;
        failure = asWireError(err);
        this.log.warn({ taskId, code: failure.code, err }, 'segment failed');
      } finally {
        this.running--;
      }
    }
    try {
      await client.submitResult(
        {
          secret: this.options.secret,
          taskId,
          result: result
            ? {
                case: 'ok',
                value: {
                  renditions: result.renditions.map(renditionToProto),
                },
              }
            : { case: 'error', value: toWireErrorMessage(failure ?? asWireError(undefined)) },
        },
        { signal },
      );
      this.emit({ type: 'submitted', taskId, ok: result !== undefined });
    } catch (err) {
      if (!signal.aborted)
        this.log.warn({ taskId, err: fromConnectError(err).message }, 'result not delivered');
    }
  }

  private emit(event: RemoteTranscoderEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err, event: event.type }, 'transcoder event listener threw');
      }
    }
  }
}

/**
 * The input's own faults keep their code (`SegmentFormatDidntMatchJobInputParams`: no other transcoder will do
 * better); anything else is this transcoder's failure, `TranscodeFailed`, which the orchestrator retries elsewhere.
 */
function asWireError(err: unknown): WireError {
  if (err instanceof StreamflowError && err.code === 'SegmentFormatDidntMatchJobInputParams') {
    return WireError.from(err);
  }
  if (err instanceof StreamflowError && err.code === 'InvalidProfile') {
    return new WireError('InvalidMessage', err.message);
  }
  const reason = err instanceof StreamflowError ? err.code : 'Internal';
  return new WireError(
    'TranscodeFailed',
    `transcoding failed on the remote transcoder (${reason}); see its log`,
    { reason },
  );
}
