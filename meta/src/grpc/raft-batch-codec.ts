import type { Envelope } from '../node/transport.js';
import { encodeMessageInto, messageSize } from './message-codec.js';

/**
 * The `RaftBatch` message of proto/meta.proto, encoded by hand in one buffer: the protobuf
 * writer of the generated code copies every Raft message twice (into its chunks, then into the
 * joined result) and grpc-js once more, where this writes each one once, straight into the
 * batch. The bytes are exactly what `meta.RaftBatch.encode` produces for the same batch (a test
 * checks), so receivers decode it with the generated code.
 *
 *   RaftBatch { 1 from: uint64 · 2 cluster_id: string · 3 envelopes: repeated RaftEnvelope
 *               · 4 from_address: string · 5 heartbeats: repeated CoalescedHeartbeat }
 *   RaftEnvelope { 1 group: uint32 · 2 message: bytes }
 *   CoalescedHeartbeat { 1 group: uint32 · 2 term: uint64 · 3 commit: uint64 · 4 context: string
 *                        · 5 response: bool }
 */
export interface RaftBatchHeader {
  from: number;
  clusterId: string;
  fromAddress: string;
}

/** A heartbeat (or response) of one group, as the batch carries it. */
export interface HeartbeatItem {
  group: number;
  term: number;
  commit: number;
  context: string;
  response: boolean;
}

const LEN = 2; // wire type of length-delimited fields

export function encodeRaftBatch(header: RaftBatchHeader, envelopes: readonly Envelope[], heartbeats: readonly HeartbeatItem[]): Buffer {
  const clusterId = Buffer.byteLength(header.clusterId, 'utf8');
  const fromAddress = Buffer.byteLength(header.fromAddress, 'utf8');
  let size = 0;
  if (header.from !== 0) size += 1 + varintSize(header.from);
  if (clusterId > 0) size += 1 + varintSize(clusterId) + clusterId;
  const envSizes: number[] = [];
  const msgSizes: number[] = [];
  for (const e of envelopes) {
    const m = messageSize(e.message);
    const body = (e.group !== 0 ? 1 + varintSize(e.group) : 0) + (m > 0 ? 1 + varintSize(m) + m : 0);
    msgSizes.push(m);
    envSizes.push(body);
    size += 1 + varintSize(body) + body;
  }
  if (fromAddress > 0) size += 1 + varintSize(fromAddress) + fromAddress;
  const hbSizes: number[] = [];
  for (const h of heartbeats) {
    const body = heartbeatSize(h);
    hbSizes.push(body);
    size += 1 + varintSize(body) + body;
  }
  const b = Buffer.allocUnsafe(size);
  let o = 0;
  if (header.from !== 0) {
    b[o++] = (1 << 3) | 0;
    o = writeVarint(b, o, header.from);
  }
  if (clusterId > 0) {
    b[o++] = (2 << 3) | LEN;
    o = writeVarint(b, o, clusterId);
    o += b.write(header.clusterId, o, 'utf8');
  }
  for (let i = 0; i < envelopes.length; i++) {
    const e = envelopes[i] as Envelope;
    const m = msgSizes[i] as number;
    b[o++] = (3 << 3) | LEN;
    o = writeVarint(b, o, envSizes[i] as number);
    if (e.group !== 0) {
      b[o++] = (1 << 3) | 0;
      o = writeVarint(b, o, e.group);
    }
    if (m > 0) {
      b[o++] = (2 << 3) | LEN;
      o = writeVarint(b, o, m);
      o = encodeMessageInto(e.message, b, o);
    }
  }
  if (fromAddress > 0) {
    b[o++] = (4 << 3) | LEN;
    o = writeVarint(b, o, fromAddress);
    o += b.write(header.fromAddress, o, 'utf8');
  }
  for (let i = 0; i < heartbeats.length; i++) {
    const h = heartbeats[i] as HeartbeatItem;
    b[o++] = (5 << 3) | LEN;
    o = writeVarint(b, o, hbSizes[i] as number);
    if (h.group !== 0) {
      b[o++] = (1 << 3) | 0;
      o = writeVarint(b, o, h.group);
    }
    if (h.term !== 0) {
      b[o++] = (2 << 3) | 0;
      o = writeVarint(b, o, h.term);
    }
    if (h.commit !== 0) {
      b[o++] = (3 << 3) | 0;
      o = writeVarint(b, o, h.commit);
    }
    if (h.context !== '') {
      const n = Buffer.byteLength(h.context, 'utf8');
      b[o++] = (4 << 3) | LEN;
      o = writeVarint(b, o, n);
      o += b.write(h.context, o, 'utf8');
    }
    if (h.response) {
      b[o++] = (5 << 3) | 0;
      b[o++] = 1;
    }
  }
  if (o !== size) throw new Error(`raft batch: encoded ${o} bytes, expected ${size}`);
  return b;
}

function heartbeatSize(h: HeartbeatItem): number {
  let n = 0;
  if (h.group !== 0) n += 1 + varintSize(h.group);
  if (h.term !== 0) n += 1 + varintSize(h.term);
  if (h.commit !== 0) n += 1 + varintSize(h.commit);
  if (h.context !== '') {
    const c = Buffer.byteLength(h.context, 'utf8');
    n += 1 + varintSize(c) + c;
  }
  if (h.response) n += 2;
  return n;
}

/** Bytes of `v` (a non-negative integer below 2^53) as a protobuf varint. */
function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(b: Buffer, o: number, v: number): number {
  while (v >= 0x80) {
    b[o++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  b[o++] = v;
  return o;
}
