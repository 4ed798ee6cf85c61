import type { Logger } from '@robustmq/common';
import type { EngineKind, JournalConfig, ShardConfig } from './config.js';
import type { JournalMetrics } from './metrics.js';
import type { BatchSummary } from './record-batch.js';
import { OffsetOutOfRangeError } from './errors.js';

/** A validated append: one or more whole batches in `buf`, offsets not yet assigned. */
export interface AppendInput {
  buf: Buffer;
  batches: BatchSummary[];
  /** Offsets the append consumes (sum of lastOffsetDelta + 1). */
  offsetSpan: number;
  /** Records in the append. */
  records: number;
}

export interface AppendResult {
  baseOffset: bigint;
  lastOffset: bigint;
}

/** Whole batches starting with the one containing the requested offset. */
export interface EngineReadResult {
  data: Buffer;
  /** Offset to read from next: after the last returned batch (or further, past compacted gaps). */
  nextOffset: bigint;
  /** Lets the engine reuse the buffer behind `data` (see ReadResult.release). */
  release?: () => void;
}

/** What the registry persists about a shard. */
export interface ShardDefinition {
  name: string;
  engine: EngineKind;
  config: ShardConfig;
}

export interface ShardStats {
  bytes: number;
  records: number;
}

export interface EngineContext {
  dir: string;
  log: Logger;
  metrics: JournalMetrics;
  defaults: JournalConfig;
}

/**
 * One storage mechanism holding many shards, addressed by name. The Journal validates input,
 * routes each shard to its engine, and runs long polls; engines store and serve bytes.
 * Offsets are checked by the engine (retention can move them at any time).
 */
export interface StorageEngine {
  readonly kind: EngineKind;
  /**
   * Loads persisted state (recovery happens here). `shards` are this engine's shards from the
   * journal's registry; an engine that keeps its own registry (multiplexed) ignores it.
   */
  open(shards: readonly ShardDefinition[]): Promise<void>;
  has(name: string): boolean;
  /** Names of this engine's shards, for listing. */
  names(): Iterable<string>;
  create(name: string, overrides: ShardConfig): Promise<void>;
  remove(name: string): Promise<void>;
  append(name: string, input: AppendInput): Promise<AppendResult>;
  /**
   * Completes the append synchronously when the engine can (nothing queued before it, no fsync
   * to wait for); undefined means "use append". Throws what append would reject with.
   */
  appendNow?(name: string, input: AppendInput): AppendResult | undefined;
  read(name: string, fromOffset: bigint, maxBytes: number): Promise<EngineReadResult>;
  earliestOffset(name: string): bigint;
  /** Next offset to be written (the high watermark: everything below it is readable). */
  latestOffset(name: string): bigint;
  stats(name: string): ShardStats;
  config(name: string): JournalConfig;
  overrides(name: string): ShardConfig;
  /**
   * Replaces the shard's overrides (already validated) and applies them at once: retention
   * limits are enforced immediately, size limits apply to the next append. Absent when the
   * engine cannot change a shard's settings after creation.
   */
  reconfigure?(name: string, overrides: ShardConfig): Promise<void>;
  offsetForTimestamp(name: string, timestampMs: number): Promise<bigint | null>;
  deleteRecordsBefore(name: string, offset: bigint): Promise<bigint>;
  close(): Promise<void>;
}

/** Throws OffsetOutOfRangeError unless earliest ≤ offset ≤ latest. */
export function checkOffset(name: string, offset: bigint, earliest: bigint, latest: bigint): void {
  if (offset < earliest || offset > latest) throw new OffsetOutOfRangeError(name, offset, earliest, latest);
}

/** Writes the assigned offsets into each batch's baseOffset field; returns the first and last. */
export function assignOffsets(input: AppendInput, next: bigint): AppendResult {
  let o = next;
  for (const b of input.batches) {
    input.buf.writeBigInt64BE(o, b.position);
    o += BigInt(b.lastOffsetDelta + 1);
  }
  return { baseOffset: next, lastOffset: o - 1n };
}
