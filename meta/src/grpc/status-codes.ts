import * as grpc from '@grpc/grpc-js';
import type { meta } from '@robustmq/proto';
import { ErrorCode, RobustError, type ErrorCode as Code } from '@robustmq/common';

/** RobustMQ error codes ↔ gRPC status, one table for the meta service (STYLE §5). */
const toGrpc: Partial<Record<Code, grpc.status>> = {
  [ErrorCode.NotLeader]: grpc.status.UNAVAILABLE,
  [ErrorCode.ShuttingDown]: grpc.status.UNAVAILABLE,
  [ErrorCode.Timeout]: grpc.status.DEADLINE_EXCEEDED,
  [ErrorCode.CrossGroup]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.ConfigInvalid]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.LeaseNotFound]: grpc.status.NOT_FOUND,
  [ErrorCode.LeaseExists]: grpc.status.ALREADY_EXISTS,
  [ErrorCode.Compacted]: grpc.status.OUT_OF_RANGE,
  [ErrorCode.MembershipRefused]: grpc.status.FAILED_PRECONDITION,
  [ErrorCode.StorageIo]: grpc.status.INTERNAL,
  [ErrorCode.StorageFull]: grpc.status.RESOURCE_EXHAUSTED,
};

/** Turns any error into a gRPC ServiceError carrying the RobustMQ code and retriable flag as metadata. */
export function toServiceError(err: unknown): Partial<grpc.StatusObject> {
  const md = new grpc.Metadata();
  if (err instanceof RobustError) {
    md.set('robustmq-code', err.code);
    md.set('robustmq-retriable', String(err.retriable));
    const hint = (err as { leaderHint?: number }).leaderHint;
    if (hint !== undefined) md.set('robustmq-leader', String(hint));
    return { code: toGrpc[err.code] ?? grpc.status.UNKNOWN, details: err.message, metadata: md };
  }
  return { code: grpc.status.INTERNAL, details: (err as Error)?.message ?? String(err), metadata: md };
}

/** Turns a gRPC error back into a RobustError with the code the server sent. */
export function fromServiceError(err: grpc.ServiceError): RobustError {
  const leader = err.metadata?.get('robustmq-leader')[0];
  return robustError({
    grpcCode: err.code,
    message: err.details || err.message,
    code: err.metadata?.get('robustmq-code')[0],
    retriable: err.metadata?.get('robustmq-retriable')[0] === 'true',
    leaderHint: leader === undefined ? undefined : Number(leader),
    cause: err,
  });
}

/** Turns the error of one call of a Batch stream back into a RobustError. */
export function fromBatchError(e: meta.BatchError): RobustError {
  return robustError({
    grpcCode: e.grpcCode,
    message: e.message,
    code: e.robustmqCode,
    retriable: e.retriable,
    leaderHint: e.leaderHint === 0n ? undefined : Number(e.leaderHint),
  });
}

function robustError(e: {
  grpcCode: number;
  message: string;
  code: unknown;
  retriable: boolean;
  leaderHint: number | undefined;
  cause?: unknown;
}): RobustError {
  const known = typeof e.code === 'string' && (Object.values(ErrorCode) as string[]).includes(e.code) ? (e.code as Code) : undefined;
  const err = new RobustError(
    known ?? (e.grpcCode === Number(grpc.status.DEADLINE_EXCEEDED) ? ErrorCode.Timeout : ErrorCode.StorageIo),
    e.message,
    { cause: e.cause, retriable: e.retriable || e.grpcCode === Number(grpc.status.UNAVAILABLE) },
  );
  if (e.leaderHint !== undefined) Object.assign(err, { leaderHint: e.leaderHint });
  return err;
}
