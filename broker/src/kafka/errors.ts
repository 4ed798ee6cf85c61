import { ErrorCode, RobustError } from '@robustmq/common';

/**
 * Kafka error codes this broker sends (Kafka's `Errors` enum; the number is what goes on the
 * wire). One table for the protocol, beside its codec (STYLE §5): everything that can go wrong
 * inside the broker is mapped to one of these by `kafkaErrorOf`.
 */
export const KafkaError = {
  UNKNOWN_SERVER_ERROR: -1,
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  INVALID_FETCH_SIZE: 4,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_OR_FOLLOWER: 6,
  REQUEST_TIMED_OUT: 7,
  MESSAGE_TOO_LARGE: 10,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  INVALID_REQUIRED_ACKS: 21,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  INVALID_COMMIT_OFFSET_SIZE: 28,
  UNSUPPORTED_SASL_MECHANISM: 33,
  ILLEGAL_SASL_STATE: 34,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_REPLICA_ASSIGNMENT: 39,
  INVALID_REQUEST: 42,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  DUPLICATE_SEQUENCE_NUMBER: 46,
  INVALID_PRODUCER_EPOCH: 47,
  INVALID_CONFIG: 40,
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 53,
  SASL_AUTHENTICATION_FAILED: 58,
  UNKNOWN_PRODUCER_ID: 59,
  NON_EMPTY_GROUP: 68,
  GROUP_ID_NOT_FOUND: 69,
  UNSUPPORTED_COMPRESSION_TYPE: 76,
  MEMBER_ID_REQUIRED: 79,
  GROUP_MAX_SIZE_REACHED: 81,
  FENCED_INSTANCE_ID: 82,
  GROUP_SUBSCRIBED_TO_TOPIC: 86,
  UNKNOWN_TOPIC_ID: 100,
  INCONSISTENT_TOPIC_ID: 103,
} as const;
export type KafkaError = (typeof KafkaError)[keyof typeof KafkaError];

/** Kafka request bytes that cannot be parsed; the connection is closed (as Kafka does). */
export class MalformedRequestError extends RobustError {
  constructor(message: string, opts: ErrorOptions = {}) {
    super(ErrorCode.KafkaMalformedRequest, message, opts);
  }
}

/** An API key or version this broker does not advertise; the connection is closed. */
export class UnsupportedApiVersionError extends RobustError {
  readonly apiKey: number;
  readonly apiVersion: number;
  constructor(apiKey: number, apiVersion: number) {
    super(ErrorCode.KafkaUnsupportedVersion, `unsupported Kafka API ${apiKey} version ${apiVersion}`);
    this.apiKey = apiKey;
    this.apiVersion = apiVersion;
  }
}

/** A request frame larger than `kafka.maxRequestBytes` (or with a negative size). */
export class FrameTooLargeError extends RobustError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number) {
    super(ErrorCode.KafkaFrameTooLarge, `Kafka request frame of ${size} bytes exceeds the limit of ${limit}`);
    this.size = size;
    this.limit = limit;
  }
}

/**
 * An error that already knows its Kafka code (raised by the broker's own checks: sequence
 * numbers, group membership, topic names …). The message goes into `error_message` fields.
 */
export class KafkaApiError extends Error {
  readonly kafkaCode: KafkaError;
  constructor(kafkaCode: KafkaError, message: string) {
    super(message);
    this.name = 'KafkaApiError';
    this.kafkaCode = kafkaCode;
  }
}

/** The Kafka error code for anything thrown while serving a request. */
export function kafkaErrorOf(err: unknown): KafkaError {
  if (err instanceof KafkaApiError) return err.kafkaCode;
  if (err instanceof RobustError) {
    switch (err.code) {
      case ErrorCode.CorruptBatch:
        return (err as { codec?: number }).codec !== undefined ? KafkaError.UNSUPPORTED_COMPRESSION_TYPE : KafkaError.CORRUPT_MESSAGE;
      case ErrorCode.Truncated:
        return KafkaError.CORRUPT_MESSAGE;
      case ErrorCode.OffsetOutOfRange:
        return KafkaError.OFFSET_OUT_OF_RANGE;
      case ErrorCode.ShardNotFound:
        return KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
      case ErrorCode.BatchTooLarge:
        return KafkaError.MESSAGE_TOO_LARGE;
      case ErrorCode.NotLeader:
        // clients retry NOT_COORDINATOR / NOT_LEADER instead of giving up (redpanda #3205)
        return KafkaError.NOT_LEADER_OR_FOLLOWER;
      case ErrorCode.Timeout:
        return KafkaError.REQUEST_TIMED_OUT;
      case ErrorCode.ShuttingDown:
      case ErrorCode.EngineClosed:
        return KafkaError.LEADER_NOT_AVAILABLE;
      default:
        return KafkaError.UNKNOWN_SERVER_ERROR;
    }
  }
  return KafkaError.UNKNOWN_SERVER_ERROR;
}
