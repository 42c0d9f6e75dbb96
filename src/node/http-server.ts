import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { StreamflowError } from './errors.js';
import { type Logger, silentLogger } from './logger.js';
import { withDefaults } from './options.js';

/** Limits and address of an {@link HttpServer}. Every limit is a defence against a stranger on the port. */
export interface HttpServerOptions {
  /** @default '127.0.0.1' */
  host: string;
  /** 0 picks a free one. @default 0 */
  port: number;
  /** Request line plus headers, bytes; above it the answer is 431 and the connection closes. @default 16_384 */
  maxHeaderBytes: number;
  /** Time to receive the request line and headers, ms (slowloris). @default 10_000 */
  headersTimeoutMs: number;
  /** Time to receive the whole request including its body, ms; at least `headersTimeoutMs`. @default 60_000 */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this, ms. @default 5_000 */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way is destroyed after this, ms (a handler that never answers). @default 120_000 */
  idleTimeoutMs: number;
  /** Open connections; more are dropped at accept. @default 256 */
  maxConnections: number;
  /** Requests served on one connection before it is closed; 0: no limit. @default 1_000 */
  maxRequestsPerSocket: number;
}

export const defaultHttpServerOptions: Readonly<HttpServerOptions> = {
  host: '127.0.0.1',
  port: 0,
  maxHeaderBytes: 16_384,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 120_000,
  maxConnections: 256,
  maxRequestsPerSocket: 1_000,
};

/**
 * An HTTP answer a handler (or the request parsing) chose on purpose: thrown inside a handler it becomes a JSON
 * reply `{ code, message }` with `status`, not a 500.
 */
export class HttpError extends StreamflowError<string, { status: number }> {
  constructor(status: number, code: string, message: string) {
    super(code, message, { status });
  }

  get status(): number {
    return this.details.status;
  }
}

/** The request target, checked and percent-decoded. */
export interface RequestTarget {
  /** The path as sent, still percent-encoded, without the query. */
  rawPath: string;
  /**
   * The percent-decoded segments between slashes (`/hls/a%20b/index.m3u8` → `['hls', 'a b', 'index.m3u8']`).
   * Each is decoded on its own, so an encoded `/` (`%2F`) stays inside its segment and never adds a level.
   */
  segments: string[];
  /** `/` + the decoded segments joined by `/`. */
  path: string;
  query: URLSearchParams;
}

const TARGET_CHARS = /^[\x21-\x7e]*$/;
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/;

/**
 * Parses a request target (`req.url`): origin form (`/a/b?q`) or absolute form (`http://host/a/b?q`).
 * Never uses `new URL(req.url, base)`, which throws on `//` and resolves `..`.
 * @throws {HttpError} 400 `BadRequestTarget` for anything else: no leading `/`, bytes outside visible ASCII,
 *   percent-encoding that is not UTF-8, a `.` or `..` segment.
 */
export function parseRequestTarget(url: string | undefined): RequestTarget {
  const bad = (why: string) => new HttpError(400, 'BadRequestTarget', `bad request target: ${why}`);
  let target = url ?? '';
  const absolute = ABSOLUTE_FORM.exec(target);
  if (absolute) target = target.slice(absolute[0].length) || '/';
  if (!target.startsWith('/')) throw bad('it must start with /');
  if (!TARGET_CHARS.test(target)) throw bad('characters outside visible ASCII');
  const hash = target.indexOf('#');
  if (hash >= 0) target = target.slice(0, hash);
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const segments: string[] = [];
  for (const raw of rawPath.slice(1).split('/')) {
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch {
      throw bad('percent-encoding that is not UTF-8');
    }
    if (s === '.' || s === '..') throw bad('dot segments');
    segments.push(s);
  }
  return {
    rawPath,
    segments,
    path: `/${segments.join('/')}`,
    query: new URLSearchParams(q < 0 ? '' : target.slice(q + 1)),
  };
}

/** What a route handler gets besides the request and the response. */
export interface HttpContext {
  target: RequestTarget;
  /** Values of the pattern's `:name` segments. */
  params: Readonly<Record<string, string>>;
  /** The decoded segments a trailing `*` matched (one or more), else empty. */
  rest: readonly string[];
}

/**
 * Answers one request. A sync throw or a rejected promise is caught: an {@link HttpError} becomes its status,
 * anything else a 500 and an error log line (the process lives on).
 */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, ctx: HttpContext) => unknown;

interface Route {
  methods: Set<string>;
  pattern: string[];
  handler: HttpHandler;
}

/**
 * The one HTTP/1.1 server of every node (status, metrics, HLS, push ingest): a route table over node:http with
 * limits on headers, time and connections. Nothing a client sends can throw out of it: a malformed request line
 * or header is 400 (431 when too large, 408 when too slow), an undecodable path 400, an unknown path 404, a known
 * path with another method 405 with `Allow`. `HEAD` is served wherever `GET` is (node drops the body).
 */
export class HttpServer {
  readonly options: HttpServerOptions;
  readonly server: Server;
  private readonly log: Logger;
  private readonly redactPath: (rawPath: string) => string;
  private readonly routes: Route[] = [];
  private closing: Promise<void> | undefined;

  /**
   * @param deps.redactPath turns a raw path into what may be logged (a route that carries a secret in its path,
   *   like HTTP push's `/live/<stream>/<key>/<seq>.ts`, masks it here). @default the path as is
   */
  constructor(
    options: Partial<HttpServerOptions>,
    deps: { logger?: Logger; name?: string; redactPath?: (rawPath: string) => string } = {},
  ) {
    const o = withDefaults(defaultHttpServerOptions, options);
    if (o.headersTimeoutMs > o.requestTimeoutMs) {
      throw new RangeError(
        `headersTimeoutMs ${o.headersTimeoutMs} is above requestTimeoutMs ${o.requestTimeoutMs}`,
      );
    }
    this.options = o;
    this.log = (deps.logger ?? silentLogger).child({ module: 'http', server: deps.name ?? 'http' });
    this.redactPath = deps.redactPath ?? ((p) => p);
    this.server = createServer(
      {
        maxHeaderSize: o.maxHeaderBytes,
        headersTimeout: o.headersTimeoutMs,
        requestTimeout: o.requestTimeoutMs,
        keepAliveTimeout: o.keepAliveTimeoutMs,
        // Checked every second rather than every 30 s, so the two timeouts above hold to about a second.
        connectionsCheckingInterval: 1_000,
      },
      (req, res) => this.dispatch(req, res),
    );
    this.server.maxConnections = o.maxConnections;
    this.server.maxRequestsPerSocket = o.maxRequestsPerSocket;
    this.server.setTimeout(o.idleTimeoutMs);
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) =>
      this.clientError(err, socket),
    );
    this.server.on('drop', (d?: { remoteAddress?: string }) =>
      this.log.debug({ from: d?.remoteAddress, max: o.maxConnections }, 'connection dropped: too many open'),
    );
  }

  /**
   * Adds a route. `pattern` is matched against the decoded segments: literal segments, `:name` for any one
   * segment, and a trailing `*` for one or more. `GET` implies `HEAD`. Routes are tried in the order added.
   */
  route(methods: string | readonly string[], pattern: string, handler: HttpHandler): this {
    const list = (typeof methods === 'string' ? [methods] : [...methods]).map((m) => m.toUpperCase());
    if (list.includes('GET')) list.push('HEAD');
    const parts = pattern.replace(/^\//, '').split('/');
    if (parts.slice(0, -1).includes('*')) throw new RangeError(`* must be last in ${pattern}`);
    this.routes.push({ methods: new Set(list), pattern: parts, handler });
    return this;
  }

  /** Starts listening on `host:port`. */
  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    // Accept errors (EMFILE …) after the start must not become an uncaught 'error' event.
    this.server.on('error', (err) => this.log.warn({ err: err.message }, 'http server error'));
  }

  address(): AddressInfo | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** `http://host:port` (after {@link listen}). */
  get url(): string {
    const a = this.address();
    if (!a) throw new Error('the HTTP server is not listening');
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Stops accepting, closes every connection (idle or not) and resolves once the server is closed. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private dispatch(req: IncomingMessage, res: ServerResponse): void {
    // A client resetting mid-body emits 'error' on the request; nobody else may be listening.
    req.on('error', (err) => this.log.debug({ err: err.message }, 'request stream error'));
    res.on('error', (err) => this.log.debug({ err: err.message }, 'response stream error'));
    // Only the path is ever logged, never the query (it may carry a key).
    let path = this.redactPath((req.url ?? '').split('?')[0] ?? '').slice(0, 200);
    try {
      res.setHeader('X-Content-Type-Options', 'nosniff');
      const target = parseRequestTarget(req.url);
      path = this.redactPath(target.rawPath).slice(0, 200);
      const method = req.method ?? '';
      let allowed: Set<string> | undefined;
      for (const route of this.routes) {
        const m = matchPattern(route.pattern, target.segments);
        if (!m) continue;
        if (!route.methods.has(method)) {
          allowed ??= new Set();
          for (const x of route.methods) allowed.add(x);
          continue;
        }
        const onError = (err: unknown) => this.handlerFailed(req, res, err, path);
        const result = route.handler(req, res, { target, ...m });
        if (isPromiseLike(result)) result.then(undefined, onError);
        return;
      }
      if (allowed) {
        res.setHeader('Allow', [...allowed].join(', '));
        replyError(req, res, new HttpError(405, 'MethodNotAllowed', `${method} is not served here`));
      } else {
        replyError(req, res, new HttpError(404, 'NotFound', 'not found'));
      }
    } catch (err) {
      this.handlerFailed(req, res, err, path);
    }
  }

  private handlerFailed(req: IncomingMessage, res: ServerResponse, err: unknown, path: string): void {
    try {
      if (err instanceof HttpError) {
        replyError(req, res, err);
        return;
      }
      this.log.error({ err, method: req.method, path }, 'http handler failed');
      if (res.headersSent) res.destroy();
      else replyError(req, res, new HttpError(500, 'InternalError', 'internal error'));
    } catch (inner) {
      this.log.error({ err: inner }, 'http error reply failed');
      res.destroy();
    }
  }

  /** A request node's parser refused (malformed, too large, too slow): answer it if the socket allows, then close. */
  private clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    socket.on('error', () => undefined);
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 431
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
            ? 413
            : 400;
    this.log.debug({ code: err.code, status }, 'malformed request');
    // A response still being written on this connection (`_httpMessage`) must not get bytes spliced into it.
    const busy = (socket as { _httpMessage?: unknown })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || busy) {
      socket.destroy();
      return;
    }
    const reason = STATUS_CODES[status] ?? 'Bad Request';
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () =>
      socket.destroy(),
    );
  }
}

function matchPattern(
  pattern: readonly string[],
  segments: readonly string[],
): { params: Record<string, string>; rest: string[] } | undefined {
  const params: Record<string, string> = {};
  for (const [i, p] of pattern.entries()) {
    if (p === '*') {
      return segments.length > i ? { params, rest: segments.slice(i) } : undefined;
    }
    const s = segments[i];
    if (s === undefined) return undefined;
    if (p.startsWith(':')) params[p.slice(1)] = s;
    else if (p !== s) return undefined;
  }
  return segments.length === pattern.length ? { params, rest: [] } : undefined;
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Sends `{ code, message }` with the error's status; a request body not yet read is not drained (closes instead). */
function replyError(req: IncomingMessage, res: ServerResponse, err: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || req.headers['content-length'] !== undefined;
  if (hasBody && !req.complete) res.setHeader('Connection', 'close');
  sendJson(res, err.status, { code: err.code, message: err.message });
}

/** Sends `body` as JSON (bigints as decimal strings) with its length. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * The checked target of `req`, or undefined (after answering 400) when it is malformed: for handlers that are
 * also used outside an {@link HttpServer}.
 */
export function requestTargetOrReply(req: IncomingMessage, res: ServerResponse): RequestTarget | undefined {
  try {
    return parseRequestTarget(req.url);
  } catch (err) {
    replyError(req, res, err as HttpError);
    return undefined;
  }
}
