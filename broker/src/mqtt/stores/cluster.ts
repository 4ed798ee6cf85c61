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
 * `mqtt-inbox/<clientId>` (multiplexed engine) holds one record per event — an entry (a QoS 1/2
 * message of the persistent session not yet acknowledged: queued or in flight), acked ids, the
 * packet ids entries went out under, a trim point, or a QoS 2 packet-id change — replayed in
 * order on open, and its prefix is deleted once no live entry or QoS 2 id needs it; journal shard `mqtt-retained` (compacted engine) → key = topic, value = JSON
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

type InboxEvent =
  { e: ReturnType<typeof entryToJson> } | { a: number[] } | { t: number } | { q: Qos2Change } | { s: Array<readonly [number, number]> };

/** Key of the record that keeps a QoS 2 id alive: inbound received, or outbound released. */
const qos2Key = (c: Qos2Change): string => (c.kind === 'received' || c.kind === 'released' ? 'r' : 'p') + c.packetId;

/** Offset of a record whose append has not completed yet. */
const PENDING = -1n;

/** Dead records of an inbox shard are deleted once there are this many before its first live one. */
const RECLAIM_STEP = 64n;
/** An inbox that stays empty this long has its dead records deleted, whatever their number. */
const RECLAIM_IDLE_MS = 1000;

/** What the store tracks of one client's inbox shard. */
interface InboxShard {
  /** Journal offset of each live entry by id, in append (= offset) order; PENDING while written. */
  readonly offsets: Map<number, bigint>;
  /** Journal offset of the record of each live QoS 2 id (see `qos2Key`). */
  readonly qos2: Map<string, bigint>;
  /** Events of this turn, appended together at its end, and their callers. */
  pending: InboxEvent[];
  waiters: Array<{ index: number; resolve: (offset: bigint) => void; reject: (err: unknown) => void }>;
  /** Offset after the last completed append. */
  end: bigint;
  /** Offset before which every record is dead and already deleted. */
  deletedBefore: bigint;
  deleting: boolean;
  idleTimer: NodeJS.Timeout | undefined;
}

/**
 * How this works: every change of an inbox is an event, and the events one client's inbox gets
 * in one event-loop turn (the entries of a burst of PUBLISHes, the acks of a burst of PUBACKs,
 * the `sent` marker of a window) are appended as one record batch at the end of the turn; each
 * caller's promise resolves with the offset of its event once the batch is durable. Batches of
 * a shard reach the journal in the order they were made (appended at once when the shard is
 * known, else chained on its creation), so an ack is never before its entry and a shard's
 * offsets grow in id order. An entry's offset is known when its batch completes; until then it
 * is PENDING, and an ack arriving earlier just removes it. The live records are the entries not
 * acked and the QoS 2 ids in progress; everything before the first of them (or, when there is
 * none, before the end) is dead and deleted in steps of `RECLAIM_STEP`, or after
 * `RECLAIM_IDLE_MS` of an empty inbox, so an idle shard is empty and a busy one holds the
 * records from its oldest live one on, plus fewer than 64 before it.
 */
export class JournalInboxStore extends MemoryInboxStore {
  readonly #journal: JournalClient;
  readonly #inboxes = new Map<string, InboxShard>();
  /** Clients whose inbox shard exists. */
  readonly #shards = new Set<string>();
  /** Inbox shards being created (after any deletion of the old one), by client id. */
  readonly #creating = new Map<string, Promise<void>>();
  /** Inbox shards being deleted, by client id. */
  readonly #deleting = new Map<string, Promise<void>>();
  /** Clients with events waiting for the end of the turn. */
  readonly #dirty = new Set<string>();
  #flushScheduled = false;
  /** Appends on their way (`close` waits for them). */
  readonly #appending = new Set<Promise<unknown>>();
  #closed = false;

  private constructor(journal: JournalClient) {
    super();
    this.#journal = journal;
  }

  static async open(journal: JournalClient): Promise<JournalInboxStore> {
    const s = new JournalInboxStore(journal);
    for (const shard of await journal.listShards({ prefix: INBOX_PREFIX })) {
      const clientId = shard.name.slice(INBOX_PREFIX.length);
      s.#shards.add(clientId);
      const st = s.#inbox(clientId);
      st.end = shard.latestOffset;
      st.deletedBefore = shard.earliestOffset;
      let from = shard.earliestOffset;
      while (from < shard.latestOffset) {
        const r = await journal.read(shard.name, from, { maxBytes: 4 * 1024 * 1024 });
        for (const rec of iterateRecords(r.data, { fromOffset: from }))
          s.#replay(clientId, st, rec.offset, JSON.parse((rec.value as Buffer).toString('utf8')) as InboxEvent);
        if (r.nextOffset <= from) break;
        from = r.nextOffset;
      }
    }
    return s;
  }

  #replay(clientId: string, st: InboxShard, offset: bigint, ev: InboxEvent): void {
    if ('e' in ev) {
      const entry = entryFromJson(ev.e);
      void super.append(clientId, [entry]);
      st.offsets.set(entry.id, offset);
    } else if ('a' in ev) {
      void super.ack(clientId, ev.a);
      for (const id of ev.a) st.offsets.delete(id);
    } else if ('q' in ev) {
      void super.qos2(clientId, ev.q);
      this.#trackQos2(st, ev.q, offset);
    } else if ('s' in ev) {
      void super.sent(clientId, ev.s);
    } else {
      void super.trim(clientId, ev.t);
      for (const id of [...st.offsets.keys()]) if (id < ev.t) st.offsets.delete(id);
    }
  }

  #trackQos2(st: InboxShard, c: Qos2Change, offset: bigint): void {
    if (c.kind === 'received' || c.kind === 'pubrel') st.qos2.set(qos2Key(c), offset);
    else st.qos2.delete(qos2Key(c));
    if (c.kind === 'pubrel' && c.inboxId > 0) st.offsets.delete(c.inboxId);
  }

  #inbox(clientId: string): InboxShard {
    let st = this.#inboxes.get(clientId);
    if (st === undefined) {
      st = {
        offsets: new Map(),
        qos2: new Map(),
        pending: [],
        waiters: [],
        end: 0n,
        deletedBefore: 0n,
        deleting: false,
        idleTimer: undefined,
      };
      this.#inboxes.set(clientId, st);
    }
    return st;
  }

  /** Resolves once the client's inbox shard exists (created after any deletion of the old one). */
  #shard(clientId: string): Promise<void> {
    let creating = this.#creating.get(clientId);
    if (creating === undefined) {
      // Batches made while the shard is created wait for one creation, in order: a second
      // createShard would fail with ShardExists while the first is still creating.
      creating = (this.#deleting.get(clientId) ?? Promise.resolve())
        .then(() => this.#journal.createShard(INBOX_PREFIX + clientId, { engine: 'multiplexed', config: { fsyncPolicy: 'always' } }))
        .then(
          () => undefined,
          (err: unknown) => {
            if (!(err instanceof RobustError && err.code === ErrorCode.ShardExists)) throw err;
          },
        )
        .then(
          () => {
            // Not when a deletion came meanwhile (`delete` dropped this creation).
            if (this.#creating.get(clientId) !== done) return;
            this.#shards.add(clientId);
            this.#creating.delete(clientId);
          },
          (err: unknown) => {
            if (this.#creating.get(clientId) === done) this.#creating.delete(clientId);
            throw err;
          },
        );
      const done = creating;
      this.#creating.set(clientId, creating);
    }
    return creating;
  }

  /** Queues `events` for the end of the turn; resolves with the offset of the first once durable. */
  #write(clientId: string, st: InboxShard, events: InboxEvent[]): Promise<bigint> {
    if (this.#closed) return Promise.reject(new Error('mqtt inbox store closed'));
    const index = st.pending.length;
    for (const ev of events) st.pending.push(ev);
    this.#dirty.add(clientId);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
    return new Promise((resolve, reject) => st.waiters.push({ index, resolve, reject }));
  }

  #flush(): void {
    this.#flushScheduled = false;
    for (const clientId of this.#dirty) {
      const st = this.#inboxes.get(clientId);
      if (st !== undefined && st.pending.length > 0) this.#appendBatch(clientId, st);
    }
    this.#dirty.clear();
  }

  #appendBatch(clientId: string, st: InboxShard): void {
    const events = st.pending;
    const waiters = st.waiters;
    st.pending = [];
    st.waiters = [];
    const batch = encodeRecordBatch(events.map((ev) => ({ value: Buffer.from(JSON.stringify(ev)) })));
    const shard = INBOX_PREFIX + clientId;
    const appended = this.#shards.has(clientId)
      ? this.#journal.append(shard, batch)
      : this.#shard(clientId).then(() => this.#journal.append(shard, batch));
    const done = appended.then(
      (r) => {
        const base = r.baseOffset;
        if (base + BigInt(events.length) > st.end) st.end = base + BigInt(events.length);
        events.forEach((ev, i) => {
          if ('e' in ev) {
            if (st.offsets.get(ev.e.id) === PENDING) st.offsets.set(ev.e.id, base + BigInt(i));
          } else if ('q' in ev && (ev.q.kind === 'received' || ev.q.kind === 'pubrel')) {
            const k = qos2Key(ev.q);
            if (st.qos2.get(k) === PENDING) st.qos2.set(k, base + BigInt(i));
          }
        });
        for (const w of waiters) w.resolve(base + BigInt(w.index));
      },
      (err: unknown) => {
        for (const w of waiters) w.reject(err);
      },
    );
    this.#appending.add(done);
    void done.finally(() => this.#appending.delete(done));
  }

  override async append(clientId: string, entries: readonly InboxEntry[]): Promise<void> {
    if (entries.length === 0) return;
    void super.append(clientId, entries);
    const st = this.#inbox(clientId);
    for (const e of entries) st.offsets.set(e.id, PENDING);
    await this.#write(
      clientId,
      st,
      entries.map((e) => ({ e: entryToJson(e) })),
    );
  }

  override async sent(clientId: string, sent: ReadonlyArray<readonly [number, number]>): Promise<void> {
    const st = this.#inboxes.get(clientId);
    if (sent.length === 0 || st === undefined) return;
    void super.sent(clientId, sent);
    await this.#write(clientId, st, [{ s: [...sent] }]);
  }

  override async ack(clientId: string, ids: readonly number[]): Promise<void> {
    const st = this.#inboxes.get(clientId);
    if (ids.length === 0 || st === undefined) return;
    void super.ack(clientId, ids);
    const live = ids.filter((id) => st.offsets.delete(id));
    if (live.length === 0) return;
    await this.#write(clientId, st, [{ a: live }]);
    await this.#reclaim(clientId, st);
  }

  override async trim(clientId: string, beforeId: number): Promise<void> {
    const st = this.#inboxes.get(clientId);
    if (st === undefined) return;
    void super.trim(clientId, beforeId);
    for (const id of [...st.offsets.keys()]) if (id < beforeId) st.offsets.delete(id);
    await this.#write(clientId, st, [{ t: beforeId }]);
    await this.#reclaim(clientId, st);
  }

  override async qos2(clientId: string, change: Qos2Change): Promise<void> {
    // One record: a `pubrel` and the ack of its inbox entry are replayed together or not at all.
    // A `pubcomp` is written like any ack (with the other events of the turn; the caller does not
    // wait): a crash before it only makes the restarted server send PUBREL once more.
    void super.qos2(clientId, change);
    const st = this.#inbox(clientId);
    this.#trackQos2(st, change, PENDING);
    await this.#write(clientId, st, [{ q: change }]);
    if (change.kind !== 'received') await this.#reclaim(clientId, st);
  }

  /** Deletes the dead prefix of an inbox shard: everything before its oldest live entry or QoS 2 id. */
  async #reclaim(clientId: string, st: InboxShard, idle = false): Promise<void> {
    if (this.#inboxes.get(clientId) !== st || st.deleting || this.#closed) return;
    let before = st.end;
    // Offsets grow in insertion order; PENDING ones are past `end` anyway.
    for (const off of st.offsets.values())
      if (off !== PENDING) {
        if (off < before) before = off;
        break;
      }
    for (const off of st.qos2.values()) if (off !== PENDING && off < before) before = off;
    const live = st.offsets.size + st.qos2.size;
    if (before <= st.deletedBefore) return;
    if (before - st.deletedBefore < RECLAIM_STEP && !(idle && live === 0)) {
      // Deleting is cheap but not free: not after every message of a session that keeps up.
      if (live === 0 && st.idleTimer === undefined)
        st.idleTimer = setTimeout(() => {
          st.idleTimer = undefined;
          this.#reclaim(clientId, st, true).catch(() => undefined); // retried on the next ack
        }, RECLAIM_IDLE_MS).unref();
      return;
    }
    st.deleting = true;
    try {
      await this.#journal.deleteRecordsBefore(INBOX_PREFIX + clientId, before);
      if (before > st.deletedBefore) st.deletedBefore = before;
    } finally {
      st.deleting = false;
    }
  }

  override async sessions(): Promise<string[]> {
    // A shard with nothing live left is still listed, so the engine deletes it with its session.
    return [...new Set([...(await super.sessions()), ...this.#shards])];
  }

  override async close(): Promise<void> {
    this.#flush();
    while (this.#appending.size > 0) await Promise.allSettled([...this.#appending]);
    this.#closed = true;
    for (const st of this.#inboxes.values()) clearTimeout(st.idleTimer);
    await super.close();
  }

  override async delete(clientId: string): Promise<void> {
    void super.delete(clientId);
    const st = this.#inboxes.get(clientId);
    if (st !== undefined) {
      // The session is gone: what it was still writing has nothing left to protect.
      clearTimeout(st.idleTimer);
      for (const w of st.waiters) w.resolve(0n);
      st.pending = [];
      st.waiters = [];
      this.#inboxes.delete(clientId);
    }
    const creating = this.#creating.get(clientId);
    if (!this.#shards.delete(clientId) && creating === undefined) return;
    const prev = this.#deleting.get(clientId);
    // After any creation or earlier deletion in progress, and after the batches already sent.
    const deleted = Promise.allSettled([creating, prev, ...this.#appending])
      .then(() => this.#journal.deleteShard(INBOX_PREFIX + clientId))
      .catch((err: unknown) => {
        if (!(err instanceof RobustError && err.code === ErrorCode.ShardNotFound)) throw err;
      })
      .finally(() => {
        if (this.#deleting.get(clientId) === deleted) this.#deleting.delete(clientId);
      });
    this.#deleting.set(clientId, deleted);
    // A creation chained before this deletion must not be reused after it.
    this.#creating.delete(clientId);
    await deleted;
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
