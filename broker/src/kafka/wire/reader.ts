import { TruncatedError } from '@robustmq/common';
import { MalformedRequestError } from '../errors.js';

/**
 * Reads Kafka protocol primitives from one buffer (a whole frame). Pure: throws TruncatedError
 * when the input ends early and MalformedRequestError on impossible values (negative lengths,
 * null where the version does not allow it, over-long varints). Byte fields are zero-copy views.
 */
export class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  #need(n: number, what: string): number {
    const p = this.pos;
    if (p + n > this.end) throw new TruncatedError(what);
    this.pos = p + n;
    return p;
  }

  int8(): number {
    return this.buf.readInt8(this.#need(1, 'int8'));
  }
  int16(): number {
    return this.buf.readInt16BE(this.#need(2, 'int16'));
  }
  uint16(): number {
    return this.buf.readUInt16BE(this.#need(2, 'uint16'));
  }
  int32(): number {
    return this.buf.readInt32BE(this.#need(4, 'int32'));
  }
  uint32(): number {
    return this.buf.readUInt32BE(this.#need(4, 'uint32'));
  }
  int64(): bigint {
    return this.buf.readBigInt64BE(this.#need(8, 'int64'));
  }
  float64(): number {
    return this.buf.readDoubleBE(this.#need(8, 'float64'));
  }
  bool(): boolean {
    return this.buf[this.#need(1, 'bool')] !== 0;
  }
  uuid(): string {
    const p = this.#need(16, 'uuid');
    const h = this.buf.toString('hex', p, p + 16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** Unsigned LEB128 varint of up to 32 bits. */
  uvarint(): number {
    let result = 0;
    let shift = 0;
    for (let i = 0; i < 5; i++) {
      if (this.pos >= this.end) throw new TruncatedError('varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) throw new MalformedRequestError('varint exceeds 32 bits');
        return result;
      }
      shift += 7;
    }
    throw new MalformedRequestError('varint longer than 5 bytes');
  }

  /** Zig-zag signed varint (32 bits). */
  varint(): number {
    const z = this.uvarint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  #take(n: number, what: string): Buffer {
    const p = this.#need(n, what);
    return this.buf.subarray(p, p + n);
  }

  #length(n: number, nullable: boolean, what: string): number {
    if (n === -1) {
      if (!nullable) throw new MalformedRequestError(`null ${what} where the version does not allow it`);
      return -1;
    }
    if (n < -1) throw new MalformedRequestError(`negative ${what} length ${n}`);
    if (n > this.remaining) throw new TruncatedError(what);
    return n;
  }

  string(): string {
    const n = this.#length(this.int16(), false, 'string');
    return this.#take(n, 'string').toString('utf8');
  }
  nullableString(): string | null {
    const n = this.#length(this.int16(), true, 'string');
    return n < 0 ? null : this.#take(n, 'string').toString('utf8');
  }
  compactString(): string {
    const n = this.#length(this.uvarint() - 1, false, 'string');
    return this.#take(n, 'string').toString('utf8');
  }
  compactNullableString(): string | null {
    const n = this.#length(this.uvarint() - 1, true, 'string');
    return n < 0 ? null : this.#take(n, 'string').toString('utf8');
  }
  bytes(): Buffer {
    return this.#take(this.#length(this.int32(), false, 'bytes'), 'bytes');
  }
  nullableBytes(): Buffer | null {
    const n = this.#length(this.int32(), true, 'bytes');
    return n < 0 ? null : this.#take(n, 'bytes');
  }
  compactBytes(): Buffer {
    return this.#take(this.#length(this.uvarint() - 1, false, 'bytes'), 'bytes');
  }
  compactNullableBytes(): Buffer | null {
    const n = this.#length(this.uvarint() - 1, true, 'bytes');
    return n < 0 ? null : this.#take(n, 'bytes');
  }

  #items<T>(n: number, nullable: boolean, fn: (r: Reader) => T): T[] | null {
    if (n === -1) {
      if (!nullable) throw new MalformedRequestError('null array where the version does not allow it');
      return null;
    }
    if (n < -1) throw new MalformedRequestError(`negative array length ${n}`);
    // every element takes at least one byte: a count beyond the input is a lie, not a big array
    if (n > this.remaining) throw new TruncatedError('array');
    const out = new Array<T>(n);
    for (let i = 0; i < n; i++) out[i] = fn(this);
    return out;
  }
  array<T>(fn: (r: Reader) => T): T[] {
    return this.#items(this.int32(), false, fn) as T[];
  }
  nullableArray<T>(fn: (r: Reader) => T): T[] | null {
    return this.#items(this.int32(), true, fn);
  }
  compactArray<T>(fn: (r: Reader) => T): T[] {
    return this.#items(this.uvarint() - 1, false, fn) as T[];
  }
  compactNullableArray<T>(fn: (r: Reader) => T): T[] | null {
    return this.#items(this.uvarint() - 1, true, fn);
  }

  /** A nullable struct: int8 −1 = null, 1 = present. */
  nullableStruct<T>(fn: (r: Reader) => T): T | null {
    return this.int8() < 0 ? null : fn(this);
  }

  /**
   * The tagged-field section of a flexible struct: `known(tag, sub)` decodes a tag it knows from a
   * reader bounded to the field's bytes and returns true; unknown tags are skipped [KIP-482].
   */
  taggedFields(known: (tag: number, r: Reader) => boolean): void {
    const count = this.uvarint();
    let last = -1;
    for (let i = 0; i < count; i++) {
      const tag = this.uvarint();
      if (tag <= last) throw new MalformedRequestError(`tagged fields out of order (${tag} after ${last})`);
      last = tag;
      const size = this.uvarint();
      const start = this.#need(size, 'tagged field');
      known(tag, new Reader(this.buf, start, start + size));
    }
  }
}
