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

export interface HttpPushDeps {
  /**
   * Takes the segment (transcode, publish to HLS …). Its resolved value, if any, is sent back as JSON; a thrown
   * {@link StreamflowError} is answered with its code (`SegmentFormatDidntMatchJobInputParams` → 422).
   */
  onSegment: (segment: PushedSegment) => Promise<unknown>;
  logger?: Logger;
}

const STREAM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ACCEPTED_TYPES = new Set(['video/mp2t', 'video/mpeg', 'application/octet-stream']);

/**
 * A node:http handler for `PUT {prefix}/:stream/:seq.ts` (HTTP push ingest of already-cut MPEG-TS segments).
 * Bodies over `maxBytes` are refused with 413 before (or while) being read; bytes that are not a transport stream
 * get 422 with the error code. Returns false for URLs outside `prefix`, so it can sit in front of other handlers.
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
    const [stream, file] = parts;
    const seqMatch = /^(\d{1,9})\.ts$/.exec(file ?? '');
    if (parts.length !== 2 || !stream || !STREAM_RE.test(stream) || !seqMatch) {
      reply(res, 404, { code: 'NotFound', message: `use PUT ${prefix}/<stream>/<seq>.ts` });
      return true;
    }
    if (req.method !== 'PUT' && req.method !== 'POST') {
      res.setHeader('Allow', 'PUT, POST');
      reply(res, 405, { code: 'MethodNotAllowed', message: 'segments are pushed with PUT' });
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
      const seq = Number(seqMatch[1]);
      handle(bytes, stream, seq).catch((err: unknown) => {
        log?.error({ err: (err as Error).message }, 'push handler failed');
        if (!res.headersSent) reply(res, 500, { code: 'InternalError', message: 'internal error' });
      });
    });

    return true;
  };
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
    const status = err.code === 'SegmentFormatDidntMatchJobInputParams' ? 422 : 500;
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
