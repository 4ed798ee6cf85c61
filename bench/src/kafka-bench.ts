/**
 * `robust-bench kafka produce|consume`: the Kafka load generator, a raw client of its own (no
 * kafkajs on the hot path). Works against RobustMQ or any Kafka broker that serves the versions in
 * kafka-wire.ts; all connections go to the bootstrap broker (RobustMQ accepts any partition on any
 * broker; against a multi-broker Kafka cluster, errors NOT_LEADER_OR_FOLLOWER would show it).
 */
import { randomBytes } from 'node:crypto';
import { KafkaConnection, KafkaProducer, type KafkaTarget } from './kafka-client.js';
import {
  ApiKey,
  buildBatch,
  CompressionByName,
  decodeApiVersionsResponse,
  decodeCreateTopicsResponse,
  decodeFetchResponse,
  decodeListOffsetsResponse,
  decodeMetadataResponse,
  encodeCreateTopicsRequest,
  encodeFetchRequest,
  encodeListOffsetsRequest,
  encodeMetadataRequest,
  kafkaErrorName,
  UsedVersion,
} from './kafka-wire.js';
import { Pump } from './mqtt-client.js';
import { parseOptions, renderHelp, targetOptions, tlsFrom, usageError, type OptionTable, type OptionValues } from './options.js';
import { ErrorCounts, Histogram, Progress, cpuSince, formatSummary, summarizeLatency, type Summary } from './stats.js';

export const KafkaModes = ['produce', 'consume'] as const;
export type KafkaMode = (typeof KafkaModes)[number];

const kafkaOptions = {
  ...targetOptions,
  clients: {
    type: 'number',
    min: 1,
    default: 1,
    short: 'c',
    help: 'connections (producers or consumers); partitions are split among them',
  },
  topic: { type: 'string', default: 'bench', short: 't', help: 'topic (stream)' },
  partitions: { type: 'number', min: 1, default: 4, help: 'partitions of the topic (created if missing)' },
  'replication-factor': { type: 'number', min: 1, default: 1, help: 'replication factor when creating the topic' },
  'no-create': { type: 'boolean', default: false, help: 'do not create the topic' },
  count: {
    type: 'number',
    min: 0,
    short: 'n',
    help: 'records in total (produce default 1000000; consume default: up to the end offsets at start)',
  },
  duration: { type: 'number', min: 0, short: 'd', help: 'seconds to run instead of --count' },
  rate: { type: 'number', min: 0, default: 0, help: 'records per second over all producers, 0 = as fast as possible' },
  size: { type: 'number', min: 1, default: 64, short: 's', help: 'record value bytes' },
  acks: { type: 'string', default: '1', choices: ['0', '1', '-1', 'all'], help: 'produce acks (all = -1; write --acks=-1 for the number)' },
  'batch-size': { type: 'number', min: 1, default: 100, help: 'records per produce request (one RecordBatch)' },
  compression: { type: 'string', default: 'none', choices: ['none', 'gzip'], help: 'record batch compression' },
  inflight: { type: 'number', min: 1, default: 8, help: 'produce requests in flight per connection' },
  from: { type: 'string', default: 'earliest', choices: ['earliest', 'latest'], help: 'consume: start offsets' },
  'max-wait': { type: 'number', min: 0, default: 500, help: 'consume: fetch max wait, ms' },
  'max-bytes': { type: 'number', min: 1024, default: 4 * 1024 * 1024, help: 'consume: fetch max bytes per partition' },
  'drain-timeout': { type: 'number', min: 0, default: 5, help: 'seconds without progress before waiting for acks/records gives up' },
  'connect-timeout': { type: 'number', min: 0.1, default: 10, help: 'seconds a connection may take' },
  'no-progress': { type: 'boolean', default: false, help: 'no live progress line' },
} as const satisfies OptionTable;

export interface KafkaBenchOptions {
  mode: KafkaMode;
  target: KafkaTarget;
  clients: number;
  topic: string;
  partitions: number;
  replicationFactor: number;
  create: boolean;
  /** Total records; Infinity with a duration; undefined = consume to the end offsets at start. */
  count: number | undefined;
  durationS: number;
  rate: number;
  size: number;
  acks: number;
  batchSize: number;
  compression: string;
  inflight: number;
  from: 'earliest' | 'latest';
  maxWaitMs: number;
  maxBytes: number;
  drainTimeoutS: number;
  progress: boolean;
}

export function kafkaOptionsFrom(mode: KafkaMode, v: OptionValues): KafkaBenchOptions {
  const durationS = (v.duration as number | undefined) ?? 0;
  const count = v.count as number | undefined;
  return {
    mode,
    target: {
      host: v.host as string,
      port: (v.port as number | undefined) ?? 9092,
      tls: tlsFrom(v),
      clientId: `robust-bench-${randomBytes(3).toString('hex')}`,
      connectTimeoutMs: (v['connect-timeout'] as number) * 1000,
    },
    clients: v.clients as number,
    topic: v.topic as string,
    partitions: v.partitions as number,
    replicationFactor: v['replication-factor'] as number,
    create: !v['no-create'],
    count:
      durationS > 0 && (count === undefined || count === 0)
        ? Number.POSITIVE_INFINITY
        : (count ?? (mode === 'produce' ? 1_000_000 : undefined)),
    durationS,
    rate: v.rate as number,
    size: v.size as number,
    acks: v.acks === 'all' ? -1 : Number(v.acks),
    batchSize: v['batch-size'] as number,
    compression: v.compression as string,
    inflight: v.inflight as number,
    from: v.from as 'earliest' | 'latest',
    maxWaitMs: v['max-wait'] as number,
    maxBytes: v['max-bytes'] as number,
    drainTimeoutS: v['drain-timeout'] as number,
    progress: !v.json && !v['no-progress'],
  };
}

/** ApiVersions check, topic creation, and the topic's partition ids. */
async function setUp(o: KafkaBenchOptions, errors: ErrorCounts): Promise<number[]> {
  const c = new KafkaConnection(o.target, errors);
  await c.connect();
  try {
    const versions = decodeApiVersionsResponse(await c.request(ApiKey.ApiVersions, Buffer.alloc(0)));
    for (const [key, v] of Object.entries(UsedVersion)) {
      const range = versions.apis.get(Number(key));
      if (range && (v < range[0] || v > range[1]))
        throw new Error(`broker does not serve API ${key} version ${v} (serves ${range[0]}–${range[1]})`);
    }
    if (o.create) {
      const created = decodeCreateTopicsResponse(
        await c.request(ApiKey.CreateTopics, encodeCreateTopicsRequest(o.topic, o.partitions, o.replicationFactor, 10_000)),
      );
      for (const t of created)
        if (t.error !== 0 && t.error !== 36) throw new Error(`create topic ${t.name}: ${kafkaErrorName(t.error)} ${t.message ?? ''}`);
    }
    for (let attempt = 0; ; attempt++) {
      const md = decodeMetadataResponse(await c.request(ApiKey.Metadata, encodeMetadataRequest([o.topic])));
      const t = md.topics.find((x) => x.name === o.topic);
      if (t && t.error === 0 && t.partitions.length > 0) return t.partitions.map((p) => p.index).sort((a, b) => a - b);
      if (attempt >= 20) throw new Error(`topic ${o.topic}: ${t ? kafkaErrorName(t.error) : 'not in metadata'}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await c.close();
  }
}

/** Splits partitions among `n` clients round-robin; a client with none shares partition ids. */
function assign(partitions: number[], n: number): number[][] {
  return Array.from({ length: n }, (_, i) => {
    const mine = partitions.filter((_, k) => k % n === i);
    return mine.length > 0 ? mine : [partitions[i % partitions.length]!];
  });
}

export async function runKafkaBench(o: KafkaBenchOptions): Promise<Summary> {
  const errors = new ErrorCounts();
  const latency = new Histogram();
  const ackLatency = new Histogram();
  const partitions = await setUp(o, errors);
  const split = assign(partitions, Math.min(o.clients, o.mode === 'consume' ? partitions.length : o.clients));
  let sent = 0;
  let acked = 0;
  let received = 0;
  let expected = 0;
  let lost = 0;
  let lastReceive = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let sendEnd: number;
  const producers: KafkaProducer[] = [];
  const consumers: KafkaConnection[] = [];
  const progress = new Progress(o.progress, () => ({
    sent: producers.reduce((a, p) => a + p.sent, 0),
    received,
    errors: errors.total,
  }));
  try {
    if (o.mode === 'produce') {
      const batch = buildBatch(o.batchSize, o.size, CompressionByName[o.compression]!);
      const total = o.count ?? 1_000_000;
      const per = Math.ceil(total / split.length / o.batchSize) * o.batchSize;
      for (const [i, parts] of split.entries()) {
        const count = Number.isFinite(total) ? Math.min(per, Math.max(0, Math.ceil((total - i * per) / o.batchSize) * o.batchSize)) : total;
        producers.push(
          new KafkaProducer({ ...o.target, clientId: `${o.target.clientId}-p${i}` }, errors, ackLatency, {
            topic: o.topic,
            partitions: parts,
            acks: o.acks,
            timeoutMs: 30_000,
            batchRecords: o.batchSize,
            batch,
            inflight: o.inflight,
            count,
          }),
        );
      }
      await Promise.all(producers.map((p) => p.connect()));
      const pump = new Pump(producers, o.rate, o.batchSize);
      pump.begin(o.durationS > 0 ? o.durationS * 1000 : Number.POSITIVE_INFINITY);
      await pump.finished;
      sendEnd = performance.now();
      let last = -1;
      let lastChange = performance.now();
      while (producers.some((p) => p.inflight > 0 && p.isUp)) {
        const a = producers.reduce((s, p) => s + p.acked, 0);
        if (a !== last) [last, lastChange] = [a, performance.now()];
        else if (performance.now() - lastChange > o.drainTimeoutS * 1000) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      sent = producers.reduce((a, p) => a + p.sent, 0);
      acked = producers.reduce((a, p) => a + p.acked, 0);
      const unanswered = producers.reduce((a, p) => a + p.inflight * o.batchSize, 0);
      if (unanswered > 0) errors.add('produce never acknowledged', unanswered);
    } else {
      const control = new KafkaConnection(o.target, errors);
      await control.connect();
      const start = decodeListOffsetsResponse(
        await control.request(ApiKey.ListOffsets, encodeListOffsetsRequest(o.topic, partitions, o.from === 'latest' ? -1n : -2n)),
      );
      const end = decodeListOffsetsResponse(await control.request(ApiKey.ListOffsets, encodeListOffsetsRequest(o.topic, partitions, -1n)));
      await control.close();
      const offsets = new Map(start.map((p) => [p.partition, p.offset]));
      for (const p of [...start, ...end]) if (p.error !== 0) errors.add(`list offsets ${kafkaErrorName(p.error)}`);
      const target = o.count ?? end.reduce((a, p) => a + Number(p.offset - (offsets.get(p.partition) ?? 0n)), 0);
      expected = Number.isFinite(target) ? target : 0;
      const deadline = o.durationS > 0 ? t0 + o.durationS * 1000 : Number.POSITIVE_INFINITY;
      let lastProgress = performance.now();
      const onBatch = (ts: number, n: number): void => {
        latency.recordMany((performance.timeOrigin + performance.now() - ts) * 1000, n);
      };
      const consume = async (parts: number[], i: number): Promise<void> => {
        const c = new KafkaConnection({ ...o.target, clientId: `${o.target.clientId}-c${i}` }, errors);
        consumers.push(c);
        await c.connect();
        while (c.isUp && received < target && performance.now() < deadline) {
          if (performance.now() - lastProgress > o.drainTimeoutS * 1000) break;
          const req = encodeFetchRequest(
            o.topic,
            parts.map((p) => ({ partition: p, offset: offsets.get(p) ?? 0n })),
            o.maxWaitMs,
            o.maxBytes * parts.length,
            o.maxBytes,
          );
          const res = decodeFetchResponse(await c.request(ApiKey.Fetch, req), onBatch);
          for (const p of res) {
            if (p.error !== 0) errors.add(`fetch ${kafkaErrorName(p.error)}`);
            if (p.nextOffset !== null) offsets.set(p.partition, p.nextOffset);
            if (p.records > 0) {
              received += p.records;
              lastReceive = lastProgress = performance.now();
            }
          }
        }
      };
      await Promise.all(split.map((parts, i) => consume(parts, i).catch((err: Error) => errors.add(err.message))));
      sendEnd = performance.now();
      if (Number.isFinite(target)) lost = Math.max(0, target - received);
    }
  } finally {
    progress.stop();
    await Promise.all([...producers, ...consumers].map((c) => c.close()));
  }
  const tEnd = performance.now();
  const secs = Math.max(1e-9, (sendEnd - t0) / 1000);
  const recvSecs = Math.max(1e-9, ((lastReceive || sendEnd) - t0) / 1000);
  return {
    bench: `kafka ${o.mode}`,
    target: `${o.target.host}:${o.target.port}`,
    options: Object.fromEntries(
      Object.entries({ ...o, target: undefined, host: o.target.host, port: o.target.port }).map(([k, v]) => [
        k,
        v === Number.POSITIVE_INFINITY ? null : v,
      ]),
    ),
    elapsedS: Math.round((tEnd - t0) / 10) / 100,
    sent,
    acked,
    received,
    expected,
    lost,
    duplicates: 0,
    sendRate: Math.round(sent / secs),
    receiveRate: Math.round(received / recvSecs),
    receiveMBps: Math.round(((received * o.size) / recvSecs / 1e6) * 10) / 10,
    latency: latency.count > 0 ? summarizeLatency(latency) : null,
    ackLatency: ackLatency.count > 0 ? summarizeLatency(ackLatency) : null,
    errors: errors.toJSON(),
    errorCount: errors.total,
    cpu: cpuSince(cpu0, (tEnd - t0) / 1000),
  };
}

const USAGE = `robust-bench kafka produce|consume [options]

  produce   --clients connections send --count records (or for --duration s) in batches of
            --batch-size to the topic's partitions, --inflight requests pipelined per connection
  consume   --clients connections fetch the topic's partitions from --from (earliest) until --count
            records (default: the end offsets at start); latency = now − the batch timestamp, so run
            it --from latest beside a producer for end-to-end latency

Exit status: 0 ok, 1 records lost or errors occurred, 2 bad options.
Example: robust-bench kafka produce -p 9092 -c 2 --partitions 4 -n 2000000 --acks 1 && robust-bench kafka consume -p 9092 -c 2`;

/** `robust-bench kafka …` */
export async function run(argv: string[]): Promise<number> {
  const [mode, ...rest] = argv;
  if (mode === undefined || !(KafkaModes as readonly string[]).includes(mode)) {
    if (mode === undefined || mode.startsWith('-')) {
      process.stdout.write(renderHelp(USAGE, kafkaOptions));
      return mode === undefined ? 2 : 0;
    }
    process.stderr.write(`robust-bench kafka: unknown mode ${mode}; one of ${KafkaModes.join(', ')}\n`);
    return 2;
  }
  let values: OptionValues;
  try {
    values = parseOptions(rest, kafkaOptions).values;
  } catch (err) {
    return usageError(`kafka ${mode}`, err);
  }
  if (values.help) {
    process.stdout.write(renderHelp(USAGE, kafkaOptions));
    return 0;
  }
  let s: Summary;
  try {
    s = await runKafkaBench(kafkaOptionsFrom(mode as KafkaMode, values));
  } catch (err) {
    process.stderr.write(`robust-bench kafka ${mode}: ${(err as Error).message}\n`);
    return 1;
  }
  process.stdout.write(values.json ? `${JSON.stringify(s)}\n` : formatSummary(s));
  return s.lost > 0 || s.errorCount > 0 ? 1 : 0;
}
