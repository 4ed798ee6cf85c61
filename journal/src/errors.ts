import { ErrorCode, RobustError } from '@robustmq/common';

/** A record batch that fails validation: bad magic, CRC, length or record framing. */
export class CorruptBatchError extends RobustError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super(ErrorCode.CorruptBatch, message, opts);
  }
}

/** A batch compressed with a codec this build cannot decompress (the stored bytes are still served). */
export class UnsupportedCompressionError extends RobustError {
  readonly codec: number;
  constructor(codec: number) {
    super(ErrorCode.CorruptBatch, `unsupported compression codec ${codec}`);
    this.codec = codec;
  }
}

/** Damage found in stored data; `file` and `position` say where. */
export class CorruptSegmentError extends RobustError {
  readonly file: string;
  readonly position: number;
  constructor(file: string, position: number, reason: string, opts: ErrorOptions = {}) {
    super(ErrorCode.CorruptSegment, `corrupt data in ${file} at position ${position}: ${reason}`, opts);
    this.file = file;
    this.position = position;
  }
}

/** A read or delete at an offset outside [earliestOffset, latestOffset]. */
export class OffsetOutOfRangeError extends RobustError {
  readonly shard: string;
  readonly offset: bigint;
  readonly earliestOffset: bigint;
  readonly latestOffset: bigint;
  constructor(shard: string, offset: bigint, earliestOffset: bigint, latestOffset: bigint) {
    super(ErrorCode.OffsetOutOfRange, `offset ${offset} of shard ${shard} is out of range [${earliestOffset}, ${latestOffset}]`);
    this.shard = shard;
    this.offset = offset;
    this.earliestOffset = earliestOffset;
    this.latestOffset = latestOffset;
  }
}

/** The named shard does not exist (or was deleted while the caller waited on it). */
export class ShardNotFoundError extends RobustError {
  readonly shard: string;
  constructor(shard: string) {
    super(ErrorCode.ShardNotFound, `shard ${shard} not found`);
    this.shard = shard;
  }
}
