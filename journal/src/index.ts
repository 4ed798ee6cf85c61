/** @robustmq/journal: the storage engine (shards of records on segment, memory, multiplexed and compacted engines). */
export {
  Journal,
  type JournalClient,
  type JournalOptions,
  type CreateShardOptions,
  type ShardInfo,
  type ReadOptions,
  type ReadResult,
  type SubscribeOptions,
  type AppendResult,
} from './journal.js';
export { JournalConfigDefaults, EngineKind, FsyncPolicy, resolveConfig, type JournalConfig, type ShardConfig } from './config.js';
export {
  CorruptBatchError,
  CorruptSegmentError,
  OffsetOutOfRangeError,
  ShardNotFoundError,
  UnsupportedCompressionError,
} from './errors.js';
export {
  encodeRecordBatch,
  decodeRecordBatch,
  iterateRecords,
  readBatchHeader,
  validateBatches,
  BatchAttribute,
  BatchField,
  Compression,
  BATCH_HEADER_BYTES,
  type EncodeBatchOptions,
  type JournalRecord,
  type RecordBatchHeader,
  type RecordHeader,
  type RecordInput,
} from './record-batch.js';
export { createJournalService, journalServiceError, shardConfigFromOptions } from './grpc/journal-service.js';
export { GrpcJournalClient } from './grpc/grpc-journal-client.js';
