import type { Compare, DeleteResult, KeyValue, PutResult, RangeResult, RequestOp, TxnResult, WatchEvent } from './kv/kv-store.js';

export type { Compare, DeleteResult, KeyValue, PutResult, RangeResult, RequestOp, TxnResult, WatchEvent };

/** One watch's events; `group` and `revision` say where to resume (`startRevision = revision + 1`). */
export interface WatchBatch {
  group: number;
  revision: number;
  events: WatchEvent[];
}

export interface WatchOptions {
  /** Deliver history from this revision (single-group ranges only); 0 = from now. */
  startRevision?: number;
  prevKv?: boolean;
}

export interface GroupStatus {
  group: number;
  leader: number;
  term: number;
  commit: number;
  applied: number;
  revision: number;
  role: string;
  voters: number[];
  learners: number[];
  /** On the leader: each member's replication progress. */
  progress: { id: number; match: number; next: number; lag: number; state: string; learner: boolean }[];
}

export interface MetaStatus {
  nodeId: number;
  clusterId: string;
  members: { id: number; address: string }[];
  groups: GroupStatus[];
}

/**
 * What brokers, journal nodes and the operator use to talk to meta. The all-in-one server
 * implements it in-process (MetaNode); cluster mode implements it over gRPC. Keys are strings;
 * `rangeEnd` "\0" means "every key from `key` on", and `prefixEnd(p)` ends the range of prefix p.
 * Reads are linearizable unless `serializable` is set.
 */
export interface MetaClient {
  put(key: string, value: Buffer, opts?: { lease?: number; prevKv?: boolean }): Promise<PutResult>;
  get(key: string, opts?: { serializable?: boolean }): Promise<KeyValue | undefined>;
  range(key: string, rangeEnd?: string, opts?: { limit?: number; serializable?: boolean }): Promise<RangeResult>;
  delete(key: string, rangeEnd?: string, opts?: { prevKv?: boolean }): Promise<DeleteResult>;
  /** Every key of compare, success and failure must live in one group (ERR_CROSS_GROUP otherwise). */
  txn(t: { compare: Compare[]; success: RequestOp[]; failure: RequestOp[] }): Promise<TxnResult>;
  watch(
    key: string,
    rangeEnd: string | undefined,
    opts: WatchOptions,
    onBatch: (b: WatchBatch) => void,
    onError?: (e: Error) => void,
  ): () => void;
  leaseGrant(ttlMs: number): Promise<{ id: number; ttlMs: number }>;
  leaseKeepAlive(id: number): Promise<{ ttlMs: number }>;
  leaseRevoke(id: number): Promise<void>;
  status(): Promise<MetaStatus>;
  addLearner(nodeId: number, address: string): Promise<void>;
  promote(nodeId: number): Promise<void>;
  removeMember(nodeId: number): Promise<void>;
  transferLeader(group: number, to: number): Promise<void>;
}
