import type { KafkaContext, RequestInfo } from '../context.js';
import { KafkaApiError, KafkaError, kafkaErrorOf } from '../errors.js';
import { API_BY_KEY } from '../messages/index.js';
import type { ApiVersionsRequest, ApiVersionsResponse } from '../messages/api-versions/index.js';
import type { MetadataRequest, MetadataResponse, MetadataResponseTopic } from '../messages/metadata/index.js';
import type { CreateTopicsRequest, CreateTopicsResponse, CreatableTopicResult } from '../messages/create-topics/index.js';
import type { DeleteTopicsRequest, DeleteTopicsResponse, DeletableTopicResult } from '../messages/delete-topics/index.js';
import type { DescribeConfigsRequest, DescribeConfigsResponse, DescribeConfigsResourceResult } from '../messages/describe-configs/index.js';
import type { DescribeClusterRequest, DescribeClusterResponse } from '../messages/describe-cluster/index.js';
import { checkTopicName, type StreamRecord } from '../streams.js';
import { TOPIC_CONFIG_DEFAULTS } from '../topic-config.js';
import { ZERO_UUID } from '../wire/constants.js';
import { partitionLeaderOf } from '../../cluster.js';

/** "Authorized operations" not computed (Kafka's INT32_MIN sentinel). */
const NO_OPERATIONS = -2147483648;
/** KIP-511 client software name/version pattern (be no stricter than Kafka). */
const SOFTWARE = /^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$/;

/** The ApiVersions answer: exactly the generated (and handled) APIs. */
export function apiVersionsBody(errorCode: number): ApiVersionsResponse {
  return {
    errorCode,
    apiKeys: Object.values(API_BY_KEY).map((a) => ({ apiKey: a.key, minVersion: a.minVersion, maxVersion: a.maxVersion })),
    throttleTimeMs: 0,
  };
}

export async function handleApiVersions(_ctx: KafkaContext, req: ApiVersionsRequest, info: RequestInfo): Promise<ApiVersionsResponse> {
  if (info.apiVersion >= 3) {
    const name = req.clientSoftwareName ?? '';
    const version = req.clientSoftwareVersion ?? '';
    if (!SOFTWARE.test(name) || !SOFTWARE.test(version)) return apiVersionsBody(KafkaError.INVALID_REQUEST);
  }
  return apiVersionsBody(KafkaError.NONE);
}

/**
 * A topic's partitions. Brokers are stateless (records are in the journal), so every broker
 * serves every partition; the leader reported is spread over the live brokers
 * (`partitionLeaderOf`) only so that clients spread their load.
 */
function topicMetadata(ctx: KafkaContext, s: StreamRecord, brokerIds: readonly number[] = [ctx.nodeId]): MetadataResponseTopic {
  return {
    errorCode: 0,
    name: s.name,
    topicId: s.topicId,
    isInternal: false,
    partitions: Array.from({ length: s.partitions }, (_, p) => {
      const node = partitionLeaderOf(s.name, p, brokerIds);
      return {
        errorCode: 0,
        partitionIndex: p,
        leaderId: node,
        leaderEpoch: 0,
        replicaNodes: [node],
        isrNodes: [node],
        offlineReplicas: [],
      };
    }),
    topicAuthorizedOperations: NO_OPERATIONS,
  };
}

/** Looks a topic up, creating it when auto-creation is on and allowed by the request. */
async function resolveTopic(ctx: KafkaContext, name: string, autoCreate: boolean): Promise<StreamRecord | KafkaError> {
  const s = ctx.streams.get(name);
  if (s !== undefined) return s;
  if (checkTopicName(name) !== undefined) return KafkaError.INVALID_TOPIC_EXCEPTION;
  if (!autoCreate || !ctx.config.autoCreateTopics) return KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
  try {
    // Answered only once the partitions exist, so the first produce finds a leader (kafkajs #1008).
    return await ctx.streams.create(name, ctx.config.defaultPartitions, ctx.config.streamEngine);
  } catch (err) {
    const again = ctx.streams.get(name);
    if (again !== undefined) return again;
    ctx.log.warn({ err, topic: name }, 'topic auto-creation failed');
    return kafkaErrorOf(err);
  }
}

export async function handleMetadata(ctx: KafkaContext, req: MetadataRequest, info: RequestInfo): Promise<MetadataResponse> {
  const v = info.apiVersion;
  // v0: an empty list means all topics; v1+: null means all, empty means none
  const all = req.topics === null || (v === 0 && req.topics.length === 0);
  const autoCreate = v < 4 ? true : (req.allowAutoTopicCreation ?? true);
  const brokers = ctx.brokers();
  const ids = brokers.map((b) => b.nodeId);
  const topics: MetadataResponseTopic[] = [];
  if (all) {
    for (const s of ctx.streams.list()) topics.push(topicMetadata(ctx, s, ids));
  } else {
    for (const t of req.topics ?? []) {
      let name = t.name;
      if (name === null && t.topicId !== undefined && t.topicId !== ZERO_UUID) name = ctx.streams.byId(t.topicId)?.name ?? null;
      if (name === null) {
        topics.push({ errorCode: KafkaError.UNKNOWN_TOPIC_ID, name: null, topicId: t.topicId ?? ZERO_UUID, partitions: [] });
        continue;
      }
      const r = await resolveTopic(ctx, name, autoCreate);
      if (typeof r === 'number') topics.push({ errorCode: r, name, topicId: ZERO_UUID, isInternal: false, partitions: [] });
      else topics.push(topicMetadata(ctx, r, ids));
    }
  }
  return {
    throttleTimeMs: 0,
    brokers: brokers.map((b) => ({ ...b, rack: null })),
    clusterId: ctx.clusterId,
    // every broker names the same controller: the lowest live id
    controllerId: ids[0] ?? ctx.nodeId,
    topics,
    clusterAuthorizedOperations: NO_OPERATIONS,
  };
}

/**
 * The journal keeps one copy of each shard (replication between journal nodes is not built yet),
 * so the only replication factor that can be honoured is 1 (-1 asks for the default, 1). A larger
 * factor is refused, as Kafka refuses one above the broker count, rather than silently weakened.
 */
function checkReplication(factor: number, assignments: readonly { partitionIndex: number; brokerIds: number[] }[]): void {
  if (factor !== -1 && factor <= 0) {
    throw new KafkaApiError(
      KafkaError.INVALID_REPLICATION_FACTOR,
      'Replication factor must be larger than 0, or -1 to use the default value.',
    );
  }
  if (factor > 1) {
    throw new KafkaApiError(
      KafkaError.INVALID_REPLICATION_FACTOR,
      `Unable to replicate the partition ${factor} time(s): the journal keeps one copy of each partition; use replication factor 1 or -1`,
    );
  }
  const seen = new Set<number>();
  for (const a of assignments) {
    if (seen.has(a.partitionIndex))
      throw new KafkaApiError(KafkaError.INVALID_REPLICA_ASSIGNMENT, `partition ${a.partitionIndex} is assigned twice`);
    seen.add(a.partitionIndex);
    if (a.brokerIds.length === 0)
      throw new KafkaApiError(KafkaError.INVALID_REPLICA_ASSIGNMENT, `partition ${a.partitionIndex} has no replicas`);
    if (a.brokerIds.length > 1) {
      throw new KafkaApiError(
        KafkaError.INVALID_REPLICATION_FACTOR,
        `Unable to replicate partition ${a.partitionIndex} ${a.brokerIds.length} time(s): the journal keeps one copy of each partition`,
      );
    }
  }
  for (let p = 0; p < assignments.length; p++) {
    if (!seen.has(p))
      throw new KafkaApiError(
        KafkaError.INVALID_REPLICA_ASSIGNMENT,
        `assignments must cover partitions 0..${assignments.length - 1}; ${p} is missing`,
      );
  }
}

export async function handleCreateTopics(ctx: KafkaContext, req: CreateTopicsRequest, info: RequestInfo): Promise<CreateTopicsResponse> {
  const results: CreatableTopicResult[] = [];
  const seen = new Set<string>();
  for (const t of req.topics) {
    const partitions = t.numPartitions === -1 ? ctx.config.defaultPartitions : t.numPartitions;
    const config: Record<string, string> = {};
    for (const c of t.configs) if (c.value !== null) config[c.name] = c.value;
    const result: CreatableTopicResult = { name: t.name, topicId: ZERO_UUID, errorCode: 0, errorMessage: null };
    try {
      if (seen.has(t.name)) throw new KafkaApiError(KafkaError.INVALID_REQUEST, `topic ${t.name} appears twice in the request`);
      seen.add(t.name);
      if (t.assignments.length > 0 && t.numPartitions !== -1) {
        throw new KafkaApiError(KafkaError.INVALID_REQUEST, 'give either numPartitions or assignments, not both');
      }
      if (t.assignments.length > 0 && t.replicationFactor !== -1) {
        throw new KafkaApiError(KafkaError.INVALID_REQUEST, 'give either replicationFactor or assignments, not both');
      }
      checkReplication(t.replicationFactor, t.assignments);
      const n = t.assignments.length > 0 ? t.assignments.length : partitions;
      if (req.validateOnly === true) ctx.streams.validate(t.name, n, config);
      else {
        const s = await ctx.streams.create(t.name, n, ctx.config.streamEngine, config);
        result.topicId = s.topicId;
      }
      result.numPartitions = n;
      result.replicationFactor = 1;
      result.configs = Object.entries(config).map(([name, value]) => ({
        name,
        value,
        readOnly: false,
        configSource: 1,
        isSensitive: false,
      }));
    } catch (err) {
      result.errorCode = kafkaErrorOf(err);
      result.errorMessage = (err as Error).message;
      result.numPartitions = -1;
      result.replicationFactor = -1;
      if (result.errorCode === KafkaError.UNKNOWN_SERVER_ERROR) ctx.log.warn({ err, topic: t.name }, 'create topic failed');
    }
    results.push(result);
  }
  void info;
  return { throttleTimeMs: 0, topics: results };
}

export async function handleDeleteTopics(ctx: KafkaContext, req: DeleteTopicsRequest, info: RequestInfo): Promise<DeleteTopicsResponse> {
  const wanted: { name: string | null; topicId: string }[] =
    info.apiVersion >= 6
      ? (req.topics ?? []).map((t) => ({ name: t.name ?? null, topicId: t.topicId ?? ZERO_UUID }))
      : (req.topicNames ?? []).map((name) => ({ name, topicId: ZERO_UUID }));
  const responses: DeletableTopicResult[] = [];
  for (const w of wanted) {
    const name = w.name ?? ctx.streams.byId(w.topicId)?.name ?? null;
    const r: DeletableTopicResult = { name, topicId: w.topicId, errorCode: 0, errorMessage: null };
    if (name === null) r.errorCode = KafkaError.UNKNOWN_TOPIC_ID;
    else {
      try {
        const s = await ctx.streams.delete(name);
        r.topicId = s.topicId;
      } catch (err) {
        r.errorCode = kafkaErrorOf(err);
        r.errorMessage = (err as Error).message;
      }
    }
    responses.push(r);
  }
  return { throttleTimeMs: 0, responses };
}

const RESOURCE_TOPIC = 2;
const RESOURCE_BROKER = 4;
/** Config sources: 1 topic config, 4 static broker config, 5 default. */
const SOURCE_TOPIC = 1;
const SOURCE_DEFAULT = 5;

/** Topic config defaults reported by DescribeConfigs (Kafka's names; values from the journal defaults). */
function topicDefaults(ctx: KafkaContext): Record<string, string> {
  return {
    ...TOPIC_CONFIG_DEFAULTS,
    ...(ctx.config.streamEngine === 'memory' ? { 'robustmq.engine': 'memory' } : {}),
  };
}

/** Broker configs tools look for (e.g. `num.partitions`, MaterializeInc/materialize#6078). */
function brokerConfigs(ctx: KafkaContext): Record<string, string> {
  return {
    'num.partitions': String(ctx.config.defaultPartitions),
    'default.replication.factor': '1',
    'auto.create.topics.enable': String(ctx.config.autoCreateTopics),
    'broker.id': String(ctx.nodeId),
    'socket.request.max.bytes': String(ctx.config.maxRequestBytes),
    'group.initial.rebalance.delay.ms': String(ctx.config.groupInitialRebalanceDelayMs),
    'group.min.session.timeout.ms': String(ctx.config.groupMinSessionTimeoutMs),
    'group.max.session.timeout.ms': String(ctx.config.groupMaxSessionTimeoutMs),
    'offsets.topic.replication.factor': '1',
    'transaction.state.log.replication.factor': '1',
    'log.retention.ms': String(7 * 24 * 3600 * 1000),
    'message.max.bytes': String(1024 * 1024 + 12),
  };
}

export async function handleDescribeConfigs(
  ctx: KafkaContext,
  req: DescribeConfigsRequest,
  info: RequestInfo,
): Promise<DescribeConfigsResponse> {
  const results = req.resources.map((res) => {
    const base = { errorCode: 0, errorMessage: null as string | null, resourceType: res.resourceType, resourceName: res.resourceName };
    let entries: [string, string, number][];
    if (res.resourceType === RESOURCE_TOPIC) {
      const s = ctx.streams.get(res.resourceName);
      if (s === undefined) return { ...base, errorCode: KafkaError.UNKNOWN_TOPIC_OR_PARTITION, errorMessage: 'unknown topic', configs: [] };
      const defaults = topicDefaults(ctx);
      entries = Object.entries({ ...defaults, ...s.config }).map(([k, v]) => [k, v, k in s.config ? SOURCE_TOPIC : SOURCE_DEFAULT]);
    } else if (res.resourceType === RESOURCE_BROKER) {
      // As Kafka: a broker describes its own configs (clients send the request to that broker).
      if (res.resourceName !== '' && res.resourceName !== String(ctx.nodeId)) {
        return {
          ...base,
          errorCode: KafkaError.INVALID_REQUEST,
          errorMessage: `unexpected broker id, expected ${ctx.nodeId} or empty string, but received ${res.resourceName} (send it to that broker)`,
          configs: [],
        };
      }
      entries = Object.entries(brokerConfigs(ctx)).map(([k, v]) => [k, v, SOURCE_DEFAULT]);
    } else {
      return { ...base, errorCode: KafkaError.INVALID_REQUEST, errorMessage: `unsupported resource type ${res.resourceType}`, configs: [] };
    }
    const keys = res.configurationKeys === null ? undefined : new Set(res.configurationKeys);
    const configs: DescribeConfigsResourceResult[] = entries
      .filter(([k]) => keys === undefined || keys.has(k))
      .map(([name, value, source]) => ({
        name,
        value,
        readOnly: res.resourceType === RESOURCE_BROKER,
        isDefault: source === SOURCE_DEFAULT,
        configSource: source,
        isSensitive: false,
        synonyms: [],
        configType: 0,
        documentation: null,
      }));
    return { ...base, configs };
  });
  void info;
  return { throttleTimeMs: 0, results };
}

export async function handleDescribeCluster(ctx: KafkaContext, _req: DescribeClusterRequest): Promise<DescribeClusterResponse> {
  const brokers = ctx.brokers();
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    errorMessage: null,
    endpointType: 1,
    clusterId: ctx.clusterId,
    controllerId: brokers[0]?.nodeId ?? ctx.nodeId,
    brokers: brokers.map((b) => ({ brokerId: b.nodeId, host: b.host, port: b.port, rack: null })),
    clusterAuthorizedOperations: NO_OPERATIONS,
  };
}
