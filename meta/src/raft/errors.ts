import { ErrorCode, RobustError } from '@robustmq/common';

/** The requested index is at or below the storage's compaction point (it lives in a snapshot now). */
export class LogCompactedError extends RobustError {
  readonly index: number;
  constructor(index: number, firstIndex: number) {
    super(ErrorCode.OffsetOutOfRange, `log index ${index} is compacted (first index ${firstIndex})`);
    this.index = index;
  }
}

/** The requested index is past the end of the storage's log. */
export class LogUnavailableError extends RobustError {
  readonly index: number;
  constructor(index: number, lastIndex: number) {
    super(ErrorCode.OffsetOutOfRange, `log index ${index} is unavailable (last index ${lastIndex})`);
    this.index = index;
  }
}

/** A snapshot older than (or as old as) the one already held was offered to storage. */
export class SnapshotOutOfDateError extends RobustError {
  constructor(index: number, current: number) {
    super(ErrorCode.OffsetOutOfRange, `snapshot at index ${index} is not newer than ${current}`);
  }
}

/**
 * A proposal, read or transfer was not accepted because this node is not a leader that can take
 * it now (no known leader, leadership transfer in progress, removed from the group). Retriable;
 * `leaderHint` is the leader this node knows of, or 0.
 */
export class ProposalDroppedError extends RobustError {
  readonly leaderHint: number;
  constructor(reason: string, leaderHint: number) {
    super(ErrorCode.NotLeader, `proposal dropped: ${reason}`, { retriable: true });
    this.leaderHint = leaderHint;
  }
}

/**
 * A membership change was refused by the leader: another change is still unapplied (retriable),
 * or the change makes no sense for the current membership (not retriable).
 */
export class ConfChangeRejectedError extends RobustError {
  constructor(reason: string, retriable: boolean) {
    super(ErrorCode.Aborted, `membership change rejected: ${reason}`, { retriable });
  }
}

/** Internal consistency check; a failure is a bug in the core or a broken Storage, never user input. */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`raft invariant violated: ${message}`);
}
