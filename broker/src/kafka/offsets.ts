import { prefixEnd, type MetaClient } from '@robustmq/meta';

/** A committed offset as stored in meta under `/offsets/<groupId>/<topic>/<partition>`. */
export interface CommittedOffset {
  offset: bigint;
  leaderEpoch: number;
  metadata: string | null;
  commitTimestamp: number;
}

interface StoredOffset {
  offset: string;
  leaderEpoch: number;
  metadata: string | null;
  commitTimestamp: number;
}

export const OFFSETS_PREFIX = '/offsets/';

/**
 * The group id is URI-encoded in the key: meta hashes `/offsets/<segment>/…` by its first segment,
 * so every key of one group stays in one Raft group even when the id contains `/`.
 */
function groupPrefix(groupId: string): string {
  return `${OFFSETS_PREFIX}${encodeURIComponent(groupId)}/`;
}

/** Committed consumer-group offsets, durable in meta (one transaction per OffsetCommit). */
export class OffsetStore {
  readonly #meta: MetaClient;

  constructor(meta: MetaClient) {
    this.#meta = meta;
  }

  async commit(groupId: string, entries: { topic: string; partition: number; offset: CommittedOffset }[]): Promise<void> {
    if (entries.length === 0) return;
    const prefix = groupPrefix(groupId);
    await this.#meta.txn({
      compare: [],
      success: entries.map((e) => ({
        op: 'put' as const,
        key: `${prefix}${e.topic}/${e.partition}`,
        value: Buffer.from(
          JSON.stringify({
            offset: e.offset.offset.toString(),
            leaderEpoch: e.offset.leaderEpoch,
            metadata: e.offset.metadata,
            commitTimestamp: e.offset.commitTimestamp,
          } satisfies StoredOffset),
        ),
      })),
      failure: [],
    });
  }

  /** Every committed offset of the group: topic → partition → offset. */
  async fetchAll(groupId: string): Promise<Map<string, Map<number, CommittedOffset>>> {
    const prefix = groupPrefix(groupId);
    const r = await this.#meta.range(prefix, prefixEnd(prefix));
    const out = new Map<string, Map<number, CommittedOffset>>();
    for (const kv of r.kvs) {
      const rest = kv.key.slice(prefix.length);
      const slash = rest.lastIndexOf('/');
      const topic = rest.slice(0, slash);
      const partition = Number(rest.slice(slash + 1));
      const s = JSON.parse(kv.value.toString('utf8')) as StoredOffset;
      let t = out.get(topic);
      if (t === undefined) out.set(topic, (t = new Map()));
      t.set(partition, { offset: BigInt(s.offset), leaderEpoch: s.leaderEpoch, metadata: s.metadata, commitTimestamp: s.commitTimestamp });
    }
    return out;
  }

  /** Groups with committed offsets (ListGroups lists them too, as Kafka lists empty groups). */
  async groups(): Promise<string[]> {
    const r = await this.#meta.range(OFFSETS_PREFIX, prefixEnd(OFFSETS_PREFIX));
    const out = new Set<string>();
    for (const kv of r.kvs) {
      const seg = kv.key.slice(OFFSETS_PREFIX.length, kv.key.indexOf('/', OFFSETS_PREFIX.length));
      out.add(decodeURIComponent(seg));
    }
    return [...out];
  }

  /** Deletes every committed offset of the group; returns how many there were. */
  async deleteGroup(groupId: string): Promise<number> {
    const p = groupPrefix(groupId);
    return (await this.#meta.delete(p, prefixEnd(p))).deleted;
  }

  /** Deletes the committed offsets of some partitions of the group, in one transaction. */
  async deletePartitions(groupId: string, entries: { topic: string; partition: number }[]): Promise<void> {
    if (entries.length === 0) return;
    const prefix = groupPrefix(groupId);
    await this.#meta.txn({
      compare: [],
      success: entries.map((e) => ({ op: 'delete' as const, key: `${prefix}${e.topic}/${e.partition}` })),
      failure: [],
    });
  }

  async deleteTopic(groupId: string, topic: string): Promise<void> {
    const p = `${groupPrefix(groupId)}${topic}/`;
    await this.#meta.delete(p, prefixEnd(p));
  }
}
