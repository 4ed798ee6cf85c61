/**
 * @robustmq/meta — cluster metadata on Raft. The Raft core is a pure, deterministic state machine
 * in the shape of etcd's raft library: RawNode (tick/step/propose → Ready → advance), a Storage
 * interface with MemoryStorage, single-server membership changes and ReadIndex reads.
 */
export * from './raft/index.js';

// The meta service around the core: KV state machine, WAL, Multi-Raft node, gRPC.
export {
  KvStore,
  CompactedError,
  LeaseNotFoundError,
  type KeyValue,
  type KvCommand,
  type KvResult,
  type WatchEvent,
  type PutResult,
  type RangeResult,
  type DeleteResult,
  type TxnResult,
  type Compare,
  type RequestOp,
} from './kv/kv-store.js';
export { prefixEnd } from './kv/sorted-keys.js';
export type { MetaClient, MetaStatus, GroupStatus, WatchBatch, WatchOptions } from './client.js';
export { MetaNode, MEMBERS_PREFIX, type MetaNodeOptions } from './node/meta-node.js';
export { NotLeaderError } from './node/raft-group.js';
export { Keyspace } from './node/keyspace.js';
export { LocalNetwork, type RaftTransport, type Envelope } from './node/transport.js';
export { GrpcRaftTransport } from './grpc/grpc-transport.js';
export { createMetaService } from './grpc/meta-service.js';
export { GrpcMetaClient } from './grpc/grpc-meta-client.js';
export { RaftWal } from './storage/raft-wal.js';
