import type { PublishProperties } from '../codec.js';

/**
 * Persistence seams of the MQTT engine. The engine keeps the live state in memory and writes
 * through these stores; on start it reads them back (sessions, their inboxes, retained
 * messages). Every method that returns a Promise resolves once the change is durable to the
 * degree the implementation promises (the file stores: fsynced), which is what a PUBACK /
 * PUBREC for a stored message waits for.
 */

/** A message as stored: what a PUBLISH carried, minus per-connection details (alias, packet id). */
export interface StoredMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  /** 5.0 properties without Topic Alias and Subscription Identifier. */
  properties?: PublishProperties;
  /** Wall-clock ms when the message expires (Message Expiry Interval); absent = never. */
  expiresAt?: number;
  /** Wall-clock ms when the server received it. */
  receivedAt: number;
  /** Client id of the publisher ('' for server-generated messages); used for No Local. */
  publisherId: string;
}

/** A subscription of a session (5.0 Subscription Options, §3.8.3.1). */
export interface SubscriptionRecord {
  /** The filter as subscribed, including any `$share/{group}/` or `$queue/` prefix. */
  filter: string;
  qos: 0 | 1 | 2;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

/** A Will Message waiting for its session's connection to end (or already due). */
export interface WillRecord {
  message: StoredMessage;
  /** Will Delay Interval in seconds (5.0; 0 for 3.x). */
  delaySec: number;
}

export interface SessionRecord {
  clientId: string;
  protocolVersion: number;
  /** Session Expiry Interval in seconds; 0xFFFFFFFF never expires. */
  expiryIntervalSec: number;
  subscriptions: SubscriptionRecord[];
  will?: WillRecord;
  /** Wall-clock ms of the last disconnect; absent while connected (or when the server died). */
  disconnectedAt?: number;
}

/** Session records by client id. */
export interface SessionStore {
  get(clientId: string): Promise<SessionRecord | undefined>;
  put(record: SessionRecord): Promise<void>;
  delete(clientId: string): Promise<void>;
  list(): Promise<SessionRecord[]>;
  close(): Promise<void>;
}

/** One message queued for a session, delivered at `qos` (already min(publish, subscription)). */
export interface InboxEntry {
  /** Cursor: assigned by the engine, strictly increasing per session. */
  id: number;
  message: StoredMessage;
  qos: 1 | 2;
  /** Retain flag as it is to be delivered (Retain As Published). */
  retain: boolean;
  subscriptionIds?: number[];
  /** Packet id it was sent under (absent: not sent yet, or the id was not recorded). */
  packetId?: number;
}

/**
 * A change of the QoS 2 packet-id state of a persistent session (§4.3.3), both directions:
 * - `received`: inbound PUBLISH accepted, PUBREC about to be sent; a retransmission of the id
 *   is not routed again until `released` [MQTT-4.3.3-10];
 * - `released`: inbound PUBREL received, PUBCOMP about to be sent; the id is forgotten;
 * - `pubrel`: outbound PUBREC received, PUBREL about to be sent; on resume the server re-sends
 *   PUBREL, not the PUBLISH [MQTT-4.4.0-1]; the inbox entry `inboxId` (0 = none) goes in the
 *   same write, so a crash cannot keep both;
 * - `pubcomp`: outbound PUBCOMP received; the id is forgotten.
 */
export type Qos2Change =
  { kind: 'received' | 'released' | 'pubcomp'; packetId: number } | { kind: 'pubrel'; packetId: number; inboxId: number };

/** QoS 2 exchanges of a session in progress across a restart. */
export interface Qos2State {
  /** Inbound ids with PUBREC sent and no PUBREL yet. */
  received: number[];
  /** Outbound ids with PUBREL sent and no PUBCOMP yet. */
  released: number[];
}

/**
 * Per-session records of the QoS 1/2 messages of persistent sessions not yet acknowledged by
 * the client (queued, or in flight), and the session's QoS 2 packet-id state. The engine owns
 * the limit and drop policy; the store keeps what it is given until acked.
 */
export interface InboxStore {
  /** Appends entries (ids increasing); resolves once they survive a crash. */
  append(clientId: string, entries: readonly InboxEntry[]): Promise<void>;
  /**
   * Records the packet ids stored entries went out under ([entry id, packet id]); nothing needs
   * to wait for it (lost in a crash, the entry is re-sent under a new id).
   */
  sent(clientId: string, sent: ReadonlyArray<readonly [number, number]>): Promise<void>;
  /** Entries with id >= `fromId`, in id order, at most `max`. */
  read(clientId: string, fromId: number, max: number): Promise<InboxEntry[]>;
  /** Removes delivered (acknowledged) or dropped entries. */
  ack(clientId: string, ids: readonly number[]): Promise<void>;
  /** Removes every entry with id < `beforeId`. */
  trim(clientId: string, beforeId: number): Promise<void>;
  /** Records a QoS 2 state change; resolves once it survives a crash. */
  qos2(clientId: string, change: Qos2Change): Promise<void>;
  /** The QoS 2 state of a session (empty lists when none). */
  qos2State(clientId: string): Promise<Qos2State>;
  /** Removes the whole inbox and QoS 2 state (session ended). */
  delete(clientId: string): Promise<void>;
  /** Sessions that have an inbox or QoS 2 state. */
  sessions(): Promise<string[]>;
  close(): Promise<void>;
}

/** Retained messages by topic name. */
export interface RetainStore {
  /** Sets or replaces the retained message of `message.topic`. */
  set(message: StoredMessage): Promise<void>;
  /** Clears the retained message of `topic` (a retained PUBLISH with an empty payload). */
  clear(topic: string): Promise<void>;
  get(topic: string): Promise<StoredMessage | undefined>;
  /** Retained messages whose topic matches `filter` ($ topics skipped by first-level wildcards). */
  match(filter: string): Promise<StoredMessage[]>;
  /** Retained messages held. */
  readonly size: number;
  close(): Promise<void>;
}

/** The three stores the engine writes through. */
export interface MqttStores {
  sessions: SessionStore;
  inbox: InboxStore;
  retain: RetainStore;
}
