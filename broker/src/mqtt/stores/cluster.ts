import { ErrorCode, RobustError } from '@robustmq/common';
import { prefixEnd, type MetaClient } from '@robustmq/meta';
import { encodeRecordBatch, iterateRecords, type JournalClient } from '@robustmq/journal';
import { MemoryInboxStore, MemoryRetainStore, MemorySessionStore } from './memory.js';
import { entryFromJson, entryToJson, messageFromJson, messageToJson, sessionFromJson, sessionToJson } from './file.js';
import type { InboxEntry, MqttStores, Qos2Change, SessionRecord, StoredMessage } from './types.js';

/**
 * The MQTT stores of a RobustMQ node (DESIGN §2): session records in meta, inboxes and
 * retained messages in the journal, so any broker can resume any session and a broker keeps no
 * durable state of its own. Like the file stores, each keeps an in-memory twin for reads and
 * writes through; a change's promise resolves once meta committed it or the journal
 * acknowledged it (inbox and retained shards sync on every append).
 *
 * Layout: meta `/sessions/<clientId>/record` → JSON session record; journal shard
 * `mqtt-inbox/<clientId>` (multiplexed engine) holds one record per event — an entry, acked
 * ids, a trim point, or a QoS 2 packet-id change — replayed in order on open, and its prefix is
 * deleted once no live entry or QoS 2 id needs it; journal shard `mqtt-retained` (compacted engine) → key = topic, value = JSON
 * message, null = cleared.
 */

const SESSIONS = '/sessions/';
const sessionKey = (clientId: string): string => `${SESSIONS}${clientId}/record`;
const INBOX_PREFIX = 'mqtt-inbox/';
const RETAINED_SHARD = 'mqtt-retained';

export class MetaSessionStore extends MemorySessionStore {
  readonly #meta: MetaClient;

  private constructor(meta: MetaClient) {
    super();
    this.#meta = meta;
  }

  static async open(meta: MetaClient): Promise<MetaSessionStore> {
    const s = new MetaSessionStore(meta);
    const r = await meta.range(SESSIONS, prefixEnd(SESSIONS));
    for (const kv of r.kvs) {
      if (!kv.key.endsWith('/record')) continue;
      const rec = sessionFromJson(JSON.parse(kv.value.toString('utf8')) as Parameters<typeof sessionFromJson>[0]);
      s.records.set(rec.clientId, rec);
    }
    return s;
  }

  override async put(record: SessionRecord): Promise<void> {
    await super.put(record);
    await this.#meta.put(sessionKey(record.clientId), Buffer.from(JSON.stringify(sessionToJson(record))));
  }

  override async delete(clientId: string): Promise<void> {
    // Clean sessions are never stored: ending one must not cost a Raft write per connection.
    // The twin holds every record this broker wrote or loaded, which is every record it owns.
    if (!this.records.has(clientId)) return;
    await super.delete(clientId);
    await this.#meta.delete(sessionKey(clientId));
  }
}

type InboxEvent = { e: ReturnType<typeof entryToJson> } | { a: number[] } | { t: number } | { q: Qos2Change };

/** Key of the record that keeps a QoS 2 id alive: inbound received, or outbound released. */
const qos2Key = (c: Qos2Change): string => (c.kind === 'received' || c.kind === 'released' ? 'r' : 'p') + c.packetId;

export class JournalInboxStore extends MemoryInboxStore {
  readonly #journal: JournalClient;
  /** Per client: journal offset of each live entry, by id, in append order. */
  readonly #offsets = new Map<string, Map<number, bigint>>();
  readonly #shards = new Set<string>();
  /** Inbox shards being created, by client id. */
  readonly #creating = new Map<string, Promise<void>>();
  /** Per client: journal offset of the record of each live QoS 2 id (see `qos2Key`). */
  readonly #qos2Offsets = new Map<string, Map<string, bigint>>();
  /** Per client: outbound QoS 2 ids completed (PUBCOMP) and not yet written. */
  readonly #completed = new Map<string, Set<number>>();
  /** Per client: the offset before which every record is dead and already deleted. */
  readonly #deletedBefore = new Map<string, bigint>();

  private constructor(journal: JournalClient) {
    super();
    this.#journal = journal;
  }

  static async open(journal: JournalClient): Promise<JournalInboxStore> {
    const s = new JournalInboxStore(journal);
    for (const shard of await journal.listShards({ prefix: INBOX_PREFIX })) {
      const clientId = shard.name.slice(INBOX_PREFIX.length);
      s.#shards.add(clientId);
      let from = shard.earliestOffset;
      while (from < shard.latestOffset) {
        const r = await journal.read(shard.name, from, { maxBytes: 4 * 1024 * 1024 });
        for (const rec of iterateRecords(r.data, { fromOffset: from }))
          s.#replay(clientId, rec.offset, JSON.parse((rec.value as Buffer).toString('utf8')) as InboxEvent);
        if (r.nextOffset <= from) break;
        from = r.nextOffset;
      }
    }
    return s;
  }

  #replay(clientId: string, offset: bigint, ev: InboxEvent): void {
    if ('e' in ev) {
      const entry = entryFromJson(ev.e);
      void super.append(clientId, [entry]);
      this.#offsetsOf(clientId).set(entry.id, offset);
    } else if ('a' in ev) {
      void super.ack(clientId, ev.a);
      for (const id of ev.a) this.#offsets.get(clientId)?.delete(id);
    } else if ('q' in ev) {
      void super.qos2(clientId, ev.q);
      this.#trackQos2(clientId, ev.q, offset);
    } else {
      void super.trim(clientId, ev.t);
      const offs = this.#offsets.get(clientId);
      if (offs) for (const id of [...offs.keys()]) if (id < ev.t) offs.delete(id);
    }
  }

  #trackQos2(clientId: string, c: Qos2Change, offset: bigint): void {
    let m = this.#qos2Offsets.get(clientId);
    if (m === undefined) this.#qos2Offsets.set(clientId, (m = new Map()));
    if (c.kind === 'received' || c.kind === 'pubrel') m.set(qos2Key(c), offset);
    else m.delete(qos2Key(c));
    if (c.kind === 'pubrel' && c.inboxId > 0) this.#offsets.get(clientId)?.delete(c.inboxId);
    if (m.size === 0) this.#qos2Offsets.delete(clientId);
  }

  #offsetsOf(clientId: string): Map<number, bigint> {
    let m = this.#offsets.get(clientId);
    if (m === undefined) this.#offsets.set(clientId, (m = new Map()));
    return m;
  }

  async #shard(clientId: string): Promise<string> {
    const name = INBOX_PREFIX + clientId;
    if (!this.#shards.has(clientId)) {
      // Writes of one tick (several wills reaching one inbox) share one creation: a second
      // createShard would fail with ShardExists while the first is still creating, and its
      // append would then find no shard.
      let creating = this.#creating.get(clientId);
      if (creating === undefined) {
        creating = this.#journal
          .createShard(name, { engine: 'multiplexed', config: { fsyncPolicy: 'always' } })
          .then(
            () => undefined,
            (err: unknown) => {
              if (!(err instanceof RobustError && err.code === ErrorCode.ShardExists)) throw err;
            },
          )
          .finally(() => this.#creating.delete(clientId));
        this.#creating.set(clientId, creating);
      }
      await creating;
      this.#shards.add(clientId);
    }
    return name;
  }

  /** Appends `events` (after any deferred PUBCOMPs of the client); returns the offset of the first of `events`. */
  async #write(clientId: string, events: InboxEvent[]): Promise<bigint> {
    const shard = await this.#shard(clientId);
    const done = this.#completed.get(clientId);
    let all = events;
    if (done !== undefined) {
      this.#completed.delete(clientId);
      all = [...[...done].map((packetId): InboxEvent => ({ q: { kind: 'pubcomp', packetId } })), ...events];
    }
    if (all.length === 0) return 0n;
    const r = await this.#journal.append(shard, encodeRecordBatch(all.map((ev) => ({ value: Buffer.from(JSON.stringify(ev)) }))));
    return r.baseOffset + BigInt(all.length - events.length);
  }

  override async append(clientId: string, entries: readonly InboxEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const base = await this.#write(
      clientId,
      entries.map((e) => ({ e: entryToJson(e) })),
    );
    await super.append(clientId, entries);
    const offs = this.#offsetsOf(clientId);
    entries.forEach((e, i) => offs.set(e.id, base + BigInt(i)));
  }

  override async ack(clientId: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await super.ack(clientId, ids);
    const offs = this.#offsets.get(clientId);
    if (offs === undefined) return;
    for (const id of ids) offs.delete(id);
    await this.#write(clientId, [{ a: [...ids] }]);
    await this.#reclaim(clientId);
  }

  override async trim(clientId: string, beforeId: number): Promise<void> {
    await super.trim(clientId, beforeId);
    const offs = this.#offsets.get(clientId);
    if (offs === undefined) return;
    for (const id of [...offs.keys()]) if (id < beforeId) offs.delete(id);
    await this.#write(clientId, [{ t: beforeId }]);
    await this.#reclaim(clientId);
  }

  override async qos2(clientId: string, change: Qos2Change): Promise<void> {
    if (change.kind === 'pubcomp') {
      // Deferred to the client's next write (or `close`): losing it in a crash only makes the
      // restarted server send one PUBREL too many, which the client answers with PUBCOMP (5.0:
      // 0x92); the server reuses the id only after that PUBCOMP. It saves an fsynced append per
      // outbound QoS 2 message.
      await super.qos2(clientId, change);
      this.#qos2Offsets.get(clientId)?.delete(qos2Key(change));
      let done = this.#completed.get(clientId);
      if (done === undefined) this.#completed.set(clientId, (done = new Set()));
      done.add(change.packetId);
      return;
    }
    // One record: a `pubrel` and the ack of its inbox entry are replayed together or not at all.
    const offset = await this.#write(clientId, [{ q: change }]);
    await super.qos2(clientId, change);
    this.#trackQos2(clientId, change, offset);
    if (change.kind === 'released' || change.kind === 'pubrel') await this.#reclaim(clientId, false);
  }

  /** Deletes the dead prefix of an inbox shard: everything before its oldest live entry or QoS 2 id. */
  async #reclaim(clientId: string, whenEmpty = true): Promise<void> {
    const offs = this.#offsets.get(clientId);
    const q2 = this.#qos2Offsets.get(clientId);
    let before: bigint | undefined;
    for (const off of offs?.values() ?? []) if (before === undefined || off < before) before = off;
    for (const off of q2?.values() ?? []) if (before === undefined || off < before) before = off;
    const live = (offs?.size ?? 0) + (q2?.size ?? 0);
    if (before === undefined) before = await this.#journal.latestOffset(INBOX_PREFIX + clientId);
    const done = this.#deletedBefore.get(clientId) ?? 0n;
    // Deleting is cheap but not free: do it in steps of 64 records, or when the inbox empties
    // (not after every QoS 2 exchange of a publisher: its records stay until there are 64).
    if (before - done < 64n && (live > 0 || !whenEmpty)) return;
    if (before <= done) return;
    await this.#journal.deleteRecordsBefore(INBOX_PREFIX + clientId, before);
    this.#deletedBefore.set(clientId, before);
  }

  override async close(): Promise<void> {
    const clients = [...this.#completed.keys()];
    await Promise.all(clients.map((c) => (this.#shards.has(c) ? this.#write(c, []) : undefined)));
    await super.close();
  }

  override async delete(clientId: string): Promise<void> {
    await super.delete(clientId);
    this.#offsets.delete(clientId);
    this.#qos2Offsets.delete(clientId);
    this.#completed.delete(clientId);
    this.#deletedBefore.delete(clientId);
    if (this.#shards.delete(clientId)) {
      try {
        await this.#journal.deleteShard(INBOX_PREFIX + clientId);
      } catch (err) {
        if (!(err instanceof RobustError && err.code === ErrorCode.ShardNotFound)) throw err;
      }
    }
  }
}

export class JournalRetainStore extends MemoryRetainStore {
  readonly #journal: JournalClient;

  private constructor(journal: JournalClient) {
    super();
    this.#journal = journal;
  }

  static async open(journal: JournalClient): Promise<JournalRetainStore> {
    const s = new JournalRetainStore(journal);
    try {
      await journal.createShard(RETAINED_SHARD, { engine: 'compacted', config: { fsyncPolicy: 'always' } });
    } catch (err) {
      if (!(err instanceof RobustError && err.code === ErrorCode.ShardExists)) throw err;
    }
    const info = await journal.getShard(RETAINED_SHARD);
    let from = info.earliestOffset;
    while (from < info.latestOffset) {
      const r = await journal.read(RETAINED_SHARD, from, { maxBytes: 4 * 1024 * 1024 });
      for (const rec of iterateRecords(r.data, { fromOffset: from })) {
        const topic = (rec.key as Buffer).toString('utf8');
        if (rec.value === null) s.messages.delete(topic);
        else s.messages.set(topic, messageFromJson(JSON.parse(rec.value.toString('utf8')) as Parameters<typeof messageFromJson>[0]));
      }
      if (r.nextOffset <= from) break;
      from = r.nextOffset;
    }
    return s;
  }

  override async set(message: StoredMessage): Promise<void> {
    await this.#journal.append(
      RETAINED_SHARD,
      encodeRecordBatch([{ key: Buffer.from(message.topic), value: Buffer.from(JSON.stringify(messageToJson(message))) }]),
    );
    await super.set(message);
  }

  override async clear(topic: string): Promise<void> {
    await this.#journal.append(RETAINED_SHARD, encodeRecordBatch([{ key: Buffer.from(topic), value: null }]));
    await super.clear(topic);
  }
}

/** Opens the meta/journal-backed MQTT stores. */
export async function openClusterStores(meta: MetaClient, journal: JournalClient): Promise<MqttStores> {
  const [sessions, inbox, retain] = await Promise.all([
    MetaSessionStore.open(meta),
    JournalInboxStore.open(journal),
    JournalRetainStore.open(journal),
  ]);
  return { sessions, inbox, retain };
}
