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
} as const satisfies RpcServerOptions;
