/**
 * An RTMP server for publishers (OBS, ffmpeg, hardware encoders), written here rather than using ffmpeg's
 * `-listen 1`: one port serves any number of streams, stream keys are checked before a byte is accepted, it
 * listens on port 0 for tests without a port race, and the end of a stream (`FCUnpublish`/`deleteStream` or the
 * socket closing) is an event, not an ffmpeg exit to interpret. Each publish is exposed as an FLV byte stream;
 * {@link segmentRtmpPublish} hands it to ffmpeg (stream copy to MPEG-TS) and the in-process segmenter.
 *
 * Only the simple handshake is spoken (S1 version 0, S2 echoes C1): librtmp (OBS) and ffmpeg publishers accept
 * it; the digest handshake only matters to Flash players, and playback is not served here (HLS is).
 */
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import type { Logger } from '../node/logger.js';
import { type Amf0Object, type Amf0Value, decodeAmf0, encodeAmf0 } from './amf0.js';
import { defaultRtmpServerOptions, type RtmpServerOptions, withDefaults } from './options.js';
import {
  type Segment,
  type SegmentSourceDeps,
  type SegmentSourceOptions,
  segmentSource,
} from './segmenter.js';

const HANDSHAKE_SIZE = 1536;
const RTMP_VERSION = 3;

const MSG_SET_CHUNK_SIZE = 1;
const MSG_ABORT = 2;
const MSG_ACK = 3;
const MSG_USER_CONTROL = 4;
const MSG_WINDOW_ACK_SIZE = 5;
const MSG_SET_PEER_BANDWIDTH = 6;
const MSG_AUDIO = 8;
const MSG_VIDEO = 9;
const MSG_DATA_AMF3 = 15;
const MSG_COMMAND_AMF3 = 17;
const MSG_DATA_AMF0 = 18;
const MSG_COMMAND_AMF0 = 20;

const CSID_CONTROL = 2;
const CSID_COMMAND = 3;
const CSID_STATUS = 5;

/** Window we announce; clients acknowledge after this many bytes. */
const SERVER_WINDOW = 5_000_000;
/** Chunk size we send with: big enough that commands fit one chunk. */
const SERVER_CHUNK_SIZE = 4096;
/** Publishers use a handful of chunk streams; thousands is an attack on the per-stream state. */
const MAX_CHUNK_STREAMS = 64;

/** One complete RTMP message. */
export interface RtmpMessage {
  csid: number;
  type: number;
  streamId: number;
  /** Milliseconds, unwrapped from deltas. */
  timestamp: number;
  payload: Buffer;
}

export class RtmpProtocolError extends Error {
  override readonly name = 'RtmpProtocolError';
}

interface ChunkStreamState {
  timestamp: number;
  delta: number;
  length: number;
  type: number;
  streamId: number;
  extended: boolean;
  chunks: Buffer[];
  received: number;
}

/** Reassembles RTMP messages from chunks (RTMP spec 5.3), across reads of any size. */
export class RtmpChunkReader {
  /** Incoming chunk size; the peer changes it with Set Chunk Size. */
  chunkSize = 128;
  private buf: Buffer = Buffer.alloc(0);
  private readonly streams = new Map<number, ChunkStreamState>();
  /** Bytes of partly received messages across all chunk streams: bounded, or one peer could fill memory. */
  private partial = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** Adds bytes; returns the messages they completed. Throws {@link RtmpProtocolError} on a broken stream. */
  push(data: Buffer): RtmpMessage[] {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data]);
    const out: RtmpMessage[] = [];
    while (this.readChunk(out)) {
      // keep reading: one push may complete many chunks
    }
    return out;
  }

  /** Drops a partly received message (Abort Message). */
  abort(csid: number): void {
    const s = this.streams.get(csid);
    if (s) {
      this.partial -= s.received;
      s.chunks = [];
      s.received = 0;
    }
  }

  private setChunkSize(size: number): void {
    if (size < 1 || size > 0xffffff) throw new RtmpProtocolError(`bad chunk size ${size}`);
    this.chunkSize = size;
  }

  private readChunk(out: RtmpMessage[]): boolean {
    const b = this.buf;
    if (b.length < 1) return false;
    const b0 = b[0] as number;
    const fmt = b0 >> 6;
    let csid = b0 & 0x3f;
    let p = 1;
    if (csid === 0) {
      if (b.length < 2) return false;
      csid = (b[1] as number) + 64;
      p = 2;
    } else if (csid === 1) {
      if (b.length < 3) return false;
      csid = (b[1] as number) + (b[2] as number) * 256 + 64;
      p = 3;
    }
    const headerSize = [11, 7, 3, 0][fmt] as number;
    if (b.length < p + headerSize) return false;
    let state = this.streams.get(csid);
    if (!state) {
      if (fmt !== 0) throw new RtmpProtocolError(`chunk stream ${csid} starts without a full header`);
      if (this.streams.size >= MAX_CHUNK_STREAMS) throw new RtmpProtocolError('too many chunk streams');
      state = {
        timestamp: 0,
        delta: 0,
        length: 0,
        type: 0,
        streamId: 0,
        extended: false,
        chunks: [],
        received: 0,
      };
    }
    const tsField = fmt <= 2 ? b.readUIntBE(p, 3) : 0;
    const length = fmt <= 1 ? b.readUIntBE(p + 3, 3) : state.length;
    const type = fmt <= 1 ? (b[p + 6] as number) : state.type;
    const streamId = fmt === 0 ? b.readUInt32LE(p + 7) : state.streamId;
    p += headerSize;
    const extended = fmt <= 2 ? tsField === 0xffffff : state.extended;
    let tsValue = tsField;
    if (extended) {
      if (b.length < p + 4) return false;
      tsValue = b.readUInt32BE(p);
      p += 4;
    }
    if (length > this.maxMessageBytes) {
      throw new RtmpProtocolError(
        `message of ${length} bytes is over the ${this.maxMessageBytes}-byte limit`,
      );
    }
    const starting = state.received === 0;
    const size = Math.min(this.chunkSize, length - (starting ? 0 : state.received));
    if (b.length < p + size) return false;

    // The whole chunk is here: commit the header.
    this.streams.set(csid, state);
    state.length = length;
    state.type = type;
    state.streamId = streamId;
    state.extended = extended;
    if (starting) {
      if (fmt === 0) {
        state.timestamp = tsValue;
        state.delta = 0;
      } else if (fmt === 1 || fmt === 2) {
        state.delta = tsValue;
        state.timestamp += tsValue;
      } else {
        state.timestamp += state.delta;
      }
    }
    state.chunks.push(b.subarray(p, p + size));
    state.received += size;
    this.partial += size;
    if (this.partial > 2 * this.maxMessageBytes) {
      throw new RtmpProtocolError('too many bytes in unfinished messages');
    }
    this.buf = b.subarray(p + size);
    if (state.received >= length) {
      this.partial -= state.received;
      const payload = state.chunks.length === 1 ? (state.chunks[0] as Buffer) : Buffer.concat(state.chunks);
      state.chunks = [];
      state.received = 0;
      out.push({ csid, type, streamId, timestamp: state.timestamp >>> 0, payload: Buffer.from(payload) });
      // Set Chunk Size applies from the very next chunk, so it is applied here, between chunks.
      if (type === MSG_SET_CHUNK_SIZE && payload.length >= 4)
        this.setChunkSize(payload.readUInt32BE(0) & 0x7fffffff);
    }
    return true;
  }
}

/** Splits one message into chunks: a type-0 header, then type-3 continuation headers. */
export function encodeRtmpMessage(
  msg: Omit<RtmpMessage, 'payload'> & { payload: Uint8Array },
  chunkSize: number,
): Buffer {
  const extended = msg.timestamp >= 0xffffff;
  const basic = (fmt: number) =>
    msg.csid < 64
      ? Buffer.from([(fmt << 6) | msg.csid])
      : msg.csid < 320
        ? Buffer.from([fmt << 6, msg.csid - 64])
        : Buffer.from([(fmt << 6) | 1, (msg.csid - 64) & 0xff, (msg.csid - 64) >> 8]);
  const ext = () => {
    const e = Buffer.alloc(4);
    e.writeUInt32BE(msg.timestamp >>> 0);
    return e;
  };
  const header = Buffer.alloc(11);
  header.writeUIntBE(extended ? 0xffffff : msg.timestamp, 0, 3);
  header.writeUIntBE(msg.payload.length, 3, 3);
  header[6] = msg.type;
  header.writeUInt32LE(msg.streamId, 7);
  const parts: Uint8Array[] = [basic(0), header];
  if (extended) parts.push(ext());
  for (let off = 0; off < msg.payload.length || off === 0; off += chunkSize) {
    if (off > 0) {
      parts.push(basic(3));
      if (extended) parts.push(ext());
    }
    parts.push(msg.payload.subarray(off, off + chunkSize));
    if (msg.payload.length === 0) break;
  }
  return Buffer.concat(parts);
}

/** A stream being published. */
export interface RtmpPublish {
  readonly id: number;
  /** Application name from `connect` (the first path segment of the URL, e.g. `live`). */
  readonly app: string;
  /** Stream key: the name given to `publish`, without any query string (the stream's public name). */
  readonly key: string;
  /**
   * Parameters of the query string of the name given to `publish` (`<stream>?key=<secret>` → `{ key }`). May hold
   * secrets: never logged here.
   */
  readonly params: Readonly<Record<string, string>>;
  /** What `authorize` attached when it accepted the publish. */
  readonly grant: unknown;
  readonly remoteAddress: string;
  /** The published audio/video as an FLV byte stream; it ends when the publisher stops. */
  readonly flv: Readable;
  /** Why it ended: a clean unpublish, a dropped connection (or idle timeout), or the server stopping. */
  readonly ended: Promise<'unpublished' | 'disconnected' | 'stopped'>;
  /** Drops the publisher. */
  close(): void;
}

/**
 * The answer of {@link RtmpServerDeps.authorize}: `true`/`false`, or a refusal with the reason the publisher is
 * told (the description of `NetStream.Publish.BadName`), or an acceptance carrying a grant exposed on the publish.
 */
export type RtmpAuthorization = boolean | { ok: false; reason: string } | { ok: true; grant?: unknown };

export interface RtmpServerDeps {
  logger?: Logger;
  /**
   * Whether `app`/`key` may publish; called before the publisher gets `NetStream.Publish.Start`. `params` is the
   * query string of the publish name (`<key>?key=<secret>`). A throw refuses with its message.
   * @default every key is accepted
   */
  authorize?: (req: {
    app: string;
    key: string;
    params: Readonly<Record<string, string>>;
    remoteAddress: string;
  }) => RtmpAuthorization | Promise<RtmpAuthorization>;
  /** Called once per accepted publish, before any media arrives. */
  onPublish: (publish: RtmpPublish) => void;
}

/** Listens for RTMP publishers. `start()` and `stop()` are idempotent. */
export class RtmpServer {
  readonly options: RtmpServerOptions;
  private readonly log: Logger | undefined;
  private server: Server | undefined;
  private readonly connections = new Set<RtmpConnection>();
  /** `app/key` of every live publish: a second publisher on the same key is refused. */
  readonly active = new Map<string, RtmpPublish>();
  private nextId = 1;
  private status: 'idle' | 'started' | 'closing' | 'closed' = 'idle';

  constructor(
    options: Partial<RtmpServerOptions>,
    readonly deps: RtmpServerDeps,
  ) {
    this.options = withDefaults(defaultRtmpServerOptions, options);
    this.log = deps.logger?.child({ module: 'rtmp' });
  }

  /** Starts listening; resolves with the bound address (the real port when `port` was 0). */
  async start(): Promise<AddressInfo> {
    if (this.server) return this.address();
    const server = createServer((socket) => this.accept(socket));
    // Connections that never publish are dropped after the handshake timeout; cap how many can wait meanwhile.
    server.maxConnections = this.options.maxPublishers * 2 + 16;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.status = 'started';
    const address = this.address();
    this.log?.info({ host: address.address, port: address.port }, 'rtmp listening');
    return address;
  }

  address(): AddressInfo {
    const a = this.server?.address();
    if (!a || typeof a === 'string') throw new Error('RTMP server is not listening');
    return a;
  }

  /** Stops listening, drops every connection (their publishes end with 'stopped'), waits for the close. */
  async stop(): Promise<void> {
    if (this.status !== 'started') return;
    this.status = 'closing';
    const server = this.server;
    const closed = new Promise<void>((resolve) => server?.close(() => resolve()) ?? resolve());
    for (const c of this.connections) c.destroy('stopped');
    await closed;
    this.status = 'closed';
  }

  private accept(socket: Socket): void {
    if (this.status !== 'started') {
      socket.destroy();
      return;
    }
    const conn = new RtmpConnection(socket, this, this.nextId++, this.log);
    this.connections.add(conn);
    socket.once('close', () => this.connections.delete(conn));
  }

  /** @internal */
  allocatePublishId(): number {
    return this.nextId++;
  }
}

class RtmpConnection {
  private phase: 'c0c1' | 'c2' | 'open' | 'closed' = 'c0c1';
  private pending: Buffer = Buffer.alloc(0);
  private readonly reader: RtmpChunkReader;
  private app = '';
  private bytesIn = 0;
  private lastAck = 0;
  private peerWindow = 0;
  private queue: Promise<void> = Promise.resolve();
  private publish: PublishState | undefined;
  private readonly handshakeTimer: NodeJS.Timeout;
  private readonly log: Logger | undefined;
  private readonly remoteAddress: string;

  constructor(
    private readonly socket: Socket,
    private readonly server: RtmpServer,
    private readonly id: number,
    log: Logger | undefined,
  ) {
    const o = server.options;
    this.reader = new RtmpChunkReader(o.maxMessageBytes);
    const ip = socket.remoteAddress ?? '?';
    // IPv6 in brackets: `::1:5000` would read as one address.
    this.remoteAddress = `${ip.includes(':') ? `[${ip}]` : ip}:${socket.remotePort ?? 0}`;
    this.log = log?.child({ conn: id, remote: this.remoteAddress });
    socket.setNoDelay(true);
    socket.setTimeout(o.idleTimeoutMs, () => this.destroy('disconnected', 'idle timeout'));
    this.handshakeTimer = setTimeout(() => {
      if (!this.publish) this.destroy('disconnected', 'no publish before the handshake timeout');
    }, o.handshakeTimeoutMs);
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('error', (err) => this.log?.debug({ err: err.message }, 'rtmp socket error'));
    socket.once('close', () => this.onClose());
  }

  destroy(reason: 'disconnected' | 'stopped', why?: string): void {
    if (why) this.log?.info({ why }, 'rtmp connection dropped');
    this.endPublish(reason);
    this.socket.destroy();
  }

  private onClose(): void {
    clearTimeout(this.handshakeTimer);
    this.phase = 'closed';
    this.endPublish('disconnected');
  }

  private onData(data: Buffer): void {
    if (this.phase === 'closed') return;
    this.bytesIn += data.length;
    try {
      if (this.phase !== 'open') {
        this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
        if (!this.handshake() || this.pending.length === 0) return;
        data = this.pending;
        this.pending = Buffer.alloc(0);
      }
      this.maybeAck();
      for (const msg of this.reader.push(data)) {
        const media = msg.type === MSG_AUDIO || msg.type === MSG_VIDEO || msg.type === MSG_DATA_AMF0;
        // One queue keeps media in arrival order behind a command still being handled (publish's authorize).
        this.queue = this.queue
          .then(() => (media ? this.onMedia(msg) : this.onMessage(msg)))
          .catch((err) => this.fail(err));
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.log?.warn({ err: (err as Error).message }, 'rtmp protocol error; closing');
    this.destroy('disconnected');
  }

  /** Advances the handshake with the bytes in `pending`; true once it is complete. */
  private handshake(): boolean {
    if (this.phase === 'c0c1') {
      if (this.pending.length < 1 + HANDSHAKE_SIZE) return false;
      if (this.pending[0] !== RTMP_VERSION)
        throw new RtmpProtocolError(`RTMP version ${this.pending[0]} unsupported`);
      const c1 = this.pending.subarray(1, 1 + HANDSHAKE_SIZE);
      const s1 = Buffer.alloc(HANDSHAKE_SIZE);
      randomBytes(HANDSHAKE_SIZE - 8).copy(s1, 8);
      this.socket.write(Buffer.concat([Buffer.from([RTMP_VERSION]), s1, c1]));
      this.pending = this.pending.subarray(1 + HANDSHAKE_SIZE);
      this.phase = 'c2';
    }
    if (this.phase === 'c2') {
      if (this.pending.length < HANDSHAKE_SIZE) return false;
      this.pending = this.pending.subarray(HANDSHAKE_SIZE);
      this.phase = 'open';
    }
    return this.phase === 'open';
  }

  private maybeAck(): void {
    if (this.peerWindow > 0 && this.bytesIn - this.lastAck >= this.peerWindow) {
      this.lastAck = this.bytesIn;
      const b = Buffer.alloc(4);
      b.writeUInt32BE(this.bytesIn >>> 0);
      this.send(CSID_CONTROL, MSG_ACK, 0, b);
    }
  }

  private send(csid: number, type: number, streamId: number, payload: Uint8Array): void {
    if (this.phase === 'closed') return;
    this.socket.write(encodeRtmpMessage({ csid, type, streamId, timestamp: 0, payload }, SERVER_CHUNK_SIZE));
  }

  private command(streamId: number, ...values: Amf0Value[]): void {
    this.send(streamId === 0 ? CSID_COMMAND : CSID_STATUS, MSG_COMMAND_AMF0, streamId, encodeAmf0(...values));
  }

  private status(streamId: number, level: 'status' | 'error', code: string, description: string): void {
    this.command(streamId, 'onStatus', 0, null, { level, code, description });
  }

  private async onMessage(msg: RtmpMessage): Promise<void> {
    switch (msg.type) {
      case MSG_SET_CHUNK_SIZE:
      case MSG_ACK:
      case MSG_SET_PEER_BANDWIDTH:
        return;
      case MSG_ABORT:
        if (msg.payload.length >= 4) this.reader.abort(msg.payload.readUInt32BE(0));
        return;
      case MSG_WINDOW_ACK_SIZE:
        if (msg.payload.length >= 4) this.peerWindow = msg.payload.readUInt32BE(0);
        return;
      case MSG_USER_CONTROL:
        // Ping request (6) must be answered with a ping response (7) carrying the same timestamp.
        if (msg.payload.length >= 6 && msg.payload.readUInt16BE(0) === 6) {
          const pong = Buffer.from(msg.payload.subarray(0, 6));
          pong.writeUInt16BE(7, 0);
          this.send(CSID_CONTROL, MSG_USER_CONTROL, 0, pong);
        }
        return;
      case MSG_COMMAND_AMF0:
      case MSG_COMMAND_AMF3:
        return this.onCommand(
          msg,
          decodeAmf0(msg.type === MSG_COMMAND_AMF3 ? msg.payload.subarray(1) : msg.payload),
        );
      case MSG_DATA_AMF3:
        return;
      default:
        return;
    }
  }

  private async onCommand(msg: RtmpMessage, values: Amf0Value[]): Promise<void> {
    const [name, txn] = values;
    const tx = typeof txn === 'number' ? txn : 0;
    switch (name) {
      case 'connect': {
        const cmd = (values[2] ?? {}) as Amf0Object;
        this.app = String(cmd.app ?? '')
          .replace(/\?.*$/, '')
          .replace(/\/+$/, '');
        const u32 = (n: number) => {
          const b = Buffer.alloc(4);
          b.writeUInt32BE(n);
          return b;
        };
        this.send(CSID_CONTROL, MSG_WINDOW_ACK_SIZE, 0, u32(SERVER_WINDOW));
        this.send(
          CSID_CONTROL,
          MSG_SET_PEER_BANDWIDTH,
          0,
          Buffer.concat([u32(SERVER_WINDOW), Buffer.from([2])]),
        );
        this.send(CSID_CONTROL, MSG_SET_CHUNK_SIZE, 0, u32(SERVER_CHUNK_SIZE));
        this.command(
          0,
          '_result',
          tx,
          { fmsVer: 'FMS/3,0,1,123', capabilities: 31 },
          {
            level: 'status',
            code: 'NetConnection.Connect.Success',
            description: 'Connection succeeded.',
            objectEncoding: 0,
          },
        );
        return;
      }
      case 'createStream':
        this.command(0, '_result', tx, null, 1);
        return;
      case 'publish':
        return this.onPublish(msg.streamId || 1, String(values[3] ?? ''));
      case 'FCUnpublish':
      case 'deleteStream':
      case 'closeStream':
        this.endPublish('unpublished');
        return;
      case 'play':
        this.status(msg.streamId, 'error', 'NetStream.Play.Failed', 'Playback is served over HLS, not RTMP');
        this.destroy('disconnected');
        return;
      default:
        return;
    }
  }

  private async onPublish(streamId: number, name: string): Promise<void> {
    const q = name.indexOf('?');
    const key = q < 0 ? name : name.slice(0, q);
    const params: Record<string, string> = Object.create(null);
    if (q >= 0) for (const [k, v] of new URLSearchParams(name.slice(q + 1))) params[k] ??= v;
    const server = this.server;
    const reject = (why: string) => {
      this.log?.warn({ app: this.app, stream: key.slice(0, 128), why }, 'rtmp publish refused');
      this.status(streamId, 'error', 'NetStream.Publish.BadName', why);
      // Let the status reach the publisher before the socket goes.
      this.socket.end();
    };
    if (this.publish) return reject('already publishing on this connection');
    // The key names a path segment downstream (`/hls/<key>/`): `.`, `..` and hidden names are never one.
    if (!/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/.test(key)) {
      return reject('stream key must be 1–128 of A-Z a-z 0-9 _ . - and not start with "."');
    }
    if (server.active.size >= server.options.maxPublishers) return reject('server is at its publisher limit');
    const id = `${this.app}/${key}`;
    if (server.active.has(id)) return reject(`stream ${this.app}/<key> is already being published`);
    let answer: RtmpAuthorization;
    try {
      answer = await (server.deps.authorize?.({
        app: this.app,
        key,
        params,
        remoteAddress: this.remoteAddress,
      }) ?? true);
    } catch (err) {
      answer = { ok: false, reason: (err as Error).message || 'not authorized' };
    }
    const verdict = typeof answer === 'boolean' ? { ok: answer } : answer;
    if (!verdict.ok) return reject('reason' in verdict ? verdict.reason : 'stream key not authorized');
    if (this.phase === 'closed') return;
    if (server.active.has(id)) return reject(`stream ${this.app}/<key> is already being published`);

    clearTimeout(this.handshakeTimer);
    const flv = new PassThrough({ highWaterMark: 1024 * 1024 });
    // The consumer (ffmpeg's stdin) sets the pace; TCP pushes back on the publisher meanwhile.
    flv.on('drain', () => this.socket.resume());
    let resolveEnded: (r: 'unpublished' | 'disconnected' | 'stopped') => void = () => undefined;
    const ended = new Promise<'unpublished' | 'disconnected' | 'stopped'>((r) => {
      resolveEnded = r;
    });
    const publish: RtmpPublish = {
      id: server.allocatePublishId(),
      app: this.app,
      key,
      params,
      grant: 'grant' in verdict ? verdict.grant : undefined,
      remoteAddress: this.remoteAddress,
      flv,
      ended,
      close: () => this.destroy('disconnected', 'closed by the server'),
    };
    this.publish = {
      publish,
      streamId,
      flv,
      resolveEnded,
      headerWritten: false,
      hasAudio: true,
      hasVideo: true,
      id,
    };
    server.active.set(id, publish);
    this.status(streamId, 'status', 'NetStream.Publish.Start', `${key} is now published`);
    this.log?.info({ app: this.app, publish: publish.id }, 'rtmp publish started');
    server.deps.onPublish(publish);
  }

  private onMedia(msg: RtmpMessage): void {
    const p = this.publish;
    if (!p || p.ended || msg.streamId !== p.streamId) return;
    let payload = msg.payload;
    if (msg.type === MSG_DATA_AMF0) {
      let values: Amf0Value[];
      try {
        values = decodeAmf0(payload);
      } catch {
        return;
      }
      if (values[0] === '@setDataFrame') {
        // FLV files carry `onMetaData` without the RTMP-only `@setDataFrame` wrapper: drop the first string.
        payload = payload.subarray(3 + payload.readUInt16BE(1));
        values = values.slice(1);
      }
      if (values[0] !== 'onMetaData') return;
      const meta = (values[1] ?? {}) as Amf0Object;
      if (!p.headerWritten && typeof meta === 'object' && meta !== null) {
        p.hasAudio = 'audiocodecid' in meta || 'audiodatarate' in meta;
        p.hasVideo = 'videocodecid' in meta || 'width' in meta || !p.hasAudio;
      }
    }
    if (!p.headerWritten) {
      p.headerWritten = true;
      const flags = (p.hasAudio ? 0x04 : 0) | (p.hasVideo ? 0x01 : 0);
      p.flv.write(Buffer.from([0x46, 0x4c, 0x56, 0x01, flags, 0, 0, 0, 9, 0, 0, 0, 0]));
    }
    const tag = Buffer.alloc(11);
    tag[0] = msg.type;
    tag.writeUIntBE(payload.length, 1, 3);
    tag.writeUIntBE(msg.timestamp & 0xffffff, 4, 3);
    tag[7] = (msg.timestamp >>> 24) & 0xff;
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32BE(11 + payload.length);
    if (!p.flv.write(Buffer.concat([tag, payload, trailer]))) this.socket.pause();
  }

  private endPublish(reason: 'unpublished' | 'disconnected' | 'stopped'): void {
    const p = this.publish;
    if (!p || p.ended) return;
    p.ended = true;
    this.server.active.delete(p.id);
    p.flv.end();
    this.socket.resume();
    p.resolveEnded(reason);
    this.log?.info({ publish: p.publish.id, reason }, 'rtmp publish ended');
  }
}

interface PublishState {
  publish: RtmpPublish;
  id: string;
  streamId: number;
  flv: PassThrough;
  resolveEnded: (r: 'unpublished' | 'disconnected' | 'stopped') => void;
  headerWritten: boolean;
  hasAudio: boolean;
  hasVideo: boolean;
  ended?: boolean;
}

/**
 * Segments a publish: FLV → ffmpeg (stream copy) → MPEG-TS → {@link TsSegmenter}. Ends when the publisher stops.
 */
export function segmentRtmpPublish(
  publish: RtmpPublish,
  options: Omit<SegmentSourceOptions, 'input' | 'inputFormat' | 'realtime'>,
  deps: SegmentSourceDeps,
): AsyncGenerator<Segment, void, undefined> {
  return segmentSource({ ...options, input: publish.flv, inputFormat: 'flv' }, deps);
}
