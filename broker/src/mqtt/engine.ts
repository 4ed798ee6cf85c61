import { randomUUID } from 'node:crypto';
import type { Registry } from 'prom-client';
import { hotCounterFamily, type HotCounter, type Logger } from '@robustmq/common';
import { resolveMqttConfig, SharedStrategy, type MqttConfig } from './config.js';
import { createMqttMetrics, DropReason, type MqttMetrics } from './metrics.js';
import { Connection, type ConnectionSocket } from './connection.js';
import { Session, NEVER_EXPIRES, type Delivery } from './session.js';
import { SubscriptionTrie, type SharedGroup, type Subscription } from './subscription-trie.js';
import { parseFilter, topicMatches } from './topic.js';
import { isExpired, type Message } from './message.js';
import { ReasonCode } from './reason-codes.js';
import { createMemoryStores } from './stores/memory.js';
import { openFileStores } from './stores/file.js';
import type { MqttStores, SessionRecord, StoredMessage, SubscriptionRecord, WillRecord } from './stores/types.js';
import type { BrokerSecurity, ConnectionInfo } from '../auth/security.js';

export interface MqttEngineOptions {
  log: Logger;
  registry: Registry;
  /** Engine configuration; unset keys take `MQTT_DEFAULTS`. */
  config?: Partial<MqttConfig>;
  /** Stores to write through; default: file stores under `dataDir`, or memory stores without it. */
  stores?: MqttStores | (() => Promise<MqttStores>);
  /** Directory of the file-backed stores (used when `stores` is not given). */
  dataDir?: string;
  /** Reported in `$SYS/broker/version`. */
  version?: string;
  /**
   * Sink for every routed PUBLISH (the MQTT → Kafka bindings). When it returns a promise (a
   * binding stored the message), the message counts as matched and a QoS ≥ 1 acknowledgement
   * waits for that promise: acknowledged means stored. Undefined = nothing bound.
   */
  onPublish?: (m: Message) => Promise<void> | undefined;
  /** Authentication, ACLs and abuse limits; without it every client is allowed everything. */
  security?: BrokerSecurity;
}

/** Counters kept as plain numbers on the hot path, folded into prom-client periodically. */
export interface EngineStats {
  received: [number, number, number];
  sent: [number, number, number];
  bytesIn: number;
  bytesOut: number;
}

const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** setTimeout for delays beyond ~24.8 days (chained), unref'd. */
function later(ms: number, fn: () => void): NodeJS.Timeout {
  if (ms > MAX_TIMEOUT_MS) return setTimeout(() => later(ms - MAX_TIMEOUT_MS, fn), MAX_TIMEOUT_MS).unref();
  return setTimeout(fn, Math.max(0, ms)).unref();
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/**
 * The MQTT protocol engine of one broker: sessions, the subscription trie, retained messages,
 * wills, shared subscriptions and `$SYS`, over pluggable stores.
 *
 * How this works: everything live is in memory and owned by the event loop. A PUBLISH is
 * matched against the trie and handed to each matching session synchronously (online delivery is
 * a push, QoS 0 never touches a store). Stores are written through: session records on change,
 * inbox entries for persistent sessions that cannot take a message now, retained messages; the
 * promises of writes a QoS 1/2 acknowledgement depends on are returned to the publish handler.
 * On start the stores are read back: sessions with their subscriptions and inboxes, pending
 * wills (their delay counted from the last disconnect, or from now when the server died while
 * the client was connected), and retained messages.
 */
export class MqttEngine {
  readonly config: Readonly<MqttConfig>;
  readonly log: Logger;
  readonly metrics: MqttMetrics;
  /** `metrics.disconnects` by reason, counted per connection without hashing labels. */
  readonly #disconnects: (reason: string) => HotCounter;
  readonly security: BrokerSecurity | undefined;
  readonly stats: EngineStats = { received: [0, 0, 0], sent: [0, 0, 0], bytesIn: 0, bytesOut: 0 };
  /** Resolves once the stores are open and state is restored; connections wait for it. */
  readonly ready: Promise<void>;
  readonly sessions = new Map<string, Session>();
  readonly trie = new SubscriptionTrie<Session>();
  readonly #connections = new Set<Connection>();
  readonly #sysRetained = new Map<string, Message>();
  readonly #version: string;
  readonly #startedAt = Date.now();
  readonly #totals: EngineStats = { received: [0, 0, 0], sent: [0, 0, 0], bytesIn: 0, bytesOut: 0 };
  #stores: MqttStores | undefined;
  #isReady = false;
  #closing = false;
  #connected = 0;
  #queued = 0;
  #inflight = 0;
  #dropped = 0;
  #housekeeping: NodeJS.Timeout | undefined;
  #sysTimer: NodeJS.Timeout | undefined;
  readonly #limitLogged = new Set<string>();
  /** Background store writes in progress (`#track`); `close` waits for them. */
  readonly #writes = new Set<Promise<void>>();
  /** Sessions whose connections the shutdown closed, handled once all are closed. */
  readonly #closedByShutdown: Session[] = [];
  readonly #onPublish: MqttEngineOptions['onPublish'];
  /** The 'error' listener of every connection's socket (one function, not one per socket). */
  readonly onSocketError = (err: Error): void => {
    this.log.debug({ err }, 'socket error');
  };

  constructor(opts: MqttEngineOptions) {
    this.config = resolveMqttConfig(opts.config);
    this.log = opts.log;
    this.metrics = createMqttMetrics(opts.registry);
    this.#disconnects = hotCounterFamily(this.metrics.disconnects, ['reason']);
    this.security = opts.security;
    this.#version = opts.version ?? '0.1.0';
    this.#onPublish = opts.onPublish;
    this.ready = this.#open(opts);
    this.ready.catch((err: unknown) => this.log.error({ err }, 'mqtt stores failed to open'));
  }

  get stores(): MqttStores {
    if (this.#stores === undefined) throw new Error('mqtt engine not ready');
    return this.#stores;
  }

  get connectedCount(): number {
    return this.#connected;
  }

  async #open(opts: MqttEngineOptions): Promise<void> {
    const s = opts.stores;
    this.#stores =
      s === undefined
        ? opts.dataDir !== undefined
          ? await openFileStores(opts.dataDir)
          : createMemoryStores()
        : typeof s === 'function'
          ? await s()
          : s;
    await this.#restore();
    this.#isReady = true;
    this.#housekeeping = setInterval(() => this.#sweep(), 500).unref();
    if (this.config.sysIntervalMs > 0) {
      this.#publishSys();
      this.#sysTimer = setInterval(() => this.#publishSys(), this.config.sysIntervalMs).unref();
    }
    this.log.info({ sessions: this.sessions.size, retained: this.stores.retain.size }, 'mqtt engine ready');
  }

  async #restore(): Promise<void> {
    const stores = this.stores;
    const now = Date.now();
    const records = await stores.sessions.list();
    const expired: Session[] = [];
    const offline: Session[] = [];
    for (const r of records) {
      const s = new Session(this, r.clientId, r.protocolVersion, r.expiryIntervalSec);
      // A session without a disconnect time was connected when the server stopped: count from now.
      s.disconnectedAt = r.disconnectedAt ?? now;
      s.will = r.will;
      if (s.expiryIntervalSec !== NEVER_EXPIRES && s.disconnectedAt + s.expiryIntervalSec * 1000 <= now) {
        this.sessions.set(s.clientId, s);
        expired.push(s);
        continue;
      }
      this.sessions.set(s.clientId, s);
      for (const sub of r.subscriptions) this.#addSubscription(s, sub);
      const entries = await stores.inbox.read(s.clientId, 0, Number.MAX_SAFE_INTEGER);
      for (const e of entries) {
        s.queue.push({
          message: e.message,
          qos: e.qos,
          retain: e.retain,
          subscriptionIds: e.subscriptionIds,
          inboxId: e.id,
          group: undefined,
          // Set when it went out before the restart: the resume re-sends it with DUP under that id.
          packetId: e.packetId ?? 0,
          released: false,
        });
        s.nextInboxId = Math.max(s.nextInboxId, e.id + 1);
      }
      this.queuedDelta(entries.length);
      // QoS 2 exchanges in progress when the server stopped continue where they were.
      const q2 = await stores.inbox.qos2State(s.clientId);
      for (const id of q2.received) s.inboundQos2.add(id);
      s.restoreReleased(q2.released);
      offline.push(s);
    }
    // Wills (due ones are published now) only once every session is back: they must reach
    // every subscription, also those of sessions restored after theirs.
    for (const s of expired) this.endSession(s, true);
    for (const s of offline) this.#scheduleOffline(s, now);
    for (const c of await stores.inbox.sessions()) if (!this.sessions.has(c)) await stores.inbox.delete(c);
    this.metrics.sessions.set(this.sessions.size);
    this.metrics.retained.set(stores.retain.size);
  }

  /** Takes a freshly accepted socket (TCP, native TCP, TLS, or a WebSocket stream shaped like one). */
  handleSocket(socket: ConnectionSocket, info?: ConnectionInfo): void {
    const start = (): void => {
      if (this.#closing) {
        socket.destroy();
        return;
      }
      const conn = new Connection(socket, this, this.log, info);
      this.#connections.add(conn);
    };
    if (this.#isReady) start();
    else {
      socket.pause();
      this.ready.then(
        () => {
          start();
          socket.resume();
        },
        () => socket.destroy(),
      );
    }
  }

  assignClientId(): string {
    return `auto-${randomUUID()}`;
  }

  /**
   * Attaches `conn` to the session of `clientId`: a connected owner is taken over (5.0: after
   * DISCONNECT 0x8E) [MQTT-3.1.4-3]; Clean Start / CleanSession=1 discards an existing session
   * [MQTT-3.1.2-4]; otherwise the session resumes with its subscriptions and messages
   * [MQTT-3.1.2-5]. Returns whether a session was present [MQTT-3.2.2-2] [MQTT-3.2.2-3].
   */
  openSession(
    conn: Connection,
    clientId: string,
    resume: boolean,
    expirySec: number,
    protocolVersion: number,
    will: WillRecord | undefined,
  ): { session: Session; present: boolean } {
    let s = this.sessions.get(clientId);
    if (s?.conn !== undefined) {
      const old = s.conn;
      old.log.info({ clientId }, 'session taken over');
      this.countDisconnect('session_taken_over');
      old.close(ReasonCode.SessionTakenOver, 'session taken over');
      s = this.sessions.get(clientId);
    }
    if (s !== undefined && !resume) {
      this.endSession(s, true);
      s = undefined;
    }
    let present = false;
    if (s !== undefined) {
      present = true;
      // A new connection before the will delay passed: the will is not sent [MQTT-3.1.3-9]
      clearTimeout(s.willTimer);
      clearTimeout(s.expiryTimer);
      s.willTimer = undefined;
      s.expiryTimer = undefined;
      s.protocolVersion = protocolVersion;
      s.expiryIntervalSec = expirySec;
    } else {
      s = new Session(this, clientId, protocolVersion, expirySec);
      this.sessions.set(clientId, s);
      this.metrics.sessions.set(this.sessions.size);
    }
    s.conn = conn;
    s.will = will;
    s.disconnectedAt = undefined;
    conn.session = s;
    if (s.isPersistent) void this.saveSession(s).catch((err) => this.storeError(err));
    return { session: s, present };
  }

  onConnected(conn: Connection): void {
    this.#connected++;
    this.metrics.connections.set(this.#connected);
    // Checked first: the line would make the connection's logger for every client.
    if (conn.logs('debug'))
      conn.log.debug(
        { clientId: conn.clientId, protocolVersion: conn.protocolVersion, keepAliveSec: conn.keepAliveSec },
        'mqtt client connected',
      );
  }

  /** Runs once per connection when it ends, whatever ended it. */
  onConnectionClosed(conn: Connection): void {
    if (!this.#connections.delete(conn)) return;
    if (!conn.closed) {
      conn.closed = true;
      conn.socket.destroy();
    }
    if (!conn.connected) return;
    this.#connected--;
    this.metrics.connections.set(this.#connected);
    const s = conn.session;
    if (s === undefined || s.conn !== conn) return;
    s.conn = undefined;
    const now = Date.now();
    s.disconnectedAt = now;
    if (conn.logs('debug')) conn.log.debug({ clientId: s.clientId }, 'mqtt client disconnected');
    // A leaving member's unacknowledged shared messages go to another member (DESIGN §2).
    this.#redispatch(s, s.takeShared());
    if (conn.willCancelled) s.will = undefined;
    if (this.#closing) {
      // Server shutdown: the session is handled once every connection is closed (`shutdown`).
      this.#closedByShutdown.push(s);
      return;
    }
    if (!s.isPersistent) {
      this.endSession(s, true);
      return;
    }
    this.#track(s.persistInflight());
    this.#track(this.saveSession(s));
    this.#scheduleOffline(s, now);
  }

  /**
   * The sessions whose connections the shutdown closed. For their clients that is a network
   * failure (no DISCONNECT), so wills are due as after one [MQTT-3.1.2-8]: a clean session ends
   * and publishes its will now; a persistent session publishes a will without delay now and keeps
   * a delayed one in its record, published after the restart when due (its delay counted from
   * `disconnectedAt`). Every connection is closed first, so a will reaches the inboxes of
   * persistent subscribers rather than sockets about to close; `close` waits for the writes.
   */
  #endShutdownSessions(): void {
    for (const s of this.#closedByShutdown) {
      if (s.ended || s.conn !== undefined) continue;
      if (!s.isPersistent) {
        this.endSession(s, true);
        continue;
      }
      this.#track(s.persistInflight());
      const w = s.will;
      if (w !== undefined && Math.min(w.delaySec, s.expiryIntervalSec) === 0) this.#publishWill(s, () => this.saveSession(s));
      else this.#track(this.saveSession(s));
    }
    this.#closedByShutdown.length = 0;
  }

  /** Follows a store write made in the background: errors are logged, `close` waits for it. */
  #track(p: Promise<unknown> | undefined): void {
    if (p === undefined) return;
    const w = p.then(
      () => undefined,
      (err: unknown) => this.storeError(err),
    );
    this.#writes.add(w);
    void w.finally(() => this.#writes.delete(w));
  }

  /** Arms the will and expiry timers of a disconnected persistent session. */
  #scheduleOffline(s: Session, now: number): void {
    const since = s.disconnectedAt ?? now;
    if (s.will !== undefined) {
      // The will waits for its delay or the session's end, whichever is first (5.0 §3.1.2.5)
      const delayMs = Math.min(s.will.delaySec, s.expiryIntervalSec) * 1000 - (now - since);
      // The record stops holding the will as it is published (`#publishWill`).
      const forget = (): Promise<void> | undefined => (s.ended || this.sessions.get(s.clientId) !== s ? undefined : this.saveSession(s));
      if (delayMs <= 0) this.#publishWill(s, forget);
      else s.willTimer = later(delayMs, () => this.#publishWill(s, forget));
    }
    if (s.expiryIntervalSec !== NEVER_EXPIRES) {
      s.expiryTimer = later(s.expiryIntervalSec * 1000 - (now - since), () => {
        this.log.debug({ clientId: s.clientId }, 'session expired');
        this.endSession(s, true);
      });
    }
  }

  /**
   * Publishes the will of `s`. `forget` writes the session's record without the will (undefined:
   * no stored record holds it). A kill -9 between publishing and that write makes the restarted
   * server publish the will again: QoS 1 allows that duplicate, QoS 0 and 2 do not, so for them
   * the record changes first (a crash in between loses the will: at most once).
   */
  #publishWill(s: Session, forget: () => Promise<void> | undefined): void {
    const w = s.will;
    s.will = undefined;
    clearTimeout(s.willTimer);
    s.willTimer = undefined;
    if (w === undefined) return;
    const send = (): void => {
      const now = Date.now();
      const m: Message = { ...w.message, receivedAt: now };
      const exp = w.message.properties?.messageExpiryInterval;
      if (exp !== undefined) m.expiresAt = now + exp * 1000;
      this.log.debug({ clientId: s.clientId, topic: m.topic }, 'will published');
      this.#track(this.publish(m, undefined).durable);
    };
    const forgotten = forget();
    if (forgotten === undefined || w.message.qos === 1) {
      send();
      this.#track(forgotten);
    } else
      this.#track(
        forgotten.then(send, (err: unknown) => {
          // The record still holds the will: publish anyway rather than lose it silently.
          this.storeError(err);
          send();
        }),
      );
  }

  /** Ends a session: subscriptions, messages and stored state go; a pending will is published first. */
  endSession(s: Session, publishWill: boolean): void {
    if (s.ended) return;
    clearTimeout(s.expiryTimer);
    const stores = this.stores;
    // Only a persistent session has a record that could hold the will after a crash.
    const deleted = stores.sessions.delete(s.clientId);
    if (publishWill && s.will !== undefined) this.#publishWill(s, () => (s.isPersistent ? deleted : undefined));
    clearTimeout(s.willTimer);
    s.ended = true;
    if (s.subscriptionCount > 0) {
      for (const sub of s.subscriptions.values()) this.trie.remove(sub);
      s.subscriptions.clear();
    }
    s.clearMessages();
    if (this.sessions.get(s.clientId) === s) this.sessions.delete(s.clientId);
    this.metrics.sessions.set(this.sessions.size);
    this.metrics.subscriptions.set(this.trie.size);
    this.#track(Promise.all([deleted, stores.inbox.delete(s.clientId)]));
  }

  saveSession(s: Session): Promise<void> {
    return this.stores.sessions.put(s.toRecord());
  }

  #addSubscription(s: Session, rec: SubscriptionRecord): Subscription<Session> | undefined {
    const parsed = parseFilter(rec.filter);
    if (parsed === undefined) return undefined;
    const prev = s.subscriptions.get(rec.filter);
    if (prev !== undefined) this.trie.remove(prev);
    const sub: Subscription<Session> = { ...rec, session: s, topicFilter: parsed.filter, group: parsed.group };
    s.subscriptions.set(rec.filter, sub);
    this.trie.add(sub);
    this.metrics.subscriptions.set(this.trie.size);
    return sub;
  }

  subscribe(s: Session, rec: SubscriptionRecord): void {
    this.#addSubscription(s, rec);
  }

  unsubscribe(s: Session, filter: string): boolean {
    const sub = s.subscriptions.get(filter);
    if (sub === undefined) return false;
    s.subscriptions.delete(filter);
    this.trie.remove(sub);
    this.metrics.subscriptions.set(this.trie.size);
    if (sub.group !== undefined) this.#redispatch(s, s.takeShared({ name: sub.group, topicFilter: sub.topicFilter }));
    return true;
  }

  /**
   * Retained messages for a new subscription per Retain Handling: 0 always, 1 only when the
   * subscription is new, 2 never [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; not for shared
   * subscriptions (5.0 §4.8.2). They carry RETAIN=1 [MQTT-3.3.1-8].
   */
  sendRetained(s: Session, rec: SubscriptionRecord, isNew: boolean): void {
    if (rec.retainHandling === 2 || (rec.retainHandling === 1 && !isNew)) return;
    const parsed = parseFilter(rec.filter);
    if (parsed === undefined || parsed.group !== undefined) return;
    const subIds = rec.subscriptionId === undefined ? undefined : [rec.subscriptionId];
    const deliver = (msgs: readonly StoredMessage[]): void => {
      const now = Date.now();
      for (const m of msgs) {
        if (s.ended) return;
        if (isExpired(m, now)) continue;
        const qos = Math.min(m.qos, rec.qos) as 0 | 1 | 2;
        void s
          .deliver({ message: m, qos, retain: true, subscriptionIds: subIds, inboxId: 0, group: undefined, packetId: 0, released: false })
          ?.catch((err) => this.storeError(err));
      }
    };
    if (parsed.filter.startsWith('$SYS') || parsed.filter.startsWith('#') || parsed.filter.startsWith('+')) {
      deliver([...this.#sysRetained.values()].filter((m) => topicMatches(parsed.filter, m.topic)));
    }
    this.stores.retain.match(parsed.filter).then(deliver, (err: unknown) => this.storeError(err));
  }

  /**
   * Routes a message to every matching session. Overlapping subscriptions of one session give
   * one copy at the highest granted QoS carrying every Subscription Identifier [MQTT-3.3.4-2]
   * [MQTT-3.3.4-3] (5.0 §3.3.4); each shared group gets it once. Returns how many sessions got
   * it and, when some copy must be stored first, the promise of that.
   */
  publish(m: Message, from: Session | undefined): { matched: number; durable: Promise<void> | undefined } {
    let waits: Array<Promise<void>> | undefined;
    if (m.retain) {
      const w = this.#retain(m);
      if (w !== undefined && m.qos > 0) (waits ??= []).push(w);
    }
    const subs: Array<Subscription<Session>> = [];
    const groups: Array<SharedGroup<Session>> = [];
    this.trie.match(
      m.topic,
      (s) => subs.push(s),
      (g) => groups.push(g),
    );
    let matched = 0;
    const sunk = this.#onPublish?.(m);
    if (sunk !== undefined) {
      matched++;
      (waits ??= []).push(sunk);
    }
    const publisherId = m.publisherId;
    if (subs.length === 1) {
      const sub = subs[0] as Subscription<Session>;
      // No Local: not to the publisher's own session [MQTT-3.8.3-3]
      if (!(sub.noLocal && sub.session.clientId === publisherId)) {
        matched++;
        const w = sub.session.deliver({
          message: m,
          qos: (m.qos < sub.qos ? m.qos : sub.qos) as 0 | 1 | 2,
          // Retain As Published, else RETAIN=0 on forwarded messages [MQTT-3.3.1-12] [MQTT-3.3.1-13]
          retain: sub.retainAsPublished && m.retain,
          subscriptionIds: sub.subscriptionId === undefined ? undefined : [sub.subscriptionId],
          inboxId: 0,
          group: undefined,
          packetId: 0,
          released: false,
        });
        if (w !== undefined) (waits ??= []).push(w);
      }
    } else if (subs.length > 1) {
      const per = new Map<Session, { qos: number; retain: boolean; ids: number[] | undefined }>();
      for (const sub of subs) {
        if (sub.noLocal && sub.session.clientId === publisherId) continue;
        const q = m.qos < sub.qos ? m.qos : sub.qos;
        const a = per.get(sub.session);
        if (a === undefined) {
          per.set(sub.session, {
            qos: q,
            retain: sub.retainAsPublished && m.retain,
            ids: sub.subscriptionId === undefined ? undefined : [sub.subscriptionId],
          });
        } else {
          if (q > a.qos) a.qos = q;
          if (sub.retainAsPublished && m.retain) a.retain = true;
          if (sub.subscriptionId !== undefined) (a.ids ??= []).push(sub.subscriptionId);
        }
      }
      for (const [session, a] of per) {
        matched++;
        const w = session.deliver({
          message: m,
          qos: a.qos as 0 | 1 | 2,
          retain: a.retain,
          subscriptionIds: a.ids,
          inboxId: 0,
          group: undefined,
          packetId: 0,
          released: false,
        });
        if (w !== undefined) (waits ??= []).push(w);
      }
    }
    for (const g of groups) {
      const member = this.#pickMember(g, m, undefined);
      if (member === undefined) continue;
      matched++;
      const w = member.session.deliver({
        message: m,
        qos: (m.qos < member.qos ? m.qos : member.qos) as 0 | 1 | 2,
        retain: member.retainAsPublished && m.retain,
        subscriptionIds: member.subscriptionId === undefined ? undefined : [member.subscriptionId],
        inboxId: 0,
        group: g,
        packetId: 0,
        released: false,
      });
      if (w !== undefined) (waits ??= []).push(w);
    }
    // A retained message nobody receives now is kept, not dropped ($SYS statistics included).
    if (matched === 0 && !m.retain) this.countDrop(DropReason.NoSubscribers);
    void from;
    return { matched, durable: waits === undefined ? undefined : waits.length === 1 ? waits[0] : Promise.all(waits).then(() => undefined) };
  }

  /** Retained message update [MQTT-3.3.1-5]; an empty payload clears it [MQTT-3.3.1-6] [MQTT-3.3.1-7]. */
  #retain(m: Message): Promise<void> | undefined {
    if (m.topic.startsWith('$SYS')) {
      this.#sysRetained.set(m.topic, m);
      return undefined;
    }
    const store = this.stores.retain;
    if (m.payload.length === 0) return store.clear(m.topic).finally(() => this.metrics.retained.set(store.size));
    const { cache: _c, ...stored } = m;
    if (store.size >= this.config.maxRetainedMessages) {
      // Only a new topic is refused: replacing an existing retained message keeps the count.
      return store.get(m.topic).then((old) => {
        if (old === undefined) {
          this.limitHit('retained_messages', m.publisherId);
          this.countDrop(DropReason.RetainedLimit);
          return;
        }
        return store.set(stored);
      });
    }
    return store.set(stored).finally(() => this.metrics.retained.set(store.size));
  }

  #pickMember(g: SharedGroup<Session>, m: StoredMessage, exclude: Session | undefined): Subscription<Session> | undefined {
    const all = g.members;
    let cands = all.filter((x) => x.session.conn !== undefined && x.session !== exclude);
    if (cands.length === 0) cands = all.filter((x) => x.session !== exclude && x.session.isPersistent);
    const n = cands.length;
    if (n === 0) return undefined;
    if (n === 1) return cands[0];
    switch (this.config.sharedStrategy) {
      case SharedStrategy.Random:
        return cands[Math.floor(Math.random() * n)];
      case SharedStrategy.Sticky:
        if (g.sticky === undefined || !cands.includes(g.sticky)) g.sticky = cands[Math.floor(Math.random() * n)];
        return g.sticky;
      case SharedStrategy.HashClientId:
        return cands[hash(m.publisherId) % n];
      case SharedStrategy.HashTopic:
        return cands[hash(m.topic) % n];
      default:
        return cands[g.next++ % n];
    }
  }

  #redispatch(from: Session, ds: Delivery[]): void {
    for (const d of ds) {
      // The leaving member's stored entry goes only once the message is stored for its new
      // member (a kill -9 in between delivers it twice rather than never); if that store fails
      // the entry stays, and the leaving member gets it again when it resumes.
      const stored = d.inboxId;
      const handedOver = (p: Promise<void> | undefined): void => {
        if (p === undefined) from.forgetStored(stored);
        else this.#track(p.then(() => from.forgetStored(stored)));
      };
      const g = d.group as SharedGroup<Session>;
      const member = this.#pickMember(g, d.message, from);
      if (member === undefined || member.session === from) {
        // No other member: a session that goes on (persistent, or still connected after an
        // UNSUBSCRIBE) keeps the message; a clean session that ended loses it.
        if ((from.isPersistent || from.conn !== undefined) && !from.ended) {
          d.inboxId = 0;
          d.packetId = 0;
          handedOver(from.deliver(d));
        } else {
          from.forgetStored(stored);
          this.countDrop(DropReason.NoSubscribers);
        }
        continue;
      }
      // Delivered as the new member's subscription delivers it: its QoS, its Subscription
      // Identifier, its Retain As Published.
      handedOver(
        member.session.deliver({
          ...d,
          qos: Math.min(d.message.qos, member.qos) as 0 | 1 | 2,
          retain: member.retainAsPublished && d.message.retain,
          subscriptionIds: member.subscriptionId === undefined ? undefined : [member.subscriptionId],
          inboxId: 0,
          packetId: 0,
          released: false,
        }),
      );
    }
  }

  countDrop(reason: DropReason): void {
    this.#dropped++;
    this.metrics.messagesDropped.inc({ reason });
  }

  countDisconnect(reason: string): void {
    this.#disconnects(reason).inc();
  }

  /** A configured limit was reached: metric always, a warning once per (limit, client). */
  limitHit(limit: string, clientId: string): void {
    this.metrics.limitHits.inc({ limit });
    const key = `${limit}\u0000${clientId}`;
    if (this.#limitLogged.has(key)) return;
    if (this.#limitLogged.size > 10_000) this.#limitLogged.clear();
    this.#limitLogged.add(key);
    this.log.warn({ limit, clientId }, 'mqtt limit reached');
  }

  queuedDelta(n: number): void {
    this.#queued += n;
    this.metrics.inboxDepth.set(this.#queued);
  }

  inflightDelta(n: number): void {
    this.#inflight += n;
  }

  storeError(err: unknown): void {
    this.log.error({ err }, 'mqtt store write failed');
  }

  #sweep(): void {
    const now = Date.now();
    for (const conn of this.#connections) {
      if (!conn.connected) {
        if (now - conn.createdAt > this.config.connectTimeoutMs) {
          conn.log.debug('no CONNECT in time');
          this.countDisconnect('connect_timeout');
          conn.close();
        }
      } else if (conn.keepAliveSec > 0 && now - conn.lastReceivedAt > conn.keepAliveSec * 1500) {
        // Nothing received within 1.5 × Keep Alive: disconnect [MQTT-3.1.2-24] (3.1.1) / 0x8D (5.0)
        conn.log.debug({ clientId: conn.clientId, keepAliveSec: conn.keepAliveSec }, 'keep alive timeout');
        conn.close(ReasonCode.KeepAliveTimeout, 'keep alive timeout');
      }
    }
    this.#flushStats();
  }

  #flushStats(): void {
    const st = this.stats;
    const t = this.#totals;
    const m = this.metrics;
    for (const q of [0, 1, 2] as const) {
      const r = st.received[q];
      if (r !== 0) {
        m.messagesReceived.inc({ qos: String(q) }, r);
        t.received[q] += r;
        st.received[q] = 0;
      }
      const sent = st.sent[q];
      if (sent !== 0) {
        m.messagesSent.inc({ qos: String(q) }, sent);
        t.sent[q] += sent;
        st.sent[q] = 0;
      }
    }
    if (st.bytesIn !== 0) m.bytesReceived.inc(st.bytesIn);
    if (st.bytesOut !== 0) m.bytesSent.inc(st.bytesOut);
    t.bytesIn += st.bytesIn;
    t.bytesOut += st.bytesOut;
    st.bytesIn = 0;
    st.bytesOut = 0;
    m.inflight.set(this.#inflight);
  }

  /** `$SYS/broker/...` retained statistics (not stored; rebuilt every interval). */
  #publishSys(): void {
    this.#flushStats();
    const t = this.#totals;
    const now = Date.now();
    const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
    const values: Array<[string, string | number]> = [
      ['version', `RobustMQ ${this.#version}`],
      ['uptime', `${Math.floor((now - this.#startedAt) / 1000)} seconds`],
      ['clients/connected', this.#connected],
      ['clients/total', this.sessions.size],
      ['clients/disconnected', this.sessions.size - this.#connected],
      ['messages/received', sum(t.received)],
      ['messages/sent', sum(t.sent)],
      ['messages/dropped', this.#dropped],
      ['messages/inflight', this.#inflight],
      ['messages/queued', this.#queued],
      ['load/bytes/received', t.bytesIn],
      ['load/bytes/sent', t.bytesOut],
      ['bytes/received', t.bytesIn],
      ['bytes/sent', t.bytesOut],
      ['subscriptions/count', this.trie.size],
      ['retained messages/count', this.stores.retain.size],
    ];
    for (const [k, v] of values) {
      this.publish(
        { topic: `$SYS/broker/${k}`, payload: Buffer.from(String(v)), qos: 0, retain: true, receivedAt: now, publisherId: '' },
        undefined,
      );
    }
  }

  /**
   * Begins shutdown: no new connections; 5.0 clients get DISCONNECT 0x8B; then the sessions are
   * handled as after a network failure (`#endShutdownSessions`): clean sessions end and publish
   * their wills, persistent ones are saved with their queues and any will still delayed.
   */
  shutdown(): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const conn of [...this.#connections])
      conn.close(conn.connected ? ReasonCode.ServerShuttingDown : undefined, 'server shutting down');
    if (this.#isReady) this.#endShutdownSessions();
  }

  /** Stops timers and closes the stores (after `shutdown`). */
  async close(): Promise<void> {
    this.shutdown();
    clearInterval(this.#housekeeping);
    clearInterval(this.#sysTimer);
    await this.ready.catch(() => undefined);
    for (const s of this.sessions.values()) {
      clearTimeout(s.willTimer);
      clearTimeout(s.expiryTimer);
    }
    this.#flushStats();
    const st = this.#stores;
    if (st !== undefined) {
      // Let writes queued by the last disconnects (wills, sessions, inboxes) finish before the
      // stores close; a write may start another (a will published after its record changed).
      await new Promise((r) => setImmediate(r));
      while (this.#writes.size > 0) await Promise.all([...this.#writes]);
      await Promise.all([st.sessions.close(), st.inbox.close(), st.retain.close()]);
    }
  }

  /** For tests and admin: records of all sessions held. */
  sessionRecords(): SessionRecord[] {
    return [...this.sessions.values()].map((s) => s.toRecord());
  }
}
