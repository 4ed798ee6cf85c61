import { parseFilter, topicMatches } from '../mqtt/topic.js';
import { cidrContains } from './ip.js';
import type { AclAction, AclPermission, AclRule, AclWho } from './records.js';

/** Who is asking: fixed at CONNECT. */
export interface Principal {
  clientId: string;
  username: string | undefined;
  ip: string;
  superuser: boolean;
  /** Rules from the credential itself (JWT claims), tried before the stored rules. */
  rules: readonly AclRule[];
}

/** `%u` → username, `%c` → client id. A rule naming `%u` never matches a client without a username. */
export function expandTopic(topic: string, p: Pick<Principal, 'clientId' | 'username'>): string | undefined {
  if (topic.includes('%u')) {
    if (p.username === undefined || p.username === '') return undefined;
    topic = topic.replaceAll('%u', p.username);
  }
  if (topic.includes('%c')) topic = topic.replaceAll('%c', p.clientId);
  return topic;
}

/**
 * Whether the rule filter `rule` covers the subscription filter `sub`: every topic `sub` can
 * match is matched by `rule` (`a/#` covers `a/+/b`; `a/+` does not cover `a/#`).
 */
export function filterCovers(rule: string, sub: string): boolean {
  if (rule === sub) return true;
  const r = rule.split('/');
  const s = sub.split('/');
  if (sub.startsWith('$') !== rule.startsWith('$') && (r[0] === '+' || r[0] === '#')) return false;
  for (let i = 0; i < r.length; i++) {
    const rl = r[i] as string;
    if (rl === '#') return true;
    if (i >= s.length) return false;
    const sl = s[i] as string;
    if (sl === '#') return false;
    if (rl === '+') continue;
    if (sl === '+' || rl !== sl) return false;
  }
  return r.length === s.length;
}

function whoMatches(w: AclWho, p: Principal): boolean {
  if ('all' in w) return true;
  if ('username' in w) return p.username !== undefined && w.username === p.username;
  if ('clientId' in w) return w.clientId === p.clientId;
  return cidrContains(w.ip, p.ip);
}

/** The permission of the first rule matching (principal, action, topic), or undefined. */
export function matchRules(
  rules: Iterable<AclRule>,
  p: Principal,
  action: Exclude<AclAction, 'all'>,
  topic: string,
): AclPermission | undefined {
  for (const r of rules) {
    if (r.action !== 'all' && r.action !== action) continue;
    if (!whoMatches(r.who, p)) continue;
    const exact = r.topic.startsWith('eq ');
    const filter = expandTopic(exact ? r.topic.slice(3) : r.topic, p);
    if (filter === undefined) continue;
    let hit: boolean;
    if (exact) hit = filter === topic;
    else if (action === 'publish') hit = topicMatches(filter, topic);
    else {
      // A shared subscription is checked by the filter it shares.
      const sub = parseFilter(topic)?.filter ?? topic;
      hit = filterCovers(filter, sub);
    }
    if (hit) return r.permission;
  }
  return undefined;
}

/** Orders stored rules for first-match evaluation. */
export function sortRules(rules: AclRule[]): AclRule[] {
  return rules.sort((a, b) => a.position - b.position || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
