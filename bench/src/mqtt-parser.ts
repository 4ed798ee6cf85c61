/**
 * Incremental MQTT framer for the load generator: splits a byte stream into packets and hands each
 * to a handler as (type, flags, buffer, start, end) without copying or allocating, except when a
 * packet straddles two chunks (then it is assembled in a reused carry buffer).
 *
 * Packet => first_byte (type << 4 | flags) remaining_length:varint(1–4 bytes) body
 */
import { PacketType } from './mqtt-packets.js';

export interface PacketHandler {
  /** One whole packet; `start` is the first byte of its variable header, `end` one past its last. */
  onPacket(type: number, flags: number, buf: Buffer, start: number, end: number): void;
  /** The stream is not MQTT (a remaining length longer than 4 bytes, or over `maxPacketBytes`). */
  onMalformed(reason: string): void;
}

const EMPTY = Buffer.alloc(0);

export class MqttParser {
  /** Empty until a packet straddles chunks (most connections of a `conn` run never need it). */
  private carry: Buffer = EMPTY;
  private carryLen = 0;
  private broken = false;
  // outputs of header(): set instead of returning an object
  private hdrLen = 0;
  private bodyLen = 0;

  private readonly handler: PacketHandler;
  private readonly maxPacketBytes: number;

  constructor(handler: PacketHandler, maxPacketBytes = 256 * 1024 * 1024) {
    this.handler = handler;
    this.maxPacketBytes = maxPacketBytes;
  }

  push(chunk: Buffer): void {
    if (this.broken) return;
    let pos = 0;
    const end = chunk.length;
    if (this.carryLen > 0) {
      pos = this.fillCarry(chunk);
      if (pos < 0) return; // still incomplete, whole chunk consumed
    }
    while (pos < end) {
      const h = this.header(chunk, pos, end);
      if (h === -2) return;
      if (h === -1 || pos + this.hdrLen + this.bodyLen > end) {
        this.stash(chunk, pos, end);
        return;
      }
      const first = chunk[pos]!;
      const start = pos + this.hdrLen;
      pos = start + this.bodyLen;
      this.handler.onPacket(first >>> 4, first & 0x0f, chunk, start, pos);
      if (this.broken) return;
    }
  }

  /** Reads the fixed header at `pos`: -1 incomplete, -2 malformed, else 0 with hdrLen/bodyLen set. */
  private header(buf: Buffer, pos: number, end: number): number {
    let len = 0;
    let mul = 1;
    for (let i = 1; i <= 4; i++) {
      if (pos + i >= end) return -1;
      const b = buf[pos + i]!;
      len += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) {
        if (len + i + 1 > this.maxPacketBytes) return this.malformed(`packet of ${len} bytes exceeds the limit`);
        this.hdrLen = i + 1;
        this.bodyLen = len;
        return 0;
      }
      mul *= 0x80;
    }
    return this.malformed('remaining length longer than 4 bytes');
  }

  private malformed(reason: string): number {
    this.broken = true;
    this.handler.onMalformed(reason);
    return -2;
  }

  private stash(chunk: Buffer, from: number, to: number): void {
    const n = to - from;
    if (this.carry.length < n) this.carry = Buffer.allocUnsafe(Math.max(n, 1024, this.carry.length * 2));
    chunk.copy(this.carry, 0, from, to);
    this.carryLen = n;
  }

  /** Completes the carried packet from `chunk`; returns where the chunk's rest starts, or -1. */
  private fillCarry(chunk: Buffer): number {
    let pos = 0;
    // complete the fixed header first, one byte at a time (at most 4 more)
    while (true) {
      const h = this.header(this.carry, 0, this.carryLen);
      if (h === -2) return -1;
      if (h === 0) break;
      if (pos >= chunk.length) return -1;
      this.append(chunk, pos, pos + 1);
      pos++;
    }
    const total = this.hdrLen + this.bodyLen;
    const take = Math.min(total - this.carryLen, chunk.length - pos);
    this.append(chunk, pos, pos + take);
    pos += take;
    if (this.carryLen < total) return -1;
    const first = this.carry[0]!;
    this.carryLen = 0;
    this.handler.onPacket(first >>> 4, first & 0x0f, this.carry, this.hdrLen, total);
    return this.broken ? -1 : pos;
  }

  private append(chunk: Buffer, from: number, to: number): void {
    const need = this.carryLen + (to - from);
    if (this.carry.length < need) {
      const next = Buffer.allocUnsafe(Math.max(need, 1024, this.carry.length * 2));
      this.carry.copy(next, 0, 0, this.carryLen);
      this.carry = next;
    }
    chunk.copy(this.carry, this.carryLen, from, to);
    this.carryLen = need;
  }
}

/** Reads an MQTT variable byte integer at `pos`; sets `varintEnd`. Returns -1 if malformed. */
export function readVarint(buf: Buffer, pos: number, end: number, out: { pos: number }): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 4 && pos + i < end; i++) {
    const b = buf[pos + i]!;
    v += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) {
      out.pos = pos + i + 1;
      return v;
    }
    mul *= 0x80;
  }
  return -1;
}

const cursor = { pos: 0 };

/**
 * Where a PUBLISH body's payload starts (after topic, packet id and 5.0 properties), or -1 when
 * the body is malformed. `packetIdAt` receives the packet identifier's offset (-1 at QoS 0).
 */
export function publishPayloadOffset(
  buf: Buffer,
  start: number,
  end: number,
  flags: number,
  level: number,
  packetIdAt: { pos: number },
): number {
  if (start + 2 > end) return -1;
  let pos = start + 2 + buf.readUInt16BE(start);
  const qos = (flags >>> 1) & 3;
  if (qos > 0) {
    packetIdAt.pos = pos;
    pos += 2;
  } else packetIdAt.pos = -1;
  if (level === 5) {
    const props = readVarint(buf, pos, end, cursor);
    if (props < 0) return -1;
    pos = cursor.pos + props;
  }
  return pos > end ? -1 : pos;
}

/** The topic of a PUBLISH body (allocates: not for the hot path). */
export function publishTopic(buf: Buffer, start: number): string {
  return buf.toString('utf8', start + 2, start + 2 + buf.readUInt16BE(start));
}

/** Names of packet types, for error kinds. */
export const packetName = (type: number): string =>
  Object.entries(PacketType)
    .find(([, v]) => v === type)?.[0]
    .toUpperCase() ?? `type ${type}`;
