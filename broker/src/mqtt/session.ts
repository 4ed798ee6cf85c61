import { Deque } from './deque.js';
import { isExpired, type Message } from './message.js';
import type { SharedGroup, Subscription } from './subscription-trie.js';
import type { InboxEntry, SessionRecord, WillRecord } from './stores/types.js';
import type { Connection } from './connection.js';
import type { MqttEngine } from './engine.js';
import { DropReason } from './metrics.js';
import { DropPolicy } from './config.js';

/** Session Expiry Interval meaning "never" (5.0 §3.1.2.11.2). */
export const NEVER_EXPIRES = 0xffffffff;

/** One message on its way to a session: queued, or in flight under a packet identifier. */
export interface Delivery {
  message: Message;
  qos: 0 | 1 | 2;
  retain: boolean;
  subscriptionIds: number[] | undefined;
  /** Id in the session's inbox store; 0 when not stored. */
  inboxId: number;
  /** Shared group it was routed through, for redispatch when this member leaves. */
  group: SharedGroup<Session> | undefined;
  packetId: number;
  /** For QoS 2: PUBREC received and PUBREL sent. */
  released: boolean;
}

/**
 * MQTT session state (spec §4.1): subscriptions, outbound QoS 1/2 in flight and queued,
 * inbound QoS 2 packet ids not yet released, the will. Lives while connected and, when
 * persistent, after the connection ends until it expires.
 *
 * How delivery works: a QoS 0 message goes straight to the socket when online (dropped
 * otherwise). A QoS 1/2 message goes in flight at once when online and the window (the
 * client's Receive Maximum, bounded by config) has room; otherwise it is queued, bounded by
 * `maxQueuedMessages` with the drop policy. Every QoS 1/2 message of a persistent session —
 * queued or sent at once — is also appended to the inbox store (a message sent at once with
 * the packet id it went out under), and `deliver` returns that append's promise so the
 * publisher's PUBACK/PUBREC waits until the copy is durable (DESIGN §2.2). The entry is acked
 * in the store on PUBACK (QoS 1) or replaced by the `pubrel` record on PUBREC (QoS 2), so a
 * kill -9 at any point redelivers what the client has not acknowledged. A clean session
 * never writes. A queued entry sent later gets a cheap `sent` marker with its packet id, so a
 * resume after a restart re-sends it under the same id with DUP [MQTT-4.4.0-1].
 */
export class Session {
  readonly clientId: string;
  readonly engine: MqttEngine;
  protocolVersion: number;
  expiryIntervalSec: number;
  conn: Connection | undefined;
  // Made on first use: most idle clients never need them, and each empty one costs ~200 bytes.
  #subscriptions: Map<string, Subscription<Session>> | undefined;
  #inflight: Map<number, Delivery> | undefined;
  #inboundQos2: Set<number> | undefined;
  #queue: Deque<Delivery> | undefined;
  will: WillRecord | undefined;
  willTimer: NodeJS.Timeout | undefined;
  expiryTimer: NodeJS.Timeout | undefined;
  disconnectedAt: number | undefined;
  ended = false;
  #nextPacketId = 1;
  nextInboxId = 1;

  constructor(engine: MqttEngine, clientId: string, protocolVersion: number, expiryIntervalSec: number) {
    this.engine = engine;
    this.clientId = clientId;
    this.protocolVersion = protocolVersion;
    this.expiryIntervalSec = expiryIntervalSec;
  }

  /** QoS 1/2 messages waiting for room in the window (or for the client to come back). */
  get queue(): Deque<Delivery> {
    return (this.#queue ??= new Deque());
  }

  get queuedCount(): number {
    return this.#queue?.length ?? 0;
  }

  get subscriptions(): Map<string, Subscription<Session>> {
    return (this.#subscriptions ??= new Map());
  }

  get inflight(): Map<number, Delivery> {
    return (this.#inflight ??= new Map());
  }

  /** Inbound QoS 2 packet ids received and not yet released by PUBREL [MQTT-4.3.3-10]. */
  get inboundQos2(): Set<number> {
    return (this.#inboundQos2 ??= new Set());
  }

  /** Subscriptions, without making the map for a session that has none. */
  get subscriptionCount(): number {
    return this.#subscriptions?.size ?? 0;
  }

  get isPersistent(): boolean {
    return this.expiryIntervalSec > 0;
  }

  /** Queues or sends `d`; returns a promise when the message had to be stored first. */
  deliver(d: Delivery): Promise<void> | undefined {
    const conn = this.conn;
    if (d.qos === 0) {
      if (conn === undefined) {
        this.engine.countDrop(DropReason.OfflineQos0);
        return undefined;
      }
      conn.sendPublish(d, false);
      return undefined;
    }
    if (conn !== undefined && this.queuedCount === 0 && this.inflight.size < conn.outboundWindow) {
      this.#send(d, conn);
      if (!this.isPersistent || d.inboxId > 0) return undefined;
      // Stored like a queued message, with its packet id: until the client acknowledges it, a
      // restarted server must send it again (DUP, same id) [MQTT-4.4.0-1]. The PUBLISH does not
      // wait for the append: a client's acknowledgement before it is durable only writes the ack
      // marker after the entry (the store keeps the order).
      d.inboxId = this.nextInboxId++;
      return this.engine.stores.inbox.append(this.clientId, [toEntry(d)]);
    }
    return this.#enqueue(d);
  }

  #enqueue(d: Delivery): Promise<void> | undefined {
    const engine = this.engine;
    const c = engine.config;
    if (c.maxQueuedMessages > 0 && this.queue.length >= c.maxQueuedMessages) {
      engine.limitHit('queued_messages', this.clientId);
      if (c.queueDropPolicy === DropPolicy.DropNew) {
        engine.countDrop(DropReason.QueueFull);
        return undefined;
      }
      const old = this.queue.shift() as Delivery;
      engine.countDrop(DropReason.QueueFull);
      engine.queuedDelta(-1);
      if (old.inboxId > 0) void engine.stores.inbox.ack(this.clientId, [old.inboxId]).catch((err) => engine.storeError(err));
    }
    this.queue.push(d);
    engine.queuedDelta(1);
    if (!this.isPersistent || d.inboxId > 0) return undefined;
    d.inboxId = this.nextInboxId++;
    return engine.stores.inbox.append(this.clientId, [toEntry(d)]);
  }

  #allocPacketId(): number {
    for (;;) {
      const id = this.#nextPacketId;
      this.#nextPacketId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
  }

  /**
   * Puts `d` in flight and sends it. A queued delivery with a packet id already (restored from
   * the inbox: it went out under that id before a restart) is sent again with DUP under that id
   * when it is free [MQTT-4.4.0-1]. Returns whether a stored entry went out under an id the store
   * does not know yet.
   */
  #send(d: Delivery, conn: Connection): boolean {
    const preset = d.packetId;
    d.packetId = preset > 0 && !this.inflight.has(preset) ? preset : this.#allocPacketId();
    d.released = false;
    this.inflight.set(d.packetId, d);
    this.engine.inflightDelta(1);
    conn.sendPublish(d, preset > 0);
    return d.inboxId > 0 && d.packetId !== preset;
  }

  /** Moves queued messages in flight while the window has room; expired ones are dropped. */
  pump(): void {
    const conn = this.conn;
    if (conn === undefined) return;
    const now = Date.now();
    let sent: Array<[number, number]> | undefined;
    while (this.queuedCount > 0 && this.inflight.size < conn.outboundWindow && this.conn === conn) {
      const d = this.queue.shift() as Delivery;
      this.engine.queuedDelta(-1);
      if (isExpired(d.message, now)) {
        // An expired message is never delivered (5.0 §3.3.2.3.3)
        this.engine.countDrop(DropReason.Expired);
        this.#forget(d);
        continue;
      }
      if (this.#send(d, conn)) (sent ??= []).push([d.inboxId, d.packetId]);
    }
    // One marker for the whole window; nothing waits for it (lost in a crash, the resume after
    // the restart uses a new id, as before it was sent).
    if (sent !== undefined) void this.engine.stores.inbox.sent(this.clientId, sent).catch((err) => this.engine.storeError(err));
  }

  /** After reconnecting to an existing session: resend unacknowledged PUBLISH (DUP) and PUBREL [MQTT-4.4.0-1]. */
  resume(): void {
    const conn = this.conn;
    if (conn === undefined) return;
    for (const d of this.#inflight?.values() ?? []) {
      if (d.released) conn.sendPubrel(d.packetId);
      else conn.sendPublish(d, true);
    }
    this.pump();
  }

  /** PUBACK for an outbound QoS 1 message. */
  onPuback(packetId: number): boolean {
    const d = this.inflight.get(packetId);
    if (d === undefined || d.qos !== 1) return false;
    this.#complete(d);
    return true;
  }

  /**
   * PUBREC for an outbound QoS 2 message. `known` is false when the id is unknown; `durable` is
   * the write the PUBREL waits for: a persistent session stores the released id (and drops the
   * message from its inbox in the same record), so a resume after a restart re-sends PUBREL, not
   * the PUBLISH [MQTT-4.3.3-5] [MQTT-4.4.0-1].
   */
  onPubrec(packetId: number, reasonCode: number): { known: boolean; durable: Promise<void> | undefined } {
    const d = this.inflight.get(packetId);
    if (d === undefined || d.qos !== 2) return { known: false, durable: undefined };
    if (reasonCode >= 0x80) {
      // A PUBREC with a failure reason ends the exchange (5.0 §4.3.3)
      this.#complete(d);
      return { known: true, durable: undefined };
    }
    // A repeated PUBREC only gets the PUBREL again.
    if (d.released || !this.isPersistent) {
      d.released = true;
      return { known: true, durable: undefined };
    }
    d.released = true;
    const inboxId = d.inboxId;
    d.inboxId = 0;
    const durable = this.engine.stores.inbox.qos2(this.clientId, { kind: 'pubrel', packetId, inboxId });
    return { known: true, durable };
  }

  onPubcomp(packetId: number): boolean {
    const d = this.inflight.get(packetId);
    if (d === undefined || d.qos !== 2) return false;
    if (d.released && this.isPersistent)
      void this.engine.stores.inbox.qos2(this.clientId, { kind: 'pubcomp', packetId }).catch((err) => this.engine.storeError(err));
    this.#complete(d);
    return true;
  }

  /** Outbound QoS 2 ids released before a restart: in flight again, waiting for PUBCOMP. */
  restoreReleased(packetIds: readonly number[]): void {
    for (const packetId of packetIds) {
      // The message itself is gone (the client has it); only the id and the state matter.
      const message: Message = { topic: '', payload: Buffer.alloc(0), qos: 2, retain: false, receivedAt: 0, publisherId: '' };
      const d: Delivery = {
        message,
        qos: 2,
        retain: false,
        subscriptionIds: undefined,
        inboxId: 0,
        group: undefined,
        packetId,
        released: true,
      };
      this.inflight.set(packetId, d);
      this.engine.inflightDelta(1);
    }
  }

  /**
   * An inbound QoS 2 PUBLISH was accepted: its id is remembered until PUBREL, and a
   * retransmission is acknowledged without being routed again [MQTT-4.3.3-10]. For a persistent
   * session the id is stored, and the PUBREC waits for that, so the guarantee survives a restart.
   */
  receivedQos2(packetId: number): Promise<void> | undefined {
    this.inboundQos2.add(packetId);
    if (!this.isPersistent) return undefined;
    return this.engine.stores.inbox.qos2(this.clientId, { kind: 'received', packetId });
  }

  /** PUBREL: forgets the inbound id; the PUBCOMP waits for `durable` [MQTT-4.3.3-11]. */
  releasedQos2(packetId: number): { known: boolean; durable: Promise<void> | undefined } {
    if (!this.inboundQos2.delete(packetId)) return { known: false, durable: undefined };
    if (!this.isPersistent) return { known: true, durable: undefined };
    return { known: true, durable: this.engine.stores.inbox.qos2(this.clientId, { kind: 'released', packetId }) };
  }

  #complete(d: Delivery): void {
    this.inflight.delete(d.packetId);
    this.engine.inflightDelta(-1);
    this.#forget(d);
    this.pump();
  }

  #forget(d: Delivery): void {
    this.forgetStored(d.inboxId);
  }

  /** Acknowledges a stored inbox entry (0 = none): a restart will not redeliver it. */
  forgetStored(inboxId: number): void {
    if (inboxId > 0) void this.engine.stores.inbox.ack(this.clientId, [inboxId]).catch((err) => this.engine.storeError(err));
  }

  /**
   * Takes back the QoS 1/2 messages this session got through shared subscriptions and has not
   * completed (in flight before PUBREC, or queued), so they can go to another member. Their
   * stored entries stay in this session's inbox until the caller has the messages stored
   * elsewhere and calls `forgetStored` (a crash in between redelivers rather than loses).
   *
   * With `only` (the session unsubscribed from that one group) just that group's queued
   * messages are taken: what was already sent stays to be completed [MQTT-3.10.4-3], and the
   * session's other groups keep theirs.
   */
  takeShared(only?: { name: string; topicFilter: string }): Delivery[] {
    const out: Delivery[] = [];
    if (this.#inflight === undefined && this.queuedCount === 0) return out;
    if (only === undefined) {
      for (const [id, d] of this.inflight) {
        if (d.group !== undefined && !d.released) {
          this.inflight.delete(id);
          this.engine.inflightDelta(-1);
          out.push(d);
        }
      }
    }
    const taken = (d: Delivery): boolean =>
      d.group !== undefined && (only === undefined || (d.group.name === only.name && d.group.topicFilter === only.topicFilter));
    const before = this.queue.length;
    this.queue.filter((d) => {
      if (!taken(d)) return true;
      out.push(d);
      return false;
    });
    this.engine.queuedDelta(this.queue.length - before);
    return out;
  }

  /**
   * Stores the in-flight messages not yet in the inbox, so a restart redelivers them (a safety
   * net: a persistent session's messages are stored as they are delivered).
   */
  persistInflight(): Promise<void> | undefined {
    if (!this.isPersistent) return undefined;
    const entries: InboxEntry[] = [];
    for (const d of this.inflight.values()) {
      // A released QoS 2 message is stored as its id only (`onPubrec`), never again in full.
      if (d.inboxId === 0 && d.qos > 0 && !d.released) {
        d.inboxId = this.nextInboxId++;
        entries.push(toEntry(d));
      }
    }
    return entries.length === 0 ? undefined : this.engine.stores.inbox.append(this.clientId, entries);
  }

  /** Drops every queued and in-flight message (the session ends). */
  clearMessages(): void {
    this.engine.inflightDelta(-(this.#inflight?.size ?? 0));
    this.engine.queuedDelta(-this.queuedCount);
    this.#inflight?.clear();
    this.#queue?.clear();
    this.#inboundQos2?.clear();
  }

  toRecord(): SessionRecord {
    const r: SessionRecord = {
      clientId: this.clientId,
      protocolVersion: this.protocolVersion,
      expiryIntervalSec: this.expiryIntervalSec,
      subscriptions: [...(this.#subscriptions?.values() ?? [])].map((s) => {
        const rec: SessionRecord['subscriptions'][number] = {
          filter: s.filter,
          qos: s.qos,
          noLocal: s.noLocal,
          retainAsPublished: s.retainAsPublished,
          retainHandling: s.retainHandling,
        };
        if (s.subscriptionId !== undefined) rec.subscriptionId = s.subscriptionId;
        return rec;
      }),
    };
    if (this.will !== undefined) r.will = this.will;
    if (this.disconnectedAt !== undefined) r.disconnectedAt = this.disconnectedAt;
    return r;
  }
}

export function toEntry(d: Delivery): InboxEntry {
  const { cache: _cache, ...message } = d.message;
  const e: InboxEntry = { id: d.inboxId, message, qos: d.qos as 1 | 2, retain: d.retain };
  if (d.subscriptionIds !== undefined) e.subscriptionIds = d.subscriptionIds;
  if (d.packetId > 0) e.packetId = d.packetId;
  return e;
}
