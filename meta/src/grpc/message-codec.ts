import type { Entry, Message, Snapshot } from '../raft/types.js';

/**
 * Raft messages on the wire between meta nodes: JSON with byte fields as base64. Decoding
 * validates the shape, so a malformed message from a peer is refused, never stepped.
 */
export function encodeMessage(m: Message): Buffer {
  return Buffer.from(
    JSON.stringify({
      ...m,
      entries: m.entries.map((e) => ({ ...e, data: Buffer.from(e.data).toString('base64') })),
      snapshot: m.snapshot === undefined ? undefined : { ...m.snapshot, data: Buffer.from(m.snapshot.data).toString('base64') },
    }),
  );
}

export function decodeMessage(buf: Uint8Array): Message {
  const raw = JSON.parse(Buffer.from(buf).toString('utf8')) as Record<string, unknown>;
  const num = (k: string): number => {
    const v = raw[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error(`raft message: bad ${k}`);
    return v;
  };
  if (typeof raw.type !== 'string') throw new Error('raft message: missing type');
  const entries = (Array.isArray(raw.entries) ? raw.entries : []).map((e: Record<string, unknown>): Entry => {
    if (typeof e.index !== 'number' || typeof e.term !== 'number' || typeof e.type !== 'string' || typeof e.data !== 'string') {
      throw new Error('raft message: bad entry');
    }
    return { index: e.index, term: e.term, type: e.type as Entry['type'], data: new Uint8Array(Buffer.from(e.data, 'base64')) };
  });
  let snapshot: Snapshot | undefined;
  if (raw.snapshot !== undefined && raw.snapshot !== null) {
    const s = raw.snapshot as { data: string; metadata: Snapshot['metadata'] };
    snapshot = { data: new Uint8Array(Buffer.from(s.data, 'base64')), metadata: s.metadata };
  }
  return {
    type: raw.type as Message['type'],
    to: num('to'),
    from: num('from'),
    term: num('term'),
    logTerm: num('logTerm'),
    index: num('index'),
    entries,
    commit: num('commit'),
    snapshot,
    reject: raw.reject === true,
    rejectHint: num('rejectHint'),
    context: typeof raw.context === 'string' ? raw.context : '',
  };
}
