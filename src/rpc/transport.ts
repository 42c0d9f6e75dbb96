import { Code, ConnectError, type Interceptor, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import { DEFAULT_MAX_MESSAGE_BYTES, type RpcTransportOptions } from './options.js';

/**
 * A client transport over one HTTP/2 connection to `url` (`http://` for h2c, `https://` for TLS), for
 * `createClient(Service, transport)`. The connection opens on the first call, is pinged while idle and is
 * re-opened after a failure. Aborting `options.signal` closes it and fails the calls in flight.
 */
export function createRpcTransport(url: string, options: RpcTransportOptions = {}): Transport {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const nodeOptions = url.startsWith('https:')
    ? {
        rejectUnauthorized: options.tls?.rejectUnauthorized ?? false,
        ...(options.tls?.ca !== undefined ? { ca: options.tls.ca } : {}),
      }
    : {};
  const sessionManager = new Http2SessionManager(
    url,
    // Pings find a dead peer (a SIGKILLed orchestrator behind a NAT) in seconds instead of at the next call.
    { pingIntervalMs: 10_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: 60_000 },
    nodeOptions,
  );
  options.signal?.addEventListener('abort', () => sessionManager.abort(), { once: true });
  if (options.signal?.aborted) sessionManager.abort();

  const signal = options.signal;
  // Http2SessionManager re-opens an aborted session on the next call; the transport must stay closed, and
  // calls in flight must end rather than wait on a connection that is gone.
  const closedBySignal: Interceptor = (next) => (req) => {
    if (!signal) return next(req);
    if (signal.aborted) throw new ConnectError('transport closed: its signal was aborted', Code.Canceled);
    return next({ ...req, signal: AbortSignal.any([req.signal, signal]) });
  };

  const common = {
    interceptors: [closedBySignal],
    baseUrl: url,
    httpVersion: '2' as const,
    sessionManager,
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    useBinaryFormat: true,
    // Video does not compress; see createRpcServer.
    acceptCompression: [],
  };
  return options.protocol === 'connect' ? createConnectTransport(common) : createGrpcTransport(common);
}
