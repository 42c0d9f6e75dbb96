import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { fromBinary } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createConnectRouter,
  type Interceptor,
} from '@connectrpc/connect';
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from '@connectrpc/connect-node';
import { type Logger, silentLogger } from '../node/logger.js';
import { Admission } from './admission.js';
import { type BodyGuardOptions, bodyFraming, guardBody } from './body-guard.js';
import { toConnectError, WireError } from './errors.js';
import { defaultServerOptions, LIMITS, type RpcServerOptions } from './options.js';

const MiB = 1024 * 1024;
/** How long a stream answered before its body ended may stay open for the reply to reach the peer, ms. */
const REFUSED_LINGER_MS = 500;

/**
 * Request header a handler reads the caller's remote IP address from (no port: a new connection from the same
 * host is the same peer). Set by the server from the socket, overwriting whatever a client sent, so a payment's
 * error budget can follow the address it came from.
 */
export const PEER_HEADER = 'x-streamflow-peer';

/** Counters of the RPC server's resource limits. */
export interface RpcServerStats {
  /** Streams reset because their request body was too slow, stalled or late. */
  readonly streamsReset: { bodyTooSlow: number; bodyIdle: number; bodyTimeout: number };
  /** Connections closed on accept: too many from their address. */
  connectionsRefused: number;
  /** Connections closed for sending no request in time (`headers`) or for having no stream (`idle`). */
  readonly sessionsTimedOut: { headers: number; idle: number };
  /** Calls refused with `OrchestratorBusy` by the in-flight limits (`address*`: one address's share). */
  readonly refused: {
    readonly bytes: number;
    readonly jobs: number;
    readonly addressBytes: number;
    readonly addressJobs: number;
  };
  /** Request bytes held by calls in flight now. */
  readonly inFlightBytes: number;
  /** Job calls in flight now. */
  readonly inFlightJobs: number;
}

/** A listening RPC server. */
export interface RpcServer {
  /** Base URL clients pass to `createRpcTransport`, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The port actually bound (the free one picked when `port` was 0). */
  readonly port: number;
  /** What the resource limits did so far; for tests, benchmarks and the status page. */
  readonly stats: RpcServerStats;
  /**
   * Stops accepting connections, ends every open stream with `ShuttingDown` (handlers see their
   * `context.signal` abort), and resolves once the socket is closed. Idempotent: later calls return the
   * same promise.
   */
  close(): Promise<void>;
}

/**
 * Serves Connect RPC routes (gRPC, gRPC-Web and Connect protocols) over HTTP/2: cleartext h2c by default,
 * TLS when `options.tls` is given. Messages above `maxMessageBytes` are refused in both directions, request
 * messages above their procedure's `procedureMaxBytes` as soon as their length is declared. Every resource a
 * peer can make the server hold is bounded (docs/rpc.md, "Resource limits"): streams per connection,
 * connections per address, header bytes, request bytes and jobs in flight (`OrchestratorBusy` above them), and
 * the time a connection may stay silent or idle and a request body may take to arrive.
 *
 * @example
 * const server = await createRpcServer({ port: 0 }, (router) => router.service(Orchestrator, impl));
 */
export async function createRpcServer(
  options: RpcServerOptions,
  routes: (router: ConnectRouter) => void,
  deps: { logger?: Logger } = {},
): Promise<RpcServer> {
  const log = (deps.logger ?? silentLogger).child({ module: 'rpc' });
  const host = options.host ?? defaultServerOptions.host;
  const maxMessageBytes = options.maxMessageBytes ?? defaultServerOptions.maxMessageBytes;
  const closeGraceMs = options.closeGraceMs ?? defaultServerOptions.closeGraceMs;
  const shutdown = new AbortController();
  const shuttingDown = () =>
    new WireError('ShuttingDown', 'the server is shutting down; reconnect or use another node');

  /**
   * Errors thrown by handlers keep their code on the wire: a `StreamflowError` (a `PaymentError`, a
   * `WireError`, ...) becomes a ConnectError carrying a `WireError` detail; anything else becomes `Internal`
   * without its message. Streams are wrapped too, since their errors surface while iterating; a stream that
   * ends because the server is closing ends with `ShuttingDown`, so the peer knows to reconnect rather than
   * take it for a normal end.
   */
  const wireErrors: Interceptor = (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
          } catch (err) {
            throw toConnectError(err);
          }
          if (shutdown.signal.aborted) throw toConnectError(shuttingDown());
        })(),
      };
    } catch (err) {
      throw toConnectError(err);
    }
  };

  const procedureMaxBytes = { ...defaultServerOptions.procedureMaxBytes, ...options.procedureMaxBytes };
  const limitOf = (path: string) =>
    Math.min(procedureMaxBytes[path] ?? LIMITS.controlMessageBytes, maxMessageBytes);
  const jobProcedures = new Set(options.jobProcedures ?? defaultServerOptions.jobProcedures);
  const admission = new Admission({
    maxBytes: options.maxInFlightRequestBytes ?? defaultServerOptions.maxInFlightRequestBytes,
    maxJobs: options.maxInFlightJobs ?? defaultServerOptions.maxInFlightJobs,
    maxShare: options.maxInFlightSharePerAddress ?? defaultServerOptions.maxInFlightSharePerAddress,
  });
  const body = {
    graceMs: options.bodyGraceMs ?? defaultServerOptions.bodyGraceMs,
    minBytesPerSecond: options.minBodyBytesPerSecond ?? defaultServerOptions.minBodyBytesPerSecond,
    idleMs: options.bodyIdleTimeoutMs ?? defaultServerOptions.bodyIdleTimeoutMs,
    timeoutMs: options.bodyTimeoutMs ?? defaultServerOptions.bodyTimeoutMs,
  };
  const stats: RpcServerStats = {
    streamsReset: { bodyTooSlow: 0, bodyIdle: 0, bodyTimeout: 0 },
    connectionsRefused: 0,
    sessionsTimedOut: { headers: 0, idle: 0 },
    refused: admission.refused,
    get inFlightBytes() {
      return admission.bytes;
    },
    get inFlightJobs() {
      return admission.jobs;
    },
  };

  const router = createConnectRouter({
    // Our large payloads are H.264 segments and renditions, which do not compress (gzip ratio 1.000): offering
    // gzip to clients that ask for it (every gRPC client does) cost ~30 ms per segment round trip for nothing.
    acceptCompression: [],
    // Each procedure's own limit is enforced by guardBody before connect reads a byte; this is the backstop.
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    interceptors: [wireErrors],
    shutdownSignal: shutdown.signal,
  });
  routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));

  /** Request bodies still arriving, checked by the watchdog below. */
  const receiving = new Map<http2.ServerHttp2Stream, Arrival>();

  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const stream = req.stream;
    const path = req.url.split('?', 1)[0] ?? '';
    const uHandler = handlers.get(path);
    const now = Date.now();
    const arrival: Arrival = { openedAt: now, lastDataAt: now, received: 0 };
    receiving.set(stream, arrival);
    const socket = stream.session?.socket;
    // The remote address without the port: budgets and shares keyed by it survive a new connection (a new port).
    const peer = socket?.remoteAddress ? normalizeAddress(socket.remoteAddress) : 'unknown';
    let heldBytes = 0;
    let job = false;
    let bodyEnded = false;
    stream.once('close', () => {
      receiving.delete(stream);
      admission.releaseBytes(heldBytes, peer);
      if (job) admission.releaseJob(peer);
    });
    if (!uHandler) {
      res.writeHead(404);
      res.end();
      return;
    }
    let uReq: ReturnType<typeof universalRequestFromNodeRequest>;
    try {
      uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    } catch (err) {
      log.debug({ err, path }, 'rpc request refused');
      res.writeHead(400);
      res.end();
      return;
    }
    uReq.header.set(PEER_HEADER, peer);
    const contentLength = req.headers['content-length'];
    const declared = contentLength === undefined ? undefined : Number(contentLength);
    // connect allocates a Connect unary body's content-length up front; guardBody checks it instead.
    uReq.header.delete('content-length');
    const input = uHandler.method.input;
    const singleMessage =
      uHandler.method.methodKind === 'unary' || uHandler.method.methodKind === 'server_streaming';
    const guard: BodyGuardOptions = {
      procedure: path,
      framing: bodyFraming(req.headers['content-type']),
      maxMessageBytes: limitOf(path),
      ...(declared !== undefined && Number.isSafeInteger(declared) && declared >= 0
        ? { declaredBodyBytes: declared }
        : {}),
      parse: (message) => {
        fromBinary(input, message);
      },
    };
    uReq.body = guardBody(uReq.body as AsyncIterable<Uint8Array>, guard, {
      onBytes: (n) => {
        arrival.received += n;
        arrival.lastDataAt = Date.now();
        admission.takeBytes(n, peer);
        heldBytes += n;
      },
      onMessage: () => {
        if (jobProcedures.has(path) && !job) {
          admission.takeJob(peer);
          job = true;
        }
        // connect reads the end of a one-message body only after the handler returned, which for a job is
        // seconds later: the request has arrived, the watchdog is done with it.
        if (singleMessage) receiving.delete(stream);
      },
      onEnd: () => {
        bodyEnded = true;
        receiving.delete(stream);
      },
    });
    // A reply sent before the request body ended (a refusal): stop the peer sending (RFC 9113 §8.1 allows a
    // reset after a complete reply) and free what the stream holds, instead of when the watchdog finds it. Not
    // at once: an RST_STREAM right after the reply can overtake its trailers.
    stream.once('finish', () => {
      if (bodyEnded) return;
      const timer = setTimeout(() => {
        // CANCEL, not NO_ERROR: node holds a NO_ERROR close until the peer ends its side, which it need not.
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      }, REFUSED_LINGER_MS);
      timer.unref();
      stream.once('close', () => clearTimeout(timer));
    });
    uHandler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((err: unknown) => {
        if (ConnectError.from(err).code !== Code.Aborted) log.debug({ err, path }, 'rpc response failed');
      });
  };

  // One timer for every stream: a peer that declares a large message and drips it, or stops sending, is reset
  // within seconds, whatever it declared.
  const tickMs = Math.max(50, Math.min(500, Math.floor(Math.min(body.graceMs, body.idleMs) / 4)));
  let lastTick = Date.now();
  const watchdog = setInterval(() => {
    const now = Date.now();
    // This process was stalled (GC, starved of CPU): it read nothing meanwhile, which is not the peers' fault.
    const stall = now - lastTick - 2 * tickMs;
    lastTick = now;
    if (stall > 0) {
      for (const a of receiving.values()) {
        a.openedAt += stall;
        a.lastDataAt += stall;
      }
    }
    for (const [stream, a] of receiving) {
      const age = now - a.openedAt;
      const reason =
        age > body.timeoutMs
          ? 'bodyTimeout'
          : now - a.lastDataAt > body.idleMs
            ? 'bodyIdle'
            : age > body.graceMs && a.received < ((age - body.graceMs) * body.minBytesPerSecond) / 1000
              ? 'bodyTooSlow'
              : undefined;
      if (!reason) continue;
      receiving.delete(stream);
      stats.streamsReset[reason]++;
      log.debug({ reason, received: a.received, ageMs: age }, 'rpc request body too slow; stream reset');
      // REFUSED_STREAM: no handler saw the request, so an honest client may retry it (elsewhere).
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    }
  }, tickMs);
  watchdog.unref();

  // Node's default (10 MB of buffered frames per session) would reset a session mid-way through one large
  // segment; allow a few maximal messages in flight.
  const maxSessionMemory = Math.max(10, Math.ceil((4 * maxMessageBytes) / MiB));
  const settings: http2.Settings = {
    maxConcurrentStreams: options.maxConcurrentStreams ?? defaultServerOptions.maxConcurrentStreams,
    maxHeaderListSize: options.maxHeaderBytes ?? defaultServerOptions.maxHeaderBytes,
  };
  const serverOptions = { maxSessionMemory, settings, maxSessionRejectedStreams: 1_000 };
  const server = options.tls
    ? http2.createSecureServer({ ...serverOptions, cert: options.tls.cert, key: options.tls.key }, handler)
    : http2.createServer(serverOptions, handler);

  // A peer that resets its connection or sends garbage must not take the node down; the calls on that session
  // already failed on their own.
  server.on('sessionError', (err) => log.debug({ err }, 'rpc session error'));
  server.on('tlsClientError', (err) => log.debug({ err }, 'rpc tls handshake failed'));

  const maxPerAddress = options.maxConnectionsPerAddress ?? defaultServerOptions.maxConnectionsPerAddress;
  const headersTimeoutMs = options.headersTimeoutMs ?? defaultServerOptions.headersTimeoutMs;
  const idleTimeoutMs = options.idleTimeoutMs ?? defaultServerOptions.idleTimeoutMs;
  const perAddress = new Map<string, number>();
  /** Connections that have not opened a stream yet, by `address:port`, with their deadline. */
  const mute = new Map<string, { socket: Socket; timer: NodeJS.Timeout }>();
  server.on('connection', (socket: Socket) => {
    const address = normalizeAddress(socket.remoteAddress ?? 'unknown');
    const n = perAddress.get(address) ?? 0;
    if (n >= maxPerAddress) {
      stats.connectionsRefused++;
      log.debug({ address, open: n }, 'rpc connection refused: too many from this address');
      socket.destroy();
      return;
    }
    perAddress.set(address, n + 1);
    const key = `${address}:${socket.remotePort}`;
    // Held on the raw socket: a session that never got a preface does not close its socket when destroyed.
    const timer = setTimeout(() => {
      stats.sessionsTimedOut.headers++;
      log.debug({ address }, 'rpc connection closed: no request in time');
      socket.destroy();
    }, headersTimeoutMs);
    timer.unref();
    mute.set(key, { socket, timer });
    socket.once('close', () => {
      clearTimeout(timer);
      if (mute.get(key)?.socket === socket) mute.delete(key);
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
  });

  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    session.on('stream', (stream) => {
      if (open === 0 && timer === undefined) {
        const s = session.socket;
        const key = `${normalizeAddress(s?.remoteAddress ?? 'unknown')}:${s?.remotePort}`;
        const m = mute.get(key);
        if (m) {
          clearTimeout(m.timer);
          mute.delete(key);
        }
      }
      open++;
      clearTimeout(timer);
      stream.once('close', () => {
        open--;
        if (open > 0 || session.closed || session.destroyed) return;
        timer = setTimeout(() => {
          stats.sessionsTimedOut.idle++;
          session.close();
        }, idleTimeoutMs);
        timer.unref();
      });
    });
    session.once('close', () => {
      clearTimeout(timer);
      sessions.delete(session);
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(options.port ?? defaultServerOptions.port, host, () => {
      server.off('error', onError);
      server.on('error', (err) => log.error({ err }, 'rpc server error'));
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `${options.tls ? 'https' : 'http'}://${urlHost}:${port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      shutdown.abort(toConnectError(shuttingDown()));
      clearInterval(watchdog);
      server.close(() => resolve());
      for (const session of sessions) session.close();
      // Sessions whose streams do not end in time (a peer that never reads) would hold close() forever.
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
      }, closeGraceMs);
      timer.unref();
    });
    return closing;
  };

  return { url, port, stats, close };
}

/** A request body being received. */
interface Arrival {
  openedAt: number;
  lastDataAt: number;
  received: number;
}

/** `::ffff:127.0.0.1` (an IPv4 peer on a dual-stack socket) is `127.0.0.1`: one address, one budget. */
function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
