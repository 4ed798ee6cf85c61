/**
 * The few MQTT packets the load generator writes, encoded by hand (MQTT 3.1, 3.1.1 and 5.0).
 * A PUBLISH is encoded once per publisher (`PublishTemplate`); on the hot path only its packet
 * identifier and the payload stamp (send time, publisher index, sequence) are patched in place.
 *
 * PUBLISH => 0x3_ (dup qos retain) remaining_length topic:utf8 [packet_id:u16 if qos>0]
 *   [properties_length:varint (5.0)] payload
 * Payload stamp (first 16 bytes, big-endian) => send_time_ms:f64 publisher:u32 seq:u32
 */

/** MQTT control packet types (the high nibble of the first byte). */
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

/** Protocol levels: 3 = MQTT 3.1 (MQIsdp), 4 = 3.1.1, 5 = 5.0. */
export type ProtocolLevel = 3 | 4 | 5;

/** Bytes of the payload stamp; payloads must be at least this long. */
export const STAMP_BYTES = 16;
export const StampField = { SendTimeMs: 0, Publisher: 8, Seq: 12 } as const;

/** Bytes needed for the variable-length "remaining length" of a packet. */
export function varintBytes(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x20_0000 ? 3 : 4;
}

/** Writes the MQTT variable byte integer `n` at `pos`; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  do {
    let b = n % 0x80;
    n = Math.floor(n / 0x80);
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  return pos;
}

function writeString(buf: Buffer, pos: number, s: Buffer): number {
  buf.writeUInt16BE(s.length, pos);
  s.copy(buf, pos + 2);
  return pos + 2 + s.length;
}

/** A packet with fixed header `first` and the given body. */
function packet(first: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + varintBytes(body.length) + body.length);
  out[0] = first;
  body.copy(out, writeVarint(out, 1, body.length));
  return out;
}

export interface ConnectOptions {
  level: ProtocolLevel;
  clientId: string;
  cleanStart?: boolean;
  keepaliveS?: number;
  username?: string | undefined;
  password?: string | undefined;
}

/** CONNECT; 5.0 carries an empty property list (defaults: Receive Maximum 65,535). */
export function encodeConnect(o: ConnectOptions): Buffer {
  const name = Buffer.from(o.level === 3 ? 'MQIsdp' : 'MQTT');
  const id = Buffer.from(o.clientId);
  const user = o.username !== undefined ? Buffer.from(o.username) : undefined;
  const pass = o.password !== undefined ? Buffer.from(o.password) : undefined;
  const size = 2 + name.length + 4 + (o.level === 5 ? 1 : 0) + 2 + id.length + (user ? 2 + user.length : 0) + (pass ? 2 + pass.length : 0);
  const body = Buffer.allocUnsafe(size);
  let pos = writeString(body, 0, name);
  body[pos++] = o.level;
  body[pos++] = (user ? 0x80 : 0) | (pass ? 0x40 : 0) | (o.cleanStart === false ? 0 : 0x02);
  body.writeUInt16BE(o.keepaliveS ?? 60, pos);
  pos += 2;
  if (o.level === 5) body[pos++] = 0;
  pos = writeString(body, pos, id);
  if (user) pos = writeString(body, pos, user);
  if (pass) writeString(body, pos, pass);
  return packet(0x10, body);
}

/** SUBSCRIBE with one filter at the given maximum QoS. */
export function encodeSubscribe(level: ProtocolLevel, packetId: number, filter: string, qos: number): Buffer {
  const f = Buffer.from(filter);
  const body = Buffer.allocUnsafe(2 + (level === 5 ? 1 : 0) + 2 + f.length + 1);
  body.writeUInt16BE(packetId, 0);
  let pos = 2;
  if (level === 5) body[pos++] = 0;
  pos = writeString(body, pos, f);
  body[pos] = qos;
  return packet(0x82, body);
}

/** PUBACK, PUBREC, PUBREL or PUBCOMP (success, so 5.0 may omit the reason code). */
export function encodeAck(type: number, packetId: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  writeAck(out, 0, type, packetId);
  return out;
}

/** Writes a 4-byte acknowledgement packet at `pos` (PUBREL carries flags 0b0010). */
export function writeAck(buf: Buffer, pos: number, type: number, packetId: number): void {
  buf[pos] = (type << 4) | (type === PacketType.Pubrel ? 0x02 : 0);
  buf[pos + 1] = 2;
  buf[pos + 2] = packetId >>> 8;
  buf[pos + 3] = packetId & 0xff;
}

export const PINGREQ = Buffer.from([0xc0, 0x00]);
export const PINGRESP = Buffer.from([0xd0, 0x00]);
export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** CONNACK as a server sends it (used by the sink). */
export function encodeConnack(level: ProtocolLevel, sessionPresent: boolean, code: number): Buffer {
  return level === 5
    ? Buffer.from([0x20, 0x03, sessionPresent ? 1 : 0, code, 0x00])
    : Buffer.from([0x20, 0x02, sessionPresent ? 1 : 0, code]);
}

/** SUBACK granting `codes` (one per filter). */
export function encodeSuback(level: ProtocolLevel, packetId: number, codes: readonly number[]): Buffer {
  const body = Buffer.allocUnsafe(2 + (level === 5 ? 1 : 0) + codes.length);
  body.writeUInt16BE(packetId, 0);
  let pos = 2;
  if (level === 5) body[pos++] = 0;
  for (const c of codes) body[pos++] = c;
  return packet(0x90, body);
}

/** One encoded PUBLISH and where to patch it. */
export interface PublishTemplate {
  bytes: Buffer;
  /** Offset of the packet identifier, or -1 at QoS 0. */
  packetIdOffset: number;
  payloadOffset: number;
}

export function encodePublishTemplate(
  level: ProtocolLevel,
  topic: string,
  qos: number,
  payloadBytes: number,
  retain = false,
): PublishTemplate {
  if (payloadBytes < STAMP_BYTES) throw new RangeError(`payload must be at least ${STAMP_BYTES} bytes (send time, publisher, sequence)`);
  const t = Buffer.from(topic);
  const remaining = 2 + t.length + (qos > 0 ? 2 : 0) + (level === 5 ? 1 : 0) + payloadBytes;
  const bytes = Buffer.alloc(1 + varintBytes(remaining) + remaining, 0x78); // filler 'x'
  bytes[0] = 0x30 | (qos << 1) | (retain ? 1 : 0);
  let pos = writeString(bytes, writeVarint(bytes, 1, remaining), t);
  let packetIdOffset = -1;
  if (qos > 0) {
    packetIdOffset = pos;
    bytes.writeUInt16BE(1, pos);
    pos += 2;
  }
  if (level === 5) bytes[pos++] = 0;
  bytes.fill(0, pos, pos + STAMP_BYTES);
  return { bytes, packetIdOffset, payloadOffset: pos };
}

/**
 * `count` copies of a template in one buffer, so a batch of PUBLISHes goes out as one write after
 * patching each copy with `patchPublish`.
 */
export function repeatTemplate(t: PublishTemplate, count: number): Buffer {
  const len = t.bytes.length;
  const out = Buffer.allocUnsafe(len * count);
  for (let i = 0; i < count; i++) t.bytes.copy(out, i * len);
  return out;
}

/** Patches the copy of template `t` that starts at `base` in `buf`. No allocation. */
export function patchPublish(
  buf: Buffer,
  base: number,
  t: PublishTemplate,
  packetId: number,
  sendTimeMs: number,
  publisher: number,
  seq: number,
): void {
  if (t.packetIdOffset >= 0) {
    buf[base + t.packetIdOffset] = packetId >>> 8;
    buf[base + t.packetIdOffset + 1] = packetId & 0xff;
  }
  const p = base + t.payloadOffset;
  buf.writeDoubleBE(sendTimeMs, p + StampField.SendTimeMs);
  buf.writeUInt32BE(publisher >>> 0, p + StampField.Publisher);
  buf.writeUInt32BE(seq >>> 0, p + StampField.Seq);
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
