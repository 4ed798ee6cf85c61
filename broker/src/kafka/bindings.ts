import type { Logger } from '@robustmq/common';
import { prefixEnd, type MetaClient } from '@robustmq/meta';
import { encodeRecordBatch, type JournalClient, type JournalRecord, type RecordHeader, type RecordInput } from '@robustmq/journal';
import type { Message } from '../mqtt/message.js';
import { checkTopicFilter, topicMatches } from '../mqtt/topic.js';
import type { KafkaConfig } from './config.js';
import { checkTopicName as checkStreamName, type StreamRecord, type StreamRegistry } from './streams.js';

/**
 * A binding between MQTT topics and a stream, stored in meta under `/bindings/<name>`.
 * - `in`: every MQTT PUBLISH whose topic matches one of `filters` is appended to `stream` as a
 *   record: key = the MQTT topic, value = the payload, headers = the MQTT 5 user properties in
 *   order, plus `content-type` when the PUBLISH had one; partition = murmur2(key) like Kafka's
 *   default partitioner. A QoS 1/2 PUBLISH is acknowledged once the record is in the journal.
 * - `out`: every record produced over Kafka to `stream` is published to MQTT subscribers on
 *   `topicPrefix + key` (QoS 1, headers → user properties, `content-type` → Content Type; a null key publishes on the prefix
 *   without its trailing `/`, or on the stream name when there is no prefix).
 */
export interface BindingRecord {
  name: string;
  direction: 'in' | 'out';
  stream: string;
  /** `in`: MQTT topic filters. */
  filters?: string[];
  /** `out`: prefix of the MQTT topic the record key is appended to. */
  topicPrefix?: string;
}

export const BINDINGS_PREFIX = '/bindings/';
/** The record header that carries the MQTT 5 Content Type, both ways. */
const CONTENT_TYPE_HEADER = 'content-type';
/** Publisher id of messages bridged from Kafka (they are never bridged back). */
export const KAFKA_PUBLISHER = '$kafka';

/** Kafka's murmur2 (the default partitioner's hash), so keys land where a Kafka producer puts them. */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const len = data.length;
  let h = (0x9747b28c ^ len) | 0;
  const n4 = len & ~3;
  for (let i = 0; i < n4; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = len & 3;
  if (rest === 3) h ^= data[n4 + 2]! << 16;
  if (rest >= 2) h ^= data[n4 + 1]! << 8;
  if (rest >= 1) {
    h ^= data[n4]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h;
}

/** Kafka's `toPositive(murmur2(key)) % partitions`. */
export function partitionForKey(key: Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/** Binding names: what the admin API's `?name=` and the meta key allow. */
export const BINDING_NAME = /^[A-Za-z0-9._-]{1,128}$/;
/** MQTT limits for filters and prefixes of bindings: the protocol's (a listener may set tighter ones). */
const MQTT_LIMITS = { maxTopicLengthBytes: 65535, maxTopicLevels: Number.MAX_SAFE_INTEGER };

/**
 * What is wrong with a binding, one readable line per problem (empty when it is valid): the name,
 * the stream (Kafka's topic name rules), the MQTT filters of an `in` binding, the MQTT topic
 * prefix of an `out` binding (no wildcards, no U+0000). Used by the config and the admin API.
 */
export function bindingProblems(b: BindingRecord): string[] {
  const problems: string[] = [];
  if (!BINDING_NAME.test(b.name)) problems.push(`name "${b.name}": 1–128 letters, digits, ".", "_" or "-"`);
  const streamProblem = checkStreamName(b.stream);
  if (streamProblem !== undefined) problems.push(`stream "${b.stream}": ${streamProblem}`);
  if (b.direction === 'in') {
    const filters = b.filters ?? [];
    if (filters.length === 0) problems.push('filters: at least one MQTT topic filter');
    for (const f of filters) {
      const p = f.includes('\u0000') ? 'contains U+0000' : checkTopicFilter(f, MQTT_LIMITS);
      if (p !== undefined) problems.push(`filter "${f}": ${FILTER_PROBLEMS[p] ?? p}`);
    }
  } else {
    const prefix = b.topicPrefix ?? '';
    if (prefix.includes('+') || prefix.includes('#') || prefix.includes('\u0000'))
      problems.push(`topicPrefix "${prefix}": an MQTT topic prefix has no wildcards (+, #) and no U+0000`);
    else if (Buffer.byteLength(prefix) > 65535) problems.push('topicPrefix: longer than 65535 bytes');
  }
  return problems;
}

const FILTER_PROBLEMS: Record<string, string> = {
  empty: 'empty',
  too_long: 'longer than 65535 bytes',
  bad_wildcard: '"+" must fill a whole level and "#" must be the last level alone',
};

/**
 * Parses the `kafka.bindings` config string: `;`-separated `name:in:filter[,filter]=>stream` or
 * `name:out:stream=>prefix`. Every problem of every binding is reported in one error.
 */
export function parseBindings(spec: string): BindingRecord[] {
  const out: BindingRecord[] = [];
  const problems: string[] = [];
  const names = new Set<string>();
  for (const part of spec.split(';')) {
    const t = part.trim();
    if (t === '') continue;
    const m = /^([^:]+):(in|out):(.*)=>(.*)$/.exec(t);
    if (!m) {
      problems.push(`"${t}": expected name:in:filter[,filter]=>stream or name:out:stream=>topicPrefix`);
      continue;
    }
    const [, name, direction, left, right] = m as unknown as [string, string, 'in' | 'out', string, string];
    const b: BindingRecord =
      direction === 'in'
        ? { name: name.trim(), direction, filters: left.split(',').map((f) => f.trim()), stream: right.trim() }
        : { name: name.trim(), direction, stream: left.trim(), topicPrefix: right.trim() };
    if (names.has(b.name)) problems.push(`"${t}": binding name ${b.name} is used twice`);
    names.add(b.name);
    for (const p of bindingProblems(b)) problems.push(`"${t}": ${p}`);
    out.push(b);
  }
  if (problems.length > 0) throw new Error(`invalid binding${problems.length > 1 ? 's' : ''}: ${problems.join('; ')}`);
  return out;
}

interface PendingRecord {
  record: RecordInput;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface BindingManagerOptions {
  meta: MetaClient;
  journal: JournalClient;
  streams: StreamRegistry;
  config: Readonly<KafkaConfig>;
  log: Logger;
  /** Publishes a bridged record to MQTT subscribers (the MQTT engine's publish). */
  publish: (m: Message) => void;
}

/**
 * MQTT ↔ Kafka bindings: a watched cache of `/bindings/` and the two bridges.
 *
 * How this works: the MQTT engine hands every PUBLISH to `onPublish`. When an `in` binding
 * matches, the record is queued for its partition's shard and the promise of its append is
 * returned (the PUBACK waits for it). Records queued in the same tick for one shard go out as
 * one batch: one journal append per shard per tick, whatever the publish rate.
 */
export class BindingManager {
  readonly #o: BindingManagerOptions;
  readonly #bindings = new Map<string, BindingRecord>();
  readonly #queues = new Map<string, PendingRecord[]>();
  #flushScheduled = false;
  #unwatch: (() => void) | undefined;

  constructor(opts: BindingManagerOptions) {
    this.#o = opts;
  }

  /** Writes the configured bindings to meta, loads all of them and watches for changes. */
  async open(): Promise<void> {
    const { meta } = this.#o;
    for (const b of parseBindings(this.#o.config.bindings)) await meta.put(BINDINGS_PREFIX + b.name, Buffer.from(JSON.stringify(b)));
    const r = await meta.range(BINDINGS_PREFIX, prefixEnd(BINDINGS_PREFIX));
    for (const kv of r.kvs) this.#set(kv.key, kv.value);
    this.#unwatch = meta.watch(BINDINGS_PREFIX, prefixEnd(BINDINGS_PREFIX), { startRevision: r.revision + 1 }, (batch) => {
      for (const e of batch.events) {
        if (e.type === 'delete') this.#bindings.delete(e.kv.key.slice(BINDINGS_PREFIX.length));
        else this.#set(e.kv.key, e.kv.value);
      }
    });
  }

  close(): void {
    this.#unwatch?.();
  }

  #set(key: string, value: Buffer): void {
    try {
      const b = JSON.parse(value.toString('utf8')) as BindingRecord;
      this.#bindings.set(key.slice(BINDINGS_PREFIX.length), b);
    } catch (err) {
      this.#o.log.warn({ err, key }, 'invalid binding ignored');
    }
  }

  /** Adds or replaces a binding (admin API). */
  async put(b: BindingRecord): Promise<void> {
    await this.#o.meta.put(BINDINGS_PREFIX + b.name, Buffer.from(JSON.stringify(b)));
    this.#bindings.set(b.name, b);
  }

  async remove(name: string): Promise<void> {
    await this.#o.meta.delete(BINDINGS_PREFIX + name);
    this.#bindings.delete(name);
  }

  list(): BindingRecord[] {
    return [...this.#bindings.values()];
  }

  /** An `out` binding of the stream, if any (Produce calls this before it appends). */
  outBinding(stream: string): BindingRecord | undefined {
    for (const b of this.#bindings.values()) if (b.direction === 'out' && b.stream === stream) return b;
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // MQTT → Kafka

  /**
   * The MQTT engine's publish sink. Returns the promise of the stored records when a binding
   * matched (the QoS ≥ 1 acknowledgement waits for it), undefined otherwise.
   */
  onPublish(m: Message): Promise<void> | undefined {
    if (m.publisherId === KAFKA_PUBLISHER || this.#bindings.size === 0) return undefined;
    let waits: Promise<void>[] | undefined;
    for (const b of this.#bindings.values()) {
      if (b.direction !== 'in' || !(b.filters ?? []).some((f) => topicMatches(f, m.topic))) continue;
      (waits ??= []).push(this.#store(b.stream, m));
    }
    if (waits === undefined) return undefined;
    return waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined);
  }

  async #store(streamName: string, m: Message): Promise<void> {
    const { streams, config } = this.#o;
    let s: StreamRecord | undefined = streams.get(streamName);
    if (s === undefined) {
      try {
        s = await streams.create(streamName, config.defaultPartitions, config.streamEngine);
      } catch (err) {
        s = streams.get(streamName);
        if (s === undefined) throw err;
      }
    }
    const key = Buffer.from(m.topic, 'utf8');
    const headers: RecordHeader[] = [];
    for (const [k, v] of m.properties?.userProperties ?? []) headers.push({ key: k, value: Buffer.from(v, 'utf8') });
    if (m.properties?.contentType !== undefined)
      headers.push({ key: CONTENT_TYPE_HEADER, value: Buffer.from(m.properties.contentType, 'utf8') });
    const shard = await streams.shardOf(s, partitionForKey(key, s.partitions));
    return new Promise<void>((resolve, reject) => {
      let q = this.#queues.get(shard);
      if (q === undefined) this.#queues.set(shard, (q = []));
      q.push({ record: { key, value: m.payload, headers, timestamp: m.receivedAt }, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    const queues = [...this.#queues];
    this.#queues.clear();
    for (const [shard, q] of queues) {
      let batch: Buffer;
      try {
        batch = encodeRecordBatch(q.map((p) => p.record));
      } catch (err) {
        for (const p of q) p.reject(err);
        continue;
      }
      this.#o.journal.append(shard, batch).then(
        () => {
          for (const p of q) p.resolve();
        },
        (err: unknown) => {
          this.#o.log.warn({ err, shard }, 'bridged mqtt messages not stored');
          for (const p of q) p.reject(err);
        },
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Kafka → MQTT

  /** Publishes records produced to a stream with an `out` binding to MQTT subscribers. */
  publishRecords(b: BindingRecord, records: JournalRecord[]): void {
    const prefix = b.topicPrefix ?? '';
    for (const r of records) {
      const topic = r.key === null ? (prefix === '' ? b.stream : prefix.replace(/\/$/, '')) : prefix + r.key.toString('utf8');
      if (topic === '' || topic.includes('+') || topic.includes('#') || topic.includes('\0')) {
        this.#o.log.debug({ stream: b.stream, topic }, 'record key is not a valid mqtt topic; not bridged');
        continue;
      }
      // the inverse of the `in` direction: the first `content-type` header is the MQTT Content
      // Type, every other header a user property, in order
      const userProperties: [string, string][] = [];
      let contentType: string | undefined;
      for (const h of r.headers) {
        const value = h.value === null ? '' : h.value.toString('utf8');
        if (contentType === undefined && h.key === CONTENT_TYPE_HEADER) contentType = value;
        else userProperties.push([h.key, value]);
      }
      const properties: Message['properties'] = {
        ...(userProperties.length > 0 ? { userProperties } : {}),
        ...(contentType !== undefined ? { contentType } : {}),
      };
      const m: Message = {
        topic,
        payload: r.value === null ? Buffer.alloc(0) : unpinned(r.value),
        qos: 1,
        retain: false,
        receivedAt: Date.now(),
        publisherId: KAFKA_PUBLISHER,
        ...(userProperties.length > 0 || contentType !== undefined ? { properties } : {}),
      };
      this.#o.publish(m);
    }
  }
}

/**
 * A record value that is a small view of a large buffer (a request read into a 16–256 KiB slab)
 * is copied, so MQTT sessions that queue it do not hold the whole buffer.
 */
function unpinned(v: Buffer): Buffer {
  return v.buffer.byteLength > 2 * v.length + 4096 ? Buffer.from(v) : v;
}
