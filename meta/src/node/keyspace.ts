import { createHash } from 'node:crypto';
import { prefixEnd } from '../kv/sorted-keys.js';

/**
 * How the keyspace is split across Raft groups: group 0 holds cluster metadata (nodes, users,
 * ACLs, config, streams, placement, leases of brokers); keys under `/sessions/<clientId>/…` are
 * hashed by client id over `sessionGroups` groups, keys under `/offsets/<groupId>/…` by consumer
 * group id over `offsetGroups` groups. Everything about one session or one consumer group is
 * therefore in one group, so a transaction on it never spans groups.
 */
export const SESSIONS = '/sessions/';
export const OFFSETS = '/offsets/';

export class Keyspace {
  readonly sessionGroups: number;
  readonly offsetGroups: number;

  constructor(sessionGroups: number, offsetGroups: number) {
    this.sessionGroups = sessionGroups;
    this.offsetGroups = offsetGroups;
  }

  get groupCount(): number {
    return 1 + this.sessionGroups + this.offsetGroups;
  }

  groupIds(): number[] {
    return Array.from({ length: this.groupCount }, (_, i) => i);
  }

  groupOf(key: string): number {
    if (key.startsWith(SESSIONS)) return 1 + hashSegment(key, SESSIONS.length, this.sessionGroups);
    if (key.startsWith(OFFSETS)) return 1 + this.sessionGroups + hashSegment(key, OFFSETS.length, this.offsetGroups);
    return 0;
  }

  /** Groups that may hold keys in [from, to) (to undefined = unbounded). */
  groupsForRange(from: string, to: string | undefined): number[] {
    const single = this.#singleSubtree(from, to);
    if (single !== undefined) return [single];
    const out = new Set<number>();
    const overlaps = (p: string): boolean => {
      const pEnd = prefixEnd(p);
      return (to === undefined || to > p) && (pEnd === undefined || from < pEnd);
    };
    const inside = (p: string): boolean => {
      const pEnd = prefixEnd(p);
      return from >= p && to !== undefined && pEnd !== undefined && to <= pEnd;
    };
    if (!inside(SESSIONS) && !inside(OFFSETS)) out.add(0);
    if (overlaps(SESSIONS)) for (let i = 0; i < this.sessionGroups; i++) out.add(1 + i);
    if (overlaps(OFFSETS)) for (let i = 0; i < this.offsetGroups; i++) out.add(1 + this.sessionGroups + i);
    return [...out].sort((a, b) => a - b);
  }

  /** When [from, to) lies within one hashed subtree (`/sessions/<id>/…`), that group. */
  #singleSubtree(from: string, to: string | undefined): number | undefined {
    for (const p of [SESSIONS, OFFSETS]) {
      if (!from.startsWith(p)) continue;
      const slash = from.indexOf('/', p.length);
      const sub = slash < 0 ? undefined : from.slice(0, slash + 1);
      if (sub === undefined) {
        // exactly one key `/sessions/<id>` (no trailing part)
        if (to === from + '\0') return this.groupOf(from);
        continue;
      }
      const end = prefixEnd(sub);
      if (to !== undefined && end !== undefined && to <= end) return this.groupOf(from);
    }
    return undefined;
  }
}

function hashSegment(key: string, start: number, n: number): number {
  if (n <= 1) return 0;
  const slash = key.indexOf('/', start);
  const seg = slash < 0 ? key.slice(start) : key.slice(start, slash);
  return createHash('sha1').update(seg).digest().readUInt32BE(0) % n;
}
