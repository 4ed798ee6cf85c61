import mqttPacket, { type IConnectPacket, type Packet } from 'mqtt-packet';
import { MqttProtocolError, ReasonCode } from './reason-codes.js';

/** Control packet types (fixed header bits 7-4, spec §2.1.2). */
export const PacketType = {
  Connect: 1,
  Connack: 2,
  Publish: 3,
  Puback: 4,
  Pubrec: 5,
  Pubrel: 6,
  Pubcomp: 7,
  Subscribe: 8,
  Suback: 9,
  Unsubscribe: 10,
  Unsuback: 11,
  Pingreq: 12,
  Pingresp: 13,
  Disconnect: 14,
  Auth: 15,
} as const;
export type PacketType = (typeof PacketType)[keyof typeof PacketType];

/** One complete control packet cut out of the byte stream. */
export interface Frame {
  type: number;
  flags: number;
  /** The whole packet: fixed header and body. */
  bytes: Buffer;
  /** Offset of the variable header within `bytes`. */
  bodyOffset: number;
}

/**
 * Cuts a byte stream into control packets (fixed header: type/flags byte, Variable Byte Integer
 * remaining length). A packet larger than `maxPacketSizeBytes` is refused as soon as its header
 * is read, so a client cannot make the server buffer more than one maximum-size packet.
 */
export class Framer {
  readonly maxPacketSizeBytes: number;
  #pending: Buffer | null = null;

  constructor(maxPacketSizeBytes: number) {
    this.maxPacketSizeBytes = maxPacketSizeBytes;
  }

  /** Bytes held for an incomplete packet. */
  get pendingBytes(): number {
    return this.#pending?.length ?? 0;
  }

  /** Appends `chunk` and returns the complete packets now available, in order. */
  push(chunk: Buffer): Frame[] {
    let buf = chunk;
    if (this.#pending !== null) {
      buf = Buffer.concat([this.#pending, chunk]);
      this.#pending = null;
    }
    const frames: Frame[] = [];
    let pos = 0;
    const len = buf.length;
    while (pos < len) {
      if (len - pos < 2) break;
      const first = buf[pos] as number;
      // Remaining Length: at most 4 bytes [MQTT-1.5.5-1]
      let mult = 1;
      let remaining = 0;
      let i = pos + 1;
      let complete = false;
      for (let n = 0; n < 4 && i < len; n++) {
        const b = buf[i++] as number;
        remaining += (b & 0x7f) * mult;
        mult *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
        if (n === 3) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'remaining length longer than 4 bytes');
      }
      if (!complete) break;
      const total = i - pos + remaining;
      if (total > this.maxPacketSizeBytes) {
        throw new MqttProtocolError(ReasonCode.PacketTooLarge, `packet of ${total} bytes exceeds the maximum`);
      }
      if (len - pos < total) break;
      frames.push({ type: first >> 4, flags: first & 0x0f, bytes: buf.subarray(pos, pos + total), bodyOffset: i - pos });
      pos += total;
    }
    if (pos < len) this.#pending = pos === 0 && buf === chunk ? Buffer.from(buf) : Buffer.from(buf.subarray(pos));
    return frames;
  }
}

/** A user property: name and value; order and duplicates are kept (spec §3.3.2.3.7). */
export type UserProperty = [string, string];

/** PUBLISH properties the engine understands (5.0 §3.3.2.3). */
export interface PublishProperties {
  payloadFormatIndicator?: number;
  messageExpiryInterval?: number;
  topicAlias?: number;
  responseTopic?: string;
  correlationData?: Buffer;
  userProperties?: UserProperty[];
  subscriptionIdentifiers?: number[];
  contentType?: string;
}

/** A decoded PUBLISH. */
export interface PublishPacket {
  topic: string;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  packetId: number;
  payload: Buffer;
  properties: PublishProperties | undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a UTF-8 Encoded String's bytes: ill-formed UTF-8 (including surrogates) and U+0000
 * are refused [MQTT-1.5.4-1] [MQTT-1.5.4-2].
 */
export function decodeUtf8(b: Buffer, start: number, end: number): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    const c = b[i] as number;
    if (c === 0) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'U+0000 in a UTF-8 string');
    if (c >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return b.toString('latin1', start, end);
  let s: string;
  try {
    s = utf8.decode(b.subarray(start, end));
  } catch {
    throw new MqttProtocolError(ReasonCode.MalformedPacket, 'ill-formed UTF-8 string');
  }
  if (s.includes('\u0000')) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'U+0000 in a UTF-8 string');
  return s;
}

/** True when `b` is well-formed UTF-8 (payload format indicator 1, [MQTT-3.3.2-4]). */
export function isValidUtf8(b: Buffer): boolean {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
}

/** Reads a Variable Byte Integer at `pos`; returns [value, next position]. */
function readVarInt(b: Buffer, pos: number, end: number): [number, number] {
  let mult = 1;
  let value = 0;
  for (let n = 0; n < 4; n++) {
    if (pos >= end) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'truncated variable byte integer');
    const c = b[pos++] as number;
    value += (c & 0x7f) * mult;
    if ((c & 0x80) === 0) return [value, pos];
    mult *= 128;
  }
  throw new MqttProtocolError(ReasonCode.MalformedPacket, 'variable byte integer longer than 4 bytes');
}

function malformed(what: string): never {
  throw new MqttProtocolError(ReasonCode.MalformedPacket, what);
}

/**
 * PUBLISH => fixed header (DUP, QoS, RETAIN) topic-name [packet-id if QoS > 0] [properties (5.0)] payload
 *   properties => property-length (varint) { id (varint) value }
 */
export function decodePublish(f: Frame, protocolVersion: number): PublishPacket {
  const b = f.bytes;
  const end = b.length;
  const qos = (f.flags >> 1) & 0x03;
  // A PUBLISH with both QoS bits set is malformed [MQTT-3.3.1-4]
  if (qos === 3) malformed('PUBLISH with QoS 3');
  const dup = (f.flags & 0x08) !== 0;
  // DUP must be 0 for QoS 0 [MQTT-3.3.1-2]
  if (dup && qos === 0) malformed('PUBLISH QoS 0 with DUP set');
  let pos = f.bodyOffset;
  if (pos + 2 > end) malformed('truncated topic name');
  const tlen = b.readUInt16BE(pos);
  pos += 2;
  if (pos + tlen > end) malformed('truncated topic name');
  const topic = decodeUtf8(b, pos, pos + tlen);
  pos += tlen;
  let packetId = 0;
  if (qos > 0) {
    if (pos + 2 > end) malformed('truncated packet identifier');
    packetId = b.readUInt16BE(pos);
    pos += 2;
    // A QoS > 0 PUBLISH has a non-zero packet identifier [MQTT-2.2.1-3]
    if (packetId === 0) malformed('packet identifier 0');
  }
  let properties: PublishProperties | undefined;
  if (protocolVersion === 5) {
    const [plen, p0] = readVarInt(b, pos, end);
    pos = p0;
    const pend = pos + plen;
    if (pend > end) malformed('properties longer than the packet');
    if (plen > 0) {
      properties = {};
      while (pos < pend) {
        const [id, p1] = readVarInt(b, pos, pend);
        pos = p1;
        switch (id) {
          case 0x01: {
            if (properties.payloadFormatIndicator !== undefined) dupProp('payload format indicator');
            if (pos + 1 > pend) malformed('truncated property');
            const v = b[pos++] as number;
            if (v > 1) malformed('payload format indicator not 0 or 1');
            properties.payloadFormatIndicator = v;
            break;
          }
          case 0x02:
            if (properties.messageExpiryInterval !== undefined) dupProp('message expiry interval');
            if (pos + 4 > pend) malformed('truncated property');
            properties.messageExpiryInterval = b.readUInt32BE(pos);
            pos += 4;
            break;
          case 0x23:
            if (properties.topicAlias !== undefined) dupProp('topic alias');
            if (pos + 2 > pend) malformed('truncated property');
            properties.topicAlias = b.readUInt16BE(pos);
            pos += 2;
            break;
          case 0x08: {
            if (properties.responseTopic !== undefined) dupProp('response topic');
            const [s, p2] = readString(b, pos, pend);
            properties.responseTopic = s;
            pos = p2;
            break;
          }
          case 0x09: {
            if (properties.correlationData !== undefined) dupProp('correlation data');
            if (pos + 2 > pend) malformed('truncated property');
            const l = b.readUInt16BE(pos);
            pos += 2;
            if (pos + l > pend) malformed('truncated property');
            properties.correlationData = Buffer.from(b.subarray(pos, pos + l));
            pos += l;
            break;
          }
          case 0x26: {
            const [k, p2] = readString(b, pos, pend);
            const [v, p3] = readString(b, p2, pend);
            pos = p3;
            (properties.userProperties ??= []).push([k, v]);
            break;
          }
          case 0x0b: {
            // A client MUST NOT send a Subscription Identifier in a PUBLISH [MQTT-3.3.4-6]
            throw new MqttProtocolError(ReasonCode.ProtocolError, 'subscription identifier in a client PUBLISH');
          }
          case 0x03: {
            if (properties.contentType !== undefined) dupProp('content type');
            const [s, p2] = readString(b, pos, pend);
            properties.contentType = s;
            pos = p2;
            break;
          }
          default:
            malformed(`property 0x${id.toString(16)} not allowed in PUBLISH`);
        }
      }
      if (pos !== pend) malformed('properties overrun');
    }
  }
  return { topic, qos: qos as 0 | 1 | 2, retain: (f.flags & 0x01) !== 0, dup, packetId, payload: Buffer.from(b.subarray(pos)), properties };
}

function dupProp(name: string): never {
  // Including a property more than once is a Protocol Error (spec §2.2.2.2)
  throw new MqttProtocolError(ReasonCode.ProtocolError, `${name} included twice`);
}

function readString(b: Buffer, pos: number, end: number): [string, number] {
  if (pos + 2 > end) malformed('truncated string');
  const l = b.readUInt16BE(pos);
  pos += 2;
  if (pos + l > end) malformed('truncated string');
  return [decodeUtf8(b, pos, pos + l), pos + l];
}

function varIntSize(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

function writeVarInt(b: Buffer, pos: number, n: number): number {
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 0x80;
    b[pos++] = d;
  } while (n > 0);
  return pos;
}

/** What varies per recipient of a PUBLISH the server sends. */
export interface OutboundPublish {
  protocolVersion: number;
  /** Topic name; '' when only `topicAlias` is sent. */
  topic: string;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  packetId: number;
  payload: Buffer;
  properties: PublishProperties | undefined;
}

/** An encoded PUBLISH and where its packet identifier sits (to patch copies for other recipients). */
export interface EncodedPublish {
  bytes: Buffer;
  packetIdOffset: number;
}

/**
 * Encodes a PUBLISH (spec §3.3). Hand-written instead of mqtt-packet's generate so user properties
 * keep their order and one encoding can be reused for many recipients (see `withPacketId`).
 */
export function encodePublish(p: OutboundPublish): EncodedPublish {
  const topicLen = Buffer.byteLength(p.topic);
  let propsLen = -1;
  const pr = p.properties;
  let rtLen = 0;
  let ctLen = 0;
  let upLens: number[] | undefined;
  if (p.protocolVersion === 5) {
    propsLen = 0;
    if (pr !== undefined) {
      if (pr.payloadFormatIndicator !== undefined) propsLen += 2;
      if (pr.messageExpiryInterval !== undefined) propsLen += 5;
      if (pr.topicAlias !== undefined) propsLen += 3;
      if (pr.responseTopic !== undefined) propsLen += 3 + (rtLen = Buffer.byteLength(pr.responseTopic));
      if (pr.correlationData !== undefined) propsLen += 3 + pr.correlationData.length;
      if (pr.userProperties !== undefined) {
        upLens = [];
        for (const [k, v] of pr.userProperties) {
          const kl = Buffer.byteLength(k);
          const vl = Buffer.byteLength(v);
          upLens.push(kl, vl);
          propsLen += 5 + kl + vl;
        }
      }
      if (pr.subscriptionIdentifiers !== undefined) for (const id of pr.subscriptionIdentifiers) propsLen += 1 + varIntSize(id);
      if (pr.contentType !== undefined) propsLen += 3 + (ctLen = Buffer.byteLength(pr.contentType));
    }
  }
  const remaining = 2 + topicLen + (p.qos > 0 ? 2 : 0) + (propsLen >= 0 ? varIntSize(propsLen) + propsLen : 0) + p.payload.length;
  const b = Buffer.allocUnsafe(1 + varIntSize(remaining) + remaining);
  b[0] = 0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 1 : 0);
  let pos = writeVarInt(b, 1, remaining);
  b.writeUInt16BE(topicLen, pos);
  pos += 2;
  pos += b.write(p.topic, pos);
  let packetIdOffset = -1;
  if (p.qos > 0) {
    packetIdOffset = pos;
    b.writeUInt16BE(p.packetId, pos);
    pos += 2;
  }
  if (propsLen >= 0) {
    pos = writeVarInt(b, pos, propsLen);
    if (pr !== undefined) {
      if (pr.payloadFormatIndicator !== undefined) {
        b[pos++] = 0x01;
        b[pos++] = pr.payloadFormatIndicator;
      }
      if (pr.messageExpiryInterval !== undefined) {
        b[pos++] = 0x02;
        b.writeUInt32BE(pr.messageExpiryInterval, pos);
        pos += 4;
      }
      if (pr.contentType !== undefined) {
        b[pos++] = 0x03;
        b.writeUInt16BE(ctLen, pos);
        pos += 2;
        pos += b.write(pr.contentType, pos);
      }
      if (pr.responseTopic !== undefined) {
        b[pos++] = 0x08;
        b.writeUInt16BE(rtLen, pos);
        pos += 2;
        pos += b.write(pr.responseTopic, pos);
      }
      if (pr.correlationData !== undefined) {
        b[pos++] = 0x09;
        b.writeUInt16BE(pr.correlationData.length, pos);
        pos += 2;
        pos += pr.correlationData.copy(b, pos);
      }
      if (pr.subscriptionIdentifiers !== undefined) {
        for (const id of pr.subscriptionIdentifiers) {
          b[pos++] = 0x0b;
          pos = writeVarInt(b, pos, id);
        }
      }
      if (pr.topicAlias !== undefined) {
        b[pos++] = 0x23;
        b.writeUInt16BE(pr.topicAlias, pos);
        pos += 2;
      }
      if (pr.userProperties !== undefined && upLens !== undefined) {
        let i = 0;
        for (const [k, v] of pr.userProperties) {
          b[pos++] = 0x26;
          b.writeUInt16BE(upLens[i++] as number, pos);
          pos += 2;
          pos += b.write(k, pos);
          b.writeUInt16BE(upLens[i++] as number, pos);
          pos += 2;
          pos += b.write(v, pos);
        }
      }
    }
  }
  p.payload.copy(b, pos);
  return { bytes: b, packetIdOffset };
}

/** A copy of an encoded QoS 1/2 PUBLISH carrying another packet identifier. */
export function withPacketId(e: EncodedPublish, packetId: number): Buffer {
  const b = Buffer.allocUnsafe(e.bytes.length);
  e.bytes.copy(b);
  b.writeUInt16BE(packetId, e.packetIdOffset);
  return b;
}

/** PUBACK/PUBREC/PUBREL/PUBCOMP => type packet-id [reason-code (5.0, omitted when 0)] */
export function encodeAck(type: number, packetId: number, reasonCode = 0, protocolVersion = 4): Buffer {
  const flags = type === PacketType.Pubrel ? 0x02 : 0;
  if (protocolVersion === 5 && reasonCode !== 0) {
    return Buffer.from([(type << 4) | flags, 3, packetId >> 8, packetId & 0xff, reasonCode]);
  }
  return Buffer.from([(type << 4) | flags, 2, packetId >> 8, packetId & 0xff]);
}

/** A decoded PUBACK, PUBREC, PUBREL or PUBCOMP (reason code 0 when absent). */
export interface AckPacket {
  packetId: number;
  reasonCode: number;
}

/** Reason codes a client may send in PUBACK/PUBREC (5.0 §3.4.2.1, §3.5.2.1). */
const PUBACK_PUBREC_CODES = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]);
/** Reason codes a client may send in PUBREL/PUBCOMP (5.0 §3.6.2.1, §3.7.2.1). */
const PUBREL_PUBCOMP_CODES = new Set([0x00, 0x92]);
const ACK_NAMES: Record<number, string> = { 4: 'PUBACK', 5: 'PUBREC', 6: 'PUBREL', 7: 'PUBCOMP' };

/**
 * PUBACK / PUBREC / PUBREL / PUBCOMP => fixed header packet-id [reason-code [properties] (5.0)]
 *   properties => property-length (varint) { 0x1F reason-string | 0x26 user-property }
 *
 * Hand-written because mqtt-packet checks no lengths: a 3.1.1 PUBREL `62 01 05` came out as
 * packet id -1 and was answered for id 65535. 3.x: remaining length exactly 2; 5.0: 2, 3 (reason
 * code) or more (reason code and properties filling the rest) (§3.4.2.1).
 */
export function decodeAck(f: Frame, protocolVersion: number): AckPacket {
  const name = ACK_NAMES[f.type] ?? 'ack';
  // Reserved flags: 0b0010 for PUBREL, 0 for the others [MQTT-2.2.2-1] [MQTT-3.6.1-1]
  if (f.flags !== (f.type === PacketType.Pubrel ? 0x02 : 0)) malformed(`${name} with header flags ${f.flags}`);
  const b = f.bytes;
  const end = b.length;
  let pos = f.bodyOffset;
  const length = end - pos;
  if (protocolVersion === 5 ? length < 2 : length !== 2) malformed(`${name} with remaining length ${length}`);
  const packetId = b.readUInt16BE(pos);
  pos += 2;
  // A packet identifier is non-zero [MQTT-2.2.1-3]
  if (packetId === 0) malformed(`${name} with packet identifier 0`);
  if (pos === end) return { packetId, reasonCode: 0 };
  const reasonCode = b[pos++] as number;
  const valid = f.type === PacketType.Puback || f.type === PacketType.Pubrec ? PUBACK_PUBREC_CODES : PUBREL_PUBCOMP_CODES;
  if (!valid.has(reasonCode)) malformed(`${name} with reason code 0x${reasonCode.toString(16)}`);
  if (pos === end) return { packetId, reasonCode };
  const [plen, p0] = readVarInt(b, pos, end);
  pos = p0;
  if (pos + plen !== end) malformed(`${name} properties do not fill the packet`);
  let reasonString = false;
  while (pos < end) {
    const [id, p1] = readVarInt(b, pos, end);
    pos = p1;
    if (id === 0x1f) {
      if (reasonString) dupProp('reason string');
      reasonString = true;
      pos = readString(b, pos, end)[1];
    } else if (id === 0x26) {
      pos = readString(b, readString(b, pos, end)[1], end)[1];
    } else {
      malformed(`property 0x${id.toString(16)} not allowed in ${name}`);
    }
  }
  return { packetId, reasonCode };
}

/** How each property's value is encoded (5.0 §2.2.2.2); an identifier not here is unknown. */
const PROPERTY_TYPES: Readonly<Record<number, 'byte' | 'int16' | 'int32' | 'varint' | 'string' | 'binary' | 'pair'>> = {
  0x01: 'byte',
  0x02: 'int32',
  0x03: 'string',
  0x08: 'string',
  0x09: 'binary',
  0x0b: 'varint',
  0x11: 'int32',
  0x12: 'string',
  0x13: 'int16',
  0x15: 'string',
  0x16: 'binary',
  0x17: 'byte',
  0x18: 'int32',
  0x19: 'byte',
  0x1a: 'string',
  0x1c: 'string',
  0x1f: 'string',
  0x21: 'int16',
  0x22: 'int16',
  0x23: 'int16',
  0x24: 'byte',
  0x25: 'byte',
  0x26: 'pair',
  0x27: 'int32',
  0x28: 'byte',
  0x29: 'byte',
  0x2a: 'byte',
};

/**
 * Checks the UTF-8 strings of the property block at `pos` (property-length, then properties):
 * ill-formed UTF-8 or U+0000 is a malformed packet [MQTT-1.5.4-1] [MQTT-1.5.4-2]. Done on the raw
 * bytes because mqtt-packet, which decodes the block, turns bad bytes into U+FFFD, and those
 * cannot be told from a genuine U+FFFD afterwards. Returns the position after the block.
 */
export function checkPropertyStrings(b: Buffer, pos: number, end: number): number {
  const [plen, p0] = readVarInt(b, pos, end);
  pos = p0;
  const pend = pos + plen;
  if (pend > end) malformed('properties longer than the packet');
  while (pos < pend) {
    const [id, p1] = readVarInt(b, pos, pend);
    pos = p1;
    switch (PROPERTY_TYPES[id]) {
      case 'byte':
        pos += 1;
        break;
      case 'int16':
        pos += 2;
        break;
      case 'int32':
        pos += 4;
        break;
      case 'varint':
        pos = readVarInt(b, pos, pend)[1];
        break;
      case 'string':
        pos = readString(b, pos, pend)[1];
        break;
      case 'pair':
        pos = readString(b, readString(b, pos, pend)[1], pend)[1];
        break;
      case 'binary':
        if (pos + 2 > pend) malformed('truncated property');
        pos += 2 + b.readUInt16BE(pos);
        break;
      default:
        malformed(`unknown property 0x${id.toString(16)}`);
    }
    if (pos > pend) malformed('truncated property');
  }
  return pend;
}

/**
 * The property strings of a 5.0 CONNECT (CONNECT properties and will properties), checked on the
 * raw bytes as `checkPropertyStrings` explains.
 *
 * CONNECT => protocol_name protocol_level connect_flags keep_alive properties client_id
 *   [will_properties will_topic will_payload] [user_name] [password]
 */
export function checkConnectPropertyStrings(f: Frame): void {
  const b = f.bytes;
  const end = b.length;
  let pos = f.bodyOffset;
  if (pos + 2 > end) malformed('truncated CONNECT');
  pos += 2 + b.readUInt16BE(pos);
  if (pos + 4 > end) malformed('truncated CONNECT');
  const flags = b[pos + 1] as number;
  pos = checkPropertyStrings(b, pos + 4, end);
  if (pos + 2 > end) malformed('truncated CONNECT');
  pos += 2 + b.readUInt16BE(pos);
  if ((flags & 0x04) !== 0) checkPropertyStrings(b, pos, end);
}

export const PINGRESP = Buffer.from([0xd0, 0x00]);

/**
 * CONNECT's protocol name and level, read before the full decode so an unsupported level gets
 * its CONNACK (0x84 / return code 1) instead of a dropped connection [MQTT-3.1.2-2].
 */
export function peekConnectProtocol(f: Frame): { name: string; level: number } | undefined {
  const b = f.bytes;
  let pos = f.bodyOffset;
  if (pos + 2 > b.length) return undefined;
  const l = b.readUInt16BE(pos);
  pos += 2;
  if (pos + l + 1 > b.length) return undefined;
  return { name: b.toString('latin1', pos, pos + l), level: (b[pos + l] as number) & 0x7f };
}

/**
 * CONNECT of MQTT 3.1 and 3.1.1 (spec §3.1) without the generic parser, which costs more than
 * the rest of connection setup together. It makes the same checks with the same messages as
 * mqtt-packet and returns the same shape; 5.0 (properties) and bridge levels are left to it
 * (`undefined`).
 *
 * CONNECT => protocol_name protocol_level connect_flags keep_alive client_id
 *   [will_topic will_message] [user_name] [password]
 */
export function decodeConnectV3(f: Frame): IConnectPacket | undefined {
  const b = f.bytes;
  const end = b.length;
  let pos = f.bodyOffset;
  const malformed = (message: string): MqttProtocolError => new MqttProtocolError(ReasonCode.MalformedPacket, message);
  const field = (): number => {
    if (pos + 2 > end) return -1;
    const l = b.readUInt16BE(pos);
    pos += 2;
    if (pos + l > end) return -1;
    pos += l;
    return l;
  };
  const str = (): string | undefined => {
    const l = field();
    return l < 0 ? undefined : b.toString('utf8', pos - l, pos);
  };
  if (f.flags !== 0) throw malformed('Invalid header flag bits, must be 0x0 for connect packet');
  if (field() < 0) throw malformed('Cannot parse protocolId');
  const protocolId = b.toString('latin1', f.bodyOffset + 2, pos);
  if (protocolId !== 'MQTT' && protocolId !== 'MQIsdp') throw malformed('Invalid protocolId');
  if (pos >= end) throw malformed('Packet too short');
  const level = b[pos++] as number;
  if (level !== 3 && level !== 4) return undefined;
  if (pos >= end) throw malformed('Packet too short');
  const flags = b[pos++] as number;
  // The reserved flag must be zero [MQTT-3.1.2-3]
  if ((flags & 0x01) !== 0) throw malformed('Connect flag bit 0 must be 0, but got 1');
  const hasWill = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  if (!hasWill) {
    if (willRetain) throw malformed('Will Retain Flag must be set to zero when Will Flag is set to 0');
    if (willQos !== 0) throw malformed('Will QoS must be set to zero when Will Flag is set to 0');
  }
  if (pos + 2 > end) throw malformed('Packet too short');
  const keepalive = b.readUInt16BE(pos);
  pos += 2;
  const clientId = str();
  if (clientId === undefined) throw malformed('Packet too short');
  const p: IConnectPacket = {
    cmd: 'connect',
    retain: false,
    qos: 0,
    dup: false,
    length: end - f.bodyOffset,
    topic: null,
    payload: null,
    protocolId,
    protocolVersion: level,
    clean: (flags & 0x02) !== 0,
    keepalive,
    clientId,
  } as IConnectPacket;
  if (hasWill) {
    const topic = str();
    if (topic === undefined) throw malformed('Cannot parse will topic');
    const l = field();
    if (l < 0) throw malformed('Cannot parse will payload');
    p.will = { topic, payload: b.subarray(pos - l, pos), qos: willQos as 0 | 1 | 2, retain: willRetain };
  }
  if ((flags & 0x80) !== 0) {
    const username = str();
    if (username === undefined) throw malformed('Cannot parse username');
    p.username = username;
  }
  if ((flags & 0x40) !== 0) {
    const l = field();
    if (l < 0) throw malformed('Cannot parse password');
    p.password = b.subarray(pos - l, pos);
  }
  return p;
}

/**
 * Every packet but PUBLISH goes through mqtt-packet's parser, one complete frame at a time, so
 * its `packet` event fires synchronously inside `decode`.
 */
export class PacketDecoder {
  #parser = PacketDecoder.#newParser(4);
  #packet: Packet | undefined;
  #error: Error | undefined;
  #version = 4;

  static #shared: (PacketDecoder | undefined)[] = [];

  /**
   * The decoder of one protocol level, shared by every connection: decoding is synchronous and
   * each frame is a whole packet, so no state lives between calls. (A parser per connection
   * cost about 1 KB per idle client: the parser, its buffer list stream and their listeners.)
   */
  static forVersion(protocolVersion: number): PacketDecoder {
    let d = PacketDecoder.#shared[protocolVersion];
    if (d === undefined) {
      d = new PacketDecoder();
      d.protocolVersion = protocolVersion;
      PacketDecoder.#shared[protocolVersion] = d;
    }
    return d;
  }

  static #newParser(protocolVersion: number): ReturnType<typeof mqttPacket.parser> {
    return mqttPacket.parser({ protocolVersion });
  }

  constructor() {
    this.#listen();
  }

  #listen(): void {
    this.#parser.on('packet', (p: Packet) => {
      this.#packet = p;
    });
    this.#parser.on('error', (err: Error) => {
      this.#error ??= err;
    });
  }

  set protocolVersion(v: number) {
    this.#version = v;
    (this.#parser as unknown as { settings: { protocolVersion: number } }).settings = { protocolVersion: v };
  }

  decode(f: Frame): Packet {
    this.#packet = undefined;
    this.#error = undefined;
    const left = this.#parser.parse(f.bytes);
    const err = this.#error as Error | undefined;
    const p = this.#packet as Packet | undefined;
    this.#packet = undefined;
    // mqtt-packet keeps a decoded CONNECT as its settings: drop it (credentials, will) at once.
    if (p?.cmd === 'connect') this.protocolVersion = this.#version;
    if (err !== undefined || p === undefined || left !== 0) {
      // Whatever the parser kept of a bad packet must not leak into the next one.
      this.#parser = PacketDecoder.#newParser(this.#version);
      this.#listen();
    }
    if (err !== undefined) throw new MqttProtocolError(ReasonCode.MalformedPacket, err.message);
    if (p === undefined) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'incomplete packet');
    return p;
  }
}

/** Encodes any packet but PUBLISH (CONNACK, SUBACK, UNSUBACK, DISCONNECT, AUTH). */
export function encodePacket(p: Packet, protocolVersion: number): Buffer {
  return mqttPacket.generate(p, { protocolVersion });
}
