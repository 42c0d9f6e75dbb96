import type { ServerResponse } from 'node:http';
import { Registry } from 'prom-client';
import { type Address, type Hex, hexToBytes } from 'viem';
import type { SignerConnection } from '../chain/client.js';
import type { DeploymentManifest } from '../chain/manifest.js';
import { ticketDomain } from '../chain/ticket-broker.js';
import { type MediaTools, resolveMediaTools } from '../media/ffmpeg.js';
import { createHlsHandler } from '../media/hls.js';
import { createHttpPushHandler } from '../media/http-push.js';
import type { Profile } from '../media/profiles.js';
import { type RtmpPublish, RtmpServer, segmentRtmpPublish } from '../media/rtmp.js';
import { segmentSource } from '../media/segmenter.js';
import { HttpServer, sendJson } from '../node/http-server.js';
import { Lifecycle } from '../node/lifecycle.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { createPMMetrics } from '../pm/metrics.js';
import type { SenderOptions } from '../pm/options.js';
import { Sender } from '../pm/sender.js';
import type { DigestSigner } from '../rpc/signing.js';
import { discoverWithReport, regionCode, serviceId, staticOrchestrators } from './discovery.js';
import { BrokerFunds, ensureFunded } from './funds.js';
import { IngestAuth, IngestError, isLoopback } from './ingest-auth.js';
import { JobManager, type JobManagerOptions } from './jobs.js';
import type { BroadcastStream, StreamStats } from './stream.js';
import { StreamRegistry } from './streams.js';

export interface BroadcasterNodeOptions {
  /** Interface for HTTP (HLS, push, status) and RTMP. @default '127.0.0.1' */
  host?: string;
  /** HTTP port: HLS at `/hls/<stream>/index.m3u8`, push at `PUT /live/<stream>/<seq>.ts`. 0: a free one. @default 0 */
  httpPort?: number;
  /** RTMP ingest port (`rtmp://host:port/live/<stream>`); 0: a free one; `false`: no RTMP. @default 0 */
  rtmpPort?: number | false;
  /** Renditions made of every stream. */
  profiles: readonly Profile[];
  /** Static orchestrator URLs; when given, the chain is not searched. */
  orchestrators?: readonly string[];
  /** Least total stake an orchestrator found on chain needs, LPT wei. @default 0 */
  minStake?: bigint;
  /** Tops up the TicketBroker deposit to this at start, wei. */
  deposit?: bigint;
  /** Tops up the TicketBroker reserve to this at start, wei. */
  reserve?: bigint;
  jobs?: Partial<JobManagerOptions>;
  sender?: Partial<SenderOptions>;
  /** Segment length, seconds. @default 2 */
  segmentDuration?: number;
  /** Segments of one stream transcoded at once. @default 2 */
  concurrency?: number;
  /** Live playlist window, segments. @default 6 */
  hlsWindow?: number;
  /**
   * Stream-keys file (`streamflow broadcaster keys create NAME`): a publish needs the key of its stream. With
   * neither this nor `authWebhook`, publishes are taken from loopback addresses only.
   */
  streamKeysFile?: string;
  /** Auth webhook URL, asked about every new stream (see docs/network.md). */
  authWebhook?: string;
  /** Live streams at once; more are refused. @default 64 */
  maxStreams?: number;
  /** An HTTP-push stream without a segment for this long ends, ms. @default 60_000 */
  pushIdleTimeoutMs?: number;
}

export interface BroadcasterNodeDeps {
  conn: SignerConnection;
  manifest: DeploymentManifest;
  /** The broadcaster account's private key: tickets are signed with it at libsecp256k1 speed. */
  privateKey: Hex;
  logger?: Logger;
  registry?: Registry;
  tools?: MediaTools;
}

/**
 * The broadcaster's composition root: deposit, job manager (discovery, negotiation, selection, payment,
 * verification, failover), ingest (RTMP, HTTP push, files) and HLS output over HTTP, started in that order and
 * closed in reverse by one {@link Lifecycle}. `start()`/`stop()` are idempotent; a failed start stops what did start.
 */
export class BroadcasterNode {
  readonly options: BroadcasterNodeOptions;
  readonly address: Address;
  readonly jobs: JobManager;
  readonly sender: Sender;
  readonly funds: BrokerFunds;
  readonly registry: Registry;
  readonly ingestAuth: IngestAuth;
  /** Live and recently ended streams, their bookkeeping and limits. */
  readonly ingest: StreamRegistry;
  private readonly deps: BroadcasterNodeDeps;
  private readonly log: Logger;
  private readonly tools: MediaTools;
  private readonly life: Lifecycle;
  private http: HttpServer | undefined;
  private rtmp: RtmpServer | undefined;
  private readonly ingests = new Set<Promise<unknown>>();
  private stopping: Promise<void> | undefined;

  constructor(options: BroadcasterNodeOptions, deps: BroadcasterNodeDeps) {
    if (options.profiles.length === 0) throw new RangeError('the broadcaster needs at least one profile');
    this.options = options;
    this.deps = deps;
    const logger = deps.logger ?? silentLogger;
    this.log = logger.child({ module: 'broadcaster' });
    this.life = new Lifecycle({ name: 'broadcaster' }, { logger });
    this.registry = deps.registry ?? new Registry();
    this.tools = deps.tools ?? resolveMediaTools();
    const { conn, manifest } = deps;
    this.address = conn.account.address;
    this.funds = new BrokerFunds({}, { conn, manifest, address: this.address, logger });
    this.sender = new Sender(
      { privateKey: hexToBytes(deps.privateKey), domain: ticketDomain(manifest), ...(options.sender ?? {}) },
      { funds: this.funds, logger, metrics: createPMMetrics(this.registry) },
    );
    if (this.sender.address.toLowerCase() !== this.address.toLowerCase()) {
      throw new RangeError('the private key is not the connection account');
    }
    const service = options.jobs?.service ?? 'transcode/h264';
    const region = options.jobs?.region ?? '';
    const discover = options.orchestrators?.length
      ? async () => staticOrchestrators(options.orchestrators ?? [])
      : (signal?: AbortSignal) =>
          discoverWithReport(
            {
              service: serviceId(service),
              ...(region ? { region: regionCode(region) } : {}),
              minStake: options.minStake ?? 0n,
            },
            { conn, manifest, signal },
          );
    this.jobs = new JobManager(
      { ...options.jobs, selection: { minStake: options.minStake ?? 0n, ...options.jobs?.selection } },
      {
        sender: this.sender,
        signer: conn.account as unknown as DigestSigner & { address: Address },
        discover,
        logger,
      },
    );
    this.ingestAuth = new IngestAuth(
      {
        profiles: options.profiles.map((p) => p.name),
        streamKeysFile: options.streamKeysFile,
        authWebhook: options.authWebhook,
      },
      { logger },
    );
    this.ingest = new StreamRegistry(
      {
        profiles: options.profiles,
        maxStreams: options.maxStreams,
        pushIdleTimeoutMs: options.pushIdleTimeoutMs,
        concurrency: options.concurrency,
        hlsWindow: options.hlsWindow,
      },
      { jobs: this.jobs, auth: this.ingestAuth, logger, signal: this.life.signal },
    );
  }

  /** Live and recently ended streams by name (an ended stream is kept a while for its playlists, then freed). */
  get streams(): ReadonlyMap<string, BroadcastStream> {
    return this.ingest.streams;
  }

  get httpUrl(): string {
    if (!this.http?.address()) throw new Error('the broadcaster is not started');
    return this.http.url;
  }

  get rtmpUrl(): string | undefined {
    if (!this.rtmp) return undefined;
    const a = this.rtmp.address();
    return `rtmp://${hostForUrl(a.address)}:${a.port}/live`;
  }

  /** HLS master playlist URL of a stream. */
  hlsUrl(stream: string): string {
    return `${this.httpUrl}/hls/${encodeURIComponent(stream)}/index.m3u8`;
  }

  /** @throws {LifecycleError} `Stopped` after `stop()`. */
  start(): Promise<void> {
    return this.life.start((signal) => this.doStart(signal));
  }

  private async doStart(signal: AbortSignal): Promise<void> {
    const o = this.options;
    const { conn, manifest } = this.deps;
    const life = this.life;
    if (o.deposit !== undefined || o.reserve !== undefined) {
      await ensureFunded(
        { deposit: o.deposit ?? 0n, reserve: o.reserve ?? 0n },
        { conn, manifest, ...(this.deps.logger ? { logger: this.deps.logger } : {}) },
      );
    }
    await this.ingestAuth.load();
    await this.funds.read();
    this.funds.start();
    life.defer('funds', () => this.funds.stop());
    await this.jobs.start(signal);
    life.defer('jobs', () => this.jobs.stop());
    life.defer('streams', () => this.ingest.stop());

    const hls = createHlsHandler({}, { lookup: (s) => this.streams.get(s)?.hls, logger: this.log });
    const push = createHttpPushHandler(
      {},
      {
        authorize: (req) => this.ingest.authorizePush({ ...req, protocol: 'http' }, this.life.signal),
        onSegment: async (seg) => {
          const r = await this.ingest.pushSegment(seg);
          return r && { ...r, fee: r.fee.toString(), hls: this.hlsUrl(seg.stream) };
        },
        onEnd: (req) => this.ingest.endPush(req.stream),
        logger: this.log,
      },
    );
    const notFound = (res: ServerResponse) => sendJson(res, 404, { code: 'NotFound', message: 'not found' });
    const http = new HttpServer(
      { host: o.host ?? '127.0.0.1', port: o.httpPort ?? 0 },
      {
        logger: this.deps.logger ?? silentLogger,
        name: 'broadcaster',
        // `/live/<stream>/<key>/<seq>.ts` carries the stream key: never in a log line.
        redactPath: (path) => path.replace(/^(\/live\/[^/]+\/)[^/]+(\/[^/]+)$/, '$1…$2'),
      },
    )
      .route(['GET', 'OPTIONS'], '/hls/*', (req, res, ctx) => hls(req, res, ctx.target) || notFound(res))
      .route(
        ['PUT', 'POST', 'DELETE'],
        '/live/*',
        (req, res, ctx) => push(req, res, ctx.target) || notFound(res),
      )
      .route('GET', '/metrics', async (_req, res) => {
        const body = await this.registry.metrics();
        res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body);
      })
      // No CORS header: a web page of another origin must not read the node's status.
      .route('GET', '/status', (_req, res) => sendJson(res, 200, this.status()));
    await http.listen();
    this.http = http;
    life.defer('http server', () => http.close());
    // Reverse order: RTMP stops taking publishers, then the ingests in flight end, then the HTTP server closes.
    life.defer('ingests', () => Promise.allSettled([...this.ingests]));
    if (o.rtmpPort !== false) {
      const rtmp = new RtmpServer(
        {
          host: o.host ?? '127.0.0.1',
          port: o.rtmpPort ?? 0,
          maxPublishers: this.ingest.options.maxStreams,
        },
        {
          logger: this.log,
          authorize: async ({ key, params, remoteAddress }) => {
            try {
              const grant = await this.ingest.authorizePublish(
                { stream: key, key: params.key, remoteAddress, protocol: 'rtmp' },
                this.life.signal,
              );
              return { ok: true, grant };
            } catch (err) {
              if (err instanceof IngestError) return { ok: false, reason: `${err.code}: ${err.message}` };
              throw err;
            }
          },
          onPublish: (p) => this.track(this.ingestRtmp(p)),
        },
      );
      await rtmp.start();
      this.rtmp = rtmp;
      life.defer('rtmp server', () => rtmp.stop());
    }
    this.log.info(
      {
        address: this.address,
        http: this.httpUrl,
        rtmp: this.rtmpUrl,
        orchestrators: this.jobs.ranked().length,
        ingest: this.ingestAuth.mode,
        maxStreams: this.ingest.options.maxStreams,
      },
      'broadcaster started',
    );
    if (this.ingestAuth.mode === 'loopback') {
      // Anyone who can reach a non-loopback interface would otherwise be refused without the operator knowing why.
      const exposed = !isLoopback(o.host ?? '127.0.0.1');
      this.log[exposed ? 'warn' : 'info'](
        { host: o.host ?? '127.0.0.1' },
        'no --stream-keys or --auth-webhook: publishes are accepted from loopback addresses only',
      );
    }
  }

  /**
   * Opens stream `id` for a local source (no key rules: the caller is the operator). Throws `InvalidStreamName`,
   * `StreamExists` or `TooManyStreams`.
   */
  stream(id: string): BroadcastStream {
    return this.ingest.open(id);
  }

  private async ingestRtmp(publish: RtmpPublish): Promise<void> {
    const id = publish.key;
    let stream: BroadcastStream;
    try {
      stream = this.ingest.open(id, publish.grant as Parameters<StreamRegistry['open']>[1]);
    } catch (err) {
      // Authorized a moment ago; another ingest took the name or the last slot since.
      this.log.warn({ stream: id, err: (err as Error).message }, 'rtmp publish refused');
      publish.close();
      throw err;
    }
    this.log.info({ stream: id, from: publish.remoteAddress }, 'rtmp publish started');
    try {
      const segments = segmentRtmpPublish(
        publish,
        { targetDuration: this.options.segmentDuration ?? 2, signal: this.life.signal },
        { tools: this.tools, logger: this.log },
      );
      for await (const segment of segments) await stream.push(segment);
    } finally {
      await this.ingest.end(stream);
      this.log.info({ stream: id, ...stream.snapshot() }, 'rtmp publish ended');
    }
  }

  /** Resolves once stream `id` has ended (its publisher left and every segment is in the playlists), or after `timeoutMs`. */
  async waitForEnd(id: string, timeoutMs = 15_000): Promise<boolean> {
    const until = performance.now() + timeoutMs;
    while (performance.now() < until) {
      const s = this.streams.get(id);
      if (s?.snapshot().ended) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  /**
   * Ingests a file or URL as stream `id` (read at its native rate when `realtime`); resolves when it ends. Rejects
   * as {@link stream} does when the name is taken or every slot is.
   */
  ingestFile(id: string, input: string, opts: { realtime?: boolean } = {}): Promise<StreamStats> {
    let stream: BroadcastStream;
    try {
      stream = this.stream(id);
    } catch (err) {
      const refused = Promise.reject(err);
      // Logged (and so handled) like any ingest that ends with an error: `void ingestFile(…)` must not crash.
      this.track(refused);
      return refused;
    }
    const run = (async () => {
      try {
        const segments = segmentSource(
          {
            input,
            targetDuration: this.options.segmentDuration ?? 2,
            realtime: opts.realtime ?? false,
            signal: this.life.signal,
          },
          { tools: this.tools, logger: this.log },
        );
        for await (const segment of segments) await stream.push(segment);
      } finally {
        await this.ingest.end(stream);
      }
      return stream.snapshot();
    })();
    this.track(run);
    return run;
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err) => this.log.warn({ err }, 'ingest ended with an error'));
    this.ingests.add(tracked);
    void tracked.finally(() => this.ingests.delete(tracked));
  }

  status() {
    return {
      address: this.address,
      deposit: this.funds.balance?.deposit ?? 0n,
      reserve: this.funds.balance?.reserve ?? 0n,
      orchestrators: this.jobs.ranked(),
      jobs: { ...this.jobs.stats },
      streams: [...this.streams.values()].map((s) => s.snapshot()),
    };
  }

  /** Stops ingest (streams end, playlists get ENDLIST), closes servers and connections. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.life
      .stop(new Error('broadcaster stopping'))
      .then(() => this.log.info({ address: this.address }, 'broadcaster stopped'));
    return this.stopping;
  }
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
