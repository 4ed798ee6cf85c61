import { prefixEnd } from '@robustmq/meta';
import { ErrorCode, RobustError } from '@robustmq/common';
import { hashPassword, SCRAM_ITERATIONS, scramCredentials } from './password.js';
import type { SecurityMeta } from './memory-meta.js';
import {
  ACL_PREFIX,
  DENYLIST_PREFIX,
  USERS_PREFIX,
  aclKey,
  checkAclRule,
  checkDenyEntry,
  checkUsername,
  denyKey,
  newAclId,
  publicUser,
  userKey,
  type AclRule,
  type DenyEntry,
  type DenyKind,
  type UserRecord,
} from './records.js';
import { sortRules } from './acl.js';

const invalid = (msg: string): RobustError => new RobustError(ErrorCode.ConfigInvalid, msg);
const notFound = (msg: string): RobustError => new RobustError(ErrorCode.NotFound, msg);

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

async function list<T>(meta: SecurityMeta, prefix: string): Promise<T[]> {
  const r = await meta.range(prefix, prefixEnd(prefix) ?? '\0');
  const out: T[] = [];
  for (const kv of r.kvs) {
    try {
      out.push(JSON.parse(kv.value.toString('utf8')) as T);
    } catch {
      // a damaged record is skipped (the broker logs it)
    }
  }
  return out;
}

/**
 * Users, ACL rules and deny-list entries in meta: what the admin REST API and robust-ctl change.
 * Brokers see every change through their watches within moments.
 */
export class SecurityAdmin {
  readonly #meta: SecurityMeta;

  constructor(meta: SecurityMeta) {
    this.#meta = meta;
  }

  async listUsers(): Promise<ReturnType<typeof publicUser>[]> {
    return (await list<UserRecord>(this.#meta, USERS_PREFIX)).map(publicUser);
  }

  /** Creates a user; `replace` allows overwriting (passwd). */
  async putUser(
    username: string,
    password: string,
    opts: { superuser?: boolean; mustExist?: boolean; mustNotExist?: boolean } = {},
  ): Promise<void> {
    const problem = checkUsername(username);
    if (problem !== undefined) throw invalid(problem);
    if (typeof password !== 'string' || password.length < 8 || password.length > 1024) throw invalid('password must be 8–1024 characters');
    const existing = await this.#meta.get(userKey(username));
    if (opts.mustNotExist === true && existing !== undefined)
      throw new RobustError(ErrorCode.AlreadyExists, `user ${username} already exists`);
    if (opts.mustExist === true && existing === undefined) throw notFound(`no such user: ${username}`);
    const prev = existing === undefined ? undefined : (JSON.parse(existing.value.toString('utf8')) as UserRecord);
    const [hash, scram, scram512] = await Promise.all([
      hashPassword(password),
      scramCredentials(password),
      scramCredentials(password, SCRAM_ITERATIONS, 'sha512'),
    ]);
    const rec: UserRecord = {
      username,
      superuser: opts.superuser ?? prev?.superuser ?? false,
      createdAt: prev?.createdAt ?? Date.now(),
      password: hash,
      scram,
      scram512,
    };
    await this.#meta.put(userKey(username), json(rec));
  }

  async deleteUser(username: string): Promise<void> {
    const r = await this.#meta.delete(userKey(username));
    if (r.deleted === 0) throw notFound(`no such user: ${username}`);
  }

  async listAcl(): Promise<AclRule[]> {
    return sortRules(await list<AclRule>(this.#meta, ACL_PREFIX));
  }

  /** Adds a rule; without a position it goes after every existing rule. */
  async addAcl(r: Omit<AclRule, 'id' | 'createdAt' | 'position'> & { position?: number | undefined }): Promise<AclRule> {
    const problem = checkAclRule(r);
    if (problem !== undefined) throw invalid(problem);
    let position = r.position;
    if (position === undefined) {
      const rules = await this.listAcl();
      position = rules.length === 0 ? 10 : (rules.at(-1) as AclRule).position + 10;
    }
    const rule: AclRule = {
      id: newAclId(),
      position,
      who: r.who,
      action: r.action,
      topic: r.topic,
      permission: r.permission,
      createdAt: Date.now(),
    };
    await this.#meta.put(aclKey(rule.id), json(rule));
    return rule;
  }

  async deleteAcl(id: string): Promise<void> {
    if (!/^[\w-]{1,64}$/.test(id)) throw invalid('bad rule id');
    const r = await this.#meta.delete(aclKey(id));
    if (r.deleted === 0) throw notFound(`no such ACL rule: ${id}`);
  }

  /** Live entries (expired ones are removed on the way). */
  async listDeny(now = Date.now()): Promise<DenyEntry[]> {
    const all = await list<DenyEntry>(this.#meta, DENYLIST_PREFIX);
    const live: DenyEntry[] = [];
    for (const e of all) {
      if (e.expiresAt !== undefined && e.expiresAt <= now) await this.#meta.delete(denyKey(e.kind, e.value)).catch(() => undefined);
      else live.push(e);
    }
    return live;
  }

  async addDeny(e: Omit<DenyEntry, 'createdAt'>): Promise<DenyEntry> {
    const problem = checkDenyEntry(e);
    if (problem !== undefined) throw invalid(problem);
    const entry: DenyEntry = {
      kind: e.kind,
      value: e.value,
      reason: e.reason ?? '',
      createdAt: Date.now(),
      ...(e.expiresAt !== undefined ? { expiresAt: e.expiresAt } : {}),
    };
    await this.#meta.put(denyKey(entry.kind, entry.value), json(entry));
    return entry;
  }

  async deleteDeny(kind: DenyKind, value: string): Promise<void> {
    const r = await this.#meta.delete(denyKey(kind, value));
    if (r.deleted === 0) throw notFound(`no deny-list entry ${kind} ${value}`);
  }
}
