import { EngineKind, resolveConfig, type JournalConfig, type ShardConfig } from './config.js';
import { ShardNotFoundError } from './errors.js';
import {
  assignOffsets,
  checkOffset,
  type AppendInput,
  type AppendResult,
  type EngineContext,
  type EngineReadResult,
  type ShardDefinition,
  type ShardStats,
  type StorageEngine,
} from './storage-engine.js';
import { decodeRecordBatch } from './record-batch.js';

interface MemoryBatch {
  baseOffset: bigint;
  /** Offset after the batch. */
  endOffset: bigint;
  buf: Buffer;
  records: number;
  maxTimestamp: number;
}

class MemoryShard {
  config: JournalConfig;
  overrides: ShardConfig;
  /** Batches from `head` on are live; evicted ones are cut off in chunks. */
  batches: MemoryBatch[] = [];
  head = 0;
  next = 0n;
  start = 0n;
  bytes = 0;
  records = 0;
  constructor(config: JournalConfig, overrides: ShardConfig) {
    this.config = config;
    this.overrides = overrides;
  }

  /** Index of the batch containing `offset` (binary search), or the first batch after it. */
  find(offset: bigint): number {
    let lo = this.head;
    let hi = this.batches.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.batches[mid]!.endOffset <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  evictOne(): void {
    const b = this.batches[this.head++]!;
    this.bytes -= b.buf.length;
    this.records -= b.records;
    this.start = b.endOffset;
    if (this.head > 1024 && this.head * 2 > this.batches.length) {
      this.batches = this.batches.slice(this.head);
      this.head = 0;
    }
  }
}

/** Bounded in-memory shards (maxBytes/maxRecords, oldest evicted); contents are lost on close. */
export class MemoryEngine implements StorageEngine {
  readonly kind = EngineKind.Memory;
  private readonly ctx: EngineContext;
  private readonly shards = new Map<string, MemoryShard>();

  constructor(ctx: EngineContext) {
    this.ctx = ctx;
  }

  async open(shards: readonly ShardDefinition[]): Promise<void> {
    for (const d of shards) await this.create(d.name, d.config);
  }

  has(name: string): boolean {
    return this.shards.has(name);
  }

  names(): Iterable<string> {
    return this.shards.keys();
  }

  private shard(name: string): MemoryShard {
    const s = this.shards.get(name);
    if (!s) throw new ShardNotFoundError(name);
    return s;
  }

  async create(name: string, overrides: ShardConfig): Promise<void> {
    this.shards.set(name, new MemoryShard(resolveConfig(this.ctx.defaults, overrides), overrides));
  }

  async remove(name: string): Promise<void> {
    this.shards.delete(name);
  }

  async append(name: string, input: AppendInput): Promise<AppendResult> {
    const s = this.shard(name);
    const result = assignOffsets(input, s.next);
    for (const b of input.batches) {
      let buf = input.buf.subarray(b.position, b.position + b.size);
      // Do not pin a large network buffer for a small batch.
      if (buf.buffer.byteLength > buf.length * 2) buf = Buffer.from(buf);
      const baseOffset = buf.readBigInt64BE(0);
      s.batches.push({
        baseOffset,
        endOffset: baseOffset + BigInt(b.lastOffsetDelta + 1),
        buf,
        records: b.recordCount,
        maxTimestamp: b.maxTimestamp,
      });
      s.bytes += b.size;
      s.records += b.recordCount;
    }
    s.next = result.lastOffset + 1n;
    // The newest batch always stays, even if it alone exceeds the bounds.
    while (s.batches.length - s.head > 1 && (s.bytes > s.config.memoryMaxBytes || s.records > s.config.memoryMaxRecords)) {
      s.evictOne();
    }
    return result;
  }

  async read(name: string, fromOffset: bigint, maxBytes: number): Promise<EngineReadResult> {
    const s = this.shard(name);
    checkOffset(name, fromOffset, s.start, s.next);
    const first = s.find(fromOffset);
    const parts: Buffer[] = [];
    let size = 0;
    let i = first;
    for (; i < s.batches.length; i++) {
      const b = s.batches[i]!;
      if (parts.length > 0 && size + b.buf.length > maxBytes) break;
      parts.push(b.buf);
      size += b.buf.length;
    }
    const nextOffset = i > first ? s.batches[i - 1]!.endOffset : fromOffset;
    return { data: parts.length === 1 ? parts[0]! : Buffer.concat(parts, size), nextOffset };
  }

  earliestOffset(name: string): bigint {
    return this.shard(name).start;
  }

  latestOffset(name: string): bigint {
    return this.shard(name).next;
  }

  stats(name: string): ShardStats {
    const s = this.shard(name);
    return { bytes: s.bytes, records: s.records };
  }

  config(name: string): JournalConfig {
    return this.shard(name).config;
  }

  async reconfigure(name: string, overrides: ShardConfig): Promise<void> {
    const s = this.shard(name);
    s.config = resolveConfig(this.ctx.defaults, overrides);
    s.overrides = overrides;
    while (s.batches.length - s.head > 1 && (s.bytes > s.config.memoryMaxBytes || s.records > s.config.memoryMaxRecords)) s.evictOne();
  }

  overrides(name: string): ShardConfig {
    return this.shard(name).overrides;
  }

  async offsetForTimestamp(name: string, timestampMs: number): Promise<bigint | null> {
    const s = this.shard(name);
    for (let i = s.head; i < s.batches.length; i++) {
      const b = s.batches[i]!;
      if (b.maxTimestamp < timestampMs) continue;
      for (const r of decodeRecordBatch(b.buf).records) if (r.timestamp >= timestampMs && r.offset >= s.start) return r.offset;
    }
    return null;
  }

  async deleteRecordsBefore(name: string, offset: bigint): Promise<bigint> {
    const s = this.shard(name);
    checkOffset(name, offset, s.start, s.next);
    while (s.batches.length > s.head && s.batches[s.head]!.endOffset <= offset) s.evictOne();
    if (offset > s.start) s.start = offset;
    return s.start;
  }

  async close(): Promise<void> {
    this.shards.clear();
  }
}
