import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { Address } from 'viem';
import type { SignerConnection } from '../chain/client.js';
import { streamflowContracts } from '../chain/contracts.js';
import type { DeploymentManifest } from '../chain/manifest.js';
import { RoundClock } from '../chain/round-clock.js';
import { TicketBrokerChain, TicketBrokerRedeemer, ticketDomain } from '../chain/ticket-broker.js';
import type { MediaTools } from '../media/ffmpeg.js';
import { HttpServer, sendJson } from '../node/http-server.js';
import { Lifecycle } from '../node/lifecycle.js';
import { type Logger, silentLogger } from '../node/logger.js';
import { definedOnly } from '../node/options.js';
import { RecipientEngine } from '../pm/engine.js';
import { createPMMetrics } from '../pm/metrics.js';
import { type RecipientOptions, referenceExpectedValue } from '../pm/options.js';
import { ChallengeGuard } from '../rpc/challenge.js';
import { Orchestrator } from '../rpc/gen/streamflow/v1/orchestrator_pb.js';
import { createRpcServer, type RpcServer } from '../rpc/server.js';
import type { DigestSigner } from '../rpc/signing.js';
import { loadOrCreateTlsCertificate, loadTlsFiles } from '../rpc/tls.js';
import { ensureRegistered, type RegistrationResult, RewardService } from './chain.js';
import { createOrchestratorMetrics } from './metrics.js';
import type { TranscoderPoolOptions } from './options.js';
import { createPoolMetrics } from './pool-metrics.js';
import { JobService } from './service.js';
import { OrchestratorState } from './state.js';
import { TranscoderPool } from './transcoder-pool.js';

/** Everything `streamflow orchestrator` takes. */
export interface OrchestratorNodeOptions {
  /** Holds `orchestrator.db`, `pm.db`, `pm.secret` and `tls/`. */
  dataDir: string;
  /** RPC interface. @default '127.0.0.1' */
  host?: string;
  /** RPC port; 0 picks a free one. @default 0 */
  port?: number;
  /**
   * TLS for the RPC server: `'off'` (cleartext HTTP/2, for loopback), `'self-signed'` (a certificate made on
   * first start and kept in `dataDir/tls`), or the operator's own files. @default 'off'
   */
  tls?: 'off' | 'self-signed' | { certPath: string; keyPath: string };
  /** URI written to the ServiceRegistry. @default the server's own URL */
  serviceUri?: string;
  /** Wei per output pixel. */
  pricePerPixel: bigint;
  /** Wei per output pixel by region name. */
  regionPrices?: Readonly<Record<string, bigint>>;
  /** @default ['transcode/h264'] */
  services?: readonly string[];
  /** @default [] (any region) */
  regions?: readonly string[];
  /**
   * On-chain set-up at start: bond, register with cuts, write the ServiceRegistry. `false` skips the chain
   * writes (the orchestrator was set up before, by another tool).
   */
  registration?: { bond?: bigint; rewardCut?: bigint; feeShare?: bigint } | false;
  /** Transcoder pool: local capacity, remote transcoders' secret, timeouts. */
  pool?: Partial<TranscoderPoolOptions>;
  /**
   * Payment options. `expectedValue` defaults to the fee of one reference segment (2 s into three renditions,
   * `REFERENCE_SEGMENT_PIXELS` of src/pm/options.ts) at the lowest positive price it quotes (`pricePerPixel`
   * or a region's), so a segment costs one or two tickets and a broadcaster's default EV cap, which follows
   * the quoted price, accepts it in every region.
   */
  pm?: Partial<RecipientOptions>;
  /** Call `reward()` each round and `initializeRound()` when nobody has. @default true */
  reward?: boolean;
  /** How often the round is read, ms. @default 1_000 */
  roundPollMs?: number;
  /**
   * Port of a small HTTP server on `host` with `GET /metrics` (Prometheus) and `GET /status` (JSON: stats, pool
   * members); 0 picks a free one. Undefined: no such server.
   */
  metricsPort?: number;
}

export interface OrchestratorNodeDeps {
  /** The orchestrator's account: its address receives tickets, signs replies, sends transactions. */
  conn: SignerConnection;
  manifest: DeploymentManifest;
  logger?: Logger;
  /** Where the node's Prometheus metrics go. @default a new registry (see `node.registry`) */
  registry?: Registry;
  tools?: MediaTools;
}

/** What the node has done, for `--json` summaries, the demo and tests. */
export interface OrchestratorStats {
  address: Address;
  url: string;
  segments: number;
  /** Fees debited from session credit, wei. */
  fees: bigint;
  tickets: {
    winning: number;
    redeemed: number;
    pending: number;
    failed: number;
    expired: number;
    /** Face value of redeemed tickets, wei. */
    redeemedWei: bigint;
  };
  transcoders: number;
}

/**
 * The orchestrator's composition root: payment engine, transcoder pool, job service and RPC server, on-chain
 * registration, round clock and reward service, started in that order and closed in reverse by one
 * {@link Lifecycle}. `start()` and `stop()` are idempotent; a failed start stops whatever had started.
 */
export class OrchestratorNode {
  readonly options: OrchestratorNodeOptions;
  readonly address: Address;
  readonly registry: Registry;
  readonly state: OrchestratorState;
  readonly engine: RecipientEngine;
  readonly pool: TranscoderPool;
  readonly jobs: JobService;
  readonly clock: RoundClock;
  private readonly deps: OrchestratorNodeDeps;
  private readonly log: Logger;
  private readonly reward: RewardService | undefined;
  private readonly life: Lifecycle;
  private server: RpcServer | undefined;
  private http: HttpServer | undefined;
  private stopping: Promise<void> | undefined;
  registration: RegistrationResult | undefined;

  constructor(options: OrchestratorNodeOptions, deps: OrchestratorNodeDeps) {
    this.options = options;
    this.deps = deps;
    const logger = deps.logger ?? silentLogger;
    this.log = logger.child({ module: 'orchestrator' });
    this.registry = deps.registry ?? new Registry();
    const { conn, manifest } = deps;
    this.address = conn.account.address;
    mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
    this.state = new OrchestratorState(join(options.dataDir, 'orchestrator.db'), logger);
    this.life = new Lifecycle({ name: 'orchestrator' }, { logger });
    // Opened here, so closed even by a stop() without a start().
    this.life.defer('state', () => this.state.close());

    const chain = new TicketBrokerChain({ manifest, recipient: this.address }, { conn, logger });
    const redeemer = new TicketBrokerRedeemer({ manifest }, { conn, chain, logger });
    this.engine = new RecipientEngine(
      {
        dataDir: options.dataDir,
        address: this.address,
        domain: ticketDomain(manifest),
        expectedValue: referenceExpectedValue(lowestPrice(options.pricePerPixel, options.regionPrices)),
        ...definedOnly(options.pm ?? {}),
      },
      { chain, redeemer, logger, metrics: createPMMetrics(this.registry) },
    );
    this.pool = new TranscoderPool(options.pool ?? {}, {
      logger,
      metrics: createPoolMetrics(this.registry),
      ...(deps.tools ? { tools: deps.tools } : {}),
    });
    const signer = conn.account as unknown as DigestSigner;
    if (typeof signer.signMessage !== 'function') {
      throw new TypeError('the orchestrator account must be able to sign messages (a local account)');
    }
    this.jobs = new JobService(
      {
        serviceUri: options.serviceUri ?? '',
        pricePerPixel: options.pricePerPixel,
        regionPrices: options.regionPrices ?? {},
        services: options.services ?? ['transcode/h264'],
        regions: options.regions ?? [],
      },
      {
        address: this.address,
        signer,
        recipient: this.engine.recipient,
        transcoder: this.pool,
        capacityLeft: () => this.pool.freeCapacity(),
        ...(this.pool.options.local.limits ? { segmentLimits: this.pool.options.local.limits } : {}),
        challenges: new ChallengeGuard({}, {}),
        state: this.state,
        logger,
        metrics: createOrchestratorMetrics(this.registry),
      },
    );
    this.clock = new RoundClock(
      { pollIntervalMs: options.roundPollMs ?? 1_000, autoInitialize: options.reward ?? true },
      { conn, contracts: streamflowContracts(conn, manifest), logger },
    );
    this.clock.on('error', () => undefined);
    // Params name their creation round; a new round needs new params at once, not after the chain cache ages.
    this.clock.on('initialized', () => {
      this.engine.recipient.refreshChain().catch((err) => this.log.warn({ err }, 'chain refresh failed'));
    });
    this.reward =
      (options.reward ?? true)
        ? new RewardService({ conn, manifest, clock: this.clock, state: this.state, logger })
        : undefined;
  }

  /** The RPC URL (after `start()`). */
  get url(): string {
    if (!this.server) throw new Error('the orchestrator is not started');
    return this.server.url;
  }

  /**
   * Starts every part in order; `signal` (and `stop()`) aborts a start in progress.
   * @throws {LifecycleError} `Stopped` after `stop()`.
   */
  start(signal?: AbortSignal): Promise<void> {
    return this.life.start((s) => this.doStart(s), signal);
  }

  private async doStart(signal: AbortSignal): Promise<void> {
    const o = this.options;
    const life = this.life;
    await this.engine.start(signal);
    life.defer('payment engine', () => this.engine.stop());
    this.restoreSessions();
    const tls = await this.tlsPair();
    this.server = await createRpcServer(
      {
        ...(o.host !== undefined ? { host: o.host } : {}),
        ...(o.port !== undefined ? { port: o.port } : {}),
        ...(tls ? { tls } : {}),
      },
      (router) => {
        router.service(Orchestrator, this.jobs.service());
        this.pool.registerRoutes(router);
      },
      { logger: this.deps.logger ?? silentLogger },
    );
    const server = this.server;
    life.defer('rpc server', () => server.close());
    // Before the server closes: ends the transcoders' streams (ShuttingDown) so the close does not wait on them.
    life.defer('transcoder pool', () => this.pool.close());
    this.jobs.options.serviceUri = o.serviceUri ?? this.server.url;
    if (o.registration !== false) {
      this.registration = await ensureRegistered(
        {
          ...(o.registration ?? {}),
          serviceUri: this.jobs.options.serviceUri,
          services: this.jobs.options.services,
          regions: this.jobs.options.regions,
        },
        {
          conn: this.deps.conn,
          manifest: this.deps.manifest,
          ...(this.deps.logger ? { logger: this.deps.logger } : {}),
          signal,
        },
      );
    }
    if (o.metricsPort !== undefined) {
      const http = this.statusServer(o.host ?? '127.0.0.1', o.metricsPort);
      await http.listen();
      this.http = http;
      life.defer('status server', () => http.close());
    }
    this.clock.start();
    life.defer('round clock', () => this.clock.stop());
    if (this.reward) {
      const reward = this.reward;
      reward.start();
      life.defer('reward service', () => reward.stop());
    }
    this.log.info(
      {
        address: this.address,
        url: this.server.url,
        serviceUri: this.jobs.options.serviceUri,
        pricePerPixel: o.pricePerPixel.toString(),
      },
      'orchestrator started',
    );
  }

  private async tlsPair(): Promise<{ cert: string; key: string } | undefined> {
    const tls = this.options.tls ?? 'off';
    if (tls === 'off') return undefined;
    if (tls === 'self-signed') {
      const host = this.options.host ?? '127.0.0.1';
      const made = await loadOrCreateTlsCertificate(
        this.options.dataDir,
        { altNames: [host] },
        this.deps.logger ? { logger: this.deps.logger } : {},
      );
      return { cert: made.cert, key: made.key };
    }
    const files = await loadTlsFiles(tls.certPath, tls.keyPath);
    return { cert: files.cert, key: files.key };
  }

  /** Puts the credit (or debt) of recent sessions back after a restart. */
  private restoreSessions(): void {
    const since = Date.now() - 3_600_000;
    this.state.prune(since);
    let restored = 0;
    for (const s of this.state.sessions(since)) {
      if (s.balance > 0n) this.engine.recipient.ledger.credit(s.sender, s.session, s.balance);
      else if (s.balance < 0n) this.jobs.restoreDebt(s.sender, s.session, -s.balance);
      restored++;
    }
    if (restored > 0) this.log.info({ sessions: restored }, 'sessions restored');
  }

  /** URL of the metrics/status server (`metricsPort`), if any. */
  get statusUrl(): string | undefined {
    return this.http?.address() ? this.http.url : undefined;
  }

  private statusServer(host: string, port: number): HttpServer {
    return new HttpServer(
      { host, port },
      { logger: this.deps.logger ?? silentLogger, name: 'orchestrator-status' },
    )
      .route('GET', '/metrics', async (_req, res) => {
        const body = await this.registry.metrics();
        res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body);
      })
      .route('GET', '/status', (_req, res) =>
        sendJson(res, 200, {
          ...this.stats(),
          pool: this.pool.memberInfo(),
          round: this.clock.status?.round,
        }),
      );
  }

  /** Re-reads the round and gas data now (after moving the chain on in tests and the demo). */
  async syncChain(): Promise<void> {
    await this.engine.recipient.refreshChain();
  }

  /** What the node has done so far. */
  stats(): OrchestratorStats {
    const totals = this.state.totals();
    const summary = this.engine.store.summary();
    const count = (k: keyof typeof summary) => summary[k].count;
    return {
      address: this.address,
      url: this.server?.url ?? '',
      segments: totals.segments,
      fees: totals.fees,
      tickets: {
        winning:
          count('pending') + count('submitted') + count('redeemed') + count('failed') + count('expired'),
        redeemed: count('redeemed'),
        pending: count('pending') + count('submitted'),
        failed: count('failed'),
        expired: count('expired'),
        redeemedWei: summary.redeemed.faceValue,
      },
      transcoders: this.pool.memberInfo().length,
    };
  }

  /**
   * Stops taking work, ends transcoder streams, closes the server, lets the redemption queue finish its pass
   * and closes the databases. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.life
      .stop()
      .then(() => this.log.info({ address: this.address }, 'orchestrator stopped'));
    return this.stopping;
  }
}

/** The lowest positive price among the base and the region prices, wei per pixel (0 when all are 0). */
function lowestPrice(base: bigint, regions: Readonly<Record<string, bigint>> = {}): bigint {
  let low = base > 0n ? base : undefined;
  for (const p of Object.values(regions)) if (p > 0n && (low === undefined || p < low)) low = p;
  return low ?? 0n;
}
