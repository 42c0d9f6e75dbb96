import { malformed, tooLarge } from './admission.js';

/** How a request body is framed, from its content type. */
export type BodyFraming =
  /** gRPC, gRPC-Web and Connect streaming: 5-byte prefix (flags, uint32 length) before each message. */
  | { kind: 'enveloped'; binary: boolean }
  /** Connect unary: the body is the message. */
  | { kind: 'raw'; binary: boolean }
  /** Something no handler serves (connect answers 415 without reading); still bounded. */
  | { kind: 'other' };

/** The framing of a request with this `content-type`. */
export function bodyFraming(contentType: string | undefined): BodyFraming {
  const type = (contentType ?? '').split(';', 1)[0]?.trim().toLowerCase() ?? '';
  const m = /^application\/(grpc|grpc-web|connect)(?:\+(proto|json))?$/.exec(type);
  if (m) return { kind: 'enveloped', binary: m[2] !== 'json' };
  if (type === 'application/proto') return { kind: 'raw', binary: true };
  if (type === 'application/json') return { kind: 'raw', binary: false };
  return { kind: 'other' };
}

/** What {@link guardBody} enforces on one request body. */
export interface BodyGuardOptions {
  /** `/package.Service/Method`, for messages. */
  procedure: string;
  framing: BodyFraming;
  /** Largest request message of this procedure, bytes. */
  maxMessageBytes: number;
  /** Length the request declares for its whole body (Connect unary `content-length`), when it does. */
  declaredBodyBytes?: number;
  /** Throws when a binary message does not parse as the procedure's input. */
  parse?: (message: Uint8Array) => void;
}

/** Called by {@link guardBody} as the body arrives; each may throw to refuse the call. */
export interface BodyGuardHooks {
  /** `n` more bytes arrived from the network (before any of them is buffered here). */
  onBytes(n: number): void;
  /** A complete, well-formed message is about to be handed on. */
  onMessage(): void;
  /** The body ended (all of it was read). */
  onEnd(): void;
}

/**
 * Re-frames a request body for connect so that nothing is allocated on a peer's word: connect allocates an
 * envelope's declared length as soon as it reads the 5-byte prefix (and a Connect unary body's
 * `content-length`), so a stream declaring 60 MiB and dripping would hold 60 MiB. Here a declared length above
 * the procedure's limit is refused as soon as the prefix arrives (`MessageTooLarge`), and a message is handed
 * on only once all of its bytes are here, so a slow stream holds what it sent. Binary messages are parsed
 * once before connect sees them: a body that is not a message of the procedure (random bytes, a compressed
 * envelope although no compression is offered, a truncated envelope) is `InvalidMessage` (InvalidArgument),
 * where connect would answer `Internal`.
 */
export async function* guardBody(
  source: AsyncIterable<Uint8Array>,
  options: BodyGuardOptions,
  hooks: BodyGuardHooks,
): AsyncGenerator<Uint8Array> {
  const { procedure, framing, maxMessageBytes: limit } = options;
  const declared = options.declaredBodyBytes;
  if (framing.kind !== 'enveloped' && declared !== undefined && declared > limit) {
    throw tooLarge(procedure, declared, limit);
  }
  const pending: Uint8Array[] = [];
  let pendingBytes = 0;
  /** Length of the envelope being received (after its prefix), or -1 while the prefix is incomplete. */
  let want = -1;

  const take = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const chunk = pending[0] as Uint8Array;
      const k = Math.min(chunk.length, n - off);
      out.set(chunk.subarray(0, k), off);
      off += k;
      if (k === chunk.length) pending.shift();
      else pending[0] = chunk.subarray(k);
    }
    pendingBytes -= n;
    return out;
  };
  const check = (message: Uint8Array) => {
    if (framing.kind === 'other' || !framing.binary || !options.parse) return;
    try {
      options.parse(message);
    } catch (err) {
      throw malformed(
        procedure,
        'malformedProtobuf',
        `not a valid request message (${(err as Error).message})`,
      );
    }
  };

  for await (const chunk of source) {
    hooks.onBytes(chunk.length);
    if (chunk.length === 0) continue;
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (framing.kind !== 'enveloped') {
      if (pendingBytes > limit) throw tooLarge(procedure, pendingBytes, limit);
      continue;
    }
    for (;;) {
      if (want < 0) {
        if (pendingBytes < 5) break;
        const head = peek5(pending);
        const flags = head[0] as number;
        const length = new DataView(head.buffer, head.byteOffset, 5).getUint32(1);
        // No request compression is negotiated (acceptCompression is empty) and clients never send
        // end-of-stream envelopes, so any flag is a malformed request.
        if (flags !== 0)
          throw malformed(procedure, 'envelopeFlags', `envelope flags 0x${flags.toString(16)}`);
        if (length > limit) throw tooLarge(procedure, length, limit);
        want = length;
      }
      if (pendingBytes < 5 + want) break;
      const envelope = take(5 + want);
      want = -1;
      check(envelope.subarray(5));
      hooks.onMessage();
      yield envelope;
    }
  }
  if (framing.kind === 'enveloped') {
    if (pendingBytes > 0) {
      throw malformed(
        procedure,
        'truncatedEnvelope',
        want < 0
          ? `body ends inside an envelope prefix (${pendingBytes} of 5 bytes)`
          : `body ends inside a message (${pendingBytes - 5} of ${want} bytes)`,
      );
    }
  } else {
    if (declared !== undefined && declared !== pendingBytes) {
      throw malformed(procedure, 'truncatedBody', `body of ${pendingBytes} bytes, declared ${declared}`);
    }
    if (pendingBytes > 0 || framing.kind === 'raw') {
      const message = take(pendingBytes);
      check(message);
      hooks.onMessage();
      yield message;
    }
  }
  hooks.onEnd();
}

function peek5(chunks: Uint8Array[]): Uint8Array {
  const first = chunks[0] as Uint8Array;
  if (first.length >= 5) return first.subarray(0, 5);
  const out = new Uint8Array(5);
  let off = 0;
  for (const c of chunks) {
    const k = Math.min(c.length, 5 - off);
    out.set(c.subarray(0, k), off);
    off += k;
    if (off === 5) break;
  }
  return out;
}
