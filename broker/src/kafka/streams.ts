import { randomUUID } from 'node:crypto';
import type { Logger } from '@robustmq/common';
import { prefixEnd, type MetaClient } from '@robustmq/meta';
import type { JournalClient } from '@robustmq/journal';
import { KafkaApiError, KafkaError } from './errors.js';
import { cleanupPolicyOf, shardConfigOf, validateTopicConfig } from './topic-config.js';

/** What meta holds about a stream (Kafka topic) under `/streams/<name>`. */
export interface StreamRecord {
  name: string;
  /** Kafka topic id (UUID), used by Metadata v10+, Fetch v13+ and DeleteTopics v6. */
  topicId: string;
  partitions: number;
  /** Journal engine of the partitions' shards (`compacted` for cleanup.policy=compact). */
  engine: StreamEngine;
  /** Kafka topic configs set at creation or by AlterConfigs (`retention.ms`, `cleanup.policy`, …); defaults are left out. */
  config: Record<string, string>;
  createdAt: number;
}

export type StreamEngine = 'segment' | 'memory' | 'compacted';

export const STREAMS_PREFIX = '/streams/';
/** Most partitions a stream may have (CreateTopics, CreatePartitions). */
const MAX_PARTITIONS = 100_000;
const LEGAL_NAME = /^[a-zA-Z0-9._-]+$/;

/** Journal shard of partition p of stream s. */
export function shardName(stream: string, partition: number): string {
  return `kafka/${stream}/${partition}`;
}

/** Kafka's topic name rules: 1–249 of [a-zA-Z0-9._-], not "." or "..". */
export function checkTopicName(name: string): string | undefined {
  if (name.length === 0) return 'topic name is empty';
  if (name.length > 249) return 'topic name is longer than 249 characters';
  if (name === '.' || name === '..') return 'topic name cannot be "." or ".."';
  if (!LEGAL_NAME.test(name)) return 'topic name contains characters other than [a-zA-Z0-9._-]';
  return undefined;
}

/**
 * The streams of the cluster: a cache of `/streams/` in meta kept current by a watch, and the
 * create/delete operations that write meta first and then make the journal shards.
 *
 * How this works: meta is the source of truth; a stream exists once its record is in meta. The
 * shards of its partitions are created right after (and again, idempotently, by whichever
 * broker first finds one missing), so a crash between the two steps heals on first use.
 */
export class StreamRegistry {
  readonly #meta: MetaClient;
  readonly #journal: JournalClient;
  readonly #log: Logger;
  readonly #streams = new Map<string, StreamRecord>();
  readonly #byId = new Map<string, StreamRecord>();
  /** Shards known to exist (skips the journal round trip on the hot path). */
  readonly #shards = new Set<string>();
  readonly #creating = new Map<string, Promise<StreamRecord>>();
  #unwatch: (() => void) | undefined;

  constructor(meta: MetaClient, journal: JournalClient, log: Logger) {
    this.#meta = meta;
    this.#journal = journal;
    this.#log = log;
  }

  /** Loads every stream and starts watching for changes. */
  async open(): Promise<void> {
    const r = await this.#meta.range(STREAMS_PREFIX, prefixEnd(STREAMS_PREFIX));
    for (const kv of r.kvs) this.#set(JSON.parse(kv.value.toString('utf8')) as StreamRecord);
    this.#unwatch = this.#meta.watch(STREAMS_PREFIX, prefixEnd(STREAMS_PREFIX), { startRevision: r.revision + 1 }, (b) => {
      for (const e of b.events) {
        const name = e.kv.key.slice(STREAMS_PREFIX.length);
        if (e.type === 'delete') this.#remove(name);
        else this.#set(JSON.parse(e.kv.value.toString('utf8')) as StreamRecord);
      }
    });
  }

  close(): void {
    this.#unwatch?.();
  }

  #set(s: StreamRecord): void {
    const old = this.#streams.get(s.name);
    if (old !== undefined) this.#byId.delete(old.topicId);
    this.#streams.set(s.name, s);
    this.#byId.set(s.topicId, s);
  }

  #remove(name: string): void {
    const old = this.#streams.get(name);
    if (old === undefined) return;
    this.#streams.delete(name);
    this.#byId.delete(old.topicId);
    for (let p = 0; p < old.partitions; p++) this.#shards.delete(shardName(name, p));
  }

  get(name: string): StreamRecord | undefined {
    return this.#streams.get(name);
  }

  byId(topicId: string): StreamRecord | undefined {
    return this.#byId.get(topicId);
  }

  list(): StreamRecord[] {
    return [...this.#streams.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Creates a stream (meta record, then shards). TOPIC_ALREADY_EXISTS when meta has it already;
   * concurrent creations of one name in this broker share one attempt.
   */
  create(name: string, partitions: number, engine: 'segment' | 'memory', config: Record<string, string> = {}): Promise<StreamRecord> {
    const pending = this.#creating.get(name);
    if (pending !== undefined) return pending;
    const p = this.#create(name, partitions, engine, config).finally(() => this.#creating.delete(name));
    this.#creating.set(name, p);
    return p;
  }

  /** Validates a creation without doing it (CreateTopics validateOnly, and before create). */
  validate(name: string, partitions: number, config: Record<string, string>): void {
    const bad = checkTopicName(name);
    if (bad !== undefined) throw new KafkaApiError(KafkaError.INVALID_TOPIC_EXCEPTION, bad);
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new KafkaApiError(KafkaError.INVALID_PARTITIONS, `number of partitions must be 1–${MAX_PARTITIONS}, got ${partitions}`);
    }
    validateTopicConfig(config);
    if (this.#streams.has(name)) throw new KafkaApiError(KafkaError.TOPIC_ALREADY_EXISTS, `topic ${name} already exists`);
  }

  async #create(name: string, partitions: number, engine: 'segment' | 'memory', config: Record<string, string>): Promise<StreamRecord> {
    this.validate(name, partitions, config);
    // cleanup.policy=compact keeps the latest record per key: the journal's compacted engine
    const rec: StreamRecord = {
      name,
      topicId: randomUUID(),
      partitions,
      engine: cleanupPolicyOf(config) === 'compact' ? 'compacted' : engine,
      config,
      createdAt: Date.now(),
    };
    const key = STREAMS_PREFIX + name;
    const t = await this.#meta.txn({
      compare: [{ key, target: 'createRevision', result: '=', value: 0 }],
      success: [{ op: 'put', key, value: Buffer.from(JSON.stringify(rec)) }],
      failure: [],
    });
    if (!t.succeeded) throw new KafkaApiError(KafkaError.TOPIC_ALREADY_EXISTS, `topic ${name} already exists`);
    this.#set(rec);
    await this.ensureShards(rec);
    this.#log.info({ stream: name, partitions }, 'stream created');
    return rec;
  }

  /** Creates any missing shard of the stream (idempotent). */
  async ensureShards(rec: StreamRecord): Promise<void> {
    const cfg = shardConfigOf(rec.config);
    await Promise.all(
      Array.from({ length: rec.partitions }, async (_, p) => {
        const name = shardName(rec.name, p);
        if (this.#shards.has(name)) return;
        try {
          await this.#journal.createShard(name, { engine: rec.engine, config: cfg });
        } catch (err) {
          if ((err as { code?: string }).code !== 'ERR_SHARD_EXISTS') throw err;
        }
        this.#shards.add(name);
      }),
    );
  }

  /** The shard of a partition, created if it is missing; UNKNOWN_TOPIC_OR_PARTITION if the partition is not there. */
  /** The partition's shard when it is known to exist (no await needed), else undefined. */
  readyShardOf(rec: StreamRecord, partition: number): string | undefined {
    if (partition < 0 || partition >= rec.partitions) return undefined;
    const name = shardName(rec.name, partition);
    return this.#shards.has(name) ? name : undefined;
  }

  async shardOf(rec: StreamRecord, partition: number): Promise<string> {
    if (partition < 0 || partition >= rec.partitions) {
      throw new KafkaApiError(KafkaError.UNKNOWN_TOPIC_OR_PARTITION, `partition ${partition} of ${rec.name} does not exist`);
    }
    const name = shardName(rec.name, partition);
    if (!this.#shards.has(name)) await this.ensureShards(rec);
    return name;
  }

  /**
   * Changes the stream's record in meta with compare-and-swap on its revision (retried when
   * another broker changed it meanwhile). `change` sees the current record and returns the new
   * one, or throws to refuse.
   */
  async #modify(name: string, change: (cur: StreamRecord) => StreamRecord): Promise<StreamRecord> {
    const key = STREAMS_PREFIX + name;
    for (let attempt = 0; ; attempt++) {
      const kv = await this.#meta.get(key);
      if (kv === undefined) throw new KafkaApiError(KafkaError.UNKNOWN_TOPIC_OR_PARTITION, `topic ${name} does not exist`);
      const next = change(JSON.parse(kv.value.toString('utf8')) as StreamRecord);
      const t = await this.#meta.txn({
        compare: [{ key, target: 'modRevision', result: '=', value: kv.modRevision }],
        success: [{ op: 'put', key, value: Buffer.from(JSON.stringify(next)) }],
        failure: [],
      });
      if (t.succeeded) {
        this.#set(next);
        return next;
      }
      if (attempt >= 20) throw new KafkaApiError(KafkaError.REQUEST_TIMED_OUT, `topic ${name} kept changing; try again`);
    }
  }

  /**
   * Checks a new topic config: valid keys and values, and no engine switch (a compacted stream
   * stays compacted, a deleting one stays deleting; the journal cannot convert a shard).
   */
  validateConfig(rec: StreamRecord, config: Record<string, string>): void {
    validateTopicConfig(config);
    const want = cleanupPolicyOf(config);
    const have = rec.engine === 'compacted' ? 'compact' : 'delete';
    if (want !== have) {
      throw new KafkaApiError(
        KafkaError.INVALID_CONFIG,
        `cleanup.policy of topic ${rec.name} cannot be changed from ${have} to ${want}: it is fixed at creation (recreate the topic)`,
      );
    }
  }

  /**
   * Replaces the stream's topic config (AlterConfigs): stored in meta first, then applied to
   * every partition's shard, so retention and size limits take effect at once. A failure after
   * the meta write is reported; repeating the request re-applies the stored config.
   */
  async setConfig(name: string, change: (cur: StreamRecord) => Record<string, string>): Promise<StreamRecord> {
    const rec = await this.#modify(name, (cur) => {
      const config = change(cur);
      this.validateConfig(cur, config);
      return { ...cur, config };
    });
    const shardConfig = shardConfigOf(rec.config);
    await this.ensureShards(rec);
    await Promise.all(Array.from({ length: rec.partitions }, (_, p) => this.#journal.updateShardConfig(shardName(name, p), shardConfig)));
    this.#log.info({ stream: name, config: rec.config }, 'stream config changed');
    return rec;
  }

  /** Grows the stream to `count` partitions (CreatePartitions); INVALID_PARTITIONS unless it grows. */
  async addPartitions(name: string, count: number): Promise<StreamRecord> {
    const rec = await this.#modify(name, (cur) => {
      this.checkPartitionCount(cur, count);
      return { ...cur, partitions: count };
    });
    await this.ensureShards(rec);
    this.#log.info({ stream: name, partitions: count }, 'stream partitions added');
    return rec;
  }

  /** INVALID_PARTITIONS unless `count` is more than the stream has now (and within the limit). */
  checkPartitionCount(rec: StreamRecord, count: number): void {
    if (!Number.isInteger(count) || count <= rec.partitions) {
      throw new KafkaApiError(
        KafkaError.INVALID_PARTITIONS,
        `Topic currently has ${rec.partitions} partitions, which is higher than or equal to the requested ${count}`,
      );
    }
    if (count > MAX_PARTITIONS)
      throw new KafkaApiError(KafkaError.INVALID_PARTITIONS, `at most ${MAX_PARTITIONS} partitions, got ${count}`);
  }

  async delete(name: string): Promise<StreamRecord> {
    const rec = this.#streams.get(name);
    if (rec === undefined) throw new KafkaApiError(KafkaError.UNKNOWN_TOPIC_OR_PARTITION, `topic ${name} does not exist`);
    await this.#meta.delete(STREAMS_PREFIX + name);
    this.#remove(name);
    for (let p = 0; p < rec.partitions; p++) {
      try {
        await this.#journal.deleteShard(shardName(name, p));
      } catch (err) {
        if ((err as { code?: string }).code !== 'ERR_SHARD_NOT_FOUND') throw err;
      }
    }
    this.#log.info({ stream: name }, 'stream deleted');
    return rec;
  }
}
