/**
 * Kafka RecordBatch v2 codec (pure: bytes in, objects out; no I/O, no logging).
 *
 * RecordBatch => baseOffset:int64 batchLength:int32 partitionLeaderEpoch:int32 magic:int8 (=2)
 *   crc:uint32 attributes:int16 lastOffsetDelta:int32 baseTimestamp:int64 maxTimestamp:int64
 *   producerId:int64 producerEpoch:int16 baseSequence:int32 recordCount:int32 records…
 * Record => length:varint attributes:int8 timestampDelta:varlong offsetDelta:varint
 *   keyLength:varint key valueLength:varint value headersCount:varint [headers]
 * Header => keyLength:varint key:utf8 valueLength:varint value
 *
 * The CRC-32C covers `attributes` to the end of the batch, so offsets (the first 8 bytes) and the
 * leader epoch can be rewritten without recomputing it. Varints are zig-zag encoded.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { crc32c, TruncatedError } from '@robustmq/common';
import { CorruptBatchError, UnsupportedCompressionError } from './errors.js';

/** Byte positions of the batch header fields. */
export const BatchField = {
  BaseOffset: 0,
  BatchLength: 8,
  PartitionLeaderEpoch: 12,
  Magic: 16,
  Crc: 17,
  Attributes: 21,
  LastOffsetDelta: 23,
  BaseTimestamp: 27,
  MaxTimestamp: 35,
  ProducerId: 43,
  ProducerEpoch: 51,
  BaseSequence: 53,
  RecordCount: 57,
  Records: 61,
} as const;

/** Size of the fixed batch header; also the smallest possible batch. */
export const BATCH_HEADER_BYTES = 61;
/** baseOffset + batchLength: the bytes not counted by batchLength. */
export const BATCH_LOG_OVERHEAD = 12;

/** Compression codec ids (attributes bits 0–2). */
export const Compression = { None: 0, Gzip: 1, Snappy: 2, Lz4: 3, Zstd: 4 } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

/** Attribute bits other than the codec. */
export const BatchAttribute = { LogAppendTime: 0x08, Transactional: 0x10, Control: 0x20 } as const;

export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

/** A decoded record with its absolute offset and timestamp (ms since the epoch). */
export interface JournalRecord {
  offset: bigint;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

/** A record to encode; `offsetDelta` defaults to its index (set it to leave gaps, as compaction does). */
export interface RecordInput {
  timestamp?: number;
  key?: Buffer | null;
  value: Buffer | null;
  headers?: RecordHeader[];
  offsetDelta?: number;
}

export interface RecordBatchHeader {
  baseOffset: bigint;
  batchLength: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
  recordCount: number;
}

export interface EncodeBatchOptions {
  baseOffset?: bigint;
  compression?: Compression;
  /** Extra attribute bits (BatchAttribute); the codec bits come from `compression`. */
  attributes?: number;
  partitionLeaderEpoch?: number;
  producerId?: bigint;
  producerEpoch?: number;
  baseSequence?: number;
  /** Default timestamp of records that carry none (default Date.now()). */
  timestamp?: number;
}

// ---------------------------------------------------------------------------------------------
// varints

class Writer {
  buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  /** Zig-zag varint for values in the safe-integer range (covers int32 and ms timestamps). */
  varint(v: number): void {
    this.ensure(10);
    let z = v >= 0 ? v * 2 : -v * 2 - 1;
    while (z >= 0x80) {
      this.buf[this.pos++] = (z % 0x80) | 0x80;
      z = Math.floor(z / 0x80);
    }
    this.buf[this.pos++] = z;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  nullableBytes(b: Uint8Array | null | undefined): void {
    if (b === null || b === undefined) return this.varint(-1);
    this.varint(b.length);
    this.bytes(b);
  }
}

function varintSize(v: number): number {
  let z = v >= 0 ? v * 2 : -v * 2 - 1;
  let n = 1;
  while (z >= 0x80) {
    z = Math.floor(z / 0x80);
    n++;
  }
  return n;
}

class Reader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  constructor(buf: Buffer, pos: number, end: number) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }
  varint(what: string): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new TruncatedError(what);
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (result > Number.MAX_SAFE_INTEGER) throw new CorruptBatchError(`varint too large in ${what}`);
        return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
      }
      mul *= 0x80;
    }
    throw new CorruptBatchError(`varint longer than 10 bytes in ${what}`);
  }
  take(n: number, what: string): Buffer {
    if (n < 0) throw new CorruptBatchError(`negative length in ${what}`);
    if (this.pos + n > this.end) throw new TruncatedError(what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  nullableBytes(what: string): Buffer | null {
    const n = this.varint(what);
    if (n === -1) return null;
    if (n < -1) throw new CorruptBatchError(`invalid length ${n} in ${what}`);
    return this.take(n, what);
  }
}

// ---------------------------------------------------------------------------------------------
// encode

function encodeRecords(w: Writer, records: readonly RecordInput[], baseTimestamp: number, defaultTs: number): void {
  records.forEach((r, i) => {
    const key = r.key ?? null;
    const headers = r.headers ?? [];
    const tsDelta = (r.timestamp ?? defaultTs) - baseTimestamp;
    const offsetDelta = r.offsetDelta ?? i;
    const headerKeys = headers.map((h) => Buffer.from(h.key, 'utf8'));
    let size = 1 + varintSize(tsDelta) + varintSize(offsetDelta);
    size += key === null ? 1 : varintSize(key.length) + key.length;
    size += r.value === null ? 1 : varintSize(r.value.length) + r.value.length;
    size += varintSize(headers.length);
    headers.forEach((h, j) => {
      const k = headerKeys[j]!;
      size += varintSize(k.length) + k.length;
      size += h.value === null ? 1 : varintSize(h.value.length) + h.value.length;
    });
    w.varint(size);
    w.ensure(1);
    w.buf[w.pos++] = 0; // record attributes: unused
    w.varint(tsDelta);
    w.varint(offsetDelta);
    w.nullableBytes(key);
    w.nullableBytes(r.value);
    w.varint(headers.length);
    headers.forEach((h, j) => {
      w.nullableBytes(headerKeys[j]!);
      w.nullableBytes(h.value);
    });
  });
}

/** Builds one RecordBatch v2 from records (gzip or no compression), CRC included. */
export function encodeRecordBatch(records: readonly RecordInput[], opts: EncodeBatchOptions = {}): Buffer {
  const compression = opts.compression ?? Compression.None;
  if (compression !== Compression.None && compression !== Compression.Gzip) {
    throw new UnsupportedCompressionError(compression);
  }
  const defaultTs = opts.timestamp ?? Date.now();
  let baseTimestamp = Number.POSITIVE_INFINITY;
  let maxTimestamp = Number.NEGATIVE_INFINITY;
  let lastOffsetDelta = records.length - 1;
  records.forEach((r, i) => {
    const ts = r.timestamp ?? defaultTs;
    if (ts < baseTimestamp) baseTimestamp = ts;
    if (ts > maxTimestamp) maxTimestamp = ts;
    lastOffsetDelta = Math.max(lastOffsetDelta, r.offsetDelta ?? i);
  });
  if (records.length === 0) {
    baseTimestamp = defaultTs;
    maxTimestamp = defaultTs;
    lastOffsetDelta = 0;
  }
  const body = new Writer(64 + records.length * 16);
  encodeRecords(body, records, baseTimestamp, defaultTs);
  let payload = body.buf.subarray(0, body.pos);
  if (compression === Compression.Gzip) payload = gzipSync(payload);

  const total = BATCH_HEADER_BYTES + payload.length;
  const out = Buffer.allocUnsafe(total);
  out.writeBigInt64BE(opts.baseOffset ?? 0n, BatchField.BaseOffset);
  out.writeInt32BE(total - BATCH_LOG_OVERHEAD, BatchField.BatchLength);
  out.writeInt32BE(opts.partitionLeaderEpoch ?? -1, BatchField.PartitionLeaderEpoch);
  out.writeInt8(2, BatchField.Magic);
  out.writeInt16BE(((opts.attributes ?? 0) & ~0x07) | compression, BatchField.Attributes);
  out.writeInt32BE(lastOffsetDelta, BatchField.LastOffsetDelta);
  out.writeBigInt64BE(BigInt(baseTimestamp), BatchField.BaseTimestamp);
  out.writeBigInt64BE(BigInt(maxTimestamp), BatchField.MaxTimestamp);
  out.writeBigInt64BE(opts.producerId ?? -1n, BatchField.ProducerId);
  out.writeInt16BE(opts.producerEpoch ?? -1, BatchField.ProducerEpoch);
  out.writeInt32BE(opts.baseSequence ?? -1, BatchField.BaseSequence);
  out.writeInt32BE(records.length, BatchField.RecordCount);
  out.set(payload, BATCH_HEADER_BYTES);
  out.writeUInt32BE(crc32c(out.subarray(BatchField.Attributes)), BatchField.Crc);
  return out;
}

// ---------------------------------------------------------------------------------------------
// decode

/** Total size in bytes of the batch starting at `pos` (needs 12 bytes), without validating it. */
export function batchSizeAt(buf: Uint8Array, pos = 0): number {
  if (pos + BATCH_LOG_OVERHEAD > buf.length) throw new TruncatedError('record batch length');
  const b = buf as Buffer;
  return b.readInt32BE(pos + BatchField.BatchLength) + BATCH_LOG_OVERHEAD;
}

/** Reads the fixed header of the batch at `pos`. */
export function readBatchHeader(buf: Buffer, pos = 0): RecordBatchHeader {
  if (pos + BATCH_HEADER_BYTES > buf.length) throw new TruncatedError('record batch header');
  return {
    baseOffset: buf.readBigInt64BE(pos + BatchField.BaseOffset),
    batchLength: buf.readInt32BE(pos + BatchField.BatchLength),
    partitionLeaderEpoch: buf.readInt32BE(pos + BatchField.PartitionLeaderEpoch),
    magic: buf.readInt8(pos + BatchField.Magic),
    crc: buf.readUInt32BE(pos + BatchField.Crc),
    attributes: buf.readInt16BE(pos + BatchField.Attributes),
    lastOffsetDelta: buf.readInt32BE(pos + BatchField.LastOffsetDelta),
    baseTimestamp: Number(buf.readBigInt64BE(pos + BatchField.BaseTimestamp)),
    maxTimestamp: Number(buf.readBigInt64BE(pos + BatchField.MaxTimestamp)),
    producerId: buf.readBigInt64BE(pos + BatchField.ProducerId),
    producerEpoch: buf.readInt16BE(pos + BatchField.ProducerEpoch),
    baseSequence: buf.readInt32BE(pos + BatchField.BaseSequence),
    recordCount: buf.readInt32BE(pos + BatchField.RecordCount),
  };
}

/** An int64 as a double (exact within ±2^53, which covers ms timestamps) without a BigInt. */
function readInt64AsNumber(buf: Buffer, pos: number): number {
  return buf.readInt32BE(pos) * 0x1_0000_0000 + buf.readUInt32BE(pos + 4);
}

/** What validation learns about one batch; enough for an engine to store and index it. */
export interface BatchSummary {
  /** Position of the batch in the validated buffer. */
  position: number;
  size: number;
  recordCount: number;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
}

/**
 * Checks framing, magic, CRC and counts of the batch at `pos` (without decoding records).
 * Throws TruncatedError when `buf` ends inside the batch and CorruptBatchError on bad content.
 */
export function validateBatchAt(buf: Buffer, pos = 0): BatchSummary {
  if (pos + BATCH_HEADER_BYTES > buf.length) throw new TruncatedError('record batch header');
  const size = buf.readInt32BE(pos + BatchField.BatchLength) + BATCH_LOG_OVERHEAD;
  if (size < BATCH_HEADER_BYTES) throw new CorruptBatchError(`batch length ${size - BATCH_LOG_OVERHEAD} too small`);
  const magic = buf[pos + BatchField.Magic];
  if (magic !== 2) throw new CorruptBatchError(`unsupported magic ${magic}`);
  if (pos + size > buf.length) throw new TruncatedError('record batch');
  const stored = buf.readUInt32BE(pos + BatchField.Crc);
  const actual = crc32c(buf.subarray(pos + BatchField.Attributes, pos + size));
  if (stored !== actual) throw new CorruptBatchError(`crc mismatch: stored ${stored}, computed ${actual}`);
  const recordCount = buf.readInt32BE(pos + BatchField.RecordCount);
  const lastOffsetDelta = buf.readInt32BE(pos + BatchField.LastOffsetDelta);
  if (recordCount < 0 || lastOffsetDelta < 0 || lastOffsetDelta < recordCount - 1) {
    throw new CorruptBatchError(`invalid record count ${recordCount} / last offset delta ${lastOffsetDelta}`);
  }
  return {
    position: pos,
    size,
    recordCount,
    lastOffsetDelta,
    baseTimestamp: readInt64AsNumber(buf, pos + BatchField.BaseTimestamp),
    maxTimestamp: readInt64AsNumber(buf, pos + BatchField.MaxTimestamp),
  };
}

/** Validates a buffer of one or more whole batches; a partial batch at the end is an error. */
export function validateBatches(buf: Buffer): BatchSummary[] {
  if (buf.length === 0) throw new TruncatedError('record batch: empty input');
  const out: BatchSummary[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const s = validateBatchAt(buf, pos);
    out.push(s);
    pos += s.size;
  }
  return out;
}

function decompress(codec: number, payload: Buffer): Buffer {
  if (codec === Compression.None) return payload;
  if (codec === Compression.Gzip) {
    try {
      return gunzipSync(payload);
    } catch (err) {
      throw new CorruptBatchError('gzip payload cannot be decompressed', { cause: err });
    }
  }
  throw new UnsupportedCompressionError(codec);
}

/** Decodes the batch at `pos`: header, records with absolute offsets, and its size. */
export function decodeRecordBatch(
  buf: Buffer,
  opts: { position?: number; verifyCrc?: boolean } = {},
): { header: RecordBatchHeader; records: JournalRecord[]; size: number } {
  const pos = opts.position ?? 0;
  const header = readBatchHeader(buf, pos);
  if (header.magic !== 2) throw new CorruptBatchError(`unsupported magic ${header.magic}`);
  const size = header.batchLength + BATCH_LOG_OVERHEAD;
  if (size < BATCH_HEADER_BYTES) throw new CorruptBatchError(`batch length ${header.batchLength} too small`);
  if (pos + size > buf.length) throw new TruncatedError('record batch');
  if (opts.verifyCrc ?? true) validateBatchAt(buf, pos);
  const payload = decompress(header.attributes & 0x07, buf.subarray(pos + BATCH_HEADER_BYTES, pos + size));
  const logAppendTime = (header.attributes & BatchAttribute.LogAppendTime) !== 0;
  const r = new Reader(payload, 0, payload.length);
  const records: JournalRecord[] = [];
  for (let i = 0; i < header.recordCount; i++) {
    const length = r.varint('record length');
    if (length < 0) throw new CorruptBatchError(`negative record length ${length}`);
    const end = r.pos + length;
    if (end > r.end) throw new TruncatedError('record');
    const rr = new Reader(payload, r.pos, end);
    rr.take(1, 'record attributes');
    const tsDelta = rr.varint('record timestamp delta');
    const offsetDelta = rr.varint('record offset delta');
    const key = rr.nullableBytes('record key');
    const value = rr.nullableBytes('record value');
    const headerCount = rr.varint('record header count');
    if (headerCount < 0) throw new CorruptBatchError(`negative header count ${headerCount}`);
    const headers: RecordHeader[] = [];
    for (let h = 0; h < headerCount; h++) {
      const hk = rr.nullableBytes('header key');
      if (hk === null) throw new CorruptBatchError('null header key');
      headers.push({ key: hk.toString('utf8'), value: rr.nullableBytes('header value') });
    }
    if (rr.pos !== end) throw new CorruptBatchError(`record ${i} has ${end - rr.pos} trailing bytes`);
    r.pos = end;
    records.push({
      offset: header.baseOffset + BigInt(offsetDelta),
      timestamp: logAppendTime ? header.maxTimestamp : header.baseTimestamp + tsDelta,
      key,
      value,
      headers,
    });
  }
  return { header, records, size };
}

/**
 * Records of every whole batch in `buf` (as a fetch returns them). A truncated last batch is
 * skipped, as Kafka clients do; records below `fromOffset` are skipped too.
 */
export function* iterateRecords(buf: Buffer, opts: { fromOffset?: bigint; verifyCrc?: boolean } = {}): Generator<JournalRecord> {
  let pos = 0;
  while (pos + BATCH_LOG_OVERHEAD <= buf.length) {
    const size = batchSizeAt(buf, pos);
    if (pos + size > buf.length) return;
    const batch = decodeRecordBatch(buf, { position: pos, verifyCrc: opts.verifyCrc ?? true });
    for (const rec of batch.records) if (opts.fromOffset === undefined || rec.offset >= opts.fromOffset) yield rec;
    pos += size;
  }
}
