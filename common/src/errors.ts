/**
 * Error codes of RobustMQ. Every code has an entry in docs/errors.md (checked by errors.test.ts).
 * Callers branch on `err.code` or `instanceof`, never on the message text.
 */
export const ErrorCode = {
  ConfigInvalid: 'ERR_CONFIG_INVALID',
  DataDirUnusable: 'ERR_DATA_DIR_UNUSABLE',
  DataDirLocked: 'ERR_DATA_DIR_LOCKED',
  PortInUse: 'ERR_PORT_IN_USE',
  ListenFailed: 'ERR_LISTEN_FAILED',
  ShuttingDown: 'ERR_SHUTTING_DOWN',
  Timeout: 'ERR_TIMEOUT',
  NotLeader: 'ERR_NOT_LEADER',
  Compacted: 'ERR_COMPACTED',
  LeaseNotFound: 'ERR_LEASE_NOT_FOUND',
  LeaseExists: 'ERR_LEASE_EXISTS',
  CrossGroup: 'ERR_CROSS_GROUP',
  MembershipRefused: 'ERR_MEMBERSHIP_REFUSED',
  ShardNotFound: 'ERR_SHARD_NOT_FOUND',
  ShardExists: 'ERR_SHARD_EXISTS',
  ShardInvalid: 'ERR_SHARD_INVALID',
  CorruptBatch: 'ERR_CORRUPT_BATCH',
  CorruptSegment: 'ERR_CORRUPT_SEGMENT',
  OffsetOutOfRange: 'ERR_OFFSET_OUT_OF_RANGE',
  BatchTooLarge: 'ERR_BATCH_TOO_LARGE',
  StorageFull: 'ERR_STORAGE_FULL',
  StorageIo: 'ERR_STORAGE_IO',
  EngineClosed: 'ERR_ENGINE_CLOSED',
  Aborted: 'ERR_ABORTED',
  Truncated: 'ERR_TRUNCATED',
  NotFound: 'ERR_NOT_FOUND',
  AlreadyExists: 'ERR_ALREADY_EXISTS',
  Unauthenticated: 'ERR_UNAUTHENTICATED',
  TlsInvalid: 'ERR_TLS_INVALID',
  KafkaMalformedRequest: 'ERR_KAFKA_MALFORMED_REQUEST',
  KafkaUnsupportedVersion: 'ERR_KAFKA_UNSUPPORTED_VERSION',
  KafkaFrameTooLarge: 'ERR_KAFKA_FRAME_TOO_LARGE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error RobustMQ throws on purpose. */
export class RobustError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  constructor(code: ErrorCode, message: string, opts: ErrorOptions & { retriable?: boolean } = {}) {
    super(message, opts);
    this.name = new.target.name;
    this.code = code;
    this.retriable = opts.retriable ?? false;
  }
}

/** A configuration that cannot be used; `problems` lists every problem found, one line each. */
export class ConfigError extends RobustError {
  readonly problems: readonly string[];
  /** The part of the configuration that did validate, for further start-up checks. */
  readonly partial: Readonly<Record<string, unknown>>;
  constructor(problems: readonly string[], partial: Record<string, unknown> = {}) {
    super(ErrorCode.ConfigInvalid, `invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
    this.partial = partial;
  }
}

/** Input ended before a complete value could be read (codecs throw this on truncated bytes). */
export class TruncatedError extends RobustError {
  constructor(what: string) {
    super(ErrorCode.Truncated, `truncated input: ${what}`);
  }
}

/** True when `err` is a Node.js system error with the given errno code (ENOSPC, EADDRINUSE, …). */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
