import { join } from 'node:path';
import { EngineKind, resolveConfig, type JournalConfig, type ShardConfig } from './config.js';
import { ShardNotFoundError } from './errors.js';
import { shardDirName } from './fs-util.js';
import { SegmentLog } from './segment-log.js';
import type {
  AppendInput,
  AppendResult,
  EngineContext,
  EngineReadResult,
  ShardDefinition,
  ShardStats,
  StorageEngine,
} from './storage-engine.js';

/** Kafka-like segment files, one directory per shard under `<dataDir>/segment/`. */
export class SegmentEngine implements StorageEngine {
  readonly kind = EngineKind.Segment;
  private readonly ctx: EngineContext;
  private readonly logs = new Map<string, SegmentLog>();

  constructor(ctx: EngineContext) {
    this.ctx = ctx;
  }

  async open(shards: readonly ShardDefinition[]): Promise<void> {
    for (const d of shards) await this.openLog(d.name, d.config, false);
  }

  private async openLog(name: string, overrides: ShardConfig, fresh: boolean): Promise<void> {
    const config: JournalConfig = resolveConfig(this.ctx.defaults, overrides);
    const dir = join(this.ctx.dir, shardDirName(name));
    this.logs.set(name, await SegmentLog.open(name, dir, config, overrides, this.ctx.log, this.ctx.metrics, fresh));
  }

  has(name: string): boolean {
    return this.logs.has(name);
  }

  names(): Iterable<string> {
    return this.logs.keys();
  }

  private shard(name: string): SegmentLog {
    const l = this.logs.get(name);
    if (!l) throw new ShardNotFoundError(name);
    return l;
  }

  create(name: string, overrides: ShardConfig): Promise<void> {
    return this.openLog(name, overrides, true);
  }

  async remove(name: string): Promise<void> {
    const l = this.shard(name);
    this.logs.delete(name);
    await l.destroy();
  }

  append(name: string, input: AppendInput): Promise<AppendResult> {
    return this.shard(name).append(input);
  }

  appendNow(name: string, input: AppendInput): AppendResult | undefined {
    return this.shard(name).appendNow(input);
  }

  read(name: string, fromOffset: bigint, maxBytes: number): Promise<EngineReadResult> {
    return this.shard(name).read(fromOffset, maxBytes);
  }

  earliestOffset(name: string): bigint {
    return this.shard(name).logStart;
  }

  latestOffset(name: string): bigint {
    return this.shard(name).hw;
  }

  stats(name: string): ShardStats {
    return this.shard(name).stats();
  }

  config(name: string): JournalConfig {
    return this.shard(name).config;
  }

  overrides(name: string): ShardConfig {
    return this.shard(name).overrides;
  }

  async reconfigure(name: string, overrides: ShardConfig): Promise<void> {
    await this.shard(name).reconfigure(resolveConfig(this.ctx.defaults, overrides), overrides);
  }

  offsetForTimestamp(name: string, timestampMs: number): Promise<bigint | null> {
    return this.shard(name).offsetForTimestamp(timestampMs);
  }

  deleteRecordsBefore(name: string, offset: bigint): Promise<bigint> {
    return this.shard(name).deleteRecordsBefore(offset);
  }

  /** Runs retention on every shard now (tests and admin; it also runs on a timer and on roll). */
  async enforceRetention(now = Date.now()): Promise<void> {
    for (const l of this.logs.values()) await l.enforceRetention(now);
  }

  async close(): Promise<void> {
    for (const l of this.logs.values()) await l.close();
    this.logs.clear();
  }
}
