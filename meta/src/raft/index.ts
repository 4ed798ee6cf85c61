export { RawNode } from './raw-node.js';
export { Raft, type RaftConfig, type Status, type ProgressStatus } from './raft.js';
export { ProgressState } from './progress.js';
export { BOOTSTRAP_HARD_STATE, MemoryStorage, NO_LIMIT, bootstrapSnapshot, entrySize, limitSize, type Storage } from './storage.js';
export { ConfChangeType, changeConfState, decodeConfChange, encodeConfChange, type ConfChange } from './conf-change.js';
export { ConfChangeRejectedError, LogCompactedError, LogUnavailableError, ProposalDroppedError, SnapshotOutOfDateError } from './errors.js';
export { SeededRandom } from './random.js';
export {
  EntryType,
  MessageType,
  NONE,
  Role,
  isEmptyHardState,
  isEmptySnapshot,
  isLocalMessage,
  isResponseMessage,
  makeMessage,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type ReadState,
  type Ready,
  type Snapshot,
  type SnapshotMetadata,
  type SoftState,
} from './types.js';
