import type { Compare, KvCommand, RequestOp } from './kv-store.js';

/**
 * Encoding of KV commands as Raft entry payloads: JSON, with Buffers as base64 and keys (latin1
 * byte strings) as they are. A proposal carries the proposer's id so the node that proposed it
 * can answer its caller when the entry is applied.
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
  let cmd: Json;
  if (c.op === 'put' || c.op === 'delete' || c.op === 'range') cmd = encodeOp(c);
  else if (c.op === 'txn')
    cmd = { op: 'txn', compare: c.compare.map(encodeCompare), success: c.success.map(encodeOp), failure: c.failure.map(encodeOp) };
  else cmd = { ...c };
  return Buffer.from(JSON.stringify({ id: p.id, cmd }));
}

export function decodeProposal(data: Uint8Array): Proposal {
  const raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as { id: string; cmd: Json };
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
