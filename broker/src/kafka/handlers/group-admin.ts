import type { KafkaContext, RequestInfo } from '../context.js';
import { KafkaError, kafkaErrorOf } from '../errors.js';
import type { DeleteGroupsRequest, DeleteGroupsResponse, DeletableGroupResult } from '../messages/delete-groups/index.js';
import type { OffsetDeleteRequest, OffsetDeleteResponse } from '../messages/offset-delete/index.js';

/**
 * DeleteGroups v0–2: removes groups without members, with their committed offsets in meta.
 * NON_EMPTY_GROUP while a group has members, GROUP_ID_NOT_FOUND when there is neither state
 * nor a committed offset, INVALID_GROUP_ID for an empty id, NOT_COORDINATOR at a broker that
 * does not coordinate the group (its members' state lives at the coordinator). A failed meta
 * delete is COORDINATOR_NOT_AVAILABLE (retriable).
 */
export async function handleDeleteGroups(ctx: KafkaContext, req: DeleteGroupsRequest, _info: RequestInfo): Promise<DeleteGroupsResponse> {
  const results: DeletableGroupResult[] = [];
  for (const groupId of req.groupsNames) {
    let errorCode: number = KafkaError.NONE;
    if (groupId === '') errorCode = KafkaError.INVALID_GROUP_ID;
    else if (!ctx.isCoordinator(groupId)) errorCode = KafkaError.NOT_COORDINATOR;
    else if (ctx.groups.subscriptions(groupId).members > 0) errorCode = KafkaError.NON_EMPTY_GROUP;
    else {
      try {
        const deleted = await ctx.offsets.deleteGroup(groupId);
        const state = ctx.groups.deleteGroup(groupId);
        if (state === 'non_empty')
          errorCode = KafkaError.NON_EMPTY_GROUP; // a member joined meanwhile
        else if (state === 'unknown' && deleted === 0) errorCode = KafkaError.GROUP_ID_NOT_FOUND;
        else ctx.log.info({ groupId, offsets: deleted }, 'consumer group deleted');
      } catch (err) {
        ctx.log.warn({ err, groupId }, 'group delete failed');
        errorCode = kafkaErrorOf(err) === KafkaError.UNKNOWN_SERVER_ERROR ? KafkaError.COORDINATOR_NOT_AVAILABLE : kafkaErrorOf(err);
      }
    }
    results.push({ groupId, errorCode });
  }
  return { throttleTimeMs: 0, results };
}

/**
 * OffsetDelete v0: deletes the committed offsets of some partitions of a group. As in Kafka: a
 * partition of a topic that an active member of a `consumer` group subscribes to gets
 * GROUP_SUBSCRIBED_TO_TOPIC (and keeps its offset); a group of another protocol type with
 * members is NON_EMPTY_GROUP; unknown topics UNKNOWN_TOPIC_OR_PARTITION; a group with neither
 * members nor committed offsets GROUP_ID_NOT_FOUND; NOT_COORDINATOR away from the coordinator.
 */
export async function handleOffsetDelete(ctx: KafkaContext, req: OffsetDeleteRequest, _info: RequestInfo): Promise<OffsetDeleteResponse> {
  const fail = (errorCode: number): OffsetDeleteResponse => ({ errorCode, throttleTimeMs: 0, topics: [] });
  if (req.groupId === '') return fail(KafkaError.INVALID_GROUP_ID);
  if (!ctx.isCoordinator(req.groupId)) return fail(KafkaError.NOT_COORDINATOR);
  const subs = ctx.groups.subscriptions(req.groupId);
  if (subs.members > 0 && subs.topics === undefined) return fail(KafkaError.NON_EMPTY_GROUP);
  let committed;
  try {
    committed = await ctx.offsets.fetchAll(req.groupId);
  } catch (err) {
    ctx.log.warn({ err, groupId: req.groupId }, 'offset delete failed');
    return fail(KafkaError.COORDINATOR_NOT_AVAILABLE);
  }
  if (subs.members === 0 && committed.size === 0) return fail(KafkaError.GROUP_ID_NOT_FOUND);
  const doomed: { topic: string; partition: number }[] = [];
  const topics = req.topics.map((t) => {
    const s = ctx.streams.get(t.name);
    return {
      name: t.name,
      partitions: t.partitions.map((p) => {
        let errorCode: number = KafkaError.NONE;
        if (s === undefined || p.partitionIndex < 0 || p.partitionIndex >= s.partitions) errorCode = KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
        else if (subs.topics?.has(t.name) === true) errorCode = KafkaError.GROUP_SUBSCRIBED_TO_TOPIC;
        else if (committed.get(t.name)?.has(p.partitionIndex) === true) doomed.push({ topic: t.name, partition: p.partitionIndex });
        return { partitionIndex: p.partitionIndex, errorCode };
      }),
    };
  });
  try {
    await ctx.offsets.deletePartitions(req.groupId, doomed);
  } catch (err) {
    ctx.log.warn({ err, groupId: req.groupId }, 'offset delete failed');
    return fail(KafkaError.COORDINATOR_NOT_AVAILABLE);
  }
  return { errorCode: KafkaError.NONE, throttleTimeMs: 0, topics };
}
