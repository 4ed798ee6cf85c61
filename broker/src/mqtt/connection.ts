import type { Packet } from 'mqtt-packet';
import type { Duplex } from 'node:stream';
import type { Logger } from '@robustmq/common';
import {
  Framer,
  PacketDecoder,
  PacketType,
  checkPropertyStrings,
  decodeAck,
  decodePublish,
  encodeAck,
  encodePacket,
  encodePublish,
  withPacketId,
  type EncodedPublish,
  type Frame,
  type PublishProperties,
} from './codec.js';
import { MqttProtocolError, ReasonCode } from './reason-codes.js';
import { remainingExpirySec } from './message.js';
import { DropReason } from './metrics.js';
import type { Delivery, Session } from './session.js';
import type { MqttEngine } from './engine.js';
import { handleConnect } from './handlers/connect.js';
import { handlePublish } from './handlers/publish.js';
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './handlers/acks.js';
import { handleSubscribe } from './handlers/subscribe.js';
import { handleUnsubscribe } from './handlers/unsubscribe.js';
import { handleDisconnect } from './handlers/disconnect.js';
import { handleAuth } from './handlers/auth.js';
import { ConnectionSecurity, type ConnectionInfo } from '../auth/security.js';

/** A response that must go out in order with the others (PUBACK, PUBREC, SUBACK …). */
interface PendingResponse {
  bytes: Buffer | undefined;
  ready: boolean;
  /** Counted against the inbound Receive Maximum until written. */
  inbound: boolean;
}

let nextConnId = 1;

/** The connection a socket belongs to: lets one shared function serve every socket's events. */
const kConnection = Symbol('mqttConnection');
type OwnedSocket = ConnectionSocket & { [kConnection]?: Connection };

/**
 * What a connection needs of its transport: a net or TLS socket, a WebSocket stream shaped like
 * one, or a connection of the native TCP transport (`UvSocket`).
 */
export interface ConnectionSocket {
  readonly remoteAddress?: string | undefined;
  readonly destroyed: boolean;
  readonly writableLength: number;
  readonly allowHalfOpen?: boolean;
  setNoDelay(noDelay?: boolean): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  once(event: string, listener: (...args: any[]) => void): unknown;
  listenerCount(event: string): number;
  pause(): unknown;
  resume(): unknown;
  write(data: Uint8Array): boolean;
  end(): unknown;
  destroy(): unknown;
}

const DISCONNECT_V3: Packet = Object.freeze({ cmd: 'disconnect' });

/** No limit: larger than any MQTT packet, and a small integer (a double costs a box per object). */
const NO_PACKET_LIMIT = 2 ** 31 - 1;

/** 'end' handler of half-open capable streams: close our side too. */
function endSocket(this: Duplex): void {
  this.end();
}

/**
 * One MQTT network connection.
 *
 * How this works: bytes from the socket are cut into packets by the Framer and handled
 * synchronously, in order. A handler that must wait (a QoS 1/2 PUBLISH whose copies are being
 * stored, a SUBSCRIBE of a persistent session) queues its response as pending; responses are
 * written strictly in order as they become ready [MQTT-4.6.0-2]. When too many responses wait
 * the socket is paused, so a publisher is slowed by the disk, not buffered without bound.
 * Writes made during one tick are concatenated and go out as one write.
 */
export class Connection {
  readonly id = nextConnId++;
  readonly socket: ConnectionSocket;
  readonly engine: MqttEngine;
  /** The engine's logger; the per-connection child is made on first use (see `log`). */
  readonly #baseLog: Logger;
  #log: Logger | undefined;
  readonly #framer: Framer;
  #decoder = PacketDecoder.forVersion(4);
  readonly createdAt = Date.now();
  lastReceivedAt = this.createdAt;

  connected = false;
  closed = false;
  protocolVersion = 4;
  clientId = '';
  session: Session | undefined;
  keepAliveSec = 0;
  /** Outbound QoS 1/2 window: the client's Receive Maximum bounded by config. */
  outboundWindow: number;
  /** The client's Maximum Packet Size (5.0); larger PUBLISHes are dropped for it [MQTT-3.1.2-25]. */
  clientMaxPacketSize = NO_PACKET_LIMIT;
  /** Highest outbound topic alias the client accepts (its Topic Alias Maximum). */
  clientTopicAliasMax = 0;
  /** Topic aliases (5.0), made when the first one is used. */
  #aliasesIn: Map<number, string> | undefined;
  #aliasesOut: Map<string, number> | undefined;
  requestProblemInformation = true;
  /** Set when DISCONNECT 0x00 arrived: the will is discarded [MQTT-3.1.2-10]. */
  willCancelled = false;
  /** Inbound QoS 1 messages not yet acknowledged (Receive Maximum accounting). */
  inboundPending = 0;
  /** Listener, peer address and client certificate. */
  readonly info: ConnectionInfo;
  /** Principal, ACL decision cache, rate buckets, token expiry, SCRAM exchange. */
  readonly sec = new ConnectionSecurity();
  /** Frames that arrived while CONNECT was being authenticated (asynchronously). */
  #held: Frame[] | undefined;
  /** Whether the socket was paused because packets are held (not for backpressure). */
  #heldPaused = false;
  #throttleTimer: NodeJS.Timeout | undefined;

  #responses: PendingResponse[] | undefined;
  #responsesHead = 0;
  /** Bytes queued this tick: one buffer, or an array once there are several. */
  #out: Buffer | Buffer[] | undefined;
  #outBytes = 0;
  #flushScheduled = false;
  #paused = false;
  #drainTimer: NodeJS.Timeout | undefined;

  /*
   * Memory: an idle connection is what this object and the socket hold, so everything that is
   * not needed by every client is made on first use (logger child, topic aliases, session
   * collections), the packet decoder is shared, and the socket's listeners are functions shared
   * by every connection (the socket points back to its connection).
   */
  constructor(socket: ConnectionSocket, engine: MqttEngine, log: Logger, info?: ConnectionInfo) {
    this.socket = socket;
    this.engine = engine;
    this.info = info ?? { listener: 'mqtt', remoteAddress: socket.remoteAddress ?? '' };
    this.#baseLog = log;
    this.#framer = new Framer(engine.config.maxPacketSizeBytes);
    this.outboundWindow = engine.config.maxInflightMessages;
    socket.setNoDelay(true);
    (socket as OwnedSocket)[kConnection] = this;
    socket.on('data', Connection.#onSocketData);
    // A socket that allows half-open ends its side when the client ends (net sockets from the
    // listeners do that themselves: allowHalfOpen is false).
    if (socket.allowHalfOpen === true) socket.on('end', endSocket);
    socket.on('close', Connection.#onSocketClose);
    // The listeners handle errors already; a socket handed over without one must not throw.
    if (socket.listenerCount('error') === 0) socket.on('error', engine.onSocketError);
  }

  static #onSocketData(this: ConnectionSocket, chunk: Buffer): void {
    const conn = (this as OwnedSocket)[kConnection];
    if (conn !== undefined) conn.#onData(chunk);
  }

  static #onSocketClose(this: ConnectionSocket): void {
    const conn = (this as OwnedSocket)[kConnection];
    if (conn === undefined) return;
    conn.sec.dispose();
    clearTimeout(conn.#throttleTimer);
    conn.engine.onConnectionClosed(conn);
  }

  /** This connection's logger (connId, clientId, username), made on first use. */
  get log(): Logger {
    if (this.#log === undefined) {
      const bindings: Record<string, unknown> = { connId: this.id };
      if (this.clientId !== '') bindings.clientId = this.clientId;
      const user = this.sec.principal?.username;
      if (user !== undefined) bindings.username = user;
      this.#log = this.#baseLog.child(bindings);
    }
    return this.#log;
  }

  /** The client id or user name changed: the next log line carries the new ones. */
  refreshLog(): void {
    this.#log = undefined;
  }

  /** Whether `level` lines are written (checked before building a line for every client). */
  logs(level: 'debug' | 'trace'): boolean {
    return this.#baseLog.isLevelEnabled(level);
  }

  get aliasesIn(): Map<number, string> {
    return (this.#aliasesIn ??= new Map());
  }

  get aliasesOut(): Map<string, number> {
    return (this.#aliasesOut ??= new Map());
  }

  get isV5(): boolean {
    return this.protocolVersion === 5;
  }

  set decoderVersion(v: number) {
    this.#decoder = PacketDecoder.forVersion(v);
  }

  #onData(chunk: Buffer): void {
    if (this.closed) return;
    this.engine.stats.bytesIn += chunk.length;
    this.lastReceivedAt = Date.now();
    if (this.#held !== undefined) this.#pauseHeld();
    let frames: Frame[];
    try {
      frames = this.#framer.push(chunk);
    } catch (err) {
      this.#protocolFailure(err);
      return;
    }
    for (const f of frames) {
      if (this.closed) return;
      if (this.#held !== undefined) {
        // Bounded: the socket is paused as soon as anything waits, so only the rest of this
        // read is held.
        if (!this.connected && this.#held.length >= 64)
          return this.#protocolFailure(new MqttProtocolError(ReasonCode.ProtocolError, 'packets before CONNACK'));
        this.#held.push(f);
        this.#pauseHeld();
        continue;
      }
      try {
        this.#handle(f);
      } catch (err) {
        this.#protocolFailure(err);
        return;
      }
    }
  }

  /**
   * Stops handling packets (CONNECT is being authenticated); they wait until `release()`. The
   * socket is paused when more data arrives, not now: most clients send nothing more before
   * CONNACK, and pausing and resuming every new socket is work (a resume is a tick) for nothing.
   */
  hold(): void {
    this.#held ??= [];
  }

  #pauseHeld(): void {
    if (this.#heldPaused) return;
    this.#heldPaused = true;
    this.socket.pause();
  }

  /** Handles the packets that waited during `hold()` and reads on. */
  release(): void {
    const held = this.#held;
    this.#held = undefined;
    if (this.closed) return;
    for (const f of held ?? []) {
      if (this.closed) return;
      if (this.#held !== undefined) {
        (this.#held as Frame[]).push(f);
        continue;
      }
      try {
        this.#handle(f);
      } catch (err) {
        this.#protocolFailure(err);
        return;
      }
    }
    if (this.#held === undefined && this.#heldPaused) {
      this.#heldPaused = false;
      if (!this.#paused && this.#throttleTimer === undefined) this.socket.resume();
    }
  }

  /** Runs `fn` as a packet handler would (its errors close the connection the same way). */
  guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#protocolFailure(err);
    }
  }

  /**
   * Stops handling packets for `ms` (a publish rate limit): the rest of the current read waits,
   * the socket is paused, and the client's own TCP window slows it down.
   */
  throttle(ms: number): void {
    if (this.closed || this.#throttleTimer !== undefined) return;
    this.hold();
    this.#pauseHeld();
    this.#throttleTimer = setTimeout(() => {
      this.#throttleTimer = undefined;
      this.release();
    }, ms).unref();
  }

  #protocolFailure(err: unknown): void {
    if (err instanceof MqttProtocolError) {
      if (err.reasonCode === ReasonCode.PacketTooLarge) this.engine.limitHit('packet_size', this.clientId);
      this.log.debug({ err, clientId: this.clientId }, 'protocol violation');
      this.close(err.reasonCode, err.message);
    } else {
      this.log.error({ err, clientId: this.clientId }, 'packet handler failed');
      this.close(ReasonCode.ImplementationSpecificError, 'internal error');
    }
  }

  #handle(f: Frame): void {
    if (!this.connected) {
      // AUTH continues an enhanced authentication started by CONNECT (5.0 §4.12)
      if (f.type === PacketType.Auth && this.sec.scram !== undefined) {
        handleAuth(this, this.#decoder.decode(f));
        return;
      }
      // The first packet from the client MUST be CONNECT [MQTT-3.1.0-1]
      if (f.type !== PacketType.Connect) throw new MqttProtocolError(ReasonCode.ProtocolError, 'first packet is not CONNECT');
      handleConnect(this, f);
      return;
    }
    switch (f.type) {
      case PacketType.Publish:
        handlePublish(this, decodePublish(f, this.protocolVersion));
        return;
      case PacketType.Puback:
        handlePuback(this, decodeAck(f, this.protocolVersion));
        return;
      case PacketType.Pubrec:
        handlePubrec(this, decodeAck(f, this.protocolVersion));
        return;
      case PacketType.Pubrel:
        handlePubrel(this, decodeAck(f, this.protocolVersion));
        return;
      case PacketType.Pubcomp:
        handlePubcomp(this, decodeAck(f, this.protocolVersion));
        return;
      case PacketType.Subscribe:
        // 5.0: packet-id properties …; their strings are checked on the raw bytes [MQTT-1.5.4-1]
        if (this.isV5) checkPropertyStrings(f.bytes, f.bodyOffset + 2, f.bytes.length);
        handleSubscribe(this, this.#decoder.decode(f));
        return;
      case PacketType.Unsubscribe:
        if (this.isV5) checkPropertyStrings(f.bytes, f.bodyOffset + 2, f.bytes.length);
        handleUnsubscribe(this, this.#decoder.decode(f));
        return;
      case PacketType.Pingreq:
        // PINGREQ flags are reserved 0 [MQTT-2.2.2-2]; the server answers PINGRESP [MQTT-3.12.4-1]
        if (f.flags !== 0 || f.bytes.length !== 2) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'bad PINGREQ');
        this.respond(Buffer.from([0xd0, 0]));
        return;
      case PacketType.Disconnect:
        if (this.isV5) {
          handleDisconnect(this, this.#decoder.decode(f));
          return;
        }
        // A 3.x DISCONNECT is flags 0 [MQTT-2.2.2-2] and remaining length 0 (§3.14.1). Anything
        // else is malformed: the connection closes as after a network failure, so the will is
        // published [MQTT-3.1.2-8] (only a well-formed DISCONNECT discards it [MQTT-3.14.4-3]).
        if (f.flags !== 0 || f.bytes.length !== 2) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'bad DISCONNECT');
        handleDisconnect(this, DISCONNECT_V3);
        return;
      case PacketType.Auth:
        handleAuth(this, this.#decoder.decode(f));
        return;
      case PacketType.Connect:
        // A second CONNECT is a Protocol Error [MQTT-3.1.0-2]
        throw new MqttProtocolError(ReasonCode.ProtocolError, 'second CONNECT');
      default:
        // Packets only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP) or type 0
        throw new MqttProtocolError(ReasonCode.ProtocolError, `unexpected packet type ${f.type}`);
    }
  }

  /**
   * Queues bytes for the socket; everything queued in one tick goes out as one buffer in one
   * write. (Corking is not enough: thousands of tiny buffers become a writev that libuv feeds to
   * the kernel 1024 iovecs per loop iteration, far slower than a concatenation.)
   */
  write(bytes: Buffer): void {
    if (this.closed) return;
    const out = this.#out;
    if (out === undefined) this.#out = bytes;
    else if (Array.isArray(out)) out.push(bytes);
    else this.#out = [out, bytes];
    this.#outBytes += bytes.length;
    this.engine.stats.bytesOut += bytes.length;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(Connection.#flushOut, this);
    }
  }

  /** Takes what is queued as one buffer. */
  #takeOut(): Buffer | undefined {
    const out = this.#out;
    if (out === undefined) return undefined;
    this.#out = undefined;
    const bytes = Array.isArray(out) ? Buffer.concat(out, this.#outBytes) : out;
    this.#outBytes = 0;
    return bytes;
  }

  /** Bytes waiting for this client: queued this tick plus buffered by the socket. */
  get outboundBytes(): number {
    return this.#outBytes + this.socket.writableLength;
  }

  /** Static, with the connection as argument: no closure per connection. */
  static #flushOut(conn: Connection): void {
    conn.#flush();
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#out === undefined || this.socket.destroyed) return;
    const bytes = this.#takeOut() as Buffer;
    const s = this.socket;
    if (!s.write(bytes) && this.#drainTimer === undefined) {
      this.#drainTimer = setTimeout(() => {
        if (this.closed) return;
        this.engine.limitHit('drain_timeout', this.clientId);
        this.log.warn(
          { clientId: this.clientId, drainTimeoutMs: this.engine.config.drainTimeoutMs, buffered: s.writableLength },
          'slow consumer disconnected',
        );
        this.engine.countDisconnect('slow_consumer');
        this.close(ReasonCode.ServerBusy, 'slow consumer');
      }, this.engine.config.drainTimeoutMs).unref();
      s.once('drain', () => {
        clearTimeout(this.#drainTimer);
        this.#drainTimer = undefined;
      });
    }
  }

  /** Sends a response now, or after `wait` settles, keeping the order of responses. */
  respond(bytes: Buffer | undefined, wait?: Promise<unknown>, inbound = false): void {
    if (wait === undefined && (this.#responses === undefined || this.#responses.length === this.#responsesHead)) {
      if (bytes !== undefined) this.write(bytes);
      if (inbound) this.inboundPending--;
      return;
    }
    const r: PendingResponse = { bytes, ready: wait === undefined, inbound };
    const rs = (this.#responses ??= []);
    rs.push(r);
    if (wait !== undefined) {
      wait.then(
        () => {
          r.ready = true;
          this.#flushResponses();
        },
        (err: unknown) => {
          this.engine.storeError(err);
          this.close(ReasonCode.UnspecifiedError, 'storage failure');
        },
      );
    }
    // Reading stops while many responses wait, so the store's pace limits the publisher.
    if (!this.#paused && rs.length - this.#responsesHead >= this.engine.config.receiveMaximum) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  #flushResponses(): void {
    const rs = this.#responses;
    if (rs === undefined) return;
    while (this.#responsesHead < rs.length && (rs[this.#responsesHead] as PendingResponse).ready) {
      const r = rs[this.#responsesHead++] as PendingResponse;
      if (r.bytes !== undefined) this.write(r.bytes);
      if (r.inbound) this.inboundPending--;
    }
    if (this.#responsesHead === rs.length) {
      rs.length = 0;
      this.#responsesHead = 0;
    }
    if (this.#paused && rs.length - this.#responsesHead < this.engine.config.receiveMaximum / 2) {
      this.#paused = false;
      if (this.#throttleTimer === undefined && this.#held === undefined) this.socket.resume();
    }
  }

  /** Encodes and writes a PUBLISH for `d` (packet id already assigned for QoS > 0). */
  sendPublish(d: Delivery, dup: boolean): void {
    const m = d.message;
    const now = Date.now();
    const expiry = remainingExpirySec(m, now);
    if (expiry === 0) {
      this.engine.countDrop(DropReason.Expired);
      if (d.qos > 0) this.#completeDropped(d.packetId);
      return;
    }
    if (d.qos === 0 && this.outboundBytes > this.engine.config.maxOutboundBufferBytes) {
      this.engine.countDrop(DropReason.SlowConsumer);
      return;
    }
    const v5 = this.isV5;
    let alias = 0;
    let topic = m.topic;
    if (v5 && this.clientTopicAliasMax > 0) {
      const a = this.aliasesOut.get(topic);
      if (a !== undefined) {
        alias = a;
        topic = '';
      } else if (this.aliasesOut.size < Math.min(this.clientTopicAliasMax, this.engine.config.maxOutboundTopicAliases)) {
        alias = this.aliasesOut.size + 1;
        this.aliasesOut.set(topic, alias);
      }
    }
    let enc: EncodedPublish;
    if (!dup && alias === 0) {
      // Cached per variant: many subscribers share one encoding.
      const subIds = d.subscriptionIds;
      const key = v5
        ? `5${d.qos}${d.retain ? 1 : 0}${subIds === undefined ? '' : subIds.join(',')}|${expiry ?? ''}`
        : `4${d.qos}${d.retain ? 1 : 0}`;
      const cache = (m.cache ??= new Map());
      let e = cache.get(key);
      if (e === undefined) {
        e = encodePublish({
          protocolVersion: v5 ? 5 : 4,
          topic,
          qos: d.qos,
          retain: d.retain,
          dup: false,
          packetId: d.packetId,
          payload: m.payload,
          properties: v5 ? outboundProps(m.properties, subIds, expiry, 0) : undefined,
        });
        if (cache.size < 16) cache.set(key, e);
      }
      enc = e;
    } else {
      enc = encodePublish({
        protocolVersion: v5 ? 5 : 4,
        topic,
        qos: d.qos,
        retain: d.retain,
        dup,
        packetId: d.packetId,
        payload: m.payload,
        properties: v5 ? outboundProps(m.properties, d.subscriptionIds, expiry, alias) : undefined,
      });
    }
    if (enc.bytes.length > this.clientMaxPacketSize) {
      // The server MUST NOT send packets larger than the client's Maximum Packet Size; the
      // message is discarded for this client as if delivered [MQTT-3.1.2-24] [MQTT-3.1.2-25]
      this.engine.countDrop(DropReason.PacketTooLarge);
      if (alias > 0 && topic !== '') this.aliasesOut.delete(m.topic);
      if (d.qos > 0) this.#completeDropped(d.packetId);
      return;
    }
    this.engine.stats.sent[d.qos]++;
    this.write(
      d.qos === 0 || enc.packetIdOffset < 0
        ? enc.bytes
        : enc.bytes.readUInt16BE(enc.packetIdOffset) === d.packetId
          ? enc.bytes
          : withPacketId(enc, d.packetId),
    );
  }

  /** A QoS 1/2 message discarded for this client counts as delivered, freeing its slot. */
  #completeDropped(packetId: number): void {
    queueMicrotask(() => {
      const s = this.session;
      if (s !== undefined && !s.onPuback(packetId)) s.onPubcomp(packetId);
    });
  }

  sendPubrel(packetId: number): void {
    this.write(encodeAck(PacketType.Pubrel, packetId));
  }

  /**
   * Ends the connection. For a 5.0 client that completed CONNECT and a reason >= 0x80 (or a
   * server-initiated one such as 0x8E), a DISCONNECT with the reason goes first [MQTT-4.13.2-1].
   */
  close(reasonCode?: number, reasonString?: string): void {
    if (this.closed) return;
    if (reasonCode !== undefined && this.connected && this.isV5) {
      const properties = reasonString !== undefined && this.requestProblemInformation ? { reasonString } : undefined;
      let bytes = encodePacket({ cmd: 'disconnect', reasonCode, ...(properties ? { properties } : {}) }, 5);
      // the reason string goes only if it fits the client's Maximum Packet Size [MQTT-3.14.2-3]
      if (bytes.length > this.clientMaxPacketSize) bytes = encodePacket({ cmd: 'disconnect', reasonCode }, 5);
      this.write(bytes);
    }
    if (reasonCode !== undefined) this.engine.countDisconnect(reasonName(reasonCode));
    this.closed = true;
    clearTimeout(this.#drainTimer);
    clearTimeout(this.#throttleTimer);
    this.sec.dispose();
    const rest = this.#takeOut();
    if (rest !== undefined) this.socket.write(rest);
    this.socket.end();
    // Give the DISCONNECT a moment to leave, then make sure the socket is gone.
    setTimeout(() => this.socket.destroy(), 100).unref();
    this.engine.onConnectionClosed(this);
  }
}

function outboundProps(
  p: PublishProperties | undefined,
  subIds: number[] | undefined,
  expiry: number | undefined,
  alias: number,
): PublishProperties | undefined {
  if (p === undefined && subIds === undefined && expiry === undefined && alias === 0) return undefined;
  const o: PublishProperties = { ...p };
  // The server forwards the remaining expiry interval (5.0 §3.3.2.3.3)
  if (expiry !== undefined) o.messageExpiryInterval = expiry;
  else delete o.messageExpiryInterval;
  if (subIds !== undefined) o.subscriptionIdentifiers = subIds;
  if (alias > 0) o.topicAlias = alias;
  return o;
}

function reasonName(rc: number): string {
  for (const [k, v] of Object.entries(ReasonCode))
    if (v === rc) return k.replace(/[A-Z]/g, (c, i: number) => (i > 0 ? '_' : '') + c.toLowerCase());
  return `0x${rc.toString(16)}`;
}
