import { randomBytes } from 'node:crypto';
import { checkTopicFilter, parseFilter } from '../mqtt/topic.js';
import { MQTT_DEFAULTS } from '../mqtt/config.js';
import { parseCidr } from './ip.js';

/**
 * What the security layer keeps in meta (group 0, cluster metadata), one JSON value per key:
 * users under `/users/<name>`, ACL rules under `/acl/<id>`, deny-list entries under
 * `/denylist/<kind>/<value, URI-encoded>`. Brokers cache them with a watch (DESIGN §2.4).
 */
export const USERS_PREFIX = '/users/';
export const ACL_PREFIX = '/acl/';
export const DENYLIST_PREFIX = '/denylist/';

export const userKey = (name: string): string => `${USERS_PREFIX}${name}`;
export const aclKey = (id: string): string => `${ACL_PREFIX}${id}`;
export const denyKey = (kind: DenyKind, value: string): string => `${DENYLIST_PREFIX}${kind}/${encodeURIComponent(value)}`;

export interface ScryptHash {
  algo: 'scrypt';
  N: number;
  r: number;
  p: number;
  /** base64 */
  salt: string;
  /** base64 */
  hash: string;
}

/** SCRAM credentials (RFC 5802 / 7677) of one hash function: never the password itself. */
export interface ScramCredentials {
  iterations: number;
  salt: string;
  storedKey: string;
  serverKey: string;
}

export interface UserRecord {
  username: string;
  superuser: boolean;
  createdAt: number;
  password: ScryptHash;
  /** SCRAM-SHA-256 credentials. */
  scram: ScramCredentials;
  /**
   * SCRAM-SHA-512 credentials (Kafka SASL). Absent for users whose password was last set before
   * they were introduced: SCRAM-SHA-512 fails for them until the password is set again.
   */
  scram512?: ScramCredentials;
}

export const AclAction = { Publish: 'publish', Subscribe: 'subscribe', All: 'all' } as const;
export type AclAction = (typeof AclAction)[keyof typeof AclAction];
export type AclPermission = 'allow' | 'deny';

/** Who an ACL rule applies to: one of username, client id or IP/CIDR, or everyone (`all`). */
export type AclWho = { username: string } | { clientId: string } | { ip: string } | { all: true };

export interface AclRule {
  id: string;
  /** Rules are tried in ascending position (then id); the first match wins. */
  position: number;
  who: AclWho;
  action: AclAction;
  /** Topic filter; `%u` is replaced by the username, `%c` by the client id. */
  topic: string;
  permission: AclPermission;
  createdAt: number;
}

export const DenyKind = { Username: 'username', ClientId: 'clientid', Ip: 'ip' } as const;
export type DenyKind = (typeof DenyKind)[keyof typeof DenyKind];
export const DENY_KINDS: readonly DenyKind[] = Object.values(DenyKind);

export interface DenyEntry {
  kind: DenyKind;
  /** A username, a client id, or an IP address / CIDR block. */
  value: string;
  reason: string;
  createdAt: number;
  /** Epoch milliseconds after which the entry no longer applies; absent = never. */
  expiresAt?: number;
}

export const newAclId = (): string => randomBytes(6).toString('hex');

/** 1–128 characters, no whitespace, no "/", no control characters (they would break keys and logs). */
function isGoodUsername(name: string): boolean {
  if (name.length < 1 || name.length > 128) return false;
  for (let k = 0; k < name.length; k++) {
    const ch = name.charCodeAt(k);
    if (ch < 0x21 || ch === 0x2f || ch === 0x7f) return false;
  }
  return !/\s/.test(name);
}

/** Problems with a username (empty = fine). */
export function checkUsername(name: unknown): string | undefined {
  if (typeof name !== 'string' || !isGoodUsername(name))
    return 'username must be 1–128 characters without spaces, "/" or control characters';
  return undefined;
}

/** Validates an ACL rule's parts; returns the problem or undefined. */
export function checkAclRule(r: Partial<AclRule>): string | undefined {
  if (r.permission !== 'allow' && r.permission !== 'deny') return 'permission must be allow or deny';
  if (r.action !== 'publish' && r.action !== 'subscribe' && r.action !== 'all') return 'action must be publish, subscribe or all';
  if (typeof r.topic !== 'string' || r.topic.length === 0) return 'topic must be a non-empty topic filter';
  const bare = r.topic.startsWith('eq ') ? r.topic.slice(3) : r.topic;
  const parsed = parseFilter(bare.replaceAll('%u', 'u').replaceAll('%c', 'c'));
  if (parsed === undefined || checkTopicFilter(parsed.filter, MQTT_DEFAULTS) !== undefined)
    return `topic ${JSON.stringify(r.topic)} is not a valid topic filter`;
  const w = r.who as Record<string, unknown> | undefined;
  if (w === undefined || typeof w !== 'object') return 'who must be one of {username}, {clientId}, {ip}, {all: true}';
  const keys = Object.keys(w);
  if (keys.length !== 1) return 'who must name exactly one of username, clientId, ip, all';
  if ('ip' in w && (typeof w.ip !== 'string' || parseCidr(w.ip) === undefined))
    return `ip ${JSON.stringify(w.ip)} is not an address or CIDR block`;
  if ('username' in w && (typeof w.username !== 'string' || w.username === '')) return 'username must be a non-empty string';
  if ('clientId' in w && (typeof w.clientId !== 'string' || w.clientId === '')) return 'clientId must be a non-empty string';
  if ('all' in w && w.all !== true) return 'all must be true';
  if (!['username', 'clientId', 'ip', 'all'].includes(keys[0] as string)) return `unknown who key ${keys[0]}`;
  if (r.position !== undefined && !Number.isSafeInteger(r.position)) return 'position must be an integer';
  return undefined;
}

export function checkDenyEntry(e: Partial<DenyEntry>): string | undefined {
  if (!DENY_KINDS.includes(e.kind as DenyKind)) return `kind must be one of ${DENY_KINDS.join(', ')}`;
  if (typeof e.value !== 'string' || e.value === '') return 'value must be a non-empty string';
  if (e.kind === 'ip' && parseCidr(e.value) === undefined) return `${JSON.stringify(e.value)} is not an IP address or CIDR block`;
  if (e.expiresAt !== undefined && (!Number.isSafeInteger(e.expiresAt) || e.expiresAt <= 0)) return 'expiresAt must be epoch milliseconds';
  return undefined;
}

/** The JSON of a user as the API shows it: no hashes. */
export function publicUser(u: UserRecord): { username: string; superuser: boolean; createdAt: number } {
  return { username: u.username, superuser: u.superuser, createdAt: u.createdAt };
}

/**
 * ACL rules carried by an outside authority (a JWT claim, a webhook answer): each entry that is
 * a valid rule is kept, in order, with ids `<idPrefix>-<n>`; invalid entries are ignored.
 */
export function aclRulesFrom(raw: unknown, idPrefix: string): AclRule[] {
  const rules: AclRule[] = [];
  if (!Array.isArray(raw)) return rules;
  raw.forEach((r: unknown, i) => {
    const x = (typeof r === 'object' && r !== null ? r : {}) as Partial<AclRule>;
    const rule = {
      id: `${idPrefix}-${i}`,
      position: i,
      who: x.who ?? { all: true as const },
      action: x.action ?? 'all',
      topic: x.topic,
      permission: x.permission,
      createdAt: 0,
    };
    if (checkAclRule(rule as Partial<AclRule>) === undefined) rules.push(rule as AclRule);
  });
  return rules;
}
