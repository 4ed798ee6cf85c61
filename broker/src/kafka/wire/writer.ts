/** Byte fields at least this long are referenced, not copied, into the output. */
const ZERO_COPY_BYTES = 4096;

/** One tagged field to write: tag, value, its encoder, and when it is at its default (not written). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TaggedField = readonly [tag: number, value: any, encode: (w: Writer, x: any) => void, isDefault: (x: any) => boolean];

/**
 * Writes Kafka protocol primitives. Output is a list of chunks: small values go into a growing
 * scratch buffer, large byte fields (record batches) are referenced as they are, so a Fetch
 * response carries the journal's buffers to the socket without a copy.
 */
export class Writer {
  #buf: Buffer;
  #pos = 0;
  /** Start of the part of #buf not yet moved to #chunks. */
  #start = 0;
  readonly #chunks: Buffer[] = [];
  #length = 0;

  constructor(initial = 256) {
    this.#buf = Buffer.allocUnsafe(initial);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length + (this.#pos - this.#start);
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    this.#flush();
    this.#buf = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, n, 256));
    this.#pos = 0;
    this.#start = 0;
  }

  #flush(): void {
    if (this.#pos > this.#start) {
      this.#chunks.push(this.#buf.subarray(this.#start, this.#pos));
      this.#length += this.#pos - this.#start;
      this.#start = this.#pos;
    }
  }

  /** The written bytes as chunks (the writer must not be used afterwards). */
  chunks(): Buffer[] {
    this.#flush();
    return this.#chunks;
  }

  /** The written bytes as one buffer. */
  toBuffer(): Buffer {
    const c = this.chunks();
    return c.length === 1 ? c[0]! : Buffer.concat(c);
  }

  int8(v: number): void {
    this.#ensure(1);
    this.#pos = this.#buf.writeInt8(v, this.#pos);
  }
  int16(v: number): void {
    this.#ensure(2);
    this.#pos = this.#buf.writeInt16BE(v, this.#pos);
  }
  uint16(v: number): void {
    this.#ensure(2);
    this.#pos = this.#buf.writeUInt16BE(v, this.#pos);
  }
  int32(v: number): void {
    this.#ensure(4);
    this.#pos = this.#buf.writeInt32BE(v, this.#pos);
  }
  uint32(v: number): void {
    this.#ensure(4);
    this.#pos = this.#buf.writeUInt32BE(v, this.#pos);
  }
  int64(v: bigint): void {
    this.#ensure(8);
    this.#pos = this.#buf.writeBigInt64BE(v, this.#pos);
  }
  float64(v: number): void {
    this.#ensure(8);
    this.#pos = this.#buf.writeDoubleBE(v, this.#pos);
  }
  bool(v: boolean): void {
    this.int8(v ? 1 : 0);
  }
  uuid(v: string): void {
    const hex = v.replace(/-/g, '');
    this.#ensure(16);
    this.#pos += this.#buf.write(hex.padStart(32, '0').slice(0, 32), this.#pos, 16, 'hex');
  }
  uvarint(v: number): void {
    this.#ensure(5);
    let z = v >>> 0;
    while (z >= 0x80) {
      this.#buf[this.#pos++] = (z & 0x7f) | 0x80;
      z >>>= 7;
    }
    this.#buf[this.#pos++] = z;
  }
  varint(v: number): void {
    this.uvarint(((v << 1) ^ (v >> 31)) >>> 0);
  }

  raw(b: Uint8Array): void {
    if (b.length >= ZERO_COPY_BYTES) {
      this.#flush();
      const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
      this.#chunks.push(buf);
      this.#length += buf.length;
      return;
    }
    this.#ensure(b.length);
    this.#buf.set(b, this.#pos);
    this.#pos += b.length;
  }

  string(v: string): void {
    const n = Buffer.byteLength(v);
    this.int16(n);
    this.#utf8(v, n);
  }
  nullableString(v: string | null): void {
    if (v === null) return this.int16(-1);
    this.string(v);
  }
  compactString(v: string): void {
    const n = Buffer.byteLength(v);
    this.uvarint(n + 1);
    this.#utf8(v, n);
  }
  compactNullableString(v: string | null): void {
    if (v === null) return this.uvarint(0);
    this.compactString(v);
  }
  #utf8(v: string, n: number): void {
    this.#ensure(n);
    this.#pos += this.#buf.write(v, this.#pos, n, 'utf8');
  }
  bytes(v: Uint8Array): void {
    this.int32(v.length);
    this.raw(v);
  }
  nullableBytes(v: Uint8Array | null): void {
    if (v === null) return this.int32(-1);
    this.bytes(v);
  }
  compactBytes(v: Uint8Array): void {
    this.uvarint(v.length + 1);
    this.raw(v);
  }
  compactNullableBytes(v: Uint8Array | null): void {
    if (v === null) return this.uvarint(0);
    this.compactBytes(v);
  }

  array<T>(v: readonly T[], fn: (w: Writer, x: T) => void): void {
    this.int32(v.length);
    for (const x of v) fn(this, x);
  }
  nullableArray<T>(v: readonly T[] | null, fn: (w: Writer, x: T) => void): void {
    if (v === null) return this.int32(-1);
    this.array(v, fn);
  }
  compactArray<T>(v: readonly T[], fn: (w: Writer, x: T) => void): void {
    this.uvarint(v.length + 1);
    for (const x of v) fn(this, x);
  }
  compactNullableArray<T>(v: readonly T[] | null, fn: (w: Writer, x: T) => void): void {
    if (v === null) return this.uvarint(0);
    this.compactArray(v, fn);
  }
  nullableStruct<T>(v: T | null, fn: (w: Writer, x: T) => void): void {
    if (v === null) return this.int8(-1);
    this.int8(1);
    fn(this, v);
  }

  /** A tagged-field section: fields at their default are left out; the rest in tag order. */
  taggedFields(fields: readonly TaggedField[]): void {
    const present = fields.filter(([, value, , isDefault]) => value !== undefined && !isDefault(value));
    this.uvarint(present.length);
    for (const [tag, value, encode] of present) {
      const sub = new Writer(64);
      encode(sub, value);
      const bytes = sub.toBuffer();
      this.uvarint(tag);
      this.uvarint(bytes.length);
      this.raw(bytes);
    }
  }
}
