import { EntryType, type Entry } from '../types.js';

/** A client write as carried in a log entry: put key=value, once per (client, seq). */
export interface KvCommand {
  readonly client: number;
  readonly seq: number;
  readonly key: string;
  readonly value: string;
}

export function encodeCommand(c: KvCommand): Uint8Array {
  return new TextEncoder().encode(JSON.stringify([c.client, c.seq, c.key, c.value]));
}

export function decodeCommand(data: Uint8Array): KvCommand {
  const [client, seq, key, value] = JSON.parse(new TextDecoder().decode(data)) as [number, number, string, string];
  return { client, seq, key, value };
}

/** FNV-1a step over one 32-bit value. */
function mix(h: number, v: number): number {
  for (let i = 0; i < 4; i++) {
    h ^= (v >>> (i * 8)) & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Identity of a log entry for safety checks: index, term, type and payload. */
export function entryDigest(e: Entry): number {
  let h = 0x811c9dc5;
  h = mix(h, e.index);
  h = mix(h, e.term);
  h = mix(h, e.type === EntryType.Normal ? 1 : 2);
  for (const b of e.data) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/**
 * The simulation's state machine: a tiny key-value map. Each client's writes carry increasing
 * sequence numbers and one is applied only if newer than the client's last applied one, so a
 * proposal duplicated by the network (or a late retry) takes effect at most once and never
 * after a later write of the same client (the usual client-session rule).
 *
 * `rolling` folds the digest of every applied entry: two replicas at the same applied index
 * must have the same value (state-machine safety), snapshots included.
 */
export class KvStateMachine {
  readonly data = new Map<string, string>();
  readonly lastSeq = new Map<number, number>();
  applied = 0;
  rolling = 0;

  apply(e: Entry): KvCommand | undefined {
    this.applied = e.index;
    this.rolling = mix(this.rolling, entryDigest(e));
    if (e.type !== EntryType.Normal || e.data.byteLength === 0) return undefined;
    const cmd = decodeCommand(e.data);
    if ((this.lastSeq.get(cmd.client) ?? 0) >= cmd.seq) return undefined;
    this.lastSeq.set(cmd.client, cmd.seq);
    this.data.set(cmd.key, cmd.value);
    return cmd;
  }

  get(key: string): string | undefined {
    return this.data.get(key);
  }

  serialize(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({ applied: this.applied, rolling: this.rolling, data: [...this.data], lastSeq: [...this.lastSeq] }),
    );
  }

  /** Replaces the state with a snapshot's; empty data is the bootstrap (empty) state. */
  restore(bytes: Uint8Array, index: number): void {
    this.data.clear();
    this.lastSeq.clear();
    if (bytes.byteLength === 0) {
      this.applied = index;
      this.rolling = 0;
      return;
    }
    const s = JSON.parse(new TextDecoder().decode(bytes)) as {
      applied: number;
      rolling: number;
      data: [string, string][];
      lastSeq: [number, number][];
    };
    for (const [k, v] of s.data) this.data.set(k, v);
    for (const [c, q] of s.lastSeq) this.lastSeq.set(c, q);
    this.applied = s.applied;
    this.rolling = s.rolling;
  }
}
