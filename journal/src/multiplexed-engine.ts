import { mkdir } from 'node:fs/promises';
import { ClassicLevel } from 'classic-level';
import { ErrorCode, RobustError } from '@robustmq/common';
import { EngineKind, FsyncPolicy, resolveConfig, type JournalConfig, type ShardConfig } from './config.js';
import { ShardNotFoundError } from './errors.js';
import { wrapFsError } from './fs-util.js';
import { GroupCommitQueue } from './group-commit.js';
import { BatchField, decodeRecordBatch } from './record-batch.js';
import {
  assignOffsets,
  checkOffset,
  type AppendInput,
  type AppendResult,
  type EngineContext,
  type EngineReadResult,
  type ShardStats,
  type StorageEngine,
} from './storage-engine.js';

// Key space of the LevelDB underneath:
//   'c'                          → u32 next shard id (ids are never reused)
//   'n' + name (utf8)            → u32 id | f64 next | f64 start | f64 bytes | f64 records | JSON overrides
//   'd' + u32 id + u64 offset    → one stored batch (baseOffset = offset)
//   'h'                          → heartbeat written with sync for the `interval` fsync policy
const KEY_COUNTER = Buffer.from('c');
const KEY_HEARTBEAT = Buffer.from('h');
const META_FIXED_BYTES = 36;

function nameKey(name: string): Buffer {
  return Buffer.concat([Buffer.from('n'), Buffer.from(name, 'utf8')]);
}

function dataKey(id: number, offset: number): Buffer {
  const k = Buffer.allocUnsafe(13);
  k[0] = 0x64; // 'd'
  k.writeUInt32BE(id, 1);
  k.writeBigUInt64BE(BigInt(offset), 5);
  return k;
}

/** Columns of per-shard numbers, indexed by shard id: ~32 bytes of heap per shard. */
class Columns {
  next = new Float64Array(1024);
  start = new Float64Array(1024);
  bytes = new Float64Array(1024);
  records = new Float64Array(1024);

  ensure(id: number): void {
    if (id < this.next.length) return;
    const grow = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(Math.max(a.length * 2, id + 1));
      b.set(a);
      return b;
    };
    this.next = grow(this.next);
    this.start = grow(this.start);
    this.bytes = grow(this.bytes);
    this.records = grow(this.records);
  }
}

type Op =
  | { kind: 'create'; name: string; id: number; overrides: ShardConfig; sync: boolean }
  | { kind: 'remove'; name: string; id: number }
  | { kind: 'append'; name: string; id: number; input: AppendInput; sync: boolean }
  | { kind: 'deleteBefore'; name: string; id: number; offset: number }
  | { kind: 'sync' };

/**
 * Very many small shards in one LevelDB (classic-level): no files per shard, no fsync per create
 * unless the policy asks for it.
 *
 * How this works: an idle shard costs one Map entry (name → id) and four numbers in typed-array
 * columns. Every mutation (create, append, delete) goes through one GroupCommitQueue: each flush
 * turns all waiting operations into one atomic LevelDB write batch, synced if any of them needs
 * `always`. A shard's counters (next offset, start, bytes, records) are rewritten in its registry
 * entry in the same batch as its data, so reopening reads only the registry, never the data.
 * Offsets are assigned inside the flush, in queue order; the visible `next` moves after the commit.
 */
export class MultiplexedEngine implements StorageEngine {
  readonly kind = EngineKind.Multiplexed;
  private readonly ctx: EngineContext;
  private db: ClassicLevel<Buffer, Buffer> | null = null;
  private readonly ids = new Map<string, number>();
  private readonly cols = new Columns();
  /** Only shards with overrides have an entry. */
  private readonly custom = new Map<number, { overrides: ShardConfig; config: JournalConfig }>();
  private readonly defaultConfig: JournalConfig;
  private nextId = 0;
  private dirty = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly queue: GroupCommitQueue<Op, AppendResult | number | null>;

  constructor(ctx: EngineContext) {
    this.ctx = ctx;
    this.defaultConfig = resolveConfig(ctx.defaults, {});
    this.queue = new GroupCommitQueue((ops) => this.flush(ops));
  }

  private get level(): ClassicLevel<Buffer, Buffer> {
    if (!this.db) throw new RobustError(ErrorCode.EngineClosed, 'multiplexed engine is closed');
    return this.db;
  }

  async open(): Promise<void> {
    await mkdir(this.ctx.dir, { recursive: true });
    const db = new ClassicLevel<Buffer, Buffer>(this.ctx.dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const locked = String((err as { cause?: unknown }).cause ?? err).includes('lock');
      throw new RobustError(
        locked ? ErrorCode.DataDirLocked : ErrorCode.StorageIo,
        `cannot open multiplexed store ${this.ctx.dir}${locked ? ' (in use by another process?)' : ''}`,
        { cause: err },
      );
    }
    this.db = db;
    const counter = await db.get(KEY_COUNTER);
    this.nextId = counter ? counter.readUInt32BE(0) : 0;
    const it = db.iterator({ gte: Buffer.from('n'), lt: Buffer.from('o') });
    try {
      for (;;) {
        const entries = await it.nextv(4096);
        if (entries.length === 0) break;
        for (const [k, v] of entries) {
          const id = v.readUInt32BE(0);
          const name = k.toString('utf8', 1);
          this.ids.set(name, id);
          this.cols.ensure(id);
          this.cols.next[id] = v.readDoubleBE(4);
          this.cols.start[id] = v.readDoubleBE(12);
          this.cols.bytes[id] = v.readDoubleBE(20);
          this.cols.records[id] = v.readDoubleBE(28);
          if (v.length > META_FIXED_BYTES) {
            const overrides = JSON.parse(v.toString('utf8', META_FIXED_BYTES)) as ShardConfig;
            this.custom.set(id, { overrides, config: resolveConfig(this.ctx.defaults, overrides) });
          }
          if (id >= this.nextId) this.nextId = id + 1;
        }
      }
    } finally {
      await it.close();
    }
    if (this.ctx.defaults.fsyncPolicy === FsyncPolicy.Interval) {
      this.timer = setInterval(() => {
        if (this.dirty) void this.queue.push({ kind: 'sync' }).catch(() => {});
      }, this.ctx.defaults.fsyncIntervalMs).unref();
    }
  }

  has(name: string): boolean {
    return this.ids.has(name);
  }

  names(): Iterable<string> {
    return this.ids.keys();
  }

  /** Number of shards (cheaper than iterating names). */
  get size(): number {
    return this.ids.size;
  }

  private id(name: string): number {
    const id = this.ids.get(name);
    if (id === undefined) throw new ShardNotFoundError(name);
    return id;
  }

  config(name: string): JournalConfig {
    return this.custom.get(this.id(name))?.config ?? this.defaultConfig;
  }

  overrides(name: string): ShardConfig {
    return this.custom.get(this.id(name))?.overrides ?? {};
  }

  async create(name: string, overrides: ShardConfig): Promise<void> {
    const id = this.nextId++;
    const config = resolveConfig(this.ctx.defaults, overrides);
    await this.queue.push({ kind: 'create', name, id, overrides, sync: config.fsyncPolicy === FsyncPolicy.Always });
  }

  async remove(name: string): Promise<void> {
    await this.queue.push({ kind: 'remove', name, id: this.id(name) });
  }

  async append(name: string, input: AppendInput): Promise<AppendResult> {
    const id = this.id(name);
    const sync = this.config(name).fsyncPolicy === FsyncPolicy.Always;
    return (await this.queue.push({ kind: 'append', name, id, input, sync })) as AppendResult;
  }

  async deleteRecordsBefore(name: string, offset: bigint): Promise<bigint> {
    const id = this.id(name);
    checkOffset(name, offset, this.earliestOffset(name), this.latestOffset(name));
    await this.queue.push({ kind: 'deleteBefore', name, id, offset: Number(offset) });
    return this.earliestOffset(name);
  }

  /**
   * Applies a group of operations as one LevelDB write. Counters are computed on copies and only
   * published to the columns after the write succeeded.
   */
  private async flush(ops: Op[]): Promise<(AppendResult | number | null | Error)[]> {
    const db = this.level;
    const batch = db.batch();
    let sync = false;
    const results: (AppendResult | number | null | Error)[] = [];
    type Counters = { next: number; start: number; bytes: number; records: number; overrides?: ShardConfig };
    const touched = new Map<number, { name: string; c: Counters; removed: boolean; created: boolean }>();
    const counters = (id: number, name: string): Counters => {
      let t = touched.get(id);
      if (!t) {
        const c = {
          next: this.cols.next[id] ?? 0,
          start: this.cols.start[id] ?? 0,
          bytes: this.cols.bytes[id] ?? 0,
          records: this.cols.records[id] ?? 0,
        };
        touched.set(id, (t = { name, c, removed: false, created: false }));
      }
      return t.c;
    };
    let counterBumped = false;
    for (const op of ops) {
      switch (op.kind) {
        case 'create': {
          this.cols.ensure(op.id);
          const t = {
            name: op.name,
            c: { next: 0, start: 0, bytes: 0, records: 0, overrides: op.overrides },
            removed: false,
            created: true,
          };
          touched.set(op.id, t);
          counterBumped = true;
          sync ||= op.sync;
          results.push(null);
          break;
        }
        case 'remove': {
          counters(op.id, op.name);
          touched.get(op.id)!.removed = true;
          batch.del(nameKey(op.name));
          results.push(null);
          break;
        }
        case 'append': {
          const c = counters(op.id, op.name);
          const res = assignOffsets(op.input, BigInt(c.next));
          for (const b of op.input.batches) {
            const base = Number(op.input.buf.readBigInt64BE(b.position));
            batch.put(dataKey(op.id, base), op.input.buf.subarray(b.position, b.position + b.size));
          }
          c.next = Number(res.lastOffset) + 1;
          c.bytes += op.input.buf.length;
          c.records += op.input.records;
          sync ||= op.sync;
          results.push(res);
          break;
        }
        case 'deleteBefore': {
          const c = counters(op.id, op.name);
          if (op.offset > c.start) {
            for await (const [k, v] of db.iterator({ gte: dataKey(op.id, 0), lt: dataKey(op.id, op.offset) })) {
              const end = Number(k.readBigUInt64BE(5)) + v.readInt32BE(BatchField.LastOffsetDelta) + 1;
              if (end > op.offset) break;
              batch.del(k);
              c.bytes -= v.length;
              c.records -= v.readInt32BE(BatchField.RecordCount);
            }
            c.start = op.offset;
          }
          results.push(null);
          break;
        }
        case 'sync':
          sync = true;
          batch.put(KEY_HEARTBEAT, Buffer.alloc(0));
          results.push(null);
          break;
      }
    }
    for (const [id, t] of touched) {
      if (t.removed) continue;
      const overrides = t.created ? t.c.overrides : this.custom.get(id)?.overrides;
      batch.put(nameKey(t.name), this.encodeMeta(id, t.c, overrides));
    }
    if (counterBumped) {
      const k = Buffer.allocUnsafe(4);
      k.writeUInt32BE(this.nextId, 0);
      batch.put(KEY_COUNTER, k);
    }
    try {
      await batch.write({ sync });
    } catch (err) {
      throw wrapFsError(err, 'multiplexed write');
    }
    if (sync) {
      this.dirty = false;
      this.ctx.metrics.fsyncs.inc({ engine: EngineKind.Multiplexed });
    } else this.dirty = true;
    // publish
    for (const [id, t] of touched) {
      if (t.removed) {
        this.ids.delete(t.name);
        this.custom.delete(id);
        continue;
      }
      this.cols.next[id] = t.c.next;
      this.cols.start[id] = t.c.start;
      this.cols.bytes[id] = t.c.bytes;
      this.cols.records[id] = t.c.records;
      if (t.created) {
        this.ids.set(t.name, id);
        if (t.c.overrides && Object.keys(t.c.overrides).length > 0) {
          this.custom.set(id, { overrides: t.c.overrides, config: resolveConfig(this.ctx.defaults, t.c.overrides) });
        }
      }
    }
    // Data of removed shards is cleared after the registry entry is gone (ids are never reused).
    for (const [id, t] of touched) {
      if (t.removed) await db.clear({ gte: dataKey(id, 0), lt: dataKey(id + 1, 0) }).catch(() => {});
    }
    return results;
  }

  private encodeMeta(
    id: number,
    c: { next: number; start: number; bytes: number; records: number },
    overrides: ShardConfig | undefined,
  ): Buffer {
    const json = overrides && Object.keys(overrides).length > 0 ? Buffer.from(JSON.stringify(overrides)) : null;
    const v = Buffer.allocUnsafe(META_FIXED_BYTES + (json?.length ?? 0));
    v.writeUInt32BE(id, 0);
    v.writeDoubleBE(c.next, 4);
    v.writeDoubleBE(c.start, 12);
    v.writeDoubleBE(c.bytes, 20);
    v.writeDoubleBE(c.records, 28);
    json?.copy(v, META_FIXED_BYTES);
    return v;
  }

  async read(name: string, fromOffset: bigint, maxBytes: number): Promise<EngineReadResult> {
    const id = this.id(name);
    const next = this.cols.next[id]!;
    checkOffset(name, fromOffset, BigInt(this.cols.start[id]!), BigInt(next));
    const from = Number(fromOffset);
    if (from === next) return { data: Buffer.alloc(0), nextOffset: fromOffset };
    const db = this.level;
    let firstKey: Buffer | undefined;
    for await (const k of db.keys({ gte: dataKey(id, 0), lte: dataKey(id, from), reverse: true, limit: 1 })) firstKey = k;
    const parts: Buffer[] = [];
    let size = 0;
    let end = from;
    const it = db.values({ gte: firstKey ?? dataKey(id, from), lt: dataKey(id + 1, 0) });
    try {
      outer: for (;;) {
        const vs = await it.nextv(16);
        if (vs.length === 0) break;
        for (const v of vs) {
          const base = Number(v.readBigInt64BE(0));
          if (base >= next || (parts.length > 0 && size + v.length > maxBytes)) break outer;
          parts.push(v);
          size += v.length;
          end = base + v.readInt32BE(BatchField.LastOffsetDelta) + 1;
        }
      }
    } finally {
      await it.close();
    }
    return { data: parts.length === 1 ? parts[0]! : Buffer.concat(parts, size), nextOffset: BigInt(end) };
  }

  earliestOffset(name: string): bigint {
    return BigInt(this.cols.start[this.id(name)]!);
  }

  latestOffset(name: string): bigint {
    return BigInt(this.cols.next[this.id(name)]!);
  }

  stats(name: string): ShardStats {
    const id = this.id(name);
    return { bytes: this.cols.bytes[id]!, records: this.cols.records[id]! };
  }

  async offsetForTimestamp(name: string, timestampMs: number): Promise<bigint | null> {
    const id = this.id(name);
    const start = BigInt(this.cols.start[id]!);
    for await (const v of this.level.values({ gte: dataKey(id, 0), lt: dataKey(id + 1, 0) })) {
      if (Number(v.readBigInt64BE(BatchField.MaxTimestamp)) < timestampMs) continue;
      for (const r of decodeRecordBatch(v, { verifyCrc: false }).records)
        if (r.timestamp >= timestampMs && r.offset >= start) return r.offset;
    }
    return null;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.queue.idle();
    if (this.dirty && this.db) await this.queue.push({ kind: 'sync' }).catch(() => {});
    await this.db?.close();
    this.db = null;
    this.ids.clear();
    this.custom.clear();
  }
}
