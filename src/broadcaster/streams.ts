import type { Profile } from '../media/profiles.js';
import { type Logger, silentLogger } from '../node/logger.js';
import {
  checkStreamName,
  hashStreamKey,
  type IngestAuth,
  IngestError,
  type IngestGrant,
  keyMatches,
  type PublishRequest,
} from './ingest-auth.js';
import type { JobManager } from './jobs.js';
import { BroadcastStream, type SegmentRecord } from './stream.js';

export interface StreamRegistryOptions {
  /** Every profile of the broadcaster; a grant may narrow a stream to some of them. */
  profiles: readonly Profile[];
  /** Live streams at once (RTMP, HTTP push and files together); more are refused (`TooManyStreams`). @default 64 */
  maxStreams: number;
  /** Ended streams kept (newest first) so their playlists stay readable a while. @default 64 */
  keepEnded: number;
  /** How long an ended stream is kept at most, ms. @default 600_000 */
  keepEndedMs: number;
  /** An HTTP-push stream without a segment for this long ends, ms. @default 60_000 */
  pushIdleTimeoutMs: number;
  /** Segments of one stream transcoded at once. @default 2 */
  concurrency: number | undefined;
  /** Live playlist window, segments. @default 6 */
  hlsWindow: number | undefined;
}

export const defaultStreamRegistryOptions: Readonly<Omit<StreamRegistryOptions, 'profiles'>> = Object.freeze({
  maxStreams: 64,
  keepEnded: 64,
  keepEndedMs: 600_000,
  pushIdleTimeoutMs: 60_000,
  concurrency: undefined,
  hlsWindow: undefined,
});

export interface StreamRegistryDeps {
  jobs: Pick<JobManager, 'transcode'>;
  auth: IngestAuth;
  logger?: Logger;
  /** Aborts every stream's transcoding (the node stopping). */
  signal?: AbortSignal;
  /** @default Date.now */
  now?: () => number;
}

interface PushSession {
  stream: BroadcastStream;
  /** SHA-256 of the key that opened it; later pushes must carry the same. Undefined: opened without a key. */
  keyHash: string | undefined;
  /**
   * The opener's address without the port, when a webhook let it in without a key: later pushes must come from
   * there (a keyless grant is a grant to that publisher, not to the stream name). Undefined otherwise.
   */
  host: string | undefined;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The broadcaster's streams: who may open one (the {@link IngestAuth} rules and `maxStreams`), the HTTP-push
 * sessions (a stream opened by a push is pushed into with the same key, ends on `DELETE` or after
 * `pushIdleTimeoutMs`), and what is freed when a stream ends: only the newest `keepEnded` ended streams are kept,
 * for `keepEndedMs` at most, so stream state does not grow with the number of streams ever started.
 */
export class StreamRegistry {
  readonly options: StreamRegistryOptions;
  /** Live and recently ended streams by name. */
  readonly streams = new Map<string, BroadcastStream>();
  private readonly ended = new Map<string, { stream: BroadcastStream; at: number }>();
  private readonly pushes = new Map<string, PushSession>();
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(
    options: { [K in keyof StreamRegistryOptions]?: StreamRegistryOptions[K] | undefined } & Pick<
      StreamRegistryOptions,
      'profiles'
    >,
    private readonly deps: StreamRegistryDeps,
  ) {
    this.options = {
      ...defaultStreamRegistryOptions,
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    } as StreamRegistryOptions;
    this.log = (deps.logger ?? silentLogger).child({ module: 'streams' });
    this.now = deps.now ?? Date.now;
  }

  /** Live streams now. */
  get live(): number {
    return this.streams.size - this.ended.size;
  }

  get(id: string): BroadcastStream | undefined {
    return this.streams.get(id);
  }

  /**
   * Opens stream `id` for a new publisher: refuses a name that is not safe (`InvalidStreamName`), a name that is
   * live (`StreamExists`) and a stream over `maxStreams` (`TooManyStreams`). A grant naming profiles narrows the
   * stream to them.
   */
  open(id: string, grant?: IngestGrant): BroadcastStream {
    this.checkOpen(id);
    const profiles = grant?.profiles
      ? this.options.profiles.filter((p) => grant.profiles?.includes(p.name))
      : this.options.profiles;
    const stream = new BroadcastStream(id, profiles, {
      jobs: this.deps.jobs,
      logger: this.deps.logger ?? silentLogger,
      ...(this.deps.signal ? { signal: this.deps.signal } : {}),
      ...(this.options.concurrency ? { concurrency: this.options.concurrency } : {}),
      ...(this.options.hlsWindow ? { windowSize: this.options.hlsWindow } : {}),
    });
    this.ended.delete(id);
    this.streams.set(id, stream);
    return stream;
  }

  /** Throws what {@link open} would, without opening. */
  checkOpen(id: string): void {
    checkStreamName(id);
    const existing = this.streams.get(id);
    if (existing && !this.ended.has(id)) {
      throw new IngestError('StreamExists', `stream ${id} is already being published`, { stream: id });
    }
    this.prune();
    if (this.live >= this.options.maxStreams) {
      throw new IngestError(
        'TooManyStreams',
        `this broadcaster takes at most ${this.options.maxStreams} live streams (--max-streams); try again later`,
        { stream: id, maxStreams: this.options.maxStreams },
      );
    }
  }

  /** Ends a stream (drains, ENDLIST) and frees it but for the playlists kept a while. */
  async end(stream: BroadcastStream): Promise<void> {
    try {
      await stream.end();
    } finally {
      this.retire(stream);
    }
  }

  /** Authorizes an RTMP publish: the key rules, then the name and the limit. */
  async authorizePublish(req: PublishRequest, signal?: AbortSignal): Promise<IngestGrant> {
    this.checkOpen(req.stream);
    const grant = await this.deps.auth.authorize(req, signal);
    this.checkOpen(req.stream);
    return grant;
  }

  /**
   * Judges an HTTP push before its body is read. The first push of a stream is authorized by the ingest rules and
   * opens it; later ones need the key that opened it (compared in constant time), whoever sends them. A seq the
   * stream has already passed is refused here too, before the body is read.
   */
  async authorizePush(
    req: PublishRequest & { seq: number | undefined },
    signal?: AbortSignal,
  ): Promise<void> {
    checkStreamName(req.stream);
    const session = this.pushes.get(req.stream);
    if (session) return this.checkSession(session, req);
    if (req.seq === undefined) {
      // The end of a stream that is not live: nothing to end, but a stranger learns nothing either.
      await this.deps.auth.authorize(req, signal);
      return;
    }
    this.checkOpen(req.stream);
    const grant = await this.deps.auth.authorize(req, signal);
    // Another push of the same stream may have opened it meanwhile.
    const raced = this.pushes.get(req.stream);
    if (raced) return this.checkSession(raced, req);
    const stream = this.open(req.stream, grant);
    const opened: PushSession = {
      stream,
      keyHash: req.key !== undefined ? hashStreamKey(req.key) : undefined,
      host: req.key === undefined && grant.via !== 'loopback' ? hostOf(req.remoteAddress) : undefined,
      timer: undefined,
    };
    this.pushes.set(req.stream, opened);
    this.touch(opened);
    this.log.info(
      { stream: req.stream, from: req.remoteAddress, via: grant.via },
      'http push stream started',
    );
  }

  private checkSession(session: PushSession, req: PublishRequest & { seq: number | undefined }): void {
    if (session.keyHash !== undefined && (req.key === undefined || !keyMatches(req.key, session.keyHash))) {
      throw new IngestError(
        req.key === undefined ? 'StreamKeyRequired' : 'StreamKeyRefused',
        `stream ${req.stream} is live and pushed with another key`,
        { stream: req.stream },
      );
    }
    if (session.host !== undefined && hostOf(req.remoteAddress) !== session.host) {
      throw new IngestError(
        'StreamKeyRefused',
        `stream ${req.stream} is live and pushed by another publisher`,
        {
          stream: req.stream,
        },
      );
    }
    if (req.seq !== undefined) session.stream.checkSeq(req.seq);
    this.touch(session);
  }

  /**
   * Takes a pushed segment of a stream {@link authorizePush} opened; resolves with its record once it is in the
   * playlists. `DuplicateSegment`/`SegmentOutOfOrder` for a seq the stream has passed.
   */
  async pushSegment(seg: {
    stream: string;
    seq: number;
    duration: number;
    bytes: Buffer;
  }): Promise<SegmentRecord | undefined> {
    const session = this.pushes.get(seg.stream);
    if (!session) {
      throw new IngestError('StreamKeyRequired', `stream ${seg.stream} is not open for pushing`, {
        stream: seg.stream,
      });
    }
    const { stream } = session;
    await stream.push({
      seq: seg.seq,
      duration: seg.duration,
      bytes: seg.bytes,
      startPts: 0,
      discontinuity: false,
    });
    this.touch(session);
    await stream.drain();
    return stream.record(seg.seq);
  }

  /** `DELETE` of a pushed stream (already authorized): it ends now. */
  async endPush(id: string): Promise<void> {
    const session = this.pushes.get(id);
    if (!session) return;
    await this.endSession(id, session, 'ended by the publisher');
  }

  private touch(session: PushSession): void {
    if (session.timer) session.timer.refresh();
    else {
      session.timer = setTimeout(() => {
        void this.endSession(session.stream.id, session, 'no segment within the push idle timeout');
      }, this.options.pushIdleTimeoutMs);
      session.timer.unref();
    }
  }

  private async endSession(id: string, session: PushSession, why: string): Promise<void> {
    if (this.pushes.get(id) !== session) return;
    this.pushes.delete(id);
    clearTimeout(session.timer);
    await this.end(session.stream);
    this.log.info({ stream: id, why, ...session.stream.snapshot() }, 'http push stream ended');
  }

  /** Ends every pushed stream (the node stopping). */
  async stop(): Promise<void> {
    await Promise.allSettled(
      [...this.pushes].map(([id, s]) => this.endSession(id, s, 'broadcaster stopping')),
    );
  }

  private retire(stream: BroadcastStream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.ended.delete(stream.id);
    this.ended.set(stream.id, { stream, at: this.now() });
    this.prune();
  }

  /** Drops ended streams beyond `keepEnded` or older than `keepEndedMs` (the map keeps them oldest first). */
  private prune(): void {
    const cutoff = this.now() - this.options.keepEndedMs;
    for (const [id, e] of this.ended) {
      if (this.ended.size <= this.options.keepEnded && e.at >= cutoff) break;
      this.ended.delete(id);
      if (this.streams.get(id) === e.stream) this.streams.delete(id);
    }
  }
}

/** `1.2.3.4:5` → `1.2.3.4`, `[::1]:5` → `::1`. */
function hostOf(remote: string): string {
  const m = /^\[([^\]]*)\]:\d+$/.exec(remote) ?? /^([^:]*):\d+$/.exec(remote);
  return m?.[1] ?? remote;
}
