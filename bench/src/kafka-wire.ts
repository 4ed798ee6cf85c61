/**
 * The minimal Kafka wire protocol robust-bench speaks (non-flexible versions only, so every
 * request has header v1 and every response header v0):
 *   ApiVersions v0, Metadata v1, CreateTopics v2, ListOffsets v1, Produce v3, Fetch v4.
 * Control requests are encoded with `KafkaWriter`; the Produce hot path is a pre-built frame
 * patched in place (`ProduceFrame`).
 *
 * Request => size:int32 api_key:int16 api_version:int16 correlation_id:int32 client_id:nullable_string body
 * Response => size:int32 correlation_id:int32 body
 */
import { crc32c } from '@robustmq/common';
import { BatchField, Compression, encodeRecordBatch, type Compression as CompressionId } from '@robustmq/journal';

export const ApiKey = { Produce: 0, Fetch: 1, ListOffsets: 2, Metadata: 3, ApiVersions: 18, CreateTopics: 19, DeleteTopics: 20 } as const;
export type ApiKey = (typeof ApiKey)[keyof typeof ApiKey];

/** Versions robust-bench uses; a broker must support them (checked against ApiVersions). */
export const UsedVersion: Record<ApiKey, number> = { 0: 3, 1: 4, 2: 1, 3: 1, 18: 0, 19: 2, 20: 1 };

/** Kafka error codes robust-bench names in its error counts. */
export const KafkaErrorName: Record<number, string> = {
  [-1]: 'UNKNOWN_SERVER_ERROR',
  1: 'OFFSET_OUT_OF_RANGE',
  2: 'CORRUPT_MESSAGE',
  3: 'UNKNOWN_TOPIC_OR_PARTITION',
  5: 'LEADER_NOT_AVAILABLE',
  6: 'NOT_LEADER_OR_FOLLOWER',
  7: 'REQUEST_TIMED_OUT',
  10: 'MESSAGE_TOO_LARGE',
  19: 'NOT_ENOUGH_REPLICAS',
  20: 'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  29: 'TOPIC_AUTHORIZATION_FAILED',
  35: 'UNSUPPORTED_VERSION',
  36: 'TOPIC_ALREADY_EXISTS',
  37: 'INVALID_PARTITIONS',
  76: 'UNSUPPORTED_COMPRESSION_TYPE',
};
export const kafkaErrorName = (code: number): string => KafkaErrorName[code] ?? `error ${code}`;

export class KafkaWriter {
  buf = Buffer.allocUnsafe(256);
  pos = 0;
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  int8(v: number): this {
    this.ensure(1);
    this.buf.writeInt8(v, this.pos);
    this.pos += 1;
    return this;
  }
  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }
  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }
  int64(v: bigint): this {
    this.ensure(8);
    this.buf.writeBigInt64BE(v, this.pos);
    this.pos += 8;
    return this;
  }
  string(s: string | null): this {
    if (s === null) return this.int16(-1);
    const b = Buffer.from(s);
    this.int16(b.length);
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
    return this;
  }
  bytes(b: Buffer | null): this {
    if (b === null) return this.int32(-1);
    this.int32(b.length);
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
    return this;
  }
  array<T>(items: readonly T[] | null, each: (w: this, item: T, index: number) => void): this {
    if (items === null) return this.int32(-1);
    this.int32(items.length);
    items.forEach((it, i) => each(this, it, i));
    return this;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export class KafkaReader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  constructor(buf: Buffer, pos = 0, end = buf.length) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }
  private need(n: number): void {
    if (this.pos + n > this.end) throw new RangeError(`kafka response truncated at byte ${this.pos}`);
  }
  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.pos++);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  string(): string | null {
    const n = this.int16();
    if (n < 0) return null;
    this.need(n);
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  /** Nullable bytes as a view (no copy): [start, end), or null. */
  bytesView(): { start: number; end: number } | null {
    const n = this.int32();
    if (n < 0) return null;
    this.need(n);
    const v = { start: this.pos, end: this.pos + n };
    this.pos += n;
    return v;
  }
  array<T>(each: (r: this) => T): T[] {
    const n = this.int32();
    const out: T[] = [];
    for (let i = 0; i < n; i++) out.push(each(this));
    return out;
  }
}

/** A whole request frame: size, header v1, body. */
export function encodeRequest(apiKey: ApiKey, correlationId: number, clientId: string, body: Buffer): Buffer {
  const w = new KafkaWriter();
  w.int32(0).int16(apiKey).int16(UsedVersion[apiKey]).int32(correlationId).string(clientId);
  const head = w.done();
  const out = Buffer.allocUnsafe(head.length + body.length);
  head.copy(out);
  body.copy(out, head.length);
  out.writeInt32BE(out.length - 4, 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// control requests and their responses

export interface MetadataTopic {
  error: number;
  name: string;
  partitions: { error: number; index: number; leader: number }[];
}
export interface Metadata {
  brokers: { nodeId: number; host: string; port: number }[];
  topics: MetadataTopic[];
}

/** Metadata Request (Version: 1) => [topics]   topics => name */
export const encodeMetadataRequest = (topics: string[]): Buffer => new KafkaWriter().array(topics, (w, t) => w.string(t)).done();

/**
 * Metadata Response (Version: 1) => [brokers] controller_id [topics]
 *   brokers => node_id host port rack   topics => error_code name is_internal [partitions]
 *   partitions => error_code partition_index leader_id [replica_nodes] [isr_nodes]
 */
export function decodeMetadataResponse(r: KafkaReader): Metadata {
  const brokers = r.array((r) => {
    const b = { nodeId: r.int32(), host: r.string() ?? '', port: r.int32() };
    r.string();
    return b;
  });
  r.int32();
  const topics = r.array((r) => {
    const error = r.int16();
    const name = r.string() ?? '';
    r.int8();
    const partitions = r.array((r) => {
      const p = { error: r.int16(), index: r.int32(), leader: r.int32() };
      r.array((r) => r.int32());
      r.array((r) => r.int32());
      return p;
    });
    return { error, name, partitions };
  });
  return { brokers, topics };
}

/** ApiVersions Response (Version: 0) => error_code [api_keys]   api_keys => api_key min_version max_version */
export function decodeApiVersionsResponse(r: KafkaReader): { error: number; apis: Map<number, [number, number]> } {
  const error = r.int16();
  const apis = new Map<number, [number, number]>();
  r.array((r) => apis.set(r.int16(), [r.int16(), r.int16()]));
  return { error, apis };
}

/**
 * CreateTopics Request (Version: 2) => [topics] timeout_ms validate_only
 *   topics => name num_partitions replication_factor [assignments] [configs]
 */
export const encodeCreateTopicsRequest = (name: string, partitions: number, replicationFactor: number, timeoutMs: number): Buffer =>
  new KafkaWriter()
    .array([name], (w, n) => w.string(n).int32(partitions).int16(replicationFactor).int32(0).int32(0))
    .int32(timeoutMs)
    .int8(0)
    .done();

/** CreateTopics Response (Version: 2) => throttle_time_ms [topics]   topics => name error_code error_message */
export function decodeCreateTopicsResponse(r: KafkaReader): { name: string; error: number; message: string | null }[] {
  r.int32();
  return r.array((r) => ({ name: r.string() ?? '', error: r.int16(), message: r.string() }));
}

/** DeleteTopics Request (Version: 1) => [topic_names] timeout_ms */
export const encodeDeleteTopicsRequest = (names: string[], timeoutMs: number): Buffer =>
  new KafkaWriter()
    .array(names, (w, n) => w.string(n))
    .int32(timeoutMs)
    .done();

/** DeleteTopics Response (Version: 1) => throttle_time_ms [responses]   responses => name error_code */
export function decodeDeleteTopicsResponse(r: KafkaReader): { name: string; error: number }[] {
  r.int32();
  return r.array((r) => ({ name: r.string() ?? '', error: r.int16() }));
}

/** ListOffsets Request (Version: 1) => replica_id [topics]   topics => name [partitions]   partitions => partition_index timestamp */
export const encodeListOffsetsRequest = (topic: string, partitions: number[], timestamp: bigint): Buffer =>
  new KafkaWriter()
    .int32(-1)
    .array([topic], (w, t) => w.string(t).array(partitions, (w, p) => w.int32(p).int64(timestamp)))
    .done();

/** ListOffsets Response (Version: 1) => [topics]   topics => name [partitions]   partitions => partition_index error_code timestamp offset */
export function decodeListOffsetsResponse(r: KafkaReader): { partition: number; error: number; offset: bigint }[] {
  const out: { partition: number; error: number; offset: bigint }[] = [];
  r.array((r) => {
    r.string();
    r.array((r) => {
      const partition = r.int32();
      const error = r.int16();
      r.int64();
      out.push({ partition, error, offset: r.int64() });
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Produce: one pre-built frame per in-flight slot, patched per request

/**
 * A Produce v3 request carrying one RecordBatch for one partition, built once. Per request only
 * the correlation id, the partition, the batch timestamps (the send time) and the batch CRC change.
 *
 * Produce Request (Version: 3) => transactional_id acks timeout_ms [topic_data]
 *   topic_data => name [partition_data]   partition_data => index records
 */
export class ProduceFrame {
  readonly bytes: Buffer;
  private readonly corrAt: number;
  /** Per partition entry: where its partition index and its batch start. */
  private readonly partitionAt: number[] = [];
  private readonly batchAt: number[] = [];
  /** Records per request: the batch's records × partitions per request. */
  readonly records: number;

  /**
   * A Produce request carrying `batch` for `partitionsPerRequest` partitions of `topic` (as a
   * real producer sends one request per broker with one batch per partition it has ready).
   */
  constructor(clientId: string, topic: string, acks: number, timeoutMs: number, batch: Buffer, records: number, partitionsPerRequest = 1) {
    const entries = Array.from({ length: partitionsPerRequest }, (_, i) => i);
    const body = new KafkaWriter()
      .string(null)
      .int16(acks)
      .int32(timeoutMs)
      .array([topic], (w, t) => w.string(t).array(entries, (pw, p) => pw.int32(p).bytes(batch)))
      .done();
    this.bytes = encodeRequest(ApiKey.Produce, 0, clientId, body);
    this.corrAt = 8;
    const entryBytes = 4 + 4 + batch.length;
    for (let i = 0; i < partitionsPerRequest; i++) {
      const at = this.bytes.length - (partitionsPerRequest - i) * entryBytes;
      this.partitionAt.push(at);
      this.batchAt.push(at + 8);
    }
    this.records = records * partitionsPerRequest;
  }

  /**
   * Patches the frame for one send: the correlation id, the partition of each entry (`partitions`,
   * one per entry, or one number for a single-entry frame), timestamps and CRCs. No allocation
   * (the CRC runs over each batch in place).
   */
  patch(correlationId: number, partitions: number | readonly number[], sendTimeMs: number): void {
    const b = this.bytes;
    b.writeInt32BE(correlationId, this.corrAt);
    const ts = Math.floor(sendTimeMs);
    const hi = Math.floor(ts / 0x1_0000_0000);
    const lo = ts - hi * 0x1_0000_0000;
    for (let i = 0; i < this.batchAt.length; i++) {
      b.writeInt32BE(typeof partitions === 'number' ? partitions : partitions[i]!, this.partitionAt[i]!);
      const base = this.batchAt[i]!;
      b.writeInt32BE(hi, base + BatchField.BaseTimestamp);
      b.writeUInt32BE(lo, base + BatchField.BaseTimestamp + 4);
      b.writeInt32BE(hi, base + BatchField.MaxTimestamp);
      b.writeUInt32BE(lo, base + BatchField.MaxTimestamp + 4);
      const batchLength = b.readInt32BE(base + BatchField.BatchLength);
      b.writeUInt32BE(crc32c(b.subarray(base + BatchField.Attributes, base + 12 + batchLength)), base + BatchField.Crc);
    }
  }
}

/** A RecordBatch of `records` records of `valueBytes` each, all with the same timestamp (delta 0). */
export function buildBatch(records: number, valueBytes: number, compression: CompressionId): Buffer {
  const value = Buffer.alloc(valueBytes, 0x78);
  return encodeRecordBatch(
    Array.from({ length: records }, () => ({ key: null, value, timestamp: 0 })),
    { compression, timestamp: 0 },
  );
}

export const CompressionByName: Record<string, CompressionId> = { none: Compression.None, gzip: Compression.Gzip };

/**
 * Fetch Request (Version: 4) => replica_id max_wait_ms min_bytes max_bytes isolation_level [topics]
 *   topics => topic [partitions]    partitions => partition fetch_offset partition_max_bytes
 */
export function encodeFetchRequest(
  topic: string,
  offsets: { partition: number; offset: bigint }[],
  maxWaitMs: number,
  maxBytes: number,
  partitionMaxBytes: number,
): Buffer {
  return new KafkaWriter()
    .int32(-1)
    .int32(maxWaitMs)
    .int32(1)
    .int32(maxBytes)
    .int8(0)
    .array([topic], (w, t) => w.string(t).array(offsets, (w, p) => w.int32(p.partition).int64(p.offset).int32(partitionMaxBytes)))
    .done();
}

/** What a consumer takes from one partition of a Fetch response, without decoding records. */
export interface FetchedPartition {
  partition: number;
  error: number;
  highWatermark: bigint;
  /** Whole batches only: count, next offset, and each batch's (timestamp, records) pair. */
  records: number;
  nextOffset: bigint | null;
}

/**
 * Fetch Response (Version: 4) => throttle_time_ms [responses]
 *   responses => topic [partitions]
 *   partitions => partition_index error_code high_watermark last_stable_offset [aborted_transactions] records
 * Walks the record batches' headers only; `onBatch(baseTimestampMs, records)` sees each whole batch.
 */
export function decodeFetchResponse(r: KafkaReader, onBatch: (timestampMs: number, records: number) => void): FetchedPartition[] {
  r.int32();
  const out: FetchedPartition[] = [];
  r.array((r) => {
    r.string();
    r.array((r) => {
      const partition = r.int32();
      const error = r.int16();
      const highWatermark = r.int64();
      r.int64();
      const aborted = r.int32();
      for (let i = 0; i < aborted; i++) r.pos += 16;
      const view = r.bytesView();
      let records = 0;
      let nextOffset: bigint | null = null;
      if (view) {
        const b = r.buf;
        let pos = view.start;
        while (pos + BatchField.Records <= view.end) {
          const size = b.readInt32BE(pos + BatchField.BatchLength) + 12;
          if (pos + size > view.end) break; // a partial batch at the end (max bytes reached)
          const count = b.readInt32BE(pos + BatchField.RecordCount);
          const ts = b.readInt32BE(pos + BatchField.BaseTimestamp) * 0x1_0000_0000 + b.readUInt32BE(pos + BatchField.BaseTimestamp + 4);
          const lastDelta = b.readInt32BE(pos + BatchField.LastOffsetDelta);
          onBatch(ts, count);
          records += count;
          nextOffset = b.readBigInt64BE(pos) + BigInt(lastDelta) + 1n;
          pos += size;
        }
      }
      out.push({ partition, error, highWatermark, records, nextOffset });
    });
  });
  return out;
}

/** Produce Response (Version: 3) => [responses] throttle_time_ms; calls `onError` for each failed partition. */
export function decodeProduceResponse(r: KafkaReader, onError: (code: number) => void): void {
  const topics = r.int32();
  for (let t = 0; t < topics; t++) {
    r.string();
    const parts = r.int32();
    for (let p = 0; p < parts; p++) {
      r.int32();
      const code = r.int16();
      r.pos += 16; // base_offset, log_append_time_ms
      if (code !== 0) onError(code);
    }
  }
}
