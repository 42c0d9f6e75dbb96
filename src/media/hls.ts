import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { type RequestTarget, requestTargetOrReply } from '../node/http-server.js';
import type { Logger } from '../node/logger.js';
import { defaultHlsOptions, type HlsOptions, withDefaults } from './options.js';

/** The variant that carries the segments as ingested. */
export const SOURCE_VARIANT = 'source';

/** One line of a media playlist. */
export interface HlsEntry {
  seq: number;
  /** Seconds. */
  duration: number;
  /** Relative to the media playlist. */
  uri: string;
  /** Encoding or timeline changes before this segment (`#EXT-X-DISCONTINUITY`). */
  discontinuity: boolean;
}

/** Renders a media playlist (RFC 8216 4.3.3). */
export function renderMediaPlaylist(p: {
  entries: readonly HlsEntry[];
  /** Seconds; at least every EXTINF rounded to the nearest integer. */
  targetDuration: number;
  mediaSequence: number;
  discontinuitySequence?: number;
  /** `#EXT-X-ENDLIST`: nothing more will be added. */
  ended: boolean;
  playlistType?: 'VOD' | 'EVENT' | undefined;
}): string {
  const lines = [
    '#EXTM3U',
    '#EXT-X-VERSION:3',
    `#EXT-X-TARGETDURATION:${p.targetDuration}`,
    `#EXT-X-MEDIA-SEQUENCE:${p.mediaSequence}`,
  ];
  if (p.discontinuitySequence) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${p.discontinuitySequence}`);
  if (p.playlistType) lines.push(`#EXT-X-PLAYLIST-TYPE:${p.playlistType}`);
  lines.push('#EXT-X-INDEPENDENT-SEGMENTS');
  for (const e of p.entries) {
    if (e.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    lines.push(`#EXTINF:${e.duration.toFixed(6)},`, e.uri);
  }
  if (p.ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

/** One `#EXT-X-STREAM-INF` of a master playlist. */
export interface HlsVariant {
  uri: string;
  /** Peak bits per second. */
  bandwidth: number;
  averageBandwidth?: number | undefined;
  width?: number | undefined;
  height?: number | undefined;
  frameRate?: number | undefined;
  /** RFC 6381 codecs, e.g. `avc1.64001f,mp4a.40.2`. */
  codecs?: string | undefined;
}

/** Renders a master playlist (RFC 8216 4.3.4.2). */
export function renderMasterPlaylist(variants: readonly HlsVariant[]): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const v of variants) {
    const attrs = [`BANDWIDTH=${Math.max(1, Math.round(v.bandwidth))}`];
    if (v.averageBandwidth) attrs.push(`AVERAGE-BANDWIDTH=${Math.round(v.averageBandwidth)}`);
    if (v.codecs) attrs.push(`CODECS="${v.codecs}"`);
    if (v.width && v.height) attrs.push(`RESOLUTION=${v.width}x${v.height}`);
    if (v.frameRate) attrs.push(`FRAME-RATE=${v.frameRate.toFixed(3)}`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, v.uri);
  }
  return `${lines.join('\n')}\n`;
}

/** What a variant's segment says about itself (a transcoded {@link Rendition} or the source's facts). */
export interface HlsMediaFacts {
  bytes: Uint8Array;
  width?: number | undefined;
  height?: number | undefined;
  fps?: number | undefined;
  codecs?: string | undefined;
}

/** One segment across every variant: the source and each rendition (missing when it failed). */
export interface HlsSegmentSet {
  seq: number;
  /** Seconds (the source's). */
  duration: number;
  /** Timeline jump before this segment. */
  discontinuity?: boolean | undefined;
  source: HlsMediaFacts;
  /** By rendition name. A rendition without a segment here plays the source segment instead. */
  renditions: Readonly<Record<string, HlsMediaFacts | undefined>>;
}

interface VariantState {
  name: string;
  entries: HlsEntry[];
  /** Discontinuity tags that left the window (`#EXT-X-DISCONTINUITY-SEQUENCE`). */
  droppedDiscontinuities: number;
  facts: Omit<HlsMediaFacts, 'bytes'> | undefined;
  peakBps: number;
  totalBytes: number;
  totalSeconds: number;
  /** The previous entry was the source standing in for a failed rendition. */
  lastWasStandIn: boolean;
  maxDuration: number;
}

/**
 * Playlist state of one stream: a source variant plus one per rendition, appended one {@link HlsSegmentSet}
 * at a time so every variant lists the same sequence numbers (players switch variants by media sequence).
 * Live mode keeps a sliding window; VOD mode keeps everything.
 */
export class HlsPlaylists {
  readonly variants = new Map<string, VariantState>();
  ended = false;
  private lastSeq: number | undefined;

  constructor(
    readonly renditionNames: readonly string[],
    private readonly mode: { kind: 'live'; windowSize: number } | { kind: 'vod' },
  ) {
    for (const name of [SOURCE_VARIANT, ...renditionNames]) {
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) throw new RangeError(`bad variant name ${name}`);
      if (this.variants.has(name)) throw new RangeError(`variant ${name} listed twice (or named "source")`);
      this.variants.set(name, {
        name,
        entries: [],
        droppedDiscontinuities: 0,
        facts: undefined,
        peakBps: 0,
        totalBytes: 0,
        totalSeconds: 0,
        lastWasStandIn: false,
        maxDuration: 0,
      });
    }
  }

  /**
   * Adds one segment to every variant; returns, per variant, the entries that left the window. Sequence numbers
   * must increase; a gap (a segment lost upstream) is marked as a discontinuity.
   */
  append(set: HlsSegmentSet): Map<string, HlsEntry[]> {
    if (this.ended) throw new Error('playlist already ended');
    if (this.lastSeq !== undefined && set.seq <= this.lastSeq) {
      throw new RangeError(`segment ${set.seq} is not after ${this.lastSeq}`);
    }
    const gap = this.lastSeq !== undefined && set.seq !== this.lastSeq + 1;
    this.lastSeq = set.seq;
    const evicted = new Map<string, HlsEntry[]>();
    for (const v of this.variants.values()) {
      const own = v.name === SOURCE_VARIANT ? set.source : set.renditions[v.name];
      const standIn = own === undefined;
      const media = own ?? set.source;
      const entry: HlsEntry = {
        seq: set.seq,
        duration: set.duration,
        uri: standIn ? `../${SOURCE_VARIANT}/${set.seq}.ts` : `${set.seq}.ts`,
        // A stand-in changes resolution and bitrate mid-variant, and so does the return from one.
        discontinuity: Boolean(set.discontinuity) || gap || standIn !== v.lastWasStandIn,
      };
      v.lastWasStandIn = standIn;
      v.entries.push(entry);
      if (!standIn) {
        v.facts ??= { width: media.width, height: media.height, fps: media.fps, codecs: media.codecs };
        if (set.duration > 0) v.peakBps = Math.max(v.peakBps, (media.bytes.length * 8) / set.duration);
        v.totalBytes += media.bytes.length;
        v.totalSeconds += set.duration;
      }
      v.maxDuration = Math.max(v.maxDuration, set.duration);
      if (this.mode.kind === 'live' && v.entries.length > this.mode.windowSize) {
        const dropped = v.entries.splice(0, v.entries.length - this.mode.windowSize);
        v.droppedDiscontinuities += dropped.filter((e) => e.discontinuity).length;
        evicted.set(v.name, dropped);
      }
    }
    return evicted;
  }

  end(): void {
    this.ended = true;
  }

  /** The master playlist, or undefined before the first segment (nothing to describe yet). */
  master(): string | undefined {
    const variants: HlsVariant[] = [];
    for (const v of this.variants.values()) {
      if (!v.facts) continue;
      const average = v.totalSeconds > 0 ? (v.totalBytes * 8) / v.totalSeconds : 0;
      variants.push({
        uri: `${v.name}/index.m3u8`,
        bandwidth: v.peakBps,
        averageBandwidth: this.mode.kind === 'vod' ? average : undefined,
        width: v.facts.width,
        height: v.facts.height,
        frameRate: v.facts.fps,
        codecs: v.facts.codecs,
      });
    }
    return variants.length > 0 ? renderMasterPlaylist(variants) : undefined;
  }

  /** A variant's media playlist, or undefined for an unknown variant or before the first segment. */
  mediaPlaylist(name: string): string | undefined {
    const v = this.variants.get(name);
    if (!v || v.entries.length === 0) return undefined;
    const first = v.entries[0] as HlsEntry;
    const vod = this.mode.kind === 'vod';
    return renderMediaPlaylist({
      entries: v.entries,
      targetDuration: Math.max(1, Math.round(v.maxDuration)),
      mediaSequence: first.seq,
      discontinuitySequence: v.droppedDiscontinuities,
      ended: this.ended,
      playlistType: vod ? (this.ended ? 'VOD' : 'EVENT') : undefined,
    });
  }
}

/** A body and its content type, as the HTTP handler serves it. */
export interface HlsResource {
  body: Uint8Array | string;
  contentType: string;
  /** Playlists of a live stream change every segment; segments never do. */
  cacheControl: string;
}

/** Anything the HLS handler can serve for one stream. `path` is relative to the stream (`360p30/index.m3u8`). */
export interface HlsSource {
  get(path: string): Promise<HlsResource | undefined> | HlsResource | undefined;
}

const PLAYLIST_TYPE = 'application/vnd.apple.mpegurl';
const SEGMENT_TYPE = 'video/mp2t';
const PATH_RE = /^(?:(master|index)\.m3u8|([A-Za-z0-9_-]{1,32})\/(?:index\.m3u8|(\d{1,12})\.ts))$/;

/**
 * A live stream in memory: a sliding window of segments per variant, plus a few past the window for players
 * that fetched the playlist just before it moved.
 */
export class LiveHlsStream implements HlsSource {
  readonly options: HlsOptions;
  readonly playlists: HlsPlaylists;
  private readonly store = new Map<string, Map<number, Uint8Array>>();
  private readonly log: Logger | undefined;

  constructor(
    options: Partial<HlsOptions> & { renditions: readonly string[] },
    deps: { logger?: Logger } = {},
  ) {
    this.options = withDefaults(defaultHlsOptions, options);
    this.playlists = new HlsPlaylists(options.renditions, {
      kind: 'live',
      windowSize: this.options.windowSize,
    });
    for (const name of this.playlists.variants.keys()) this.store.set(name, new Map());
    this.log = deps.logger?.child({ module: 'hls' });
  }

  append(set: HlsSegmentSet): void {
    this.playlists.append(set);
    for (const [name, segments] of this.store) {
      const media = name === SOURCE_VARIANT ? set.source : set.renditions[name];
      if (media) segments.set(set.seq, media.bytes);
      const keep = this.options.windowSize + this.options.keepAfterWindow;
      for (const seq of segments.keys()) {
        if (segments.size <= keep) break;
        segments.delete(seq);
      }
    }
    this.log?.debug({ seq: set.seq }, 'hls segment added');
  }

  /** Marks the stream ended: playlists get `#EXT-X-ENDLIST`. */
  end(): void {
    this.playlists.end();
  }

  get(path: string): HlsResource | undefined {
    const m = PATH_RE.exec(path);
    if (!m) return undefined;
    const cache = this.playlists.ended ? 'public, max-age=60' : 'no-cache';
    if (m[1]) {
      const body = this.playlists.master();
      return body === undefined ? undefined : { body, contentType: PLAYLIST_TYPE, cacheControl: cache };
    }
    const name = m[2] as string;
    if (m[3] === undefined) {
      const body = this.playlists.mediaPlaylist(name);
      return body === undefined ? undefined : { body, contentType: PLAYLIST_TYPE, cacheControl: cache };
    }
    const body = this.store.get(name)?.get(Number(m[3]));
    return body === undefined
      ? undefined
      : { body, contentType: SEGMENT_TYPE, cacheControl: 'public, max-age=3600' };
  }
}

/**
 * Writes an HLS package to a directory as segments arrive: `master.m3u8`, and per variant `index.m3u8` plus
 * `<seq>.ts`. Playlists are rewritten (atomically, by rename) after each segment as `EVENT` playlists, so the
 * package can be watched while it is made; {@link finish} turns them into complete `VOD` playlists.
 */
export class HlsDirectoryWriter {
  readonly playlists: HlsPlaylists;

  constructor(
    readonly dir: string,
    renditions: readonly string[],
  ) {
    this.playlists = new HlsPlaylists(renditions, { kind: 'vod' });
  }

  async append(set: HlsSegmentSet): Promise<void> {
    this.playlists.append(set);
    for (const name of this.playlists.variants.keys()) {
      const media = name === SOURCE_VARIANT ? set.source : set.renditions[name];
      if (!media) continue;
      await mkdir(join(this.dir, name), { recursive: true });
      await writeFile(join(this.dir, name, `${set.seq}.ts`), media.bytes);
    }
    await this.writePlaylists();
  }

  /** Ends the playlists (`#EXT-X-PLAYLIST-TYPE:VOD`, `#EXT-X-ENDLIST`) and writes them. */
  async finish(): Promise<void> {
    this.playlists.end();
    await this.writePlaylists();
  }

  private async writePlaylists(): Promise<void> {
    for (const name of this.playlists.variants.keys()) {
      const body = this.playlists.mediaPlaylist(name);
      if (body !== undefined) await writeAtomic(join(this.dir, name, 'index.m3u8'), body);
    }
    const master = this.playlists.master();
    if (master !== undefined) await writeAtomic(join(this.dir, 'master.m3u8'), master);
  }
}

async function writeAtomic(path: string, body: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, body);
  await rename(tmp, path);
}

/** Serves an HLS package written by {@link HlsDirectoryWriter}; paths outside the layout are never opened. */
export class DirectoryHlsSource implements HlsSource {
  constructor(readonly dir: string) {}

  async get(path: string): Promise<HlsResource | undefined> {
    const m = PATH_RE.exec(path);
    if (!m) return undefined;
    const file = m[1]
      ? 'master.m3u8'
      : m[3] === undefined
        ? `${m[2]}/index.m3u8`
        : `${m[2]}/${Number(m[3])}.ts`;
    try {
      const body = await readFile(join(this.dir, file));
      const playlist = file.endsWith('.m3u8');
      return {
        body,
        contentType: playlist ? PLAYLIST_TYPE : SEGMENT_TYPE,
        cacheControl: playlist ? 'no-cache' : 'public, max-age=3600',
      };
    } catch {
      return undefined;
    }
  }
}

/**
 * A node:http handler serving `GET|HEAD {prefix}/:stream/<path>` from the {@link HlsSource} that `lookup`
 * returns, with HLS content types and CORS for web players. Returns false (and leaves the response alone) for
 * URLs outside `prefix`, so it can sit in front of other handlers. `target` is the request target an
 * {@link HttpServer} already checked; without it the handler parses `req.url` itself (400 when malformed).
 */
export function createHlsHandler(
  options: { prefix?: string },
  deps: { lookup: (stream: string) => HlsSource | undefined; logger?: Logger },
): (req: IncomingMessage, res: ServerResponse, target?: RequestTarget) => boolean {
  const prefix = (options.prefix ?? '/hls').split('/').filter(Boolean);
  const log = deps.logger?.child({ module: 'hls-http' });
  return (req, res, given) => {
    const target = given ?? requestTargetOrReply(req, res);
    if (!target) return true;
    const segments = target.segments;
    if (segments.length <= prefix.length || prefix.some((p, i) => segments[i] !== p)) return false;
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'Range, Content-Type');
    res.setHeader('Access-Control-Expose-Headers', 'Content-Length');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'Access-Control-Max-Age': '86400' }).end();
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD, OPTIONS' }).end();
      return true;
    }
    // Segments are decoded one by one, so a stream name never holds a `/` that shifts the resource path.
    const stream = segments.length > prefix.length + 1 ? (segments[prefix.length] as string) : '';
    const resource = segments.slice(prefix.length + 1).join('/');
    const source = stream ? deps.lookup(stream) : undefined;
    const notFound = () => res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    if (!source) {
      notFound();
      return true;
    }
    Promise.resolve()
      .then(() => source.get(resource))
      .then((found) => {
        if (!found) return notFound();
        const body = typeof found.body === 'string' ? Buffer.from(found.body) : found.body;
        res.writeHead(200, {
          'Content-Type': found.contentType,
          'Content-Length': body.length,
          'Cache-Control': found.cacheControl,
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      })
      .catch((err: unknown) => {
        log?.warn({ err: (err as Error)?.message, path: target.rawPath.slice(0, 200) }, 'hls request failed');
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    return true;
  };
}
