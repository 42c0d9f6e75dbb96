import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ConnectRouter, Interceptor } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { type Logger, silentLogger } from '../node/logger.js';
import { toConnectError, WireError } from './errors.js';
import { defaultServerOptions, type RpcServerOptions } from './options.js';

/**
 * Request header a handler reads the caller's transport address from (`ip:port`). Set by the server from the
 * socket, overwriting whatever a client sent, so a payment's error budget can be scoped to where it came from.
 */
export const PEER_HEADER = 'x-streamflow-peer';

/** A listening RPC server. */
export interface RpcServer {
  /** Base URL clients pass to `createRpcTransport`, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  /** The port actually bound (the free one picked when `port` was 0). */
  readonly port: number;
  /**
   * Stops accepting connections, ends every open stream with `ShuttingDown` (handlers see their
   * `context.signal` abort), and resolves once the socket is closed. Idempotent: later calls return the
   * same promise.
   */
  close(): Promise<void>;
}

/**
 * Serves Connect RPC routes (gRPC, gRPC-Web and Connect protocols) over HTTP/2: cleartext h2c by default,
 * TLS when `options.tls` is given. Messages above `maxMessageBytes` are refused in both directions.
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

  const adapter = connectNodeAdapter({
    routes,
    // Our large payloads are H.264 segments and renditions, which do not compress (gzip ratio 1.000): offering
    // gzip to clients that ask for it (every gRPC client does) cost ~30 ms per segment round trip for nothing.
    acceptCompression: [],
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    interceptors: [wireErrors],
    shutdownSignal: shutdown.signal,
  });
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const socket = req.stream?.session?.socket;
    req.headers[PEER_HEADER] = socket ? `${socket.remoteAddress}:${socket.remotePort}` : 'unknown';
    adapter(req, res);
  };
  // Node's default (10 MB of buffered frames per session) would reset a session mid-way through one large
  // segment; allow a few maximal messages in flight.
  const maxSessionMemory = Math.max(10, Math.ceil((4 * maxMessageBytes) / (1024 * 1024)));
  const server = options.tls
    ? http2.createSecureServer({ cert: options.tls.cert, key: options.tls.key, maxSessionMemory }, handler)
    : http2.createServer({ maxSessionMemory }, handler);

  // A peer that resets its connection or sends garbage must not take the node down; the calls on that session
  // already failed on their own.
  server.on('sessionError', (err) => log.debug({ err }, 'rpc session error'));
  server.on('tlsClientError', (err) => log.debug({ err }, 'rpc tls handshake failed'));

  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
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

  return { url, port, close };
}
