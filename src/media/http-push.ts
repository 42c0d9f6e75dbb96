import type { IncomingMessage, ServerResponse } from 'node:http';
import { StreamflowError } from '../node/errors.js';
import { type RequestTarget, requestTargetOrReply } from '../node/http-server.js';
import type { Logger } from '../node/logger.js';
import { SegmentFormatError } from './errors.js';
import { analyzeTs, type TsAnalysis } from './mpegts.js';
import { defaultHttpPushOptions, type HttpPushOptions, withDefaults } from './options.js';

/** A segment a client pushed, already cut. */
export interface PushedSegment {
  stream: string;
  seq: number;
  /** Seconds, from the in-process probe. */
  duration: number;
  bytes: Buffer;
  analysis: TsAnalysis;
  /** Aborted when the client goes away before the answer. */
  signal: AbortSignal;
}

/** A push (or its end) as far as it is known before the body is read: what {@link HttpPushDeps.authorize} judges. */
export interface PushRequest {
  stream: string;
  /** The segment's seq; undefined for the end of the stream (`DELETE`). */
  seq: number | undefined;
  /** From `Authorization: Bearer <key>` or the path `{prefix}/<stream>/<key>/<seq>.ts`; undefined if neither. */
  key: string | undefined;
  /** `ip:port` of the client. */
  remoteAddress: string;
}

export interface HttpPushDeps {
  /**
   * Accepts or refuses a push before its body is read: a thrown {@link StreamflowError} is answered with its code
   * (see {@link pushStatusFor}). @default every push is accepted
   */
  authorize?: (req: PushRequest) => Promise<void>;
  /** `DELETE {prefix}/<stream>`: the publisher is done (after `authorize`). Absent: 405. */
  onEnd?: (req: PushRequest) => Promise<void>;
  /**
   * Takes the segment (transcode, publish to HLS …). Its resolved value, if any, is sent back as JSON; a thrown
   * {@link StreamflowError} is answered with its code (`SegmentFormatDidntMatchJobInputParams` → 422).
   */
  onSegment: (segment: PushedSegment) => Promise<unknown>;
  logger?: Logger;
}

const STREAM_RE = /^[A-Za-z0-9_-]{1,64}$/;
/** A key in the path: base64url (what `keys create` makes) or other URL-safe text, taken literally. */
const KEY_RE = /^[A-Za-z0-9_.~-]{1,256}$/;

/**
 * HTTP status of a refusal by its code. Codes of the broadcaster's ingest rules (src/broadcaster/ingest-auth.ts)
 * are listed here by name so that this layer does not import that one.
 */
const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  SegmentFormatDidntMatchJobInputParams: 422,
  InvalidStreamName: 400,
  StreamKeyRequired: 401,
  StreamKeyRefused: 403,
  WebhookRefused: 403,
  NotLoopback: 403,
  CrossOrigin: 403,
  StreamExists: 409,
  DuplicateSegment: 409,
  SegmentOutOfOrder: 409,
  TooManyStreams: 503,
};

/** The HTTP status a refusal with `code` is answered with; 500 for a code that is not a refusal. */
export function pushStatusFor(code: string): number {
  return STATUS_BY_CODE[code] ?? 500;
}
const ACCEPTED_TYPES = new Set(['video/mp2t', 'video/mpeg', 'application/octet-stream']);

/**
 * A node:http handler for `PUT {prefix}/:stream/:seq.ts` (HTTP push ingest of already-cut MPEG-TS segments) and
 * `DELETE {prefix}/:stream` (the end of the stream). The key comes in `Authorization: Bearer <key>` or in the path
 * (`{prefix}/:stream/:key/:seq.ts`, `DELETE {prefix}/:stream/:key`). A request from a web page of another origin
 * (an `Origin` header that is not this server's) gets 403, and no preflight succeeds: a browser can never push.
 * `authorize` judges the push before its body is read. Bodies over `maxBytes` are refused with 413 before (or
 * while) being read; bytes that are not a transport stream get 422 with the error code. Returns false for URLs
 * outside `prefix`, so it can sit in front of other handlers.
 * `target` is the request target an {@link HttpServer} already checked; without it `req.url` is parsed here (400
 * when malformed).
 */
export function createHttpPushHandler(
  options: Partial<HttpPushOptions>,
  deps: HttpPushDeps,
): (req: IncomingMessage, res: ServerResponse, target?: RequestTarget) => boolean {
  const o = withDefaults(defaultHttpPushOptions, options);
  const prefix = o.prefix.replace(/\/+$/, '');
  const log = deps.logger?.child({ module: 'http-push' });
  return (req, res, given) => {
    const target = given ?? requestTargetOrReply(req, res);
    if (!target) return true;
    // The raw (still percent-encoded) path: a stream name must match STREAM_RE as sent.
    const pathname = target.rawPath;
    if (!pathname.startsWith(`${prefix}/`)) return false;
    const parts = pathname.slice(prefix.length + 1).split('/');
    const stream = parts[0];
    const file = parts.at(-1) ?? '';
    const seqMatch = /^(\d{1,9})\.ts$/.exec(file);
    const pathKey = seqMatch ? (parts.length === 3 ? parts[1] : undefined) : parts[1];
    const shapeOk = seqMatch ? parts.length === 2 || parts.length === 3 : parts.length <= 2;
    if (
      !shapeOk ||
      (!seqMatch && !deps.onEnd) ||
      !stream ||
      !STREAM_RE.test(stream) ||
      (pathKey !== undefined && !KEY_RE.test(pathKey))
    ) {
      reply(res, 404, { code: 'NotFound', message: `use PUT ${prefix}/<stream>/<seq>.ts` });
      return true;
    }
    if (crossOrigin(req)) {
      log?.warn({ origin: String(req.headers.origin).slice(0, 200), stream }, 'cross-origin push refused');
      res.setHeader('Connection', 'close');
      reply(res, 403, {
        code: 'CrossOrigin',
        message: 'segments cannot be pushed from a web page of another origin',
      });
      return true;
    }
    const ending = !seqMatch;
    if (ending ? req.method !== 'DELETE' : req.method !== 'PUT' && req.method !== 'POST') {
      res.setHeader('Allow', ending ? 'DELETE' : 'PUT, POST');
      reply(res, 405, {
        code: 'MethodNotAllowed',
        message: ending ? `a stream is ended with DELETE ${prefix}/<stream>` : 'segments are pushed with PUT',
      });
      return true;
    }
    const bearer = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const push: PushRequest = {
      stream,
      seq: seqMatch ? Number(seqMatch[1]) : undefined,
      key: bearer ?? pathKey,
      remoteAddress: remoteOf(req),
    };
    if (ending) {
      (async () => {
        await deps.authorize?.(push);
        await deps.onEnd?.(push);
        res.writeHead(204).end();
      })().catch((err: unknown) => refuseUnread(res, err));
      return true;
    }
    const type = (req.headers['content-type'] ?? 'video/mp2t').split(';')[0]?.trim().toLowerCase() ?? '';
    if (!ACCEPTED_TYPES.has(type)) {
      reply(res, 415, { code: 'UnsupportedMediaType', message: `content-type ${type}: send video/mp2t` });
      return true;
    }
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (declared > o.maxBytes) {
      tooLarge(res, o.maxBytes);
      return true;
    }
    const seq = push.seq as number;
    const authorized = deps.authorize ? deps.authorize(push) : Promise.resolve();
    authorized.then(
      () => readBody(),
      (err: unknown) => refuseUnread(res, err),
    );

    const controller = new AbortController();
    // 'close' on the response fires after we answered too; only an early one means the client went away.
    res.once('close', () => {
      if (!res.writableFinished) controller.abort(new Error('client closed the connection'));
    });
    const handle = async (bytes: Buffer, streamName: string, seq: number) => {
      let analysis: TsAnalysis;
      try {
        if (bytes.length === 0)
          throw new SegmentFormatError('Empty', 'the segment has no bytes', { bytes: 0 });
        analysis = analyzeTs(bytes);
      } catch (err) {
        return replyError(res, err);
      }
      try {
        const result = await deps.onSegment({
          stream: streamName,
          seq,
          duration: analysis.video?.duration ?? 0,
          bytes,
          analysis,
          signal: controller.signal,
        });
        if (res.destroyed) return;
        if (result === undefined) res.writeHead(204).end();
        else reply(res, 200, result);
        log?.debug({ stream: streamName, seq, bytes: bytes.length }, 'segment pushed');
      } catch (err) {
        if (res.destroyed) return;
        replyError(res, err);
      }
    };
    const readBody = () => {
      const chunks: Buffer[] = [];
      let size = 0;
      let refused = false;
      req.on('data', (chunk: Buffer) => {
        if (refused) return;
        size += chunk.length;
        if (size > o.maxBytes) {
          refused = true;
          tooLarge(res, o.maxBytes);
          req.pause();
          return;
        }
        chunks.push(chunk);
      });
      req.on('error', () => controller.abort(new Error('request failed')));
      req.on('end', () => {
        if (refused) return;
        const bytes = Buffer.concat(chunks, size);
        handle(bytes, stream, seq).catch((err: unknown) => {
          log?.error({ err: (err as Error).message }, 'push handler failed');
          if (!res.headersSent) reply(res, 500, { code: 'InternalError', message: 'internal error' });
        });
      });
    };

    return true;
  };
}

/** A request a web page of another origin made: its `Origin` is not this server's own (`Host`). */
function crossOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  const host = req.headers.host;
  return !host || (origin !== `http://${host}` && origin !== `https://${host}`);
}

/** `ip:port` of the client, IPv6 in brackets (`::1:5000` would read as one address). */
function remoteOf(req: IncomingMessage): string {
  const ip = req.socket.remoteAddress ?? '?';
  return `${ip.includes(':') ? `[${ip}]` : ip}:${req.socket.remotePort ?? 0}`;
}

/** A refusal before the body was read: the body is not wanted, so the connection closes after the answer. */
function refuseUnread(res: ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) return;
  res.setHeader('Connection', 'close');
  if (err instanceof StreamflowError && err.code === 'StreamKeyRequired') {
    res.setHeader('WWW-Authenticate', 'Bearer realm="streamflow-ingest"');
  }
  replyError(res, err);
}

function tooLarge(res: ServerResponse, maxBytes: number): void {
  // The rest of the body is not read: close the connection after answering instead of draining it.
  res.setHeader('Connection', 'close');
  reply(res, 413, {
    code: 'SegmentTooLarge',
    message: `segments are limited to ${maxBytes} bytes`,
    maxBytes,
  });
}

function replyError(res: ServerResponse, err: unknown): void {
  if (err instanceof StreamflowError) {
    const status = pushStatusFor(err.code);
    reply(res, status, { code: err.code, message: err.message, details: safeDetails(err.details) });
    return;
  }
  reply(res, 500, { code: 'InternalError', message: (err as Error)?.message ?? 'internal error' });
}

/** Details may hold stderr tails; keep what a client can act on. */
function safeDetails(details: unknown): unknown {
  if (typeof details !== 'object' || details === null) return details;
  const { stderrTail: _dropped, ...rest } = details as Record<string, unknown>;
  return rest;
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
