import type { Compare, KvCommand, RequestOp } from './kv-store.js';

/**
 * Encoding of KV commands as Raft entry payloads. A proposal carries the proposer's id so the
 * node that proposed it can answer its caller when the entry is applied.
 *
 * A put (the hot path) is binary: `0x01 · u8 flags (1 = lease, 2 = prevKv) · u16 idLength · id
 * · u32 keyLength · key (latin1) · [f64 lease] · u32 valueLength · value`. Every other command
 * is `0x02` followed by JSON (Buffers as base64, keys as they are). Payloads that start with `{`
 * are the JSON form without a prefix, as logs written before the binary form hold them.
 */
export interface Proposal {
  /** "<nodeId>:<sequence>", unique per proposing node incarnation. */
  id: string;
  cmd: KvCommand;
}

type Json = Record<string, unknown>;

function encodeOp(op: RequestOp): Json {
  return op.op === 'put' ? { ...op, value: op.value.toString('base64') } : { ...op };
}
function decodeOp(op: Json): RequestOp {
  return (op.op === 'put' ? { ...op, value: Buffer.from(op.value as string, 'base64') } : op) as RequestOp;
}
function encodeCompare(c: Compare): Json {
  return Buffer.isBuffer(c.value) ? { ...c, value: c.value.toString('base64'), b: 1 } : { ...c };
}
function decodeCompare(c: Json): Compare {
  const { b, ...rest } = c;
  return (b === 1 ? { ...rest, value: Buffer.from(rest.value as string, 'base64') } : rest) as unknown as Compare;
}

export function encodeProposal(p: Proposal): Uint8Array {
  const c = p.cmd;
  if (c.op === 'put') return encodePut(p.id, c);
  let cmd: Json;
  if (c.op === 'delete' || c.op === 'range') cmd = encodeOp(c);
  else if (c.op === 'txn')
    cmd = { op: 'txn', compare: c.compare.map(encodeCompare), success: c.success.map(encodeOp), failure: c.failure.map(encodeOp) };
  else cmd = { ...c };
  const json = Buffer.from(JSON.stringify({ id: p.id, cmd }));
  const out = Buffer.allocUnsafe(json.length + 1);
  out[0] = JSON_FORM;
  json.copy(out, 1);
  return out;
}

const PUT_FORM = 0x01;
const JSON_FORM = 0x02;
const LEGACY_JSON = 0x7b; // '{'

function encodePut(id: string, c: Extract<KvCommand, { op: 'put' }>): Buffer {
  const idLen = Buffer.byteLength(id, 'latin1');
  const keyLen = Buffer.byteLength(c.key, 'latin1');
  const hasLease = c.lease !== undefined;
  const b = Buffer.allocUnsafe(1 + 1 + 2 + idLen + 4 + keyLen + (hasLease ? 8 : 0) + 4 + c.value.length);
  let o = 0;
  b[o++] = PUT_FORM;
  b[o++] = (hasLease ? 1 : 0) | (c.prevKv === true ? 2 : 0);
  o = b.writeUInt16LE(idLen, o);
  o += b.write(id, o, 'latin1');
  o = b.writeUInt32LE(keyLen, o);
  o += b.write(c.key, o, 'latin1');
  if (c.lease !== undefined) o = b.writeDoubleLE(c.lease, o);
  o = b.writeUInt32LE(c.value.length, o);
  c.value.copy(b, o);
  return b;
}

function decodePut(b: Buffer): Proposal {
  const bad = (): never => {
    throw new Error('meta proposal: truncated put');
  };
  let o = 1;
  if (b.length < 4) bad();
  const flags = b[o++] as number;
  const idLen = b.readUInt16LE(o);
  o += 2;
  if (o + idLen + 4 > b.length) bad();
  const id = b.toString('latin1', o, o + idLen);
  o += idLen;
  const keyLen = b.readUInt32LE(o);
  o += 4;
  if (o + keyLen > b.length) bad();
  const key = b.toString('latin1', o, o + keyLen);
  o += keyLen;
  let lease: number | undefined;
  if ((flags & 1) !== 0) {
    if (o + 8 > b.length) bad();
    lease = b.readDoubleLE(o);
    o += 8;
  }
  if (o + 4 > b.length) bad();
  const valueLen = b.readUInt32LE(o);
  o += 4;
  if (o + valueLen !== b.length) bad();
  // A copy: the value outlives the log entry it came from.
  const value = Buffer.allocUnsafe(valueLen);
  b.copy(value, 0, o, o + valueLen);
  const cmd: Extract<KvCommand, { op: 'put' }> = { op: 'put', key, value };
  if (lease !== undefined) cmd.lease = lease;
  if ((flags & 2) !== 0) cmd.prevKv = true;
  return { id, cmd };
}

export function decodeProposal(data: Uint8Array): Proposal {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b[0] === PUT_FORM) return decodePut(b);
  if (b[0] !== JSON_FORM && b[0] !== LEGACY_JSON) throw new Error(`meta proposal: unknown form ${b[0]}`);
  const raw = JSON.parse(b.toString('utf8', b[0] === JSON_FORM ? 1 : 0)) as { id: string; cmd: Json };
  const c = raw.cmd;
  let cmd: KvCommand;
  if (c.op === 'put' || c.op === 'delete' || c.op === 'range') cmd = decodeOp(c);
  else if (c.op === 'txn')
    cmd = {
      op: 'txn',
      compare: (c.compare as Json[]).map(decodeCompare),
      success: (c.success as Json[]).map(decodeOp),
      failure: (c.failure as Json[]).map(decodeOp),
    };
  else cmd = c as KvCommand;
  return { id: raw.id, cmd };
}
