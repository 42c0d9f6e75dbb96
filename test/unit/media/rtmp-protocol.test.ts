import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Amf0DecodeError, type Amf0Value, decodeAmf0, encodeAmf0 } from '../../../src/media/amf0.js';
import {
  encodeRtmpMessage,
  RtmpChunkReader,
  type RtmpMessage,
  RtmpProtocolError,
} from '../../../src/media/rtmp.js';

const amfValue: fc.Arbitrary<Amf0Value> = fc.letrec<{ value: Amf0Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.double({ noNaN: true }),
    fc.boolean(),
    fc.string(),
    fc.constant(null),
    fc.constant(undefined),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ minLength: 1 }).filter((k) => k !== '__proto__'),
      tie('value'),
      { maxKeys: 4 },
    ),
  ),
})).value;

function split(data: Buffer, sizes: number[]): Buffer[] {
  const parts: Buffer[] = [];
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const n = sizes[i++ % sizes.length] as number;
    parts.push(data.subarray(pos, pos + n));
    pos += n;
  }
  return parts;
}

describe('AMF0', () => {
  it('round-trips what RTMP commands carry', () => {
    fc.assert(
      fc.property(fc.array(amfValue, { maxLength: 5 }), (values) => {
        const back = decodeAmf0(encodeAmf0(...values));
        // Objects decode without a prototype; compare as plain JSON-ish data.
        expect(JSON.parse(JSON.stringify(back))).toEqual(JSON.parse(JSON.stringify(values)));
      }),
      { numRuns: 200, seed: 1 },
    );
  });

  it('throws only Amf0DecodeError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          decodeAmf0(bytes);
        } catch (err) {
          return err instanceof Amf0DecodeError;
        }
        return true;
      }),
      { numRuns: 500, seed: 2 },
    );
  });
});

describe('RTMP chunk stream', () => {
  it('reassembles messages split into chunks and read in any pieces', () => {
    const message = fc.record({
      csid: fc.integer({ min: 3, max: 400 }),
      type: fc.constantFrom(8, 9, 18, 20),
      streamId: fc.integer({ min: 0, max: 3 }),
      timestamp: fc.integer({ min: 0, max: 0x1ffffff }),
      payload: fc.uint8Array({ maxLength: 1000 }).map((a) => Buffer.from(a)),
    });
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 10 }),
        (messages, sizes) => {
          const wire = Buffer.concat(messages.map((m) => encodeRtmpMessage(m, 128)));
          const reader = new RtmpChunkReader(1 << 20);
          const got: RtmpMessage[] = [];
          for (const part of split(wire, sizes)) got.push(...reader.push(part));
          expect(
            got.map((m) => [m.csid, m.type, m.streamId, m.timestamp, m.payload.toString('hex')]),
          ).toEqual(
            messages.map((m) => [m.csid, m.type, m.streamId, m.timestamp, m.payload.toString('hex')]),
          );
        },
      ),
      { numRuns: 100, seed: 5 },
    );
  });

  it('applies Set Chunk Size from the next chunk on', () => {
    const size = Buffer.alloc(4);
    size.writeUInt32BE(4096);
    const big = { csid: 4, type: 9, streamId: 1, timestamp: 40, payload: Buffer.alloc(3000, 7) };
    const wire = Buffer.concat([
      encodeRtmpMessage({ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: size }, 128),
      encodeRtmpMessage(big, 4096),
    ]);
    const reader = new RtmpChunkReader(1 << 20);
    const got = reader.push(wire);
    expect(got.map((m) => [m.type, m.payload.length])).toEqual([
      [1, 4],
      [9, 3000],
    ]);
    expect(reader.chunkSize).toBe(4096);
  });

  it('refuses a message over the size limit and a stream starting mid-message', () => {
    const reader = new RtmpChunkReader(1000);
    const wire = encodeRtmpMessage(
      { csid: 4, type: 9, streamId: 1, timestamp: 0, payload: Buffer.alloc(2000) },
      128,
    );
    expect(() => reader.push(wire)).toThrow(RtmpProtocolError);
    expect(() => new RtmpChunkReader(1000).push(Buffer.from([0xc4, 1, 2, 3]))).toThrow(RtmpProtocolError);
  });

  it('bounds what unfinished messages across chunk streams may hold', () => {
    const reader = new RtmpChunkReader(1000);
    // First chunks (128 bytes each) of 900-byte messages on many chunk streams, none ever finished.
    const firstChunks = Array.from({ length: 20 }, (_, i) =>
      encodeRtmpMessage(
        { csid: 3 + i, type: 9, streamId: 1, timestamp: 0, payload: Buffer.alloc(900) },
        128,
      ).subarray(0, 12 + 128),
    );
    expect(() => reader.push(Buffer.concat(firstChunks))).toThrow(/unfinished messages/);
  });
});
