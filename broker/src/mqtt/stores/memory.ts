import { topicMatches, hasWildcard } from '../topic.js';
import type {
  InboxEntry,
  InboxStore,
  MqttStores,
  Qos2Change,
  Qos2State,
  RetainStore,
  SessionRecord,
  SessionStore,
  StoredMessage,
} from './types.js';

/** Sessions in a Map: nothing survives the process. */
export class MemorySessionStore implements SessionStore {
  readonly records = new Map<string, SessionRecord>();

  async get(clientId: string): Promise<SessionRecord | undefined> {
    return this.records.get(clientId);
  }
  async put(record: SessionRecord): Promise<void> {
    this.records.set(record.clientId, record);
  }
  async delete(clientId: string): Promise<void> {
    this.records.delete(clientId);
  }
  async list(): Promise<SessionRecord[]> {
    return [...this.records.values()];
  }
  async close(): Promise<void> {}
}

/** Inboxes as Maps keyed by entry id (insertion order = id order). */
export class MemoryInboxStore implements InboxStore {
  readonly inboxes = new Map<string, Map<number, InboxEntry>>();
  /** QoS 2 packet ids in progress per session: inbound received, outbound released. */
  readonly qos2Ids = new Map<string, { received: Set<number>; released: Set<number> }>();

  async append(clientId: string, entries: readonly InboxEntry[]): Promise<void> {
    let box = this.inboxes.get(clientId);
    if (box === undefined) this.inboxes.set(clientId, (box = new Map()));
    for (const e of entries) box.set(e.id, e);
  }
  async sent(clientId: string, sent: ReadonlyArray<readonly [number, number]>): Promise<void> {
    const box = this.inboxes.get(clientId);
    if (box === undefined) return;
    for (const [id, packetId] of sent) {
      const e = box.get(id);
      if (e !== undefined) e.packetId = packetId;
    }
  }
  async read(clientId: string, fromId: number, max: number): Promise<InboxEntry[]> {
    const out: InboxEntry[] = [];
    for (const e of this.inboxes.get(clientId)?.values() ?? []) {
      if (out.length >= max) break;
      if (e.id >= fromId) out.push(e);
    }
    return out;
  }
  async ack(clientId: string, ids: readonly number[]): Promise<void> {
    const box = this.inboxes.get(clientId);
    if (box === undefined) return;
    for (const id of ids) box.delete(id);
    if (box.size === 0) this.inboxes.delete(clientId);
  }
  async trim(clientId: string, beforeId: number): Promise<void> {
    const box = this.inboxes.get(clientId);
    if (box === undefined) return;
    for (const id of box.keys()) if (id < beforeId) box.delete(id);
    if (box.size === 0) this.inboxes.delete(clientId);
  }
  async qos2(clientId: string, change: Qos2Change): Promise<void> {
    let st = this.qos2Ids.get(clientId);
    if (st === undefined) this.qos2Ids.set(clientId, (st = { received: new Set(), released: new Set() }));
    switch (change.kind) {
      case 'received':
        st.received.add(change.packetId);
        break;
      case 'released':
        st.received.delete(change.packetId);
        break;
      case 'pubrel':
        st.released.add(change.packetId);
        // Not `this.ack`: a subclass writes the change as one record, the ack included.
        if (change.inboxId > 0) await MemoryInboxStore.prototype.ack.call(this, clientId, [change.inboxId]);
        break;
      case 'pubcomp':
        st.released.delete(change.packetId);
        break;
    }
    if (st.received.size === 0 && st.released.size === 0) this.qos2Ids.delete(clientId);
  }
  async qos2State(clientId: string): Promise<Qos2State> {
    const st = this.qos2Ids.get(clientId);
    return { received: [...(st?.received ?? [])], released: [...(st?.released ?? [])] };
  }
  async delete(clientId: string): Promise<void> {
    this.inboxes.delete(clientId);
    this.qos2Ids.delete(clientId);
  }
  async sessions(): Promise<string[]> {
    return [...new Set([...this.inboxes.keys(), ...this.qos2Ids.keys()])];
  }
  async close(): Promise<void> {}
}

/** Retained messages in a Map; a filter without wildcards is a lookup, others a scan. */
export class MemoryRetainStore implements RetainStore {
  readonly messages = new Map<string, StoredMessage>();

  async set(message: StoredMessage): Promise<void> {
    this.messages.set(message.topic, message);
  }
  async clear(topic: string): Promise<void> {
    this.messages.delete(topic);
  }
  async get(topic: string): Promise<StoredMessage | undefined> {
    return this.messages.get(topic);
  }
  async match(filter: string): Promise<StoredMessage[]> {
    if (!hasWildcard(filter)) {
      const m = this.messages.get(filter);
      return m === undefined ? [] : [m];
    }
    const out: StoredMessage[] = [];
    for (const m of this.messages.values()) if (topicMatches(filter, m.topic)) out.push(m);
    return out;
  }
  get size(): number {
    return this.messages.size;
  }
  async close(): Promise<void> {}
}

/** Fresh in-memory stores (the default when no data directory is configured). */
export function createMemoryStores(): MqttStores {
  return { sessions: new MemorySessionStore(), inbox: new MemoryInboxStore(), retain: new MemoryRetainStore() };
}
