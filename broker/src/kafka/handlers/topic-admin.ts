import { OffsetOutOfRangeError } from '@robustmq/journal';
import type { KafkaContext, RequestInfo } from '../context.js';
import { KafkaApiError, KafkaError, kafkaErrorOf } from '../errors.js';
import type {
  CreatePartitionsRequest,
  CreatePartitionsResponse,
  CreatePartitionsTopicResult,
} from '../messages/create-partitions/index.js';
import type { DeleteRecordsRequest, DeleteRecordsResponse, DeleteRecordsPartitionResult } from '../messages/delete-records/index.js';
import type { AlterConfigsRequest, AlterConfigsResponse } from '../messages/alter-configs/index.js';
import type { IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse } from '../messages/incremental-alter-configs/index.js';
import type { StreamRecord } from '../streams.js';
import { applyIncremental } from '../topic-config.js';

const RESOURCE_TOPIC = 2;
const RESOURCE_BROKER = 4;

/** The error code and message of a failure (logged when it is not one the broker raised on purpose). */
function failure(ctx: KafkaContext, err: unknown, what: string, fields: object): { errorCode: number; errorMessage: string } {
  const errorCode = kafkaErrorOf(err);
  if (errorCode === KafkaError.UNKNOWN_SERVER_ERROR) ctx.log.warn({ err, ...fields }, what);
  return { errorCode, errorMessage: (err as Error).message };
}

function streamOf(ctx: KafkaContext, name: string): StreamRecord {
  const s = ctx.streams.get(name);
  if (s === undefined) throw new KafkaApiError(KafkaError.UNKNOWN_TOPIC_OR_PARTITION, `topic ${name} does not exist`);
  return s;
}

/**
 * CreatePartitions v0–3: grows topics to `count` partitions (new journal shards with the
 * topic's config; the meta record first, so every broker sees the new count). INVALID_PARTITIONS
 * unless the count grows; manual assignments must name one replica list per new partition
 * (INVALID_REPLICA_ASSIGNMENT) and are otherwise left to the journal, like replication factors.
 */
export async function handleCreatePartitions(
  ctx: KafkaContext,
  req: CreatePartitionsRequest,
  _info: RequestInfo,
): Promise<CreatePartitionsResponse> {
  const results: CreatePartitionsTopicResult[] = [];
  const seen = new Set<string>();
  for (const t of req.topics) {
    const r: CreatePartitionsTopicResult = { name: t.name, errorCode: 0, errorMessage: null };
    try {
      if (seen.has(t.name)) throw new KafkaApiError(KafkaError.INVALID_REQUEST, `topic ${t.name} appears twice in the request`);
      seen.add(t.name);
      const s = streamOf(ctx, t.name);
      ctx.streams.checkPartitionCount(s, t.count);
      if (t.assignments !== null && t.assignments.length !== t.count - s.partitions) {
        throw new KafkaApiError(
          KafkaError.INVALID_REPLICA_ASSIGNMENT,
          `${t.assignments.length} assignments given for ${t.count - s.partitions} new partitions`,
        );
      }
      if (!req.validateOnly) await ctx.streams.addPartitions(t.name, t.count);
    } catch (err) {
      Object.assign(r, failure(ctx, err, 'create partitions failed', { topic: t.name }));
    }
    results.push(r);
  }
  return { throttleTimeMs: 0, results };
}

/**
 * DeleteRecords v0–2: makes `offset` the low watermark of each partition (−1 = the high
 * watermark: everything). An offset below the current low watermark changes nothing; one above
 * the high watermark is OFFSET_OUT_OF_RANGE. Whole segments below it are deleted by the journal.
 */
export async function handleDeleteRecords(
  ctx: KafkaContext,
  req: DeleteRecordsRequest,
  _info: RequestInfo,
): Promise<DeleteRecordsResponse> {
  const topics = await Promise.all(
    req.topics.map(async (t) => {
      const s = ctx.streams.get(t.name);
      const partitions = await Promise.all(
        t.partitions.map(async (p): Promise<DeleteRecordsPartitionResult> => {
          const out = { partitionIndex: p.partitionIndex, lowWatermark: -1n, errorCode: 0 };
          try {
            if (s === undefined) throw new KafkaApiError(KafkaError.UNKNOWN_TOPIC_OR_PARTITION, `topic ${t.name} does not exist`);
            const shard = await ctx.streams.shardOf(s, p.partitionIndex);
            const [earliest, latest] = await Promise.all([ctx.journal.earliestOffset(shard), ctx.journal.latestOffset(shard)]);
            const target = p.offset === -1n ? latest : p.offset;
            if (target < 0n || target > latest) throw new OffsetOutOfRangeError(shard, target, earliest, latest);
            out.lowWatermark = target <= earliest ? earliest : await ctx.journal.deleteRecordsBefore(shard, target);
          } catch (err) {
            // retention may have passed the offset meanwhile: that is the answer
            if (err instanceof OffsetOutOfRangeError && p.offset >= 0n && p.offset < err.earliestOffset)
              out.lowWatermark = err.earliestOffset;
            else out.errorCode = failure(ctx, err, 'delete records failed', { topic: t.name, partition: p.partitionIndex }).errorCode;
          }
          return out;
        }),
      );
      return { name: t.name, partitions };
    }),
  );
  return { throttleTimeMs: 0, topics };
}

/**
 * The resource checks AlterConfigs and IncrementalAlterConfigs share: topics are alterable;
 * broker configs come from the server configuration and are read-only (INVALID_CONFIG, as Kafka
 * answers for configs that cannot be updated dynamically); other resource types INVALID_REQUEST.
 */
async function alterResource(
  ctx: KafkaContext,
  res: { resourceType: number; resourceName: string; configs: { name: string }[] },
  validateOnly: boolean,
  change: (cur: StreamRecord) => Record<string, string>,
): Promise<{ errorCode: number; errorMessage: string | null; resourceType: number; resourceName: string }> {
  const out = { errorCode: 0, errorMessage: null as string | null, resourceType: res.resourceType, resourceName: res.resourceName };
  try {
    if (res.resourceType === RESOURCE_BROKER) {
      if (res.resourceName !== '' && res.resourceName !== String(ctx.nodeId))
        throw new KafkaApiError(KafkaError.INVALID_REQUEST, `unknown broker ${res.resourceName}`);
      throw new KafkaApiError(
        KafkaError.INVALID_CONFIG,
        `broker configs cannot be updated dynamically (${res.configs.map((c) => c.name).join(', ') || 'none given'}): set them in the server configuration`,
      );
    }
    if (res.resourceType !== RESOURCE_TOPIC)
      throw new KafkaApiError(KafkaError.INVALID_REQUEST, `unsupported resource type ${res.resourceType} (only topics are alterable)`);
    const s = streamOf(ctx, res.resourceName);
    if (validateOnly) ctx.streams.validateConfig(s, change(s));
    else await ctx.streams.setConfig(res.resourceName, change);
  } catch (err) {
    Object.assign(out, failure(ctx, err, 'alter configs failed', { resource: res.resourceName }));
  }
  return out;
}

/** Rejects a request that names one resource twice (Kafka: INVALID_REQUEST for each). */
function duplicates(resources: { resourceType: number; resourceName: string }[]): Set<string> {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const r of resources) {
    const k = `${r.resourceType}/${r.resourceName}`;
    if (seen.has(k)) dup.add(k);
    seen.add(k);
  }
  return dup;
}

/**
 * AlterConfigs v0–2: the given configs replace the topic's whole config (keys left out return to
 * their defaults, as in Kafka). Values are validated; validateOnly changes nothing.
 */
export async function handleAlterConfigs(ctx: KafkaContext, req: AlterConfigsRequest, _info: RequestInfo): Promise<AlterConfigsResponse> {
  const responses = await alterEach(ctx, req.resources, req.validateOnly, (res) => () => {
    const config: Record<string, string> = {};
    for (const c of res.configs) {
      if (c.name in config) throw new KafkaApiError(KafkaError.INVALID_REQUEST, `config ${c.name} appears more than once`);
      if (c.value !== null) config[c.name] = c.value;
    }
    return config;
  });
  return { throttleTimeMs: 0, responses };
}

/**
 * IncrementalAlterConfigs v0–1 (KIP-339): SET, DELETE (back to the default), APPEND and SUBTRACT
 * (list configs: cleanup.policy) applied to the topic's current config.
 */
export async function handleIncrementalAlterConfigs(
  ctx: KafkaContext,
  req: IncrementalAlterConfigsRequest,
  _info: RequestInfo,
): Promise<IncrementalAlterConfigsResponse> {
  const responses = await alterEach(ctx, req.resources, req.validateOnly, (res) => (cur) => applyIncremental(cur.config, res.configs));
  return { throttleTimeMs: 0, responses };
}

/** Alters each resource in turn; a resource named twice in one request is refused (both times). */
async function alterEach<R extends { resourceType: number; resourceName: string; configs: { name: string }[] }>(
  ctx: KafkaContext,
  resources: R[],
  validateOnly: boolean,
  change: (res: R) => (cur: StreamRecord) => Record<string, string>,
): Promise<Awaited<ReturnType<typeof alterResource>>[]> {
  const dup = duplicates(resources);
  const responses = [];
  for (const res of resources) {
    if (dup.has(`${res.resourceType}/${res.resourceName}`)) {
      responses.push({
        errorCode: KafkaError.INVALID_REQUEST,
        errorMessage: 'resource appears more than once in the request',
        resourceType: res.resourceType,
        resourceName: res.resourceName,
      });
      continue;
    }
    responses.push(await alterResource(ctx, res, validateOnly, change(res)));
  }
  return responses;
}
