/** Size limits of the wire protocol, bytes. The .proto files document the same figures per message. */
export const LIMITS = Object.freeze({
  /** One input segment (MPEG-TS). 2 s of 1080p60 at 20 Mbit/s is 5 MB: three times that leaves room. */
  segmentBytes: 16 * 1024 * 1024,
  /** One rendition. */
  renditionBytes: 16 * 1024 * 1024,
  /** Profiles per segment. */
  profiles: 16,
  /** Tickets in one payment. */
  tickets: 1024,
  /** Any message that carries no media (info, registration, errors). */
  controlMessageBytes: 64 * 1024,
});

const MiB = 1024 * 1024;

/**
 * Largest request message of each procedure (path `/package.Service/Method`), bytes. A `TranscodeRequest` is a
 * segment (16 MiB) plus metadata and a payment of at most 1,024 tickets (~150 KiB); a `SubmitResultRequest`
 * carries up to 16 renditions of a large segment. Procedures not listed get `LIMITS.controlMessageBytes`.
 */
export const DEFAULT_PROCEDURE_MAX_BYTES: Readonly<Record<string, number>> = Object.freeze({
  '/streamflow.v1.Orchestrator/GetOrchestratorInfo': LIMITS.controlMessageBytes,
  '/streamflow.v1.Orchestrator/Transcode': 24 * MiB,
  '/streamflow.v1.Transcoder/RegisterTranscoder': LIMITS.controlMessageBytes,
  '/streamflow.v1.Transcoder/SubmitResult': 64 * MiB,
});

/** Options of {@link createRpcServer}. */
export interface RpcServerOptions {
  /** Interface to listen on. @default '127.0.0.1' (public nodes pass '0.0.0.0' and a `tls` pair) */
  host?: string;
  /** TCP port; 0 picks a free one (read it back from the returned `port`). @default 0 */
  port?: number;
  /**
   * Largest message the server reads or writes, bytes; larger ones are refused with `resource_exhausted`
   * before the handler runs. @default 64 MiB (a reply with 16 renditions of a large segment)
   */
  maxMessageBytes?: number;
  /** PEM certificate and key: serve HTTP/2 over TLS instead of cleartext h2c. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * How long `close()` lets open HTTP/2 sessions finish after streams were told to end, milliseconds,
   * before destroying them. @default 2_000
   */
  closeGraceMs?: number;
  /**
   * Largest request message per procedure, bytes (also capped by `maxMessageBytes`); a declared length above
   * it is refused with `MessageTooLarge` as soon as the 5-byte envelope prefix arrives, before anything is
   * allocated. Entries given here replace the defaults' of the same procedure. @default DEFAULT_PROCEDURE_MAX_BYTES
   */
  procedureMaxBytes?: Record<string, number>;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may have open. @default 100 */
  maxConcurrentStreams?: number;
  /** Open connections from one remote IP address; more are closed on accept. @default 64 */
  maxConnectionsPerAddress?: number;
  /** HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE: bytes of request headers, decoded. @default 16_384 */
  maxHeaderBytes?: number;
  /**
   * A new connection that has not opened a stream (sent complete request headers) within this many
   * milliseconds is destroyed. @default 10_000
   */
  headersTimeoutMs?: number;
  /** A connection with no open stream for this many milliseconds is closed (GOAWAY). @default 30_000 */
  idleTimeoutMs?: number;
  /**
   * Request bodies must arrive at `minBodyBytesPerSecond` on average once this many milliseconds have passed
   * since the request headers; a slower stream is reset (REFUSED_STREAM). Generous, because the clock also
   * runs while this process is starved of CPU and reads nothing. @default 5_000
   */
  bodyGraceMs?: number;
  /**
   * See `bodyGraceMs`. 64 KiB/s (512 kbit/s, far below any link that can carry live video) still drops a
   * stream dripping 1 KiB every 3 s at the end of the grace. @default 65_536
   */
  minBodyBytesPerSecond?: number;
  /** A request body with no bytes for this many milliseconds is reset. @default 10_000 */
  bodyIdleTimeoutMs?: number;
  /** A request body not complete this many milliseconds after its headers is reset. @default 60_000 */
  bodyTimeoutMs?: number;
  /**
   * Request bytes received and held by calls in flight (until their reply ends), all procedures together; a
   * call whose bytes would pass it is refused with `OrchestratorBusy`. Bytes count as they arrive, not as
   * declared, so slow streams do not starve honest ones. 96 MiB keeps an orchestrator serving the demo's
   * 720p segments within ~600 MB RSS. @default 100_663_296 (96 MiB)
   */
  maxInFlightRequestBytes?: number;
  /** Calls of `jobProcedures` being handled at once; one more is refused with `OrchestratorBusy`. @default 32 */
  maxInFlightJobs?: number;
  /**
   * Share of `maxInFlightRequestBytes` and of `maxInFlightJobs` one remote IP address may hold, within (0, 1]:
   * beyond it that address gets `OrchestratorBusy` while other addresses are still admitted, so a flood of
   * connections from one host cannot hold every slot. 1 turns it off. @default 0.5 (48 MiB and 16 jobs)
   */
  maxInFlightSharePerAddress?: number;
  /** Procedures that count as jobs. @default ['/streamflow.v1.Orchestrator/Transcode'] */
  jobProcedures?: readonly string[];
}

/** Options of {@link createRpcTransport}. */
export interface RpcTransportOptions {
  /** Largest message the client sends or accepts, bytes. @default 64 MiB */
  maxMessageBytes?: number;
  /** Aborting it closes the HTTP/2 connection and fails every call in flight. */
  signal?: AbortSignal;
  /** Wire protocol: gRPC (interoperable with any gRPC server) or Connect. @default 'grpc' */
  protocol?: 'grpc' | 'connect';
  /**
   * For `https:` URLs. The broadcaster trusts an orchestrator through the on-chain address that signs its
   * replies, not through a certificate authority, so self-signed certificates are accepted unless
   * `rejectUnauthorized` is set. @default { rejectUnauthorized: false }
   */
  tls?: { ca?: string | Buffer; rejectUnauthorized?: boolean };
}

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export const defaultServerOptions = {
  host: '127.0.0.1',
  port: 0,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  closeGraceMs: 2_000,
  procedureMaxBytes: DEFAULT_PROCEDURE_MAX_BYTES,
  maxConcurrentStreams: 100,
  maxConnectionsPerAddress: 64,
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  bodyGraceMs: 5_000,
  minBodyBytesPerSecond: 64 * 1024,
  bodyIdleTimeoutMs: 10_000,
  bodyTimeoutMs: 60_000,
  maxInFlightRequestBytes: 96 * MiB,
  maxInFlightJobs: 32,
  maxInFlightSharePerAddress: 0.5,
  jobProcedures: ['/streamflow.v1.Orchestrator/Transcode'],
} as const satisfies Required<Omit<RpcServerOptions, 'tls'>>;
