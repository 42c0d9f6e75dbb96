/**
 * AMF0 (Action Message Format 0), the encoding of RTMP commands and stream metadata. Only what RTMP publishers
 * send: numbers, booleans, strings, objects, ECMA/strict arrays, null/undefined, dates. Decoding is bounded
 * (depth, element count) because the bytes come from the network.
 */
export type Amf0Value = number | boolean | string | null | undefined | Date | Amf0Value[] | Amf0Object;
export interface Amf0Object {
  [key: string]: Amf0Value;
}

const NUMBER = 0x00;
const BOOLEAN = 0x01;
const STRING = 0x02;
const OBJECT = 0x03;
const NULL = 0x05;
const UNDEFINED = 0x06;
const REFERENCE = 0x07;
const ECMA_ARRAY = 0x08;
const OBJECT_END = 0x09;
const STRICT_ARRAY = 0x0a;
const DATE = 0x0b;
const LONG_STRING = 0x0c;
const XML = 0x0f;
const TYPED_OBJECT = 0x10;

const MAX_DEPTH = 32;
const MAX_ELEMENTS = 65_536;

export class Amf0DecodeError extends Error {
  override readonly name = 'Amf0DecodeError';
}

/** Decodes every value in `data`, in order. Throws {@link Amf0DecodeError} on malformed input. */
export function decodeAmf0(data: Uint8Array): Amf0Value[] {
  const r = new Reader(data);
  const values: Amf0Value[] = [];
  while (r.pos < data.length) values.push(r.value(0));
  return values;
}

class Reader {
  pos = 0;
  private elements = 0;
  private readonly view: DataView;
  constructor(private readonly data: Uint8Array) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.data.length) throw new Amf0DecodeError('AMF0 value truncated');
  }

  private u8(): number {
    this.need(1);
    return this.data[this.pos++] as number;
  }

  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  private f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    return v;
  }

  private utf8(length: number): string {
    this.need(length);
    const s = Buffer.from(this.data.buffer, this.data.byteOffset + this.pos, length).toString('utf8');
    this.pos += length;
    return s;
  }

  value(depth: number): Amf0Value {
    if (depth > MAX_DEPTH) throw new Amf0DecodeError('AMF0 nesting too deep');
    if (++this.elements > MAX_ELEMENTS) throw new Amf0DecodeError('AMF0 has too many elements');
    const marker = this.u8();
    switch (marker) {
      case NUMBER:
        return this.f64();
      case BOOLEAN:
        return this.u8() !== 0;
      case STRING:
        return this.utf8(this.u16());
      case LONG_STRING:
      case XML:
        return this.utf8(this.u32());
      case OBJECT:
        return this.properties(depth);
      case TYPED_OBJECT:
        this.utf8(this.u16());
        return this.properties(depth);
      case ECMA_ARRAY:
        this.u32(); // count is advisory; the end marker terminates
        return this.properties(depth);
      case STRICT_ARRAY: {
        const count = this.u32();
        if (count > MAX_ELEMENTS) throw new Amf0DecodeError('AMF0 array too long');
        const out: Amf0Value[] = [];
        for (let i = 0; i < count; i++) out.push(this.value(depth + 1));
        return out;
      }
      case DATE: {
        const ms = this.f64();
        this.u16(); // time zone, unused by the spec
        return new Date(ms);
      }
      case NULL:
        return null;
      case UNDEFINED:
        return undefined;
      case REFERENCE:
        this.u16();
        return null;
      default:
        throw new Amf0DecodeError(`unsupported AMF0 marker 0x${marker.toString(16)}`);
    }
  }

  private properties(depth: number): Amf0Object {
    const obj: Amf0Object = Object.create(null);
    for (;;) {
      const key = this.utf8(this.u16());
      if (key === '') {
        if (this.u8() !== OBJECT_END) throw new Amf0DecodeError('AMF0 object without end marker');
        return obj;
      }
      obj[key] = this.value(depth + 1);
    }
  }
}

/** Encodes values back to back. */
export function encodeAmf0(...values: Amf0Value[]): Buffer {
  const parts: Buffer[] = [];
  for (const v of values) writeValue(parts, v);
  return Buffer.concat(parts);
}

function writeString(parts: Buffer[], s: string): void {
  const bytes = Buffer.from(s, 'utf8');
  const head = Buffer.alloc(2);
  head.writeUInt16BE(bytes.length);
  parts.push(head, bytes);
}

function writeValue(parts: Buffer[], v: Amf0Value): void {
  if (typeof v === 'number') {
    const b = Buffer.alloc(9);
    b[0] = NUMBER;
    b.writeDoubleBE(v, 1);
    parts.push(b);
  } else if (typeof v === 'boolean') {
    parts.push(Buffer.from([BOOLEAN, v ? 1 : 0]));
  } else if (typeof v === 'string') {
    const bytes = Buffer.from(v, 'utf8');
    if (bytes.length > 0xffff) {
      const head = Buffer.alloc(5);
      head[0] = LONG_STRING;
      head.writeUInt32BE(bytes.length, 1);
      parts.push(head, bytes);
    } else {
      parts.push(Buffer.from([STRING]));
      writeString(parts, v);
    }
  } else if (v === null) {
    parts.push(Buffer.from([NULL]));
  } else if (v === undefined) {
    parts.push(Buffer.from([UNDEFINED]));
  } else if (v instanceof Date) {
    const b = Buffer.alloc(11);
    b[0] = DATE;
    b.writeDoubleBE(v.getTime(), 1);
    parts.push(b);
  } else if (Array.isArray(v)) {
    const head = Buffer.alloc(5);
    head[0] = STRICT_ARRAY;
    head.writeUInt32BE(v.length, 1);
    parts.push(head);
    for (const item of v) writeValue(parts, item);
  } else {
    parts.push(Buffer.from([OBJECT]));
    for (const [key, value] of Object.entries(v)) {
      writeString(parts, key);
      writeValue(parts, value);
    }
    parts.push(Buffer.from([0, 0, OBJECT_END]));
  }
}
