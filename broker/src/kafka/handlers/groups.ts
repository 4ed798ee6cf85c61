import type { KafkaContext, RequestInfo } from '../context.js';
import { KafkaError, kafkaErrorOf } from '../errors.js';
import type { FindCoordinatorRequest, FindCoordinatorResponse } from '../messages/find-coordinator/index.js';
import type { JoinGroupRequest, JoinGroupResponse } from '../messages/join-group/index.js';
import type { SyncGroupRequest, SyncGroupResponse } from '../messages/sync-group/index.js';
import type { HeartbeatRequest, HeartbeatResponse } from '../messages/heartbeat/index.js';
import type { LeaveGroupRequest, LeaveGroupResponse } from '../messages/leave-group/index.js';
import type { ListGroupsRequest, ListGroupsResponse } from '../messages/list-groups/index.js';
import type { DescribeGroupsRequest, DescribeGroupsResponse } from '../messages/describe-groups/index.js';
import type { OffsetCommitRequest, OffsetCommitResponse, OffsetCommitResponseTopic } from '../messages/offset-commit/index.js';
import type { OffsetFetchRequest, OffsetFetchResponse, OffsetFetchResponseTopic } from '../messages/offset-fetch/index.js';
import type { InitProducerIdRequest, InitProducerIdResponse } from '../messages/init-producer-id/index.js';
import type { CommittedOffset } from '../offsets.js';
import { coordinatorOf } from '../../cluster.js';

const KEY_TYPE_GROUP = 0;

/**
 * FindCoordinator v0–5 (v4+ batches keys): a group's coordinator is the live broker its id
 * hashes to (cluster.ts `coordinatorOf`; this broker alone in the all-in-one server), so every
 * broker gives the same answer. Transaction coordinators are not offered: key type 1 gets
 * TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which kafkajs and librdkafka treat as fatal, so a
 * transactional producer fails at once (COORDINATOR_NOT_AVAILABLE was retried until a timeout).
 */
export async function handleFindCoordinator(
  ctx: KafkaContext,
  req: FindCoordinatorRequest,
  info: RequestInfo,
): Promise<FindCoordinatorResponse> {
  const keyType = req.keyType ?? KEY_TYPE_GROUP;
  const brokers = ctx.brokers();
  const ids = brokers.map((b) => b.nodeId);
  const answer = (key: string): { nodeId: number; host: string; port: number; errorCode: number; errorMessage: string | null } => {
    if (keyType !== KEY_TYPE_GROUP)
      return {
        nodeId: -1,
        host: '',
        port: -1,
        errorCode: KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        errorMessage: 'transactions are not supported',
      };
    const id = coordinatorOf(key, ids);
    const b = brokers.find((x) => x.nodeId === id) ?? { nodeId: ctx.nodeId, host: ctx.advertisedHost(), port: ctx.advertisedPort() };
    return { nodeId: b.nodeId, host: b.host, port: b.port, errorCode: 0, errorMessage: null };
  };
  if (info.apiVersion >= 4) return { throttleTimeMs: 0, coordinators: (req.coordinatorKeys ?? []).map((key) => ({ key, ...answer(key) })) };
  return { throttleTimeMs: 0, ...answer(req.key ?? '') };
}

export async function handleJoinGroup(ctx: KafkaContext, req: JoinGroupRequest, info: RequestInfo): Promise<JoinGroupResponse> {
  if (!ctx.isCoordinator(req.groupId)) {
    return {
      throttleTimeMs: 0,
      errorCode: KafkaError.NOT_COORDINATOR,
      generationId: -1,
      protocolType: null,
      protocolName: info.apiVersion >= 7 ? null : '',
      leader: '',
      skipAssignment: false,
      memberId: req.memberId,
      members: [],
    };
  }
  const r = await ctx.groups.join({
    groupId: req.groupId,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId ?? null,
    clientId: info.clientId,
    clientHost: info.clientHost,
    sessionTimeoutMs: req.sessionTimeoutMs,
    // v0 has no rebalance timeout: Kafka uses the session timeout
    rebalanceTimeoutMs: info.apiVersion >= 1 ? (req.rebalanceTimeoutMs ?? req.sessionTimeoutMs) : req.sessionTimeoutMs,
    protocolType: req.protocolType,
    protocols: req.protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata) })),
    requireKnownMemberId: info.apiVersion >= 4,
  });
  return {
    throttleTimeMs: 0,
    errorCode: r.errorCode,
    generationId: r.generationId,
    protocolType: r.protocolType,
    // v0–6 have a non-nullable protocol name: empty when there is none
    protocolName: r.protocolName ?? (info.apiVersion >= 7 ? null : ''),
    leader: r.leader,
    skipAssignment: r.skipAssignment === true && info.apiVersion >= 9,
    memberId: r.memberId,
    members: r.skipAssignment === true && info.apiVersion < 9 ? [] : r.members,
  };
}

export async function handleSyncGroup(ctx: KafkaContext, req: SyncGroupRequest, _info: RequestInfo): Promise<SyncGroupResponse> {
  if (!ctx.isCoordinator(req.groupId))
    return {
      throttleTimeMs: 0,
      errorCode: KafkaError.NOT_COORDINATOR,
      protocolType: null,
      protocolName: null,
      assignment: Buffer.alloc(0),
    };
  const r = await ctx.groups.sync(
    req.groupId,
    req.generationId,
    req.memberId,
    req.assignments.map((a) => ({ memberId: a.memberId, assignment: Buffer.from(a.assignment) })),
    req.groupInstanceId ?? null,
  );
  return {
    throttleTimeMs: 0,
    errorCode: r.errorCode,
    protocolType: r.protocolType,
    protocolName: r.protocolName,
    assignment: r.assignment,
  };
}

export async function handleHeartbeat(ctx: KafkaContext, req: HeartbeatRequest): Promise<HeartbeatResponse> {
  if (!ctx.isCoordinator(req.groupId)) return { throttleTimeMs: 0, errorCode: KafkaError.NOT_COORDINATOR };
  return { throttleTimeMs: 0, errorCode: ctx.groups.heartbeat(req.groupId, req.generationId, req.memberId, req.groupInstanceId ?? null) };
}

export async function handleLeaveGroup(ctx: KafkaContext, req: LeaveGroupRequest, info: RequestInfo): Promise<LeaveGroupResponse> {
  if (!ctx.isCoordinator(req.groupId)) return { throttleTimeMs: 0, errorCode: KafkaError.NOT_COORDINATOR, members: [] };
  if (info.apiVersion < 3) return { throttleTimeMs: 0, errorCode: ctx.groups.leave(req.groupId, req.memberId ?? '', null) };
  const members = (req.members ?? []).map((m) => ({
    memberId: m.memberId ?? '',
    groupInstanceId: m.groupInstanceId ?? null,
    errorCode: ctx.groups.leave(req.groupId, m.memberId ?? '', m.groupInstanceId ?? null),
  }));
  return { throttleTimeMs: 0, errorCode: 0, members };
}

export async function handleListGroups(ctx: KafkaContext, req: ListGroupsRequest): Promise<ListGroupsResponse> {
  const live = ctx.groups.list();
  const known = new Set(live.map((g) => g.groupId));
  // groups that only have committed offsets are listed as Empty, as Kafka does, by their
  // coordinator only (admin clients ask every broker and merge the answers)
  for (const id of await ctx.offsets.groups())
    if (!known.has(id) && ctx.isCoordinator(id)) live.push({ groupId: id, protocolType: 'consumer', state: 'Empty' });
  const states = req.statesFilter ?? [];
  const types = req.typesFilter ?? [];
  const groups = live
    .filter((g) => states.length === 0 || states.some((s) => s.toLowerCase() === g.state.toLowerCase()))
    .filter(() => types.length === 0 || types.some((t) => t.toLowerCase() === 'classic'))
    .map((g) => ({ groupId: g.groupId, protocolType: g.protocolType, groupState: g.state, groupType: 'classic' }));
  return { throttleTimeMs: 0, errorCode: 0, groups };
}

export async function handleDescribeGroups(ctx: KafkaContext, req: DescribeGroupsRequest): Promise<DescribeGroupsResponse> {
  return {
    throttleTimeMs: 0,
    groups: req.groups.map((groupId) => {
      if (!ctx.isCoordinator(groupId)) {
        return {
          errorCode: KafkaError.NOT_COORDINATOR,
          groupId,
          groupState: '',
          protocolType: '',
          protocolData: '',
          members: [],
          authorizedOperations: -2147483648,
        };
      }
      const d = ctx.groups.describe(groupId);
      if (d === undefined) {
        return {
          errorCode: 0,
          groupId,
          groupState: 'Dead',
          protocolType: '',
          protocolData: '',
          members: [],
          authorizedOperations: -2147483648,
        };
      }
      return {
        errorCode: 0,
        groupId,
        groupState: d.state,
        protocolType: d.protocolType,
        protocolData: d.protocol,
        members: d.members.map((m) => ({
          memberId: m.memberId,
          groupInstanceId: m.groupInstanceId,
          clientId: m.clientId,
          clientHost: m.clientHost,
          memberMetadata: m.metadata,
          memberAssignment: m.assignment,
        })),
        authorizedOperations: -2147483648,
      };
    }),
  };
}

/**
 * OffsetCommit v0–9: checks membership and generation, then stores every partition's offset in
 * meta in one transaction. A failed store is NOT_COORDINATOR (retriable; clients retry instead
 * of losing the commit, redpanda #3205).
 */
export async function handleOffsetCommit(ctx: KafkaContext, req: OffsetCommitRequest, info: RequestInfo): Promise<OffsetCommitResponse> {
  const generation = info.apiVersion >= 1 ? (req.generationIdOrMemberEpoch ?? -1) : -1;
  const memberId = info.apiVersion >= 1 ? (req.memberId ?? '') : '';
  // Only the coordinator may judge a commit's generation (and simple commits against live members).
  let errorCode = ctx.isCoordinator(req.groupId)
    ? ctx.groups.checkCommit(req.groupId, generation, memberId, info.apiVersion >= 7 ? (req.groupInstanceId ?? null) : null)
    : KafkaError.NOT_COORDINATOR;
  const now = Date.now();
  const entries: { topic: string; partition: number; offset: CommittedOffset }[] = [];
  const partitionError = new Map<string, number>();
  if (errorCode === 0) {
    for (const t of req.topics) {
      const s = ctx.streams.get(t.name);
      for (const p of t.partitions) {
        if (s === undefined || p.partitionIndex < 0 || p.partitionIndex >= s.partitions) {
          partitionError.set(`${t.name}/${p.partitionIndex}`, KafkaError.UNKNOWN_TOPIC_OR_PARTITION);
          continue;
        }
        entries.push({
          topic: t.name,
          partition: p.partitionIndex,
          offset: {
            offset: p.committedOffset,
            leaderEpoch: p.committedLeaderEpoch ?? -1,
            metadata: p.committedMetadata,
            commitTimestamp: p.commitTimestamp !== undefined && p.commitTimestamp >= 0n ? Number(p.commitTimestamp) : now,
          },
        });
      }
    }
    try {
      await ctx.offsets.commit(req.groupId, entries);
    } catch (err) {
      ctx.log.warn({ err, groupId: req.groupId }, 'offset commit failed');
      errorCode = KafkaError.NOT_COORDINATOR;
    }
  }
  const topics: OffsetCommitResponseTopic[] = req.topics.map((t) => ({
    name: t.name,
    partitions: t.partitions.map((p) => ({
      partitionIndex: p.partitionIndex,
      errorCode: errorCode !== 0 ? errorCode : (partitionError.get(`${t.name}/${p.partitionIndex}`) ?? 0),
    })),
  }));
  return { throttleTimeMs: 0, topics };
}

async function fetchGroupOffsets(
  ctx: KafkaContext,
  groupId: string,
  topics: { name: string; partitionIndexes: number[] }[] | null,
): Promise<{ errorCode: number; topics: OffsetFetchResponseTopic[] }> {
  let all: Map<string, Map<number, CommittedOffset>>;
  try {
    all = await ctx.offsets.fetchAll(groupId);
  } catch (err) {
    ctx.log.warn({ err, groupId }, 'offset fetch failed');
    return {
      errorCode: kafkaErrorOf(err) === KafkaError.UNKNOWN_SERVER_ERROR ? KafkaError.COORDINATOR_NOT_AVAILABLE : KafkaError.NOT_COORDINATOR,
      topics: [],
    };
  }
  const wanted = topics ?? [...all].map(([name, parts]) => ({ name, partitionIndexes: [...parts.keys()].sort((a, b) => a - b) }));
  return {
    errorCode: 0,
    topics: wanted.map((t) => ({
      name: t.name,
      partitions: t.partitionIndexes.map((p) => {
        const c = all.get(t.name)?.get(p);
        return {
          partitionIndex: p,
          committedOffset: c?.offset ?? -1n,
          committedLeaderEpoch: c?.leaderEpoch ?? -1,
          metadata: c?.metadata ?? '',
          errorCode: 0,
        };
      }),
    })),
  };
}

/** OffsetFetch v0–9 (v8+ batches groups); −1 = nothing committed. */
export async function handleOffsetFetch(ctx: KafkaContext, req: OffsetFetchRequest, info: RequestInfo): Promise<OffsetFetchResponse> {
  const norm = (
    ts: { name?: string; partitionIndexes?: number[] }[] | null | undefined,
  ): { name: string; partitionIndexes: number[] }[] | null =>
    ts === null || ts === undefined ? null : ts.map((t) => ({ name: t.name ?? '', partitionIndexes: t.partitionIndexes ?? [] }));
  if (info.apiVersion >= 8) {
    const groups = await Promise.all(
      (req.groups ?? []).map(async (g) => {
        const r = await fetchGroupOffsets(ctx, g.groupId ?? '', norm(g.topics));
        return { groupId: g.groupId ?? '', errorCode: r.errorCode, topics: r.topics };
      }),
    );
    return { throttleTimeMs: 0, groups };
  }
  // v0–1 send an empty list for "all" is not allowed (only v2+ null); treat null as all
  const r = await fetchGroupOffsets(ctx, req.groupId ?? '', norm(req.topics));
  return { throttleTimeMs: 0, topics: r.topics, errorCode: r.errorCode };
}

/**
 * InitProducerId v0–5 for idempotent producers. A transactional id is refused with
 * TRANSACTIONAL_ID_AUTHORIZATION_FAILED-free clarity: UNSUPPORTED_VERSION (transactions are not
 * implemented), which clients report as "transactions not supported" instead of retrying.
 */
export async function handleInitProducerId(ctx: KafkaContext, req: InitProducerIdRequest): Promise<InitProducerIdResponse> {
  if (req.transactionalId !== null)
    return { throttleTimeMs: 0, errorCode: KafkaError.UNSUPPORTED_VERSION, producerId: -1n, producerEpoch: -1 };
  try {
    const r = await ctx.producers.initProducerId(req.producerId ?? -1n, req.producerEpoch ?? -1);
    return { throttleTimeMs: 0, errorCode: 0, producerId: r.producerId, producerEpoch: r.epoch };
  } catch (err) {
    return { throttleTimeMs: 0, errorCode: kafkaErrorOf(err), producerId: -1n, producerEpoch: -1 };
  }
}
