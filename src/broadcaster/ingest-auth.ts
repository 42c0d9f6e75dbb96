/**
 * Who may publish into a broadcaster. Every publish (RTMP or HTTP push) names a stream and may carry a key; the
 * broadcaster's deposit pays for every stream it accepts, so a stream is accepted only
 * - with a key from the stream-keys file (`streamflow broadcaster keys create NAME`), bound to that stream name, or
 * - with the approval of the operator's auth webhook (the contract go-livepeer's `-authWebhookUrl` uses), or
 * - with neither configured, from a loopback address only.
 *
 * Keys are 32 random bytes (base64url, 43 characters). The file keeps only their SHA-256: a key of 256 random bits
 * cannot be guessed from its hash, so a slow password hash would only make every publish slower. Hashes are
 * compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { StreamflowError } from '../node/errors.js';
import { type Logger, silentLogger } from '../node/logger.js';

/**
 * Why a publish or a pushed segment was refused. Local codes (answered to the publisher, never sent on):
 * - `InvalidStreamName`: the stream name is not a safe path segment (1–64 of `A-Z a-z 0-9 _ . -`, not starting
 *   with `.`, so never `.` or `..`).
 * - `StreamKeyRequired`: the broadcaster needs a key and none came (HTTP 401).
 * - `StreamKeyRefused`: the key is not the stream's, or the stream is live under another key (HTTP 403).
 * - `WebhookRefused`: the auth webhook said no, or could not be asked (non-2xx, timeout, unreachable,
 *   malformed body) (HTTP 403).
 * - `NotLoopback`: neither keys nor a webhook are configured and the publisher is not on a loopback address (403).
 * - `CrossOrigin`: an HTTP push from a web page of another origin (HTTP 403).
 * - `TooManyStreams`: `maxStreams` streams are live (HTTP 503).
 * - `StreamExists`: the stream is live from another ingest (an RTMP publish and a push on one name) (HTTP 409).
 * - `DuplicateSegment`: a pushed seq the stream has already taken (HTTP 409).
 * - `SegmentOutOfOrder`: a pushed seq below the stream's last one (HTTP 409).
 * - `StreamKeyExists`: `keys create` for a name the file already has, without `replace`.
 * - `StreamKeysFileInvalid`: the stream-keys file cannot be read as one.
 */
export type IngestErrorCode =
  | 'InvalidStreamName'
  | 'StreamKeyRequired'
  | 'StreamKeyRefused'
  | 'WebhookRefused'
  | 'NotLoopback'
  | 'CrossOrigin'
  | 'TooManyStreams'
  | 'StreamExists'
  | 'DuplicateSegment'
  | 'SegmentOutOfOrder'
  | 'StreamKeyExists'
  | 'StreamKeysFileInvalid';

export class IngestError extends StreamflowError<IngestErrorCode, Record<string, unknown>> {}

const STREAM_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

/** Whether `name` may name a stream: it becomes a path segment of `/hls/<name>/` and the orchestrator's stream id. */
export function isSafeStreamName(name: string): boolean {
  return STREAM_NAME.test(name);
}

/** Throws `InvalidStreamName` unless {@link isSafeStreamName}. */
export function checkStreamName(name: string): void {
  if (!isSafeStreamName(name)) {
    throw new IngestError(
      'InvalidStreamName',
      `stream name ${JSON.stringify(name.slice(0, 80))} is not allowed: use 1–64 of A-Z a-z 0-9 _ . - , not starting with "."`,
      { stream: name.slice(0, 80) },
    );
  }
}

/** A new stream key: 32 random bytes, base64url (43 characters, safe in a URL path or query). */
export function generateStreamKey(): string {
  return randomBytes(32).toString('base64url');
}

/** SHA-256 of a key, hex: what the stream-keys file keeps. */
export function hashStreamKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Constant-time comparison of a presented key with a stored SHA-256 (hex). */
export function keyMatches(key: string, storedHash: string): boolean {
  const a = createHash('sha256').update(key, 'utf8').digest();
  const b = Buffer.from(storedHash, 'hex');
  return b.length === a.length && timingSafeEqual(a, b);
}

/**
 * Whether a remote address is loopback: an IPv4, IPv6 or IPv4-mapped address as node reports it, bare or with a
 * port (`1.2.3.4:5678`, `[::1]:5678`).
 */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  let host = address;
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']') < 0 ? undefined : host.indexOf(']'));
  else if (isIP(host) === 0) host = host.replace(/:\d+$/, '');
  host = host.toLowerCase();
  if (host.startsWith('::ffff:') && isIP(host.slice(7)) === 4) host = host.slice(7);
  if (isIP(host) === 4) return host.startsWith('127.');
  return isIP(host) === 6 && /^(0{0,4}:){2,7}0{0,3}1$|^::1$/.test(host);
}

/** One entry of the stream-keys file. */
export interface StreamKeyEntry {
  /** SHA-256 of the key, hex. */
  sha256: string;
  /** ISO time of creation. */
  created: string;
}

/** The stream-keys file: `{ "version": 1, "keys": { "<stream name>": { "sha256": …, "created": … } } }`. */
export interface StreamKeysFile {
  version: 1;
  keys: Record<string, StreamKeyEntry>;
}

/** Reads a stream-keys file; a missing file is an empty one when `missingOk`. */
export async function readStreamKeys(
  file: string,
  opts: { missingOk?: boolean } = {},
): Promise<StreamKeysFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && opts.missingOk) return { version: 1, keys: {} };
    throw new IngestError(
      'StreamKeysFileInvalid',
      `cannot read the stream-keys file ${file}: ${(err as Error).message}`,
      {
        file,
      },
    );
  }
  return parseStreamKeys(text, file);
}

function parseStreamKeys(text: string, file: string): StreamKeysFile {
  const invalid = (why: string) =>
    new IngestError('StreamKeysFileInvalid', `${file} is not a stream-keys file: ${why}`, { file });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid('not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) throw invalid('not an object');
  const { version, keys } = parsed as { version?: unknown; keys?: unknown };
  if (version !== 1) throw invalid(`version ${String(version)} (expected 1)`);
  if (typeof keys !== 'object' || keys === null || Array.isArray(keys))
    throw invalid('"keys" is not an object');
  const out: Record<string, StreamKeyEntry> = Object.create(null);
  for (const [name, entry] of Object.entries(keys as Record<string, unknown>)) {
    const e = entry as Partial<StreamKeyEntry> | null;
    if (!isSafeStreamName(name)) throw invalid(`stream name ${JSON.stringify(name)} is not allowed`);
    if (typeof e?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) {
      throw invalid(`the entry of ${name} has no sha256`);
    }
    out[name] = { sha256: e.sha256, created: typeof e.created === 'string' ? e.created : '' };
  }
  return { version: 1, keys: out };
}

/**
 * Makes a key for stream `name`, adds its hash to `file` (created 0600 if missing) and returns the key: the only
 * time it is ever seen. Refuses a name the file already has unless `replace` (`StreamKeyExists`). The file is
 * rewritten whole (to a temporary file, then renamed), so a running broadcaster never reads half of it.
 */
export async function createStreamKey(
  file: string,
  name: string,
  opts: { replace?: boolean } = {},
): Promise<{ key: string; replaced: boolean }> {
  checkStreamName(name);
  const current = await readStreamKeys(file, { missingOk: true });
  const replaced = name in current.keys;
  if (replaced && !opts.replace) {
    throw new IngestError(
      'StreamKeyExists',
      `${file} already has a key for stream ${name}; pass --replace to make a new one (the old key stops working)`,
      { file, stream: name },
    );
  }
  const key = generateStreamKey();
  const next: StreamKeysFile = {
    version: 1,
    keys: { ...current.keys, [name]: { sha256: hashStreamKey(key), created: new Date().toISOString() } },
  };
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(next, null, 2)}\n`);
    await handle.chmod(0o600);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  return { key, replaced };
}

/** What a publisher presents. */
export interface PublishRequest {
  stream: string;
  /** The key, if any came (RTMP `?key=`, HTTP `Authorization: Bearer` or the push path). */
  key: string | undefined;
  /** `ip:port` or `ip` of the publisher. */
  remoteAddress: string;
  protocol: 'rtmp' | 'http';
}

/** What an accepted publish may do. */
export interface IngestGrant {
  /** How it was accepted. */
  via: 'key' | 'webhook' | 'loopback';
  /** Profile names the webhook allowed; undefined: every profile of the broadcaster. */
  profiles: readonly string[] | undefined;
}

export interface IngestAuthOptions {
  /** Stream-keys file (see {@link createStreamKey}); re-read when it changes. */
  streamKeysFile: string | undefined;
  /** Auth webhook URL: POST `{ stream, key, remoteAddress, protocol }`, 2xx accepts. */
  authWebhook: string | undefined;
  /** The webhook's answer must come within this, ms. @default 5_000 */
  webhookTimeoutMs: number;
  /** Largest webhook answer read, bytes; a larger one is malformed. @default 65_536 */
  webhookMaxBytes: number;
  /** Profile names of the broadcaster: a webhook answer naming another is malformed. */
  profiles: readonly string[];
}

export const defaultIngestAuthOptions: Readonly<Omit<IngestAuthOptions, 'profiles'>> = Object.freeze({
  streamKeysFile: undefined,
  authWebhook: undefined,
  webhookTimeoutMs: 5_000,
  webhookMaxBytes: 65_536,
});

export interface IngestAuthDeps {
  logger?: Logger;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** Decides every publish; see the module comment for the rules. */
export class IngestAuth {
  readonly options: IngestAuthOptions;
  private readonly log: Logger;
  private readonly fetch: typeof fetch;
  private keys: { mtimeMs: number; size: number; file: StreamKeysFile } | undefined;

  constructor(
    options: Partial<IngestAuthOptions> & Pick<IngestAuthOptions, 'profiles'>,
    deps: IngestAuthDeps = {},
  ) {
    this.options = { ...defaultIngestAuthOptions, ...stripUndefined(options), profiles: options.profiles };
    this.log = (deps.logger ?? silentLogger).child({ module: 'ingest-auth' });
    this.fetch = deps.fetch ?? globalThis.fetch;
  }

  /** `keys`, `webhook`, `keys+webhook`, or `loopback` (neither configured: loopback publishers only). */
  get mode(): 'keys' | 'webhook' | 'keys+webhook' | 'loopback' {
    const { streamKeysFile: k, authWebhook: w } = this.options;
    return k && w ? 'keys+webhook' : k ? 'keys' : w ? 'webhook' : 'loopback';
  }

  /** Reads the stream-keys file once, so a broken one fails the start rather than every publish. */
  async load(): Promise<void> {
    if (this.options.streamKeysFile) await this.streamKeys();
  }

  /**
   * Accepts or refuses a publish: resolves with the grant, or rejects with an {@link IngestError}
   * (`InvalidStreamName`, `StreamKeyRequired`, `StreamKeyRefused`, `WebhookRefused`, `NotLoopback`).
   */
  async authorize(req: PublishRequest, signal?: AbortSignal): Promise<IngestGrant> {
    checkStreamName(req.stream);
    const mode = this.mode;
    if (mode === 'loopback') {
      if (isLoopback(req.remoteAddress)) return { via: 'loopback', profiles: undefined };
      throw new IngestError(
        'NotLoopback',
        'this broadcaster has no --stream-keys or --auth-webhook and takes publishes from loopback addresses only',
        { stream: req.stream },
      );
    }
    if (this.options.streamKeysFile) {
      const entry = (await this.streamKeys()).keys[req.stream];
      if (entry && req.key !== undefined && keyMatches(req.key, entry.sha256)) {
        return { via: 'key', profiles: undefined };
      }
      if (!this.options.authWebhook) {
        if (req.key === undefined || req.key === '') {
          throw new IngestError('StreamKeyRequired', `stream ${req.stream} needs a stream key`, {
            stream: req.stream,
          });
        }
        throw new IngestError('StreamKeyRefused', `the key is not the key of stream ${req.stream}`, {
          stream: req.stream,
        });
      }
    }
    return this.askWebhook(req, signal);
  }

  private async streamKeys(): Promise<StreamKeysFile> {
    const file = this.options.streamKeysFile as string;
    let st: { mtimeMs: number; size: number };
    try {
      st = await stat(file);
    } catch (err) {
      throw new IngestError(
        'StreamKeysFileInvalid',
        `cannot read the stream-keys file ${file}: ${(err as Error).message}`,
        {
          file,
        },
      );
    }
    // `keys create` on a running broadcaster takes effect without a restart.
    if (!this.keys || this.keys.mtimeMs !== st.mtimeMs || this.keys.size !== st.size) {
      this.keys = { mtimeMs: st.mtimeMs, size: st.size, file: await readStreamKeys(file) };
      this.log.info({ file, streams: Object.keys(this.keys.file.keys).length }, 'stream keys loaded');
    }
    return this.keys.file;
  }

  private async askWebhook(req: PublishRequest, signal?: AbortSignal): Promise<IngestGrant> {
    const url = this.options.authWebhook as string;
    // The reason goes back to the publisher; what went wrong on the way to the webhook stays in the log.
    const refuse = (why: string, logged: Record<string, unknown> = {}): never => {
      this.log.warn(
        { stream: req.stream, remote: req.remoteAddress, why, ...logged },
        'auth webhook refused a publish',
      );
      throw new IngestError('WebhookRefused', `publish of ${req.stream} refused: ${why}`, {
        stream: req.stream,
      });
    };
    const timeout = AbortSignal.timeout(this.options.webhookTimeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await this.fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({
          stream: req.stream,
          key: req.key ?? null,
          remoteAddress: req.remoteAddress,
          protocol: req.protocol,
        }),
        redirect: 'error',
        signal: combined,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      return refuse(
        timeout.aborted ? 'the auth webhook did not answer in time' : 'the auth webhook is unreachable',
        {
          err: (err as Error).message,
        },
      );
    }
    let body: string;
    try {
      body = await readLimited(res, this.options.webhookMaxBytes);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      return refuse(
        timeout.aborted
          ? 'the auth webhook did not answer in time'
          : 'the auth webhook answer could not be read',
        { err: (err as Error).message },
      );
    }
    if (res.status < 200 || res.status > 299) return refuse(`the auth webhook answered ${res.status}`);
    if (body.trim() === '') return { via: 'webhook', profiles: undefined };
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return refuse('the auth webhook answer is not JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return refuse('the auth webhook answer is not a JSON object');
    }
    const profiles = (parsed as { profiles?: unknown }).profiles;
    if (profiles === undefined || profiles === null) return { via: 'webhook', profiles: undefined };
    if (!Array.isArray(profiles) || profiles.length === 0 || !profiles.every((p) => typeof p === 'string')) {
      return refuse('"profiles" of the auth webhook answer is not a non-empty list of profile names');
    }
    const unknown = profiles.filter((p) => !this.options.profiles.includes(p));
    if (unknown.length > 0) {
      return refuse(`the auth webhook named profiles this broadcaster does not make: ${unknown.join(', ')}`);
    }
    return { via: 'webhook', profiles: [...new Set(profiles as string[])] };
  }
}

async function readLimited(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > maxBytes) throw new Error(`answer over ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
