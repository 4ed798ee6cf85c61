import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RobustError, type Logger } from '@robustmq/common';
import { EngineKind, FsyncPolicy, resolveConfig, type JournalConfig, type ShardConfig } from './config.js';
import { CorruptBatchError, ShardNotFoundError } from './errors.js';
import { fsyncDir, shardDirName, wrapFsError, writeFileAtomic } from './fs-util.js';
import { GroupCommitQueue } from './group-commit.js';
import type { JournalMetrics } from './metrics.js';
import { decodeRecordBatch, encodeRecordBatch, type JournalRecord, type RecordInput } from './record-batch.js';
import { scanBatches } from './segment.js';
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

const DATA_FILE = 'data.log';
const LOG_START_FILE = 'log-start-offset';
const MIN_COMPACT_BYTES = 1024 * 1024;
const COMPACT_BATCH_BYTES = 256 * 1024;
/** Approximate per-record framing cost, for size accounting. */
const RECORD_OVERHEAD = 24;

interface LiveRecord {
  record: JournalRecord;
  size: number;
}

function recordSize(r: JournalRecord): number {
  let n = RECORD_OVERHEAD + (r.key?.length ?? 0) + (r.value?.length ?? 0);
  for (const h of r.headers) n += h.key.length + (h.value?.length ?? 0) + 4;
  return n;
}

function copyRecord(r: JournalRecord): JournalRecord {
  return {
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key === null ? null : Buffer.from(r.key),
    value: r.value === null ? null : Buffer.from(r.value),
    headers: r.headers.map((h) => ({ key: h.key, value: h.value === null ? null : Buffer.from(h.value) })),
  };
}

/**
 * One compacted shard: an append-only `data.log` of batches plus the latest record per key in
 * memory. A null value is a tombstone (deletes the key). Reads return the live records as a
 * freshly encoded batch keeping their original offsets (gaps, as in Kafka's compacted topics).
 * When dead bytes pass `compactionDirtyRatio`, the log is rewritten with only the live records
 * (temp file, fsync, rename), plus an empty marker batch that keeps the high watermark.
 */
class CompactedShard {
  readonly name: string;
  readonly dir: string;
  config: JournalConfig;
  overrides: ShardConfig;
  /** key (latin1 of the key bytes) → live record; Map order is offset order. */
  live = new Map<string, LiveRecord>();
  hw = 0n;
  logStart = 0n;
  liveBytes = 0;
  deadBytes = 0;
  private fh!: FileHandle;
  private fileSize = 0;
  private dirty = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly log: Logger;
  private readonly metrics: JournalMetrics;
  private readonly queue: GroupCommitQueue<AppendInput | 'compact', AppendResult | null>;

  constructor(name: string, dir: string, config: JournalConfig, overrides: ShardConfig, log: Logger, metrics: JournalMetrics) {
    this.name = name;
    this.dir = dir;
    this.config = config;
    this.overrides = overrides;
    this.log = log.child({ shard: name });
    this.metrics = metrics;
    this.queue = new GroupCommitQueue((items) => this.flush(items));
  }

  private get dataPath(): string {
    return join(this.dir, DATA_FILE);
  }

  async open(fresh: boolean): Promise<void> {
    try {
      if (fresh) await rm(this.dir, { recursive: true, force: true });
      await mkdir(this.dir, { recursive: true });
      try {
        this.logStart = BigInt((await readFile(join(this.dir, LOG_START_FILE), 'utf8')).trim());
      } catch {
        this.logStart = 0n;
      }
      this.fh = await open(this.dataPath, 'a+').then(async (fh) => {
        await fh.close();
        return open(this.dataPath, 'r+');
      });
      const size = (await this.fh.stat()).size;
      const r = await scanBatches(this.fh, 0, size, { verifyCrc: true, contiguous: false }, (b) => {
        for (const rec of decodeRecordBatch(b.bytes, { verifyCrc: false }).records) this.apply(rec);
        this.hw = b.endOffset;
      });
      if (r.validEnd < size) {
        const bytes = size - r.validEnd;
        this.log.warn({ file: this.dataPath, position: r.validEnd, bytes, reason: r.problem }, 'truncating torn or corrupt log tail');
        this.metrics.recoveryTruncatedBytes.inc({ engine: EngineKind.Compacted }, bytes);
        await this.fh.truncate(r.validEnd);
        await this.fh.datasync();
      }
      this.fileSize = r.validEnd;
      if (this.logStart > this.hw) this.logStart = this.hw;
      this.dropBelow(this.logStart);
    } catch (err) {
      throw wrapFsError(err, `open compacted shard ${this.name}`);
    }
    if (this.config.fsyncPolicy === FsyncPolicy.Interval) {
      this.timer = setInterval(() => void this.syncIfDirty(), this.config.fsyncIntervalMs).unref();
    }
  }

  /** Applies one record to the live map (update, insert or tombstone). */
  private apply(rec: JournalRecord): void {
    if (rec.key === null) return;
    const k = rec.key.toString('latin1');
    const old = this.live.get(k);
    if (old) {
      this.live.delete(k);
      this.liveBytes -= old.size;
      this.deadBytes += old.size;
    }
    const size = recordSize(rec);
    if (rec.value === null) {
      this.deadBytes += size;
      return;
    }
    this.live.set(k, { record: copyRecord(rec), size });
    this.liveBytes += size;
  }

  private dropBelow(offset: bigint): void {
    for (const [k, lr] of this.live) {
      if (lr.record.offset >= offset) break;
      this.live.delete(k);
      this.liveBytes -= lr.size;
      this.deadBytes += lr.size;
    }
  }

  private async syncIfDirty(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    await this.fh.datasync().catch((err: unknown) => this.log.warn({ err }, 'interval fsync failed'));
  }

  append(input: AppendInput): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new RobustError(ErrorCode.EngineClosed, `shard ${this.name} is closed`));
    // Keys are checked before anything is written: a compacted shard needs a key on every record.
    for (const b of input.batches) {
      const { records } = decodeRecordBatch(input.buf, { position: b.position, verifyCrc: false });
      if (records.some((r) => r.key === null)) throw new CorruptBatchError(`compacted shard ${this.name} needs a key on every record`);
    }
    return this.queue.push(input) as Promise<AppendResult>;
  }

  /** Rewrites the log with only the live records. */
  compact(): Promise<void> {
    return this.queue.push('compact').then(() => undefined);
  }

  private async flush(items: (AppendInput | 'compact')[]): Promise<(AppendResult | null | Error)[]> {
    const results: (AppendResult | null | Error)[] = [];
    const appends: AppendInput[] = [];
    let next = this.hw;
    for (const item of items) {
      if (item === 'compact') continue;
      const res = assignOffsets(item, next);
      next = res.lastOffset + 1n;
      appends.push(item);
      results.push(res);
    }
    if (appends.length > 0) {
      const total = appends.reduce((n, a) => n + a.buf.length, 0);
      try {
        const { bytesWritten } = await this.fh.writev(
          appends.map((a) => a.buf),
          this.fileSize,
        );
        if (bytesWritten !== total) throw new RobustError(ErrorCode.StorageIo, `short write: ${bytesWritten} of ${total} bytes`);
        if (this.config.fsyncPolicy === FsyncPolicy.Always) {
          await this.fh.datasync();
          this.metrics.fsyncs.inc({ engine: EngineKind.Compacted });
        } else this.dirty = true;
      } catch (err) {
        await this.fh.truncate(this.fileSize).catch(() => {});
        throw wrapFsError(err, `append to compacted shard ${this.name}`);
      }
      this.fileSize += total;
      for (const a of appends) {
        for (const b of a.batches) {
          for (const rec of decodeRecordBatch(a.buf, { position: b.position, verifyCrc: false }).records) this.apply(rec);
        }
      }
      this.hw = next;
    }
    const wantCompact = items.includes('compact');
    const dirtyEnough =
      this.fileSize > MIN_COMPACT_BYTES && this.deadBytes > this.config.compactionDirtyRatio * (this.liveBytes + this.deadBytes);
    let compactError: Error | null = null;
    if (wantCompact || dirtyEnough) {
      try {
        await this.rewrite();
      } catch (err) {
        compactError = wrapFsError(err, `compact shard ${this.name}`);
        this.log.warn({ err }, 'compaction failed; the log stays as it was');
        await rm(`${this.dataPath}.tmp`, { force: true }).catch(() => {});
      }
    }
    return items.map((item) => (item === 'compact' ? compactError : results.shift()!));
  }

  private async rewrite(): Promise<void> {
    const tmpPath = `${this.dataPath}.tmp`;
    const fh = await open(tmpPath, 'w');
    let size = 0;
    try {
      const bufs: Buffer[] = [];
      let batch: RecordInput[] = [];
      let base = 0n;
      let batchBytes = 0;
      let last = -1n;
      const emit = (): void => {
        if (batch.length === 0) return;
        bufs.push(encodeRecordBatch(batch, { baseOffset: base }));
        batch = [];
        batchBytes = 0;
      };
      for (const { record: r, size: n } of this.live.values()) {
        if (batch.length === 0) base = r.offset;
        batch.push({ timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers, offsetDelta: Number(r.offset - base) });
        batchBytes += n;
        last = r.offset;
        if (batchBytes >= COMPACT_BATCH_BYTES) emit();
      }
      emit();
      // An empty batch at hw − 1 keeps the high watermark when the newest offsets were dropped.
      if (this.hw > 0n && last < this.hw - 1n) bufs.push(encodeRecordBatch([], { baseOffset: this.hw - 1n }));
      if (bufs.length > 0) ({ bytesWritten: size } = await fh.writev(bufs, 0));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmpPath, this.dataPath);
    await fsyncDir(this.dir);
    await this.fh.close();
    this.fh = await open(this.dataPath, 'r+');
    this.log.info({ before: this.fileSize, after: size, live: this.live.size }, 'compacted');
    this.fileSize = size;
    this.deadBytes = 0;
  }

  read(from: bigint, maxBytes: number): EngineReadResult {
    checkOffset(this.name, from, this.logStart, this.hw);
    const batch: RecordInput[] = [];
    let base = 0n;
    let bytes = 0;
    let nextOffset = this.hw;
    for (const { record: r, size } of this.live.values()) {
      if (r.offset < from) continue;
      if (batch.length > 0 && bytes + size > maxBytes) {
        nextOffset = r.offset;
        break;
      }
      if (batch.length === 0) base = r.offset;
      batch.push({ timestamp: r.timestamp, key: r.key, value: r.value, headers: r.headers, offsetDelta: Number(r.offset - base) });
      bytes += size;
    }
    if (batch.length === 0) return { data: Buffer.alloc(0), nextOffset: this.hw };
    return { data: encodeRecordBatch(batch, { baseOffset: base }), nextOffset };
  }

  offsetForTimestamp(ts: number): bigint | null {
    for (const { record } of this.live.values()) if (record.timestamp >= ts) return record.offset;
    return null;
  }

  async deleteRecordsBefore(offset: bigint): Promise<bigint> {
    checkOffset(this.name, offset, this.logStart, this.hw);
    if (offset > this.logStart) {
      await writeFileAtomic(join(this.dir, LOG_START_FILE), offset.toString());
      this.logStart = offset;
      this.dropBelow(offset);
    }
    return this.logStart;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.queue.idle();
    await this.fh.datasync().catch(() => {});
    await this.fh.close().catch(() => {});
  }

  async destroy(): Promise<void> {
    await this.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Compacted shards (latest value per key, tombstones), one directory each under `<dataDir>/compacted/`. */
export class CompactedEngine implements StorageEngine {
  readonly kind = EngineKind.Compacted;
  private readonly ctx: EngineContext;
  private readonly shards = new Map<string, CompactedShard>();

  constructor(ctx: EngineContext) {
    this.ctx = ctx;
  }

  async open(shards: readonly ShardDefinition[]): Promise<void> {
    for (const d of shards) await this.openShard(d.name, d.config, false);
  }

  private async openShard(name: string, overrides: ShardConfig, fresh: boolean): Promise<void> {
    const config = resolveConfig(this.ctx.defaults, overrides);
    const s = new CompactedShard(name, join(this.ctx.dir, shardDirName(name)), config, overrides, this.ctx.log, this.ctx.metrics);
    await s.open(fresh);
    this.shards.set(name, s);
  }

  has(name: string): boolean {
    return this.shards.has(name);
  }

  names(): Iterable<string> {
    return this.shards.keys();
  }

  private shard(name: string): CompactedShard {
    const s = this.shards.get(name);
    if (!s) throw new ShardNotFoundError(name);
    return s;
  }

  create(name: string, overrides: ShardConfig): Promise<void> {
    return this.openShard(name, overrides, true);
  }

  async remove(name: string): Promise<void> {
    const s = this.shard(name);
    this.shards.delete(name);
    await s.destroy();
  }

  async append(name: string, input: AppendInput): Promise<AppendResult> {
    return this.shard(name).append(input);
  }

  async read(name: string, fromOffset: bigint, maxBytes: number): Promise<EngineReadResult> {
    return this.shard(name).read(fromOffset, maxBytes);
  }

  earliestOffset(name: string): bigint {
    return this.shard(name).logStart;
  }

  latestOffset(name: string): bigint {
    return this.shard(name).hw;
  }

  stats(name: string): ShardStats {
    const s = this.shard(name);
    return { bytes: s.liveBytes, records: s.live.size };
  }

  config(name: string): JournalConfig {
    return this.shard(name).config;
  }

  /** New limits apply to the next append and compaction (the fsync timer keeps its interval until reopened). */
  async reconfigure(name: string, overrides: ShardConfig): Promise<void> {
    const s = this.shard(name);
    s.config = resolveConfig(this.ctx.defaults, overrides);
    s.overrides = overrides;
  }

  overrides(name: string): ShardConfig {
    return this.shard(name).overrides;
  }

  async offsetForTimestamp(name: string, timestampMs: number): Promise<bigint | null> {
    return this.shard(name).offsetForTimestamp(timestampMs);
  }

  deleteRecordsBefore(name: string, offset: bigint): Promise<bigint> {
    return this.shard(name).deleteRecordsBefore(offset);
  }

  /** Rewrites a shard's log now, keeping only live records (it also happens automatically). */
  compact(name: string): Promise<void> {
    return this.shard(name).compact();
  }

  async close(): Promise<void> {
    for (const s of this.shards.values()) await s.close();
    this.shards.clear();
  }
}
