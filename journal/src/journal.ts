import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RobustError, isErrno, type Logger, type Registry } from '@robustmq/common';
import { EngineKind, JournalConfigDefaults, resolveConfig, type JournalConfig, type ShardConfig } from './config.js';
import { ShardNotFoundError } from './errors.js';
import { GroupCommitQueue } from './group-commit.js';
import { JournalMetrics, type EngineCounters } from './metrics.js';
import { MemoryEngine } from './memory-engine.js';
import { SegmentEngine } from './segment-engine.js';
import { CompactedEngine } from './compacted-engine.js';
import { MultiplexedEngine } from './multiplexed-engine.js';
import { validateBatches } from './record-batch.js';
import type { AppendInput, AppendResult, EngineContext, ShardDefinition, StorageEngine } from './storage-engine.js';
import { wrapFsError, writeFileAtomic } from './fs-util.js';

export type { AppendResult } from './storage-engine.js';

export interface CreateShardOptions {
  /** Storage engine (default `segment`). */
  engine?: EngineKind;
  /** Per-shard overrides of the journal configuration. */
  config?: ShardConfig;
}

export interface ShardInfo {
  name: string;
  engine: EngineKind;
  /** The overrides given at creation. */
  config: ShardConfig;
  earliestOffset: bigint;
  /** Next offset to be written (high watermark). */
  latestOffset: bigint;
  bytes: number;
  records: number;
}

export interface ReadOptions {
  /** Soft limit of returned bytes; the first batch is returned whole even if larger (default 1 MiB). */
  maxBytes?: number;
  /** Long poll: wait up to this long for data when there is none yet (default 0; Infinity allowed). */
  maxWaitMs?: number;
  signal?: AbortSignal;
}

export interface ReadResult {
  /** Whole stored record batches (possibly empty, never null), starting with the one containing fromOffset. */
  data: Buffer;
  /** Offset to read from next. */
  nextOffset: bigint;
  earliestOffset: bigint;
  latestOffset: bigint;
  /**
   * Optional: hands the buffer behind `data` back for reuse by later reads. Call it once nothing
   * refers to `data` any more (e.g. after it was written to a socket), or never: then it is
   * collected as usual. Using `data` after calling it reads someone else's bytes.
   */
  release?: () => void;
}

export interface SubscribeOptions {
  maxBytes?: number;
  /** Ends the subscription (the iterator returns). */
  signal?: AbortSignal;
}

/**
 * The journal's API: what the in-process server uses and what the gRPC client implements.
 * Everything is async; inputs and outputs are plain data (Buffers, bigints, strings).
 */
export interface JournalClient {
  createShard(name: string, opts?: CreateShardOptions): Promise<ShardInfo>;
  deleteShard(name: string): Promise<void>;
  getShard(name: string): Promise<ShardInfo>;
  listShards(opts?: { prefix?: string }): Promise<ShardInfo[]>;
  /** Appends one or more whole RecordBatch v2 (validated; baseOffset overwritten in place). */
  append(shard: string, batch: Buffer): Promise<AppendResult>;
  read(shard: string, fromOffset: bigint, opts?: ReadOptions): Promise<ReadResult>;
  earliestOffset(shard: string): Promise<bigint>;
  latestOffset(shard: string): Promise<bigint>;
  /** First offset whose record timestamp is ≥ timestampMs, or null if there is none. */
  offsetForTimestamp(shard: string, timestampMs: number): Promise<bigint | null>;
  /** Makes `offset` the earliest readable offset; returns the new earliest offset. */
  deleteRecordsBefore(shard: string, offset: bigint): Promise<bigint>;
  /**
   * Replaces a shard's per-shard overrides (`config` is the complete new set; keys left out fall
   * back to the journal defaults) and applies them at once: retention is enforced immediately,
   * size limits apply to the next append. ShardInvalid for bad values or an engine that cannot
   * be reconfigured (multiplexed).
   */
  updateShardConfig(shard: string, config: ShardConfig): Promise<ShardInfo>;
  /** Yields reads from `fromOffset` on, woken by appends; ends when the signal aborts. */
  subscribe(shard: string, fromOffset: bigint, opts?: SubscribeOptions): AsyncIterable<ReadResult>;
}

export interface JournalOptions {
  dataDir: string;
  logger: Logger;
  registry: Registry;
  /** Journal-wide defaults (`journal.*` server keys); shards may override them. */
  config?: ShardConfig;
}

const DEFAULT_READ_MAX_BYTES = 1024 * 1024;
const REGISTRY_FILE = 'shards.json';
const MAX_NAME_LENGTH = 255;

interface Waiter {
  from: bigint;
  wake: (err?: unknown) => void;
}

/**
 * The storage engine of RobustMQ: named shards on one of four engines under one data directory.
 *
 * How this works: the Journal validates batches (magic, CRC, size) once for all engines, routes
 * each shard to its engine, and runs long polls. A read that finds no data parks a waiter on the
 * shard; `append` wakes the shard's waiters after the engine has made the data readable, so no
 * reader ever polls or sleeps. Definitions of segment/memory/compacted shards are kept in
 * `shards.json` (rewritten atomically); the multiplexed engine keeps its own registry.
 */
export class Journal implements JournalClient {
  readonly config: JournalConfig;
  private readonly dataDir: string;
  private readonly log: Logger;
  private readonly metrics: JournalMetrics;
  private readonly counters: Record<EngineKind, EngineCounters>;
  private readonly engines: Record<EngineKind, StorageEngine>;
  private readonly engineList: readonly StorageEngine[];
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly creating = new Set<string>();
  private readonly registryWrites: GroupCommitQueue<null, null>;
  private opened = false;
  private closed = false;

  constructor(opts: JournalOptions) {
    this.dataDir = opts.dataDir;
    this.log = opts.logger.child({ component: 'journal' });
    this.metrics = new JournalMetrics(opts.registry);
    this.config = resolveConfig(JournalConfigDefaults, opts.config);
    this.counters = {
      segment: this.metrics.forEngine(EngineKind.Segment),
      memory: this.metrics.forEngine(EngineKind.Memory),
      compacted: this.metrics.forEngine(EngineKind.Compacted),
      multiplexed: this.metrics.forEngine(EngineKind.Multiplexed),
    };
    const ctx = (sub: string): EngineContext => ({
      dir: join(opts.dataDir, sub),
      log: this.log,
      metrics: this.metrics,
      defaults: this.config,
    });
    this.engines = {
      segment: new SegmentEngine(ctx('segment')),
      memory: new MemoryEngine(ctx('memory')),
      compacted: new CompactedEngine(ctx('compacted')),
      multiplexed: new MultiplexedEngine(ctx('multiplexed')),
    };
    this.engineList = Object.values(this.engines);
    this.registryWrites = new GroupCommitQueue(async (items) => {
      await this.writeRegistry();
      return items.map(() => null);
    });
  }

  /** Opens (and recovers) every engine. Call once before anything else. */
  async open(): Promise<void> {
    if (this.opened) return;
    try {
      await mkdir(this.dataDir, { recursive: true });
    } catch (err) {
      throw new RobustError(ErrorCode.DataDirUnusable, `cannot create data directory ${this.dataDir}`, { cause: err });
    }
    const defs = await this.readRegistry();
    for (const engine of Object.values(this.engines)) {
      await engine.open(defs.filter((d) => d.engine === engine.kind));
      let n = 0;
      for (const _ of engine.names()) n++;
      this.metrics.shards.inc({ engine: engine.kind }, n);
    }
    this.opened = true;
    this.log.info({ dataDir: this.dataDir, shards: defs.length }, 'journal opened');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [, set] of this.waiters) for (const w of set) w.wake(this.closedError());
    this.waiters.clear();
    await this.registryWrites.idle();
    for (const engine of Object.values(this.engines)) {
      let n = 0;
      for (const _ of engine.names()) n++;
      this.metrics.shards.dec({ engine: engine.kind }, n);
      await engine.close();
    }
    this.log.info({ dataDir: this.dataDir }, 'journal closed');
  }

  // -------------------------------------------------------------------------------------------
  // shards

  async createShard(name: string, opts: CreateShardOptions = {}): Promise<ShardInfo> {
    this.assertOpen();
    validateName(name);
    const kind = opts.engine ?? EngineKind.Segment;
    const engine = this.engines[kind];
    if (!engine) throw new RobustError(ErrorCode.ShardInvalid, `unknown engine ${String(kind)}`);
    const overrides = { ...(opts.config ?? {}) };
    resolveConfig(this.config, overrides); // validate before touching disk
    if (this.findEngine(name) || this.creating.has(name)) {
      throw new RobustError(ErrorCode.ShardExists, `shard ${name} already exists`);
    }
    this.creating.add(name);
    try {
      await engine.create(name, overrides);
      if (kind !== EngineKind.Multiplexed) await this.registryWrites.push(null);
    } finally {
      this.creating.delete(name);
    }
    this.metrics.shards.inc({ engine: kind });
    this.log.debug({ shard: name, engine: kind }, 'shard created');
    return this.info(name, engine);
  }

  async updateShardConfig(name: string, config: ShardConfig): Promise<ShardInfo> {
    this.assertOpen();
    const engine = this.engineOf(name);
    const overrides = { ...config };
    resolveConfig(this.config, overrides); // validate before changing anything
    if (engine.reconfigure === undefined) {
      throw new RobustError(ErrorCode.ShardInvalid, `shards of the ${engine.kind} engine cannot be reconfigured (shard ${name})`);
    }
    await engine.reconfigure(name, overrides);
    await this.registryWrites.push(null);
    this.log.info({ shard: name, config: overrides }, 'shard reconfigured');
    return this.info(name, engine);
  }

  async deleteShard(name: string): Promise<void> {
    this.assertOpen();
    const engine = this.engineOf(name);
    await engine.remove(name);
    if (engine.kind !== EngineKind.Multiplexed) await this.registryWrites.push(null);
    this.metrics.shards.dec({ engine: engine.kind });
    const set = this.waiters.get(name);
    if (set) for (const w of set) w.wake(new ShardNotFoundError(name));
    this.waiters.delete(name);
    this.log.debug({ shard: name }, 'shard deleted');
  }

  async getShard(name: string): Promise<ShardInfo> {
    this.assertOpen();
    return this.info(name, this.engineOf(name));
  }

  async listShards(opts: { prefix?: string } = {}): Promise<ShardInfo[]> {
    this.assertOpen();
    const out: ShardInfo[] = [];
    for (const engine of Object.values(this.engines)) {
      for (const name of engine.names()) {
        if (opts.prefix === undefined || name.startsWith(opts.prefix)) out.push(this.info(name, engine));
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  // -------------------------------------------------------------------------------------------
  // data

  append(shard: string, batch: Buffer): Promise<AppendResult> {
    try {
      this.assertOpen();
      const engine = this.engineOf(shard);
      const config = engine.config(shard);
      if (batch.length > config.maxBatchBytes) {
        throw new RobustError(
          ErrorCode.BatchTooLarge,
          `append of ${batch.length} bytes exceeds maxBatchBytes ${config.maxBatchBytes} of shard ${shard}`,
        );
      }
      const buf = batch;
      const batches = validateBatches(buf);
      let offsetSpan = 0;
      let records = 0;
      for (const b of batches) {
        offsetSpan += b.lastOffsetDelta + 1;
        records += b.recordCount;
      }
      const input: AppendInput = { buf, batches, offsetSpan, records };
      // An engine that can complete the append at once (a page-cache write, no fsync to wait
      // for) does so without a promise chain: that is most of an append's fixed cost.
      const now = engine.appendNow?.(shard, input);
      if (now !== undefined) {
        this.appended(engine.kind, shard, input);
        return Promise.resolve(now);
      }
      return engine.append(shard, input).then((result) => {
        this.appended(engine.kind, shard, input);
        return result;
      });
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  private appended(kind: EngineKind, shard: string, input: AppendInput): void {
    const m = this.counters[kind];
    m.appendBytes.inc(input.buf.length);
    m.appendRecords.inc(input.records);
    m.appendBatches.inc(input.batches.length);
    this.wake(shard);
  }

  async read(shard: string, fromOffset: bigint, opts: ReadOptions = {}): Promise<ReadResult> {
    const maxBytes = opts.maxBytes ?? DEFAULT_READ_MAX_BYTES;
    const maxWaitMs = opts.maxWaitMs ?? 0;
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      this.assertOpen();
      opts.signal?.throwIfAborted();
      const engine = this.engineOf(shard);
      const r = await engine.read(shard, fromOffset, maxBytes);
      const remaining = deadline - Date.now();
      if (r.data.length > 0 || r.nextOffset > fromOffset || remaining <= 0) {
        this.counters[engine.kind].readBytes.inc(r.data.length);
        const out: ReadResult = {
          data: r.data,
          nextOffset: r.nextOffset,
          earliestOffset: engine.earliestOffset(shard),
          latestOffset: engine.latestOffset(shard),
        };
        if (r.release !== undefined) out.release = r.release;
        return out;
      }
      if (!(await this.waitForData(shard, engine, fromOffset, remaining, opts.signal))) {
        return {
          data: Buffer.alloc(0),
          nextOffset: fromOffset,
          earliestOffset: engine.earliestOffset(shard),
          latestOffset: engine.latestOffset(shard),
        };
      }
    }
  }

  async *subscribe(shard: string, fromOffset: bigint, opts: SubscribeOptions = {}): AsyncGenerator<ReadResult> {
    let next = fromOffset;
    const signal = opts.signal;
    while (!signal?.aborted) {
      let r: ReadResult;
      try {
        r = await this.read(shard, next, { maxBytes: opts.maxBytes, maxWaitMs: Infinity, signal });
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      next = r.nextOffset;
      if (r.data.length > 0) yield r;
    }
  }

  async earliestOffset(shard: string): Promise<bigint> {
    this.assertOpen();
    return this.engineOf(shard).earliestOffset(shard);
  }

  async latestOffset(shard: string): Promise<bigint> {
    this.assertOpen();
    return this.engineOf(shard).latestOffset(shard);
  }

  async offsetForTimestamp(shard: string, timestampMs: number): Promise<bigint | null> {
    this.assertOpen();
    return this.engineOf(shard).offsetForTimestamp(shard, timestampMs);
  }

  async deleteRecordsBefore(shard: string, offset: bigint): Promise<bigint> {
    this.assertOpen();
    return this.engineOf(shard).deleteRecordsBefore(shard, offset);
  }

  // -------------------------------------------------------------------------------------------
  // internals

  /**
   * Parks until the shard's high watermark passes `from`, the time runs out (→ false), the shard
   * is deleted or the journal closes (→ rejects), or the signal aborts (→ rejects with Aborted).
   */
  private waitForData(shard: string, engine: StorageEngine, from: bigint, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let set = this.waiters.get(shard);
      if (!set) this.waiters.set(shard, (set = new Set()));
      let timer: NodeJS.Timeout | undefined;
      const done = (err: unknown, woke: boolean): void => {
        set.delete(waiter);
        if (set.size === 0 && this.waiters.get(shard) === set) this.waiters.delete(shard);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.metrics.waitingReads.dec();
        if (err) reject(err);
        else resolve(woke);
      };
      const waiter: Waiter = { from, wake: (err) => done(err, true) };
      const onAbort = (): void => done(new RobustError(ErrorCode.Aborted, 'read aborted', { cause: signal?.reason }), false);
      set.add(waiter);
      this.metrics.waitingReads.inc();
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => done(undefined, false), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) return onAbort();
      // An append may have landed between the engine's read and this registration.
      if (engine.latestOffset(shard) > from) done(undefined, true);
    });
  }

  private wake(shard: string): void {
    const set = this.waiters.get(shard);
    if (!set) return;
    const latest = this.findEngine(shard)?.latestOffset(shard);
    for (const w of set) if (latest === undefined || latest > w.from) w.wake();
  }

  private info(name: string, engine: StorageEngine): ShardInfo {
    const stats = engine.stats(name);
    return {
      name,
      engine: engine.kind,
      config: engine.overrides(name),
      earliestOffset: engine.earliestOffset(name),
      latestOffset: engine.latestOffset(name),
      bytes: stats.bytes,
      records: stats.records,
    };
  }

  private findEngine(name: string): StorageEngine | undefined {
    // on every append and read: a fixed list, no Object.values() array per call
    for (const engine of this.engineList) if (engine.has(name)) return engine;
    return undefined;
  }

  private engineOf(name: string): StorageEngine {
    const engine = this.findEngine(name);
    if (!engine) throw new ShardNotFoundError(name);
    return engine;
  }

  private assertOpen(): void {
    if (this.closed) throw this.closedError();
    if (!this.opened) throw new RobustError(ErrorCode.EngineClosed, 'journal is not open yet (call open())');
  }

  private closedError(): RobustError {
    return new RobustError(ErrorCode.EngineClosed, 'journal is closed');
  }

  private async readRegistry(): Promise<ShardDefinition[]> {
    let text: string;
    try {
      text = await readFile(join(this.dataDir, REGISTRY_FILE), 'utf8');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return [];
      throw wrapFsError(err, `read ${REGISTRY_FILE}`);
    }
    try {
      const parsed = JSON.parse(text) as { shards: ShardDefinition[] };
      return parsed.shards;
    } catch (err) {
      throw new RobustError(ErrorCode.CorruptSegment, `shard registry ${join(this.dataDir, REGISTRY_FILE)} is not valid JSON`, {
        cause: err,
      });
    }
  }

  /** Rewrites shards.json atomically (temp file, fsync, rename, fsync directory). */
  private async writeRegistry(): Promise<void> {
    const shards: ShardDefinition[] = [];
    for (const engine of Object.values(this.engines)) {
      if (engine.kind === EngineKind.Multiplexed) continue;
      for (const name of engine.names()) shards.push({ name, engine: engine.kind, config: engine.overrides(name) });
    }
    await writeFileAtomic(join(this.dataDir, REGISTRY_FILE), JSON.stringify({ version: 1, shards }, null, 1));
  }
}

function validateName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || name.includes('\0')) {
    throw new RobustError(ErrorCode.ShardInvalid, `invalid shard name ${JSON.stringify(name)} (1–${MAX_NAME_LENGTH} characters, no NUL)`);
  }
}
