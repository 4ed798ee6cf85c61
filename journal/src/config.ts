import { ErrorCode, RobustError } from '@robustmq/common';

/** When appended data is flushed to stable storage. */
export const FsyncPolicy = { Always: 'always', Interval: 'interval', Never: 'never' } as const;
export type FsyncPolicy = (typeof FsyncPolicy)[keyof typeof FsyncPolicy];

/** Storage engine of a shard. */
export const EngineKind = {
  Segment: 'segment',
  Memory: 'memory',
  Multiplexed: 'multiplexed',
  Compacted: 'compacted',
} as const;
export type EngineKind = (typeof EngineKind)[keyof typeof EngineKind];

/**
 * Journal configuration (server keys `journal.<name>`); every key is also a per-shard override.
 * Units are in the names. −1 means "no limit" where noted. Documented in journal/README.md.
 */
export const JournalConfigDefaults = {
  /** segment: roll the active segment when it would exceed this size. */
  segmentBytes: 1024 * 1024 * 1024,
  /** segment: roll the active segment once its first batch is this old (7 days). */
  segmentMs: 7 * 24 * 3600 * 1000,
  /** segment, multiplexed, compacted: `always` (group commit, ack after fsync), `interval`, `never`. */
  fsyncPolicy: FsyncPolicy.Interval as FsyncPolicy,
  /** `interval` policy: fsync dirty files this often. */
  fsyncIntervalMs: 1000,
  /** segment: delete sealed segments whose newest record is older than this (−1 = keep; 7 days). */
  retentionMs: 7 * 24 * 3600 * 1000,
  /** segment: delete oldest sealed segments while the shard is larger than this (−1 = no limit). */
  retentionBytes: -1,
  /** segment: how often retention is enforced (it is also checked on every segment roll). */
  retentionCheckIntervalMs: 5 * 60 * 1000,
  /** all engines: largest accepted append (one or more batches). */
  maxBatchBytes: 1024 * 1024 + 12,
  /** segment: bytes of log between two sparse offset/time index entries. */
  indexIntervalBytes: 4096,
  /** segment: verify each batch's CRC on read (detects silent corruption; costs read bandwidth). */
  verifyReads: true,
  /**
   * segment: copy appended bytes into the page cache with a synchronous write on the event loop
   * (no thread-pool round trip, which costs ~30 µs of CPU per append); fsyncs still run on the
   * thread pool. Turn off when the data disk can stall plain writes for long (network storage).
   */
  inlineWrites: true,
  /** memory: evict the oldest batches beyond this many bytes. */
  memoryMaxBytes: 64 * 1024 * 1024,
  /** memory: evict the oldest batches beyond this many records. */
  memoryMaxRecords: 1_000_000,
  /** compacted: rewrite the log when dead bytes exceed this fraction of it (and 1 MiB). */
  compactionDirtyRatio: 0.5,
};
export type JournalConfig = typeof JournalConfigDefaults;
/** Per-shard overrides of the journal configuration. */
export type ShardConfig = Partial<JournalConfig>;

const positiveInts: readonly (keyof JournalConfig)[] = [
  'segmentBytes',
  'segmentMs',
  'fsyncIntervalMs',
  'retentionCheckIntervalMs',
  'maxBatchBytes',
  'indexIntervalBytes',
  'memoryMaxBytes',
  'memoryMaxRecords',
];

/** Merges overrides over `base`, rejecting unknown keys and bad values with ShardInvalid. */
export function resolveConfig(base: JournalConfig, overrides: ShardConfig = {}): JournalConfig {
  const problems: string[] = [];
  for (const key of Object.keys(overrides)) {
    if (!(key in JournalConfigDefaults)) problems.push(`unknown config key ${key}`);
  }
  const c = { ...base, ...overrides };
  for (const key of positiveInts) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) problems.push(`${key} must be a positive integer`);
  }
  for (const key of ['retentionMs', 'retentionBytes'] as const) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < -1 || v === 0) problems.push(`${key} must be −1 or positive`);
  }
  if (!Object.values(FsyncPolicy).includes(c.fsyncPolicy)) problems.push(`fsyncPolicy must be always, interval or never`);
  if (typeof c.verifyReads !== 'boolean') problems.push('verifyReads must be a boolean');
  if (typeof c.inlineWrites !== 'boolean') problems.push('inlineWrites must be a boolean');
  if (!(c.compactionDirtyRatio > 0 && c.compactionDirtyRatio < 1)) problems.push('compactionDirtyRatio must be in (0, 1)');
  if (problems.length > 0) throw new RobustError(ErrorCode.ShardInvalid, `invalid shard config: ${problems.join('; ')}`);
  return c;
}
