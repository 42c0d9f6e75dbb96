import { type HlsMediaFacts, LiveHlsStream } from '../media/hls.js';
import type { Profile } from '../media/profiles.js';
import type { Segment } from '../media/segmenter.js';
import { hlsSourceFacts, sourceFacts } from '../media/vod.js';
import { StreamflowError } from '../node/errors.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { IngestError } from './ingest-auth.js';
import type { JobManager, SegmentOutcome } from './jobs.js';

/** Segment records a stream keeps (the newest): enough for status and push answers, bounded for long streams. */
const KEPT_RECORDS = 256;

/** What happened to one segment of a stream. */
export interface SegmentRecord {
  seq: number;
  duration: number;
  /** The orchestrator whose renditions were used; undefined when none could transcode it (source only). */
  orchestrator: string | undefined;
  attempts: number;
  latencyMs: number;
  fee: bigint;
}

export interface StreamStats {
  id: string;
  ingested: number;
  transcoded: number;
  /** Segments that went out as the source only (every orchestrator failed). */
  sourceOnly: number;
  renditions: number;
  failovers: number;
  feesWei: bigint;
  /** Per orchestrator address: segments it transcoded for this stream. */
  byOrchestrator: Record<string, number>;
  ended: boolean;
}

/**
 * One live stream at the broadcaster: segments in (from RTMP, HTTP push or a file), transcoded through the
 * job manager a few at a time, appended to the HLS playlists strictly in order. A segment no orchestrator
 * could transcode still goes out, as the source in every variant, so the output has no hole.
 */
export class BroadcastStream {
  readonly hls: LiveHlsStream;
  /** The newest segment records, oldest first (at most 256). */
  readonly records: SegmentRecord[] = [];
  private readonly log: Logger;
  private readonly inFlight: Array<{ segment: Segment; result: Promise<SegmentOutcome | undefined> }> = [];
  private readonly stats: StreamStats;
  private chain: Promise<void> = Promise.resolve();
  private lastSeq = -1;
  private readonly listeners = new Set<(r: SegmentRecord) => void>();

  constructor(
    readonly id: string,
    readonly profiles: readonly Profile[],
    private readonly deps: {
      jobs: Pick<JobManager, 'transcode'>;
      logger?: Logger;
      /** Segments transcoded at once. @default 2 */
      concurrency?: number;
      /** Live playlist window, segments. @default 6 */
      windowSize?: number;
      signal?: AbortSignal;
    },
  ) {
    this.log = (deps.logger ?? silentLogger).child({ module: 'stream', stream: id });
    this.hls = new LiveHlsStream(
      {
        renditions: profiles.map((p) => p.name),
        ...(deps.windowSize ? { windowSize: deps.windowSize } : {}),
      },
      deps.logger ? { logger: deps.logger } : {},
    );
    this.stats = {
      id,
      ingested: 0,
      transcoded: 0,
      sourceOnly: 0,
      renditions: 0,
      failovers: 0,
      feesWei: 0n,
      byOrchestrator: {},
      ended: false,
    };
  }

  /** Called after each segment is appended to the playlists. */
  onSegment(listener: (r: SegmentRecord) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): StreamStats {
    return { ...this.stats, byOrchestrator: { ...this.stats.byOrchestrator } };
  }

  /**
   * Takes the next segment; resolves once it is in flight (waiting while `concurrency` are), so a source
   * that is faster than transcoding is slowed rather than buffered without bound. Segments must come in
   * order; one whose seq is not after the last is refused.
   */
  async push(segment: Segment): Promise<void> {
    this.checkSeq(segment.seq);
    this.lastSeq = segment.seq;
    this.stats.ingested++;
    const result = this.deps.jobs
      .transcode(
        {
          streamId: this.id,
          seq: segment.seq,
          duration: segment.duration,
          bytes: segment.bytes,
          profiles: this.profiles,
        },
        this.deps.signal,
      )
      .catch((err: unknown) => {
        this.log.error(
          { seq: segment.seq, code: err instanceof StreamflowError ? err.code : undefined, err },
          'segment could not be transcoded; publishing the source only',
        );
        return undefined;
      });
    this.inFlight.push({ segment, result });
    const append = this.chain.then(() => this.settleHead());
    this.chain = append;
    if (this.inFlight.length >= (this.deps.concurrency ?? 2)) await append;
  }

  /**
   * Throws unless `seq` is after every seq taken: `DuplicateSegment` for one already taken (the last, or any
   * before it that was taken), `SegmentOutOfOrder` for one below the last.
   */
  checkSeq(seq: number): void {
    if (seq > this.lastSeq) return;
    if (
      seq === this.lastSeq ||
      this.records.some((r) => r.seq === seq) ||
      this.inFlight.some((f) => f.segment.seq === seq)
    ) {
      throw new IngestError('DuplicateSegment', `segment ${seq} of ${this.id} was already pushed`, {
        stream: this.id,
        seq,
        lastSeq: this.lastSeq,
      });
    }
    throw new IngestError(
      'SegmentOutOfOrder',
      `segment ${seq} of ${this.id} comes after ${this.lastSeq}: segments must be pushed in order`,
      { stream: this.id, seq, lastSeq: this.lastSeq },
    );
  }

  /** The record of segment `seq`, if it is still kept. */
  record(seq: number): SegmentRecord | undefined {
    for (let i = this.records.length - 1; i >= 0; i--)
      if (this.records[i]?.seq === seq) return this.records[i];
    return undefined;
  }

  /** Waits for every segment in flight to be appended. */
  async drain(): Promise<void> {
    await this.chain;
  }

  /** Drains and marks the playlists ended. */
  async end(): Promise<void> {
    await this.drain();
    this.hls.end();
    this.stats.ended = true;
  }

  private async settleHead(): Promise<void> {
    const head = this.inFlight.shift();
    if (!head) return;
    const outcome = await head.result;
    const { segment } = head;
    const renditions: Record<string, HlsMediaFacts> = {};
    for (const r of outcome?.renditions ?? []) renditions[r.profile.name] = r;
    this.hls.append({
      seq: segment.seq,
      duration: segment.duration,
      discontinuity: segment.discontinuity,
      // Read once already by the job manager when the segment was transcoded.
      source: outcome
        ? hlsSourceFacts(segment.bytes, {
            ...outcome.source,
            // 0 is the job manager's "unknown" (no SPS read); the playlists leave RESOLUTION out then.
            width: outcome.source.width || undefined,
            height: outcome.source.height || undefined,
          })
        : sourceFacts(segment),
      renditions,
    });
    if (outcome) {
      this.stats.transcoded++;
      this.stats.renditions += outcome.renditions.length;
      this.stats.feesWei += outcome.fee;
      if (outcome.attempts > 1) this.stats.failovers++;
      const key = outcome.orchestrator.toLowerCase();
      this.stats.byOrchestrator[key] = (this.stats.byOrchestrator[key] ?? 0) + 1;
    } else {
      this.stats.sourceOnly++;
    }
    const record: SegmentRecord = {
      seq: segment.seq,
      duration: segment.duration,
      orchestrator: outcome?.orchestrator,
      attempts: outcome?.attempts ?? 0,
      latencyMs: outcome?.latencyMs ?? 0,
      fee: outcome?.fee ?? 0n,
    };
    this.records.push(record);
    if (this.records.length > KEPT_RECORDS) this.records.splice(0, this.records.length - KEPT_RECORDS);
    for (const l of this.listeners) l(record);
  }
}
