import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ErrorCode, RobustError, isErrno, type Logger, type Registry } from '@robustmq/common';
import type { GroupStatus, MetaClient, MetaStatus, WatchBatch, WatchOptions } from '../client.js';
import type { Compare, DeleteResult, KeyValue, LeaseResult, PutResult, RangeResult, RequestOp, TxnResult } from '../kv/kv-store.js';
import { prefixEnd } from '../kv/sorted-keys.js';
import { ConfChangeType } from '../raft/conf-change.js';
import type { Message } from '../raft/types.js';
import { Keyspace } from './keyspace.js';
import { createMetaMetrics, type MetaMetrics } from './metrics.js';
import { NotLeaderError, RaftGroup } from './raft-group.js';
import type { Envelope, RaftTransport } from './transport.js';

export const MEMBERS_PREFIX = '/meta/members/';

export interface MetaNodeOptions {
  nodeId: number;
  /** This node's meta directory (groups live in `group-<n>/`). */
  dir: string;
  log: Logger;
  registry: Registry;
  transport: RaftTransport;
  /** This node's address as peers reach it (host:port of its gRPC server). */
  address: string;
  /**
   * The initial members (id → address) of a new cluster. Used only when this node's disk is
   * empty and `join` is false: then, and only then, a cluster is bootstrapped.
   */
  initialMembers?: ReadonlyMap<number, string>;
  /** Start empty and wait to be added to an existing cluster; never bootstraps. */
  join?: boolean;
  clusterId?: string;
  sessionGroups?: number;
  offsetGroups?: number;
  tickMs?: number;
  electionTick?: number;
  snapshotEntries?: number;
  proposalTimeoutMs?: number;
  /**
   * WAL space each group keeps zero-filled ahead of its writes, so an fsync flushes data only
   * instead of also committing the filesystem's journal. Default 4 MiB; 0 = plain appends.
   */
  walPreallocateBytes?: number;
}

interface ClusterFile {
  clusterId: string;
  nodeId: number;
  sessionGroups: number;
  offsetGroups: number;
}

/**
 * A meta node: the Raft groups this process hosts (one per keyspace part), the shared transport,
 * and the MetaClient API on top. In the all-in-one server it is the MetaClient brokers use,
 * in-process; in a cluster the gRPC service wraps it.
 */
export class MetaNode implements MetaClient {
  readonly nodeId: number;
  readonly clusterId: string;
  readonly keyspace: Keyspace;
  readonly #opts: MetaNodeOptions;
  readonly #groups: RaftGroup[];
  readonly #transport: RaftTransport;
  readonly #outbox = new Map<number, Envelope[]>();
  #flushScheduled = false;
  #ticker: NodeJS.Timeout | undefined;
  readonly #members = new Map<number, string>();
  #stopMembersWatch: (() => void) | undefined;
  #closed = false;

  private constructor(opts: MetaNodeOptions, cluster: ClusterFile, groups: RaftGroup[]) {
    this.nodeId = opts.nodeId;
    this.clusterId = cluster.clusterId;
    this.keyspace = new Keyspace(cluster.sessionGroups, cluster.offsetGroups);
    this.#opts = opts;
    this.#groups = groups;
    this.#transport = opts.transport;
  }

  static async open(opts: MetaNodeOptions): Promise<MetaNode> {
    await mkdir(opts.dir, { recursive: true });
    const clusterPath = join(opts.dir, 'cluster.json');
    let cluster: ClusterFile | undefined;
    try {
      cluster = JSON.parse(await readFile(clusterPath, 'utf8')) as ClusterFile;
    } catch (err) {
      if (!isErrno(err, 'ENOENT'))
        throw new RobustError(ErrorCode.DataDirUnusable, `${clusterPath}: unreadable (${(err as Error).message})`, { cause: err });
    }
    let bootstrapVoters: number[] | undefined;
    if (cluster === undefined) {
      if (!opts.join && opts.initialMembers === undefined) {
        throw new RobustError(
          ErrorCode.ConfigInvalid,
          'meta: an empty node needs either the initial members of a new cluster or join mode',
        );
      }
      if (!opts.join) {
        const members = opts.initialMembers as ReadonlyMap<number, string>;
        if (!members.has(opts.nodeId))
          throw new RobustError(ErrorCode.ConfigInvalid, `meta: node ${opts.nodeId} is not among the initial members`);
        bootstrapVoters = [...members.keys()].sort((a, b) => a - b);
      }
      cluster = {
        clusterId: opts.clusterId ?? (opts.join ? '' : randomUUID()),
        nodeId: opts.nodeId,
        sessionGroups: opts.sessionGroups ?? 2,
        offsetGroups: opts.offsetGroups ?? 2,
      };
      const tmp = `${clusterPath}.tmp`;
      await writeFile(tmp, JSON.stringify(cluster, null, 2));
      await rename(tmp, clusterPath);
    } else if (cluster.nodeId !== opts.nodeId) {
      throw new RobustError(ErrorCode.ConfigInvalid, `meta: this data directory belongs to node ${cluster.nodeId}, not ${opts.nodeId}`);
    }
    const metrics = createMetaMetrics(opts.registry);
    const keyspace = new Keyspace(cluster.sessionGroups, cluster.offsetGroups);
    // eslint-disable-next-line prefer-const
    let node: MetaNode;
    const groups = await Promise.all(
      keyspace.groupIds().map((groupId) =>
        RaftGroup.open({
          groupId,
          nodeId: opts.nodeId,
          dir: join(opts.dir, `group-${groupId}`),
          log: opts.log,
          metrics,
          send: (msgs, now) => node.#enqueue(groupId, msgs, now === true),
          ...(bootstrapVoters !== undefined ? { bootstrapVoters } : {}),
          electionTick: opts.electionTick ?? 10,
          heartbeatTick: 1,
          snapshotEntries: opts.snapshotEntries ?? 100_000,
          proposalTimeoutMs: opts.proposalTimeoutMs ?? 5000,
          walPreallocateBytes: opts.walPreallocateBytes ?? 4 << 20,
          onLeaderChange: (leader) => metrics.isLeader.set({ group: String(groupId) }, leader === opts.nodeId ? 1 : 0),
        }),
      ),
    );
    node = new MetaNode(opts, cluster, groups);
    node.#start(metrics);
    return node;
  }

  #start(_metrics: MetaMetrics): void {
    for (const [id, addr] of this.#opts.initialMembers ?? []) this.#setMember(id, addr);
    this.#transport.onReceive((from, envelopes) => {
      // Step the whole batch, then let each group act on it once (see RaftGroup.step).
      const touched = new Set<RaftGroup>();
      for (const { group, message } of envelopes) {
        const g = this.#groups[group];
        if (g === undefined) continue;
        g.step(message, false);
        touched.add(g);
      }
      for (const g of touched) g.kick();
      void from;
    });
    this.#transport.onUnreachable((peer) => {
      for (const g of this.#groups) g.reportUnreachable(peer);
    });
    // Member addresses live in group 0, so every node learns about new members from the log.
    this.#stopMembersWatch = (this.#groups[0] as RaftGroup).watch(MEMBERS_PREFIX, prefixEnd(MEMBERS_PREFIX), 0, (events) => {
      for (const e of events) {
        const id = Number(e.kv.key.slice(MEMBERS_PREFIX.length));
        if (e.type === 'put') this.#setMember(id, e.kv.value.toString());
        else this.#removeMemberAddress(id);
      }
    });
    for (const kv of (this.#groups[0] as RaftGroup).kv.range(MEMBERS_PREFIX, prefixEnd(MEMBERS_PREFIX)).kvs) {
      this.#setMember(Number(kv.key.slice(MEMBERS_PREFIX.length)), kv.value.toString());
    }
    const tickMs = this.#opts.tickMs ?? 50;
    this.#ticker = setInterval(() => {
      for (const g of this.#groups) g.tick();
    }, tickMs);
    this.#ticker.unref();
  }

  #setMember(id: number, address: string): void {
    this.#members.set(id, address);
    if (id !== this.nodeId) this.#transport.setPeer(id, address);
  }

  #removeMemberAddress(id: number): void {
    this.#members.delete(id);
    if (id !== this.nodeId) this.#transport.removePeer(id);
  }

  #enqueue(group: number, messages: readonly Message[], now: boolean): void {
    for (const message of messages) {
      let q = this.#outbox.get(message.to);
      if (q === undefined) this.#outbox.set(message.to, (q = []));
      q.push({ group, message });
    }
    if (now) this.#flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  #flush(): void {
    for (const [to, envelopes] of this.#outbox) this.#transport.send(to, envelopes);
    this.#outbox.clear();
  }

  /** The group that leads, for tests and status; undefined until one is elected. */
  group(id: number): RaftGroup {
    const g = this.#groups[id];
    if (g === undefined) throw new RobustError(ErrorCode.ConfigInvalid, `meta: no group ${id}`);
    return g;
  }

  get groups(): readonly RaftGroup[] {
    return this.#groups;
  }

  /** True when every group has a leader and this node has applied what it knows committed. */
  isReady(): boolean {
    return this.#groups.every((g) => g.leader !== 0);
  }

  readinessReason(): string | undefined {
    const leaderless = this.#groups.filter((g) => g.leader === 0).map((g) => g.groupId);
    return leaderless.length === 0 ? undefined : `no leader yet for meta group${leaderless.length > 1 ? 's' : ''} ${leaderless.join(', ')}`;
  }

  // ---- MetaClient ----

  async put(key: string, value: Buffer, opts: { lease?: number; prevKv?: boolean } = {}): Promise<PutResult> {
    return (await this.#groupFor(key).propose({ op: 'put', key, value, ...opts })) as PutResult;
  }

  async get(key: string, opts: { serializable?: boolean } = {}): Promise<KeyValue | undefined> {
    const g = this.#groupFor(key);
    if (opts.serializable !== true) await g.linearizableBarrier();
    return g.kv.range(key).kvs[0];
  }

  async range(key: string, rangeEnd?: string, opts: { limit?: number; serializable?: boolean } = {}): Promise<RangeResult> {
    if (rangeEnd === undefined) {
      const kv = await this.get(key, opts);
      return { op: 'range', revision: this.#groupFor(key).kv.revision, kvs: kv ? [kv] : [], more: false, count: kv ? 1 : 0 };
    }
    const ids = this.keyspace.groupsForRange(key, rangeEnd === '\0' ? undefined : rangeEnd);
    const groups = ids.map((id) => this.group(id));
    if (opts.serializable !== true) await Promise.all(groups.map((g) => g.linearizableBarrier()));
    const parts = groups.map((g) => g.kv.range(key, rangeEnd, opts.limit ?? 0));
    if (parts.length === 1) return parts[0] as RangeResult;
    const all = parts.flatMap((p) => p.kvs).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const limit = opts.limit ?? 0;
    const count = parts.reduce((n, p) => n + p.count, 0);
    const kvs = limit > 0 ? all.slice(0, limit) : all;
    return { op: 'range', revision: Math.max(...parts.map((p) => p.revision)), kvs, more: count > kvs.length, count };
  }

  async delete(key: string, rangeEnd?: string, opts: { prevKv?: boolean } = {}): Promise<DeleteResult> {
    if (rangeEnd === undefined) return (await this.#groupFor(key).propose({ op: 'delete', key, ...opts })) as DeleteResult;
    const ids = this.keyspace.groupsForRange(key, rangeEnd === '\0' ? undefined : rangeEnd);
    const results = (await Promise.all(
      ids.map((id) => this.group(id).propose({ op: 'delete', key, rangeEnd, ...opts })),
    )) as DeleteResult[];
    if (results.length === 1) return results[0] as DeleteResult;
    return {
      op: 'delete',
      revision: Math.max(...results.map((r) => r.revision)),
      deleted: results.reduce((n, r) => n + r.deleted, 0),
      ...(opts.prevKv === true ? { prevKvs: results.flatMap((r) => r.prevKvs ?? []) } : {}),
    };
  }

  async txn(t: { compare: Compare[]; success: RequestOp[]; failure: RequestOp[] }): Promise<TxnResult> {
    const keys = [...t.compare.map((c) => c.key), ...[...t.success, ...t.failure].map((o) => o.key)];
    const groups = new Set(keys.map((k) => this.keyspace.groupOf(k)));
    for (const o of [...t.success, ...t.failure]) {
      if (o.op !== 'put' && o.rangeEnd !== undefined)
        for (const g of this.keyspace.groupsForRange(o.key, o.rangeEnd === '\0' ? undefined : o.rangeEnd)) groups.add(g);
    }
    if (groups.size > 1) throw new RobustError(ErrorCode.CrossGroup, `meta: transaction keys span groups ${[...groups].join(', ')}`);
    const g = this.group([...groups][0] ?? 0);
    return (await g.propose({ op: 'txn', ...t })) as TxnResult;
  }

  watch(
    key: string,
    rangeEnd: string | undefined,
    opts: WatchOptions,
    onBatch: (b: WatchBatch) => void,
    onError?: (e: Error) => void,
  ): () => void {
    const ids =
      rangeEnd === undefined ? [this.keyspace.groupOf(key)] : this.keyspace.groupsForRange(key, rangeEnd === '\0' ? undefined : rangeEnd);
    const start = opts.startRevision ?? 0;
    if (start > 0 && ids.length > 1) {
      const err = new RobustError(ErrorCode.CrossGroup, 'meta: a watch that spans groups can only start from now (startRevision 0)');
      if (onError) {
        onError(err);
        return () => undefined;
      }
      throw err;
    }
    const cancels = ids.map((id) =>
      this.group(id).watch(key, rangeEnd, start, (events, revision) => onBatch({ group: id, revision, events }), opts.prevKv === true),
    );
    return () => {
      for (const c of cancels) c();
    };
  }

  async leaseGrant(ttlMs: number): Promise<{ id: number; ttlMs: number }> {
    const r = (await this.group(0).propose({ op: 'leaseGrant', ttlMs })) as LeaseResult;
    return { id: r.id, ttlMs: r.ttlMs };
  }

  async leaseKeepAlive(id: number): Promise<{ ttlMs: number }> {
    const r = (await this.group(0).propose({ op: 'leaseKeepAlive', id })) as LeaseResult;
    return { ttlMs: r.ttlMs };
  }

  async leaseRevoke(id: number): Promise<void> {
    await this.group(0).propose({ op: 'leaseRevoke', id });
  }

  async status(): Promise<MetaStatus> {
    return {
      nodeId: this.nodeId,
      clusterId: this.clusterId,
      members: [...this.#members].map(([id, address]) => ({ id, address })).sort((a, b) => a.id - b.id),
      groups: this.#groups.map((g) => groupStatus(g)),
    };
  }

  /**
   * Adds a node as a learner of every group (its address is recorded first, so every member
   * can reach it). One change at a time per group; call promote() once it has caught up.
   */
  async addLearner(nodeId: number, address: string): Promise<void> {
    await this.put(`${MEMBERS_PREFIX}${nodeId}`, Buffer.from(address));
    for (const g of this.#groups) {
      if (g.status().learners.includes(nodeId) || g.status().voters.includes(nodeId)) continue;
      await (await this.#leaderOf(g)).changeMembership({ type: ConfChangeType.AddLearner, nodeId, context: address });
    }
  }

  /** Promotes a learner to voter in every group, refusing while it lags behind the leader. */
  async promote(nodeId: number, maxLag = 100): Promise<void> {
    for (const g of this.#groups) {
      const st = (await this.#leaderOf(g)).status();
      if (st.voters.includes(nodeId)) continue;
      if (!st.learners.includes(nodeId))
        throw new RobustError(ErrorCode.MembershipRefused, `node ${nodeId} is not a learner of meta group ${g.groupId}`);
      const pr = st.progress.get(nodeId);
      const lag = st.lastIndex - (pr?.match ?? 0);
      if (pr === undefined || lag > maxLag) {
        throw new RobustError(
          ErrorCode.MembershipRefused,
          `node ${nodeId} has not caught up in meta group ${g.groupId} (behind by ${lag} entries)`,
          {
            retriable: true,
          },
        );
      }
      await g.changeMembership({ type: ConfChangeType.PromoteLearner, nodeId });
    }
  }

  /** Removes a member from every group; refuses when that would leave no voter. */
  async removeMember(nodeId: number): Promise<void> {
    for (const g of this.#groups) {
      const st = (await this.#leaderOf(g)).status();
      if (!st.voters.includes(nodeId) && !st.learners.includes(nodeId)) continue;
      if (st.voters.length === 1 && st.voters[0] === nodeId)
        throw new RobustError(ErrorCode.MembershipRefused, `node ${nodeId} is the last voter of meta group ${g.groupId}`);
      await g.changeMembership({ type: ConfChangeType.RemoveNode, nodeId });
    }
    await this.delete(`${MEMBERS_PREFIX}${nodeId}`);
  }

  async transferLeader(group: number, to: number): Promise<void> {
    const g = this.group(group);
    if (g.leader === to) return;
    if (g.leader === 0) throw new NotLeaderError(group, 0);
    g.transferLeader(to);
    const deadline = Date.now() + 5000;
    while (g.leader !== to) {
      if (Date.now() > deadline)
        throw new RobustError(ErrorCode.Timeout, `meta group ${group}: leadership did not move to node ${to} within 5 s`, {
          retriable: true,
        });
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Membership changes run on the group's leader. When this node is a voter but not the leader,
   * it asks for leadership (Raft forwards the transfer to the leader) and waits for it, so an
   * operator can send membership requests to any voter.
   */
  async #leaderOf(g: RaftGroup, timeoutMs = 5000): Promise<RaftGroup> {
    if (g.isLeader) return g;
    if (!g.status().voters.includes(this.nodeId)) throw new NotLeaderError(g.groupId, g.leader);
    const deadline = Date.now() + timeoutMs;
    let asked = 0;
    while (!g.isLeader) {
      if (Date.now() > deadline) throw new NotLeaderError(g.groupId, g.leader);
      if (g.leader !== 0 && Date.now() - asked > 1000) {
        g.transferLeader(this.nodeId);
        asked = Date.now();
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return g;
  }

  #groupFor(key: string): RaftGroup {
    if (this.#closed) throw new RobustError(ErrorCode.ShuttingDown, 'meta is shutting down', { retriable: true });
    return this.group(this.keyspace.groupOf(key));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#ticker);
    this.#stopMembersWatch?.();
    await Promise.all(this.#groups.map((g) => g.close()));
    await this.#transport.close();
  }
}

function groupStatus(g: RaftGroup): GroupStatus {
  const st = g.status();
  return {
    group: g.groupId,
    leader: st.leader,
    term: st.term,
    commit: st.commit,
    applied: g.applied,
    revision: g.kv.revision,
    role: st.role,
    voters: [...st.voters],
    learners: [...st.learners],
    progress: [...st.progress].map(([id, p]) => ({
      id,
      match: p.match,
      next: p.next,
      lag: Math.max(0, st.lastIndex - p.match),
      state: p.state,
      learner: p.isLearner,
    })),
  };
}
