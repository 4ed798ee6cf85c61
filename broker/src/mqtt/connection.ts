import type { Socket } from 'node:net';
import type { Logger } from '@robustmq/common';
import {
  Framer,
  PacketDecoder,
  PacketType,
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
  readonly socket: Socket;
  readonly engine: MqttEngine;
  log: Logger;
  readonly #framer: Framer;
  readonly #decoder = new PacketDecoder();
  readonly createdAt = Date.now();
  lastReceivedAt = Date.now();

  connected = false;
  closed = false;
  protocolVersion = 4;
  clientId = '';
  session: Session | undefined;
  keepAliveSec = 0;
  /** Outbound QoS 1/2 window: the client's Receive Maximum bounded by config. */
  outboundWindow: number;
  /** The client's Maximum Packet Size (5.0); larger PUBLISHes are dropped for it [MQTT-3.1.2-25]. */
  clientMaxPacketSize = Infinity;
  /** Highest outbound topic alias the client accepts (its Topic Alias Maximum). */
  clientTopicAliasMax = 0;
  readonly aliasesIn = new Map<number, string>();
  readonly aliasesOut = new Map<string, number>();
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
  #throttleTimer: NodeJS.Timeout | undefined;

  readonly #responses: PendingResponse[] = [];
  #responsesHead = 0;
  #out: Buffer[] = [];
  #outBytes = 0;
  #flushScheduled = false;
  #paused = false;
  #drainTimer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, engine: MqttEngine, log: Logger, info?: ConnectionInfo) {
    this.socket = socket;
    this.engine = engine;
    this.info = info ?? { listener: 'mqtt', remoteAddress: socket.remoteAddress ?? '' };
    this.log = log.child({ connId: this.id });
    this.#framer = new Framer(engine.config.maxPacketSizeBytes);
    this.outboundWindow = engine.config.maxInflightMessages;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      this.sec.dispose();
      clearTimeout(this.#throttleTimer);
      this.engine.onConnectionClosed(this);
    });
    socket.on('error', (err) => this.log.debug({ err }, 'socket error'));
  }

  get isV5(): boolean {
    return this.protocolVersion === 5;
  }

  set decoderVersion(v: number) {
    this.#decoder.protocolVersion = v;
  }

  #onData(chunk: Buffer): void {
    if (this.closed) return;
    this.engine.stats.bytesIn += chunk.length;
    this.lastReceivedAt = Date.now();
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
        // Bounded: the socket is paused while held, so only the rest of one read waits here.
        if (!this.connected && this.#held.length >= 64)
          return this.#protocolFailure(new MqttProtocolError(ReasonCode.ProtocolError, 'packets before CONNACK'));
        this.#held.push(f);
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

  /** Stops handling packets (CONNECT is being authenticated); they wait until `release()`. */
  hold(): void {
    this.#held ??= [];
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
    if (this.#held === undefined && !this.#paused && this.#throttleTimer === undefined) this.socket.resume();
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
      handleConnect(this, f, this.#decoder);
      return;
    }
    switch (f.type) {
      case PacketType.Publish:
        handlePublish(this, decodePublish(f, this.protocolVersion));
        return;
      case PacketType.Puback:
        handlePuback(this, this.#decoder.decode(f));
        return;
      case PacketType.Pubrec:
        handlePubrec(this, this.#decoder.decode(f));
        return;
      case PacketType.Pubrel:
        handlePubrel(this, this.#decoder.decode(f));
        return;
      case PacketType.Pubcomp:
        handlePubcomp(this, this.#decoder.decode(f));
        return;
      case PacketType.Subscribe:
        handleSubscribe(this, this.#decoder.decode(f));
        return;
      case PacketType.Unsubscribe:
        handleUnsubscribe(this, this.#decoder.decode(f));
        return;
      case PacketType.Pingreq:
        // PINGREQ flags are reserved 0 [MQTT-2.2.2-2]; the server answers PINGRESP [MQTT-3.12.4-1]
        if (f.flags !== 0 || f.bytes.length !== 2) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'bad PINGREQ');
        this.respond(Buffer.from([0xd0, 0]));
        return;
      case PacketType.Disconnect:
        handleDisconnect(this, this.#decoder.decode(f));
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
    this.#out.push(bytes);
    this.#outBytes += bytes.length;
    this.engine.stats.bytesOut += bytes.length;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flushOut);
    }
  }

  /** Bytes waiting for this client: queued this tick plus buffered by the socket. */
  get outboundBytes(): number {
    return this.#outBytes + this.socket.writableLength;
  }

  readonly #flushOut = (): void => {
    this.#flushScheduled = false;
    const out = this.#out;
    if (out.length === 0 || this.socket.destroyed) return;
    const bytes = out.length === 1 ? (out[0] as Buffer) : Buffer.concat(out, this.#outBytes);
    this.#out = [];
    this.#outBytes = 0;
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
  };

  /** Sends a response now, or after `wait` settles, keeping the order of responses. */
  respond(bytes: Buffer | undefined, wait?: Promise<unknown>, inbound = false): void {
    if (wait === undefined && this.#responses.length === this.#responsesHead) {
      if (bytes !== undefined) this.write(bytes);
      if (inbound) this.inboundPending--;
      return;
    }
    const r: PendingResponse = { bytes, ready: wait === undefined, inbound };
    this.#responses.push(r);
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
    if (!this.#paused && this.#responses.length - this.#responsesHead >= this.engine.config.receiveMaximum) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  #flushResponses(): void {
    const rs = this.#responses;
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
      this.write(encodePacket({ cmd: 'disconnect', reasonCode, ...(properties ? { properties } : {}) }, 5));
    }
    if (reasonCode !== undefined) this.engine.countDisconnect(reasonName(reasonCode));
    this.closed = true;
    clearTimeout(this.#drainTimer);
    clearTimeout(this.#throttleTimer);
    this.sec.dispose();
    if (this.#out.length > 0) {
      this.socket.write(this.#out.length === 1 ? (this.#out[0] as Buffer) : Buffer.concat(this.#out));
      this.#out = [];
      this.#outBytes = 0;
    }
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
