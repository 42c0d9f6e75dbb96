import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import type { ConnectRouter, HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { SegmentFormatError } from '../media/errors.js';
import { type MediaTools, resolveMediaTools } from '../media/ffmpeg.js';
import type { TsAnalysis } from '../media/mpegts.js';
import { defaultSegmentLimits } from '../media/options.js';
import type { Profile } from '../media/profiles.js';
import { checkTiming } from '../media/timing.js';
import {
  LocalTranscoder,
  type Rendition,
  readRendition,
  type SegmentFacts,
  type SegmentTranscoder,
  segmentFacts,
  type TranscodeCallOptions,
  type TranscodeResult,
  validateSegment,
} from '../media/transcode.js';
import { StreamflowError } from '../node/errors.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { withDefaults } from '../node/options.js';
import { profileToProto } from '../rpc/convert.js';
import { fromWireErrorMessage, WireError } from '../rpc/errors.js';
import type { Rendition as RenditionMessage } from '../rpc/gen/streamflow/v1/common_pb.js';
import {
  type RegisterTranscoderRequest,
  type SubmitResultReply,
  SubmitResultReplySchema,
  type SubmitResultRequest,
  Transcoder,
  type WorkItem,
  WorkItemSchema,
} from '../rpc/gen/streamflow/v1/transcoder_pb.js';
import { PoolError } from './errors.js';
import { defaultTranscoderPoolOptions, type TranscoderPoolOptions } from './options.js';
import type { PoolMetrics } from './pool-metrics.js';

/** A member of the pool as seen from outside. */
export interface PoolMemberInfo {
  /** `local`, or `remote-<n>` in order of registration. */
  id: string;
  kind: 'local' | 'remote';
  /** Segments it takes at once. */
  capacity: number;
  /** Segments it holds now. */
  load: number;
}

/** A transcode result plus who made it. */
export interface PoolTranscodeResult extends TranscodeResult {
  /** Id of the member that produced it. */
  transcoder: string;
  /** Dispatches it took: 1 unless a member dropped, failed or timed out. */
  attempts: number;
}

/** What happens in the pool, for metrics, logs and tests that await a state rather than sleep. */
export type PoolEvent =
  | { type: 'joined'; member: PoolMemberInfo }
  | { type: 'left'; member: PoolMemberInfo; reason: string }
  | { type: 'dispatched'; taskId: string; member: string; attempt: number }
  | { type: 'failed'; taskId: string; member: string; code: string; retry: boolean };

export interface TranscoderPoolDeps {
  /** ffmpeg for the local member; resolved with `resolveMediaTools()` when absent and needed. */
  tools?: MediaTools;
  /** The local member's transcoder; a `LocalTranscoder` when absent. */
  local?: SegmentTranscoder;
  logger?: Logger;
  metrics?: PoolMetrics;
}

interface Task {
  id: string;
  member: Member;
  segment: Uint8Array;
  profiles: readonly Profile[];
  source: SegmentFacts;
  /** The segment's validated analysis: the local member does not read it again. */
  analysis: TsAnalysis;
  attempt: number;
  started: number;
  /** Aborted once the task settles: stops local work nobody waits for any more. */
  signal: AbortSignal;
  settle(err: unknown, result?: PoolTranscodeResult): void;
}

interface Member {
  readonly id: string;
  readonly kind: 'local' | 'remote';
  readonly capacity: number;
  load: number;
  readonly tasks: Map<string, Task>;
  start(task: Task): void;
}

class LocalMember implements Member {
  readonly id = 'local';
  readonly kind = 'local' as const;
  load = 0;
  readonly tasks = new Map<string, Task>();

  constructor(
    readonly capacity: number,
    private readonly transcoder: SegmentTranscoder,
  ) {}

  start(task: Task): void {
    this.transcoder
      .transcode(task.segment, task.profiles, { signal: task.signal, analysis: task.analysis })
      .then(
        (result) => task.settle(undefined, { ...result, transcoder: this.id, attempts: task.attempt }),
        (err: unknown) => task.settle(err),
      );
  }
}

class RemoteMember implements Member {
  readonly kind = 'remote' as const;
  load = 0;
  readonly tasks = new Map<string, Task>();
  private readonly queue: WorkItem[] = [];
  private wake: (() => void) | undefined;
  private readonly ending = new AbortController();

  constructor(
    readonly id: string,
    readonly capacity: number,
  ) {}

  /** Aborts when the pool drops this member; its reason is what the transcoder is told. */
  get endSignal(): AbortSignal {
    return this.ending.signal;
  }

  /** Ends the registration stream with `reason` (the pool has already removed the member). */
  end(reason: PoolError): void {
    this.ending.abort(reason);
  }

  start(task: Task): void {
    this.queue.push(
      create(WorkItemSchema, {
        taskId: task.id,
        segment: task.segment,
        profiles: task.profiles.map(profileToProto),
        durationMs: Math.round(task.source.duration * 1000),
      }),
    );
    this.wake?.();
  }

  /** Work items for the registration stream, until `signal` aborts. */
  async *items(signal: AbortSignal): AsyncGenerator<WorkItem> {
    for (;;) {
      const item = this.queue.shift();
      if (item) {
        // The task may have settled (timeout, caller abort) while queued: nobody waits for its result.
        if (this.tasks.has(item.taskId)) yield item;
        continue;
      }
      await this.next(signal);
    }
  }

  private next(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        this.wake = undefined;
        reject(signal.reason);
      };
      this.wake = () => {
        signal.removeEventListener('abort', onAbort);
        this.wake = undefined;
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/**
 * The orchestrator's transcoders behind one `transcode()`: its own ffmpeg (optional, `localCapacity` at once)
 * and remote transcoders that register over the Transcoder RPC service with the shared secret. Each segment
 * goes to the least loaded member (load ÷ capacity) with a free slot; when that member's stream drops or it
 * reports a failure, the segment goes to another member at once, and `taskTimeoutMs` bounds a member that
 * goes silent. A segment that finds every member full is refused with `OrchestratorBusy`.
 *
 * Mount it on the orchestrator's RPC server with {@link registerRoutes}.
 */
export class TranscoderPool implements SegmentTranscoder {
  readonly options: TranscoderPoolOptions;
  private readonly log: Logger;
  private readonly members: Member[] = [];
  private readonly tasks = new Map<string, Task>();
  private readonly listeners = new Set<(event: PoolEvent) => void>();
  private readonly shutdown = new AbortController();
  private readonly expectedSecret: Buffer | undefined;
  private remoteCount = 0;
  private readonly metrics: PoolMetrics | undefined;
  /** Re-dispatches waiting for a free slot; woken when a dispatch settles or the members change. */
  private readonly slotWaiters = new Set<() => void>();

  constructor(options: Partial<TranscoderPoolOptions>, deps: TranscoderPoolDeps = {}) {
    this.options = withDefaults(defaultTranscoderPoolOptions, options);
    this.log = (deps.logger ?? silentLogger).child({ module: 'transcoder-pool' });
    this.metrics = deps.metrics;
    this.expectedSecret = this.options.secret === undefined ? undefined : digest(this.options.secret);
    if (this.options.localCapacity > 0) {
      const local =
        deps.local ??
        new LocalTranscoder(this.options.local, {
          tools: deps.tools ?? resolveMediaTools(),
          ...(deps.logger ? { logger: deps.logger } : {}),
        });
      this.members.push(new LocalMember(this.options.localCapacity, local));
    }
    this.countMembers();
  }

  /** Subscribes to pool events; returns the unsubscribe function. */
  on(listener: (event: PoolEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The current members and their load. */
  memberInfo(): PoolMemberInfo[] {
    return this.members.map(info);
  }

  /** Free slots across members. */
  freeCapacity(): number {
    return this.members.reduce((sum, m) => sum + Math.max(0, m.capacity - m.load), 0);
  }

  /** The structural checks under the pool's limits; pass the result as `analysis` to `transcode`. */
  validate(segment: Uint8Array): TsAnalysis {
    return validateSegment(segment, this.options.local.limits ?? defaultSegmentLimits);
  }

  /** Mounts the Transcoder service: `createRpcServer(opts, (router) => pool.registerRoutes(router))`. */
  registerRoutes(router: ConnectRouter): void {
    router.service(Transcoder, this.service());
  }

  /** The Transcoder service implementation, for a router that mounts several services. */
  service(): ServiceImpl<typeof Transcoder> {
    return {
      registerTranscoder: (req, ctx) => this.register(req, ctx),
      submitResult: async (req) => this.submit(req),
    };
  }

  /**
   * Transcodes on the least loaded member, re-dispatching on failure up to `maxAttempts` members (a
   * re-dispatch that finds every member busy waits up to `taskTimeoutMs` for a free slot). Rejects with
   * {@link PoolError} `OrchestratorBusy` when no member has a free slot for a new segment, {@link SegmentFormatError} for input
   * no transcoder takes (not retried), `TranscodeFailed` when every attempt failed, or the signal's reason.
   */
  async transcode(
    segment: Uint8Array,
    profiles: readonly Profile[],
    opts: TranscodeCallOptions = {},
  ): Promise<PoolTranscodeResult> {
    const signal = opts.signal;
    signal?.throwIfAborted();
    if (profiles.length === 0) throw new RangeError('transcode needs at least one profile');
    // Checked here once so a bad segment is refused before any member spends a slot on it.
    const analysis = opts.analysis ?? this.validate(segment);
    const source = segmentFacts(analysis);
    const tried = new Set<Member>();
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.options.maxAttempts; attempt++) {
      if (this.shutdown.signal.aborted) throw shuttingDown();
      // A new segment finding every member full is refused (the broadcaster goes elsewhere); one already taken
      // whose member dropped waits for a slot (a busy member finishing, a transcoder reconnecting) rather than
      // fail while the others are a moment from free.
      const member =
        this.pick(tried) ??
        (attempt > 1 ? await this.waitForMember(tried, this.options.taskTimeoutMs, signal) : undefined);
      if (!member) {
        if (attempt === 1) {
          this.metrics?.busy.inc();
          throw busy(this.members.length);
        }
        if (signal?.aborted) throw signal.reason;
        if (this.shutdown.signal.aborted) throw shuttingDown();
        break;
      }
      tried.add(member);
      try {
        return await this.dispatch(member, { segment, profiles, source, analysis, attempt }, signal);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        const retry = isRetryable(err) && !this.shutdown.signal.aborted;
        this.log.warn(
          { member: member.id, attempt, code: codeOf(err), err, retry },
          'segment failed on a transcoder',
        );
        if (!retry) throw err;
        lastError = err;
      }
    }
    throw new PoolError(
      'TranscodeFailed',
      `the segment failed on ${tried.size} transcoder(s): ${messageOf(lastError)}; check the transcoders' logs`,
      { attempts: tried.size, lastCode: codeOf(lastError) },
      { cause: lastError },
    );
  }

  /**
   * Ends every registration stream and fails the segments in flight with `ShuttingDown`. Idempotent; call
   * before closing the RPC server so remote transcoders see a clean end.
   */
  close(): void {
    if (this.shutdown.signal.aborted) return;
    this.shutdown.abort(shuttingDown());
    for (const task of [...this.tasks.values()]) task.settle(shuttingDown());
  }

  /** A member with a free slot as soon as there is one (see {@link pick}); undefined after `ms`, on abort or shutdown. */
  private async waitForMember(
    tried: ReadonlySet<Member>,
    ms: number,
    signal: AbortSignal | undefined,
  ): Promise<Member | undefined> {
    const deadline = performance.now() + ms;
    for (;;) {
      const member = this.pick(tried);
      if (member) return member;
      const left = deadline - performance.now();
      if (left <= 0 || signal?.aborted || this.shutdown.signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.slotWaiters.delete(done);
          signal?.removeEventListener('abort', done);
          this.shutdown.signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.slotWaiters.add(done);
        signal?.addEventListener('abort', done, { once: true });
        this.shutdown.signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  private slotFreed(): void {
    for (const wake of [...this.slotWaiters]) wake();
  }

  /** Least loaded member with a free slot, preferring members not tried yet for this segment. */
  private pick(tried: ReadonlySet<Member>): Member | undefined {
    const free = this.members.filter((m) => m.load < m.capacity);
    const fresh = free.filter((m) => !tried.has(m));
    // Ties keep member order (local first, then remotes by registration), so dispatch is deterministic.
    const byLoad = (a: Member, b: Member) => a.load / a.capacity - b.load / b.capacity;
    return [...(fresh.length > 0 ? fresh : free)].sort(byLoad)[0];
  }

  private dispatch(
    member: Member,
    job: Pick<Task, 'segment' | 'profiles' | 'source' | 'analysis' | 'attempt'>,
    signal: AbortSignal | undefined,
  ): Promise<PoolTranscodeResult> {
    const id = randomUUID();
    const stop = new AbortController();
    const timeoutMs = this.options.taskTimeoutMs;
    return new Promise<PoolTranscodeResult>((resolve, reject) => {
      let settled = false;
      const onAbort = () => task.settle(signal?.reason);
      const timer = setTimeout(() => {
        task.settle(
          new PoolError('TranscodeFailed', `transcoder ${member.id} sent no result within ${timeoutMs} ms`, {
            reason: 'Timeout',
            member: member.id,
            timeoutMs,
          }),
        );
      }, timeoutMs);
      const task: Task = {
        ...job,
        id,
        member,
        started: performance.now(),
        signal: stop.signal,
        settle: (err, result) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          member.load--;
          member.tasks.delete(id);
          this.tasks.delete(id);
          stop.abort();
          this.slotFreed();
          const outcome = result ? 'ok' : signal?.aborted ? 'aborted' : 'failed';
          this.metrics?.dispatches.inc({ kind: member.kind, outcome });
          if (result) resolve(result);
          else {
            this.emit({
              type: 'failed',
              taskId: id,
              member: member.id,
              code: codeOf(err),
              retry: isRetryable(err),
            });
            reject(err);
          }
        },
      };
      member.load++;
      member.tasks.set(id, task);
      this.tasks.set(id, task);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.emit({ type: 'dispatched', taskId: id, member: member.id, attempt: job.attempt });
      member.start(task);
    });
  }

  private async *register(req: RegisterTranscoderRequest, ctx: HandlerContext): AsyncGenerator<WorkItem> {
    this.authenticate(req.secret);
    const max = this.options.maxRemoteCapacity;
    if (!Number.isInteger(req.capacity) || req.capacity < 1 || req.capacity > max) {
      throw new PoolError('InvalidMessage', `capacity ${req.capacity} is outside 1–${max}`, {
        field: 'capacity',
      });
    }
    if (this.shutdown.signal.aborted) throw shuttingDown();
    const member = new RemoteMember(`remote-${++this.remoteCount}`, req.capacity);
    this.members.push(member);
    this.countMembers();
    this.log.info({ member: member.id, capacity: member.capacity }, 'transcoder registered');
    this.emit({ type: 'joined', member: info(member) });
    const signal = AbortSignal.any([ctx.signal, this.shutdown.signal, member.endSignal]);
    let reason = 'stream ended';
    try {
      yield* member.items(signal);
    } catch (err) {
      reason = signal.aborted ? 'stream closed' : messageOf(err);
      // Dropped by the pool: the transcoder is told why, with a code its operator can act on.
      if (member.endSignal.aborted) throw member.endSignal.reason;
      // A closed stream is the normal way out: the server's wrapper tells the peer why (ShuttingDown).
      if (!signal.aborted) throw err;
    } finally {
      this.leave(member, reason);
    }
  }

  /** Removes a member and sends each of its segments elsewhere at once. */
  private leave(member: RemoteMember, reason: string): void {
    const index = this.members.indexOf(member);
    if (index < 0) return;
    this.members.splice(index, 1);
    this.countMembers();
    this.log.info({ member: member.id, inFlight: member.tasks.size, reason }, 'transcoder left');
    for (const task of [...member.tasks.values()]) {
      task.settle(
        new PoolError('TranscodeFailed', `transcoder ${member.id} dropped mid-segment (${reason})`, {
          reason: 'Disconnected',
          member: member.id,
        }),
      );
    }
    this.emit({ type: 'left', member: info(member), reason });
  }

  private submit(req: SubmitResultRequest): SubmitResultReply {
    this.authenticate(req.secret);
    const task = this.tasks.get(req.taskId);
    const member = task?.member;
    // A late result of a segment already re-dispatched or timed out: the work is wasted, not wrong.
    if (!task || !(member instanceof RemoteMember)) {
      this.log.debug({ taskId: req.taskId }, 'result for an unknown or settled task ignored');
      return create(SubmitResultReplySchema);
    }
    const elapsed = performance.now() - task.started;
    switch (req.result.case) {
      case 'ok':
        try {
          const renditions = remoteRenditions(task.profiles, req.result.value.renditions);
          const mistimed = this.mistimed(member, task, renditions);
          if (mistimed) {
            task.settle(mistimed);
            // Right secret, wrong segment: not a transcoder to send more segments to.
            this.leave(member, mistimed.message);
            member.end(mistimed);
            break;
          }
          task.settle(undefined, {
            source: task.source,
            renditions,
            timings: { probeMs: 0, ffmpegMs: elapsed, totalMs: elapsed },
            transcoder: task.member.id,
            attempts: task.attempt,
          });
        } catch (err) {
          task.settle(err);
        }
        break;
      case 'error':
        task.settle(fromWireErrorMessage(req.result.value));
        break;
      default:
        task.settle(
          new PoolError('TranscodeFailed', `transcoder ${task.member.id} sent a result with neither`, {
            reason: 'EmptyResult',
          }),
        );
    }
    return create(SubmitResultReplySchema);
  }

  /**
   * A remote result whose renditions do not cover the segment's time (another segment's, shifted, stretched):
   * the orchestrator would sign a receipt over the wrong bytes. Returns the error the segment fails with.
   */
  private mistimed(
    member: RemoteMember,
    task: Task,
    renditions: readonly Rendition[],
  ): PoolError | undefined {
    for (const r of renditions) {
      const t = checkTiming(r, task.source, r.profile.fps);
      if (!t) continue;
      this.log.warn(
        {
          member: member.id,
          taskId: task.id,
          profile: r.profile.name,
          timing: t.reason,
          expected: t.expected,
          actual: t.actual,
          tolerance: t.tolerance,
        },
        'remote transcoder returned renditions of another time; dropping it',
      );
      return new PoolError(
        'TranscodeFailed',
        `transcoder ${member.id}'s rendition ${r.profile.name} ${t.message}`,
        { reason: 'RenditionMismatch', member: member.id, profile: r.profile.name, timing: t.reason },
      );
    }
    return undefined;
  }

  private authenticate(secret: string): void {
    // Hashing both sides first makes the comparison constant-time in the length too.
    if (
      !this.expectedSecret ||
      secret.length > 256 ||
      !timingSafeEqual(digest(secret), this.expectedSecret)
    ) {
      throw new PoolError(
        'Unauthenticated',
        this.expectedSecret
          ? 'wrong transcoder secret; pass the orchestrator’s --transcoder-secret as --secret'
          : 'this orchestrator takes no remote transcoders (it has no transcoder secret)',
        {},
      );
    }
  }

  private countMembers(): void {
    // Called whenever a member joins or leaves: a joiner is a free slot.
    this.slotFreed();
    if (!this.metrics) return;
    for (const kind of ['local', 'remote'] as const) {
      this.metrics.members.set({ kind }, this.members.filter((m) => m.kind === kind).length);
    }
  }

  private emit(event: PoolEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err, event: event.type }, 'pool event listener threw');
      }
    }
  }
}

/**
 * Renditions in the order of `profiles`, their facts read from their own bytes: a remote transcoder is
 * trusted with the work, not with the figures the broadcaster pays for.
 */
function remoteRenditions(profiles: readonly Profile[], wire: readonly RenditionMessage[]): Rendition[] {
  return profiles.map((profile) => {
    const message = wire.find((r) => r.profile === profile.name);
    const data = message?.data ?? new Uint8Array(0);
    const rendition = readRendition(profile, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    if (!rendition) {
      throw new PoolError(
        'TranscodeFailed',
        `rendition ${profile.name} from the transcoder is ${message ? 'not decodable video' : 'missing'}`,
        { reason: 'BadRendition', profile: profile.name },
      );
    }
    return rendition;
  });
}

/** A member's failure is worth another member unless the input itself is what was refused. */
function isRetryable(err: unknown): boolean {
  if (err instanceof SegmentFormatError) return false;
  if (err instanceof StreamflowError && err.code === 'SegmentFormatDidntMatchJobInputParams') return false;
  if (err instanceof StreamflowError && err.code === 'ShuttingDown') return false;
  // The profiles as sent are malformed: every member would refuse them alike.
  if (err instanceof StreamflowError && err.code === 'InvalidMessage') return false;
  return true;
}

function info(m: Member): PoolMemberInfo {
  return { id: m.id, kind: m.kind, capacity: m.capacity, load: m.load };
}

function busy(members: number): PoolError {
  return new PoolError(
    'OrchestratorBusy',
    members === 0
      ? 'no transcoder is connected; try another orchestrator'
      : 'every transcoder is at capacity; try another orchestrator',
    { members },
  );
}

function shuttingDown(): WireError {
  return new WireError('ShuttingDown', 'the orchestrator is shutting down; use another one');
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

function codeOf(err: unknown): string {
  return err instanceof StreamflowError ? err.code : 'Internal';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
