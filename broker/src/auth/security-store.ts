import { prefixEnd, type KeyValue } from '@robustmq/meta';
import type { Logger } from '@robustmq/common';
import { sortRules } from './acl.js';
import type { SecurityMeta } from './memory-meta.js';
import { CidrSet } from './ip.js';
import { ACL_PREFIX, DENYLIST_PREFIX, USERS_PREFIX, type AclRule, type DenyEntry, type UserRecord } from './records.js';

const PREFIXES = [USERS_PREFIX, ACL_PREFIX, DENYLIST_PREFIX] as const;

/**
 * The broker's cache of users, ACL rules and the deny list, kept current by meta watches
 * (DESIGN §2.4): CONNECT, PUBLISH and SUBSCRIBE never wait on meta once it is loaded.
 *
 * How this works: each prefix is listed, then watched from the listed revision + 1, so no change
 * between the two is missed. A watch that fails (leader change, meta restarting, compaction) is
 * re-established after a short delay by listing again. Until the first listing succeeds `ready`
 * is pending; meta not yet open (all-in-one start-up) is retried the same way.
 */
export class SecurityStore {
  readonly users = new Map<string, UserRecord>();
  readonly denyEntries = new Map<string, DenyEntry>();
  /** ACL rules in evaluation order. */
  rules: readonly AclRule[] = [];
  /** Bumped on every ACL change: per-connection decision caches compare it. */
  aclGeneration = 0;
  readonly ready: Promise<void>;
  readonly #meta: SecurityMeta;
  readonly #log: Logger;
  readonly #acl = new Map<string, AclRule>();
  readonly #cancels = new Map<string, () => void>();
  #ipDeny = new CidrSet();
  #loaded = new Set<string>();
  #resolveReady!: () => void;
  #closed = false;
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(meta: SecurityMeta, log: Logger) {
    this.#meta = meta;
    this.#log = log;
    this.ready = new Promise((r) => (this.#resolveReady = r));
  }

  get isReady(): boolean {
    return this.#loaded.size === PREFIXES.length;
  }

  start(): void {
    for (const p of PREFIXES) void this.#sync(p, 0);
  }

  async #sync(prefix: string, attempt: number): Promise<void> {
    if (this.#closed) return;
    const end = prefixEnd(prefix) ?? '\0';
    try {
      const r = await this.#meta.range(prefix, end);
      if (this.#closed) return;
      this.#reset(prefix, r.kvs);
      this.#cancels.get(prefix)?.();
      const cancel = this.#meta.watch(
        prefix,
        end,
        { startRevision: r.revision + 1 },
        (b) => {
          for (const e of b.events) {
            if (e.type === 'put') this.#apply(prefix, e.kv);
            else this.#remove(prefix, e.kv.key);
          }
          this.#changed(prefix);
        },
        (err) => {
          if (this.#closed) return;
          this.#log.warn({ err, prefix }, 'security watch failed; reloading');
          this.#retry(prefix, 1);
        },
      );
      this.#cancels.set(prefix, cancel);
      if (!this.#loaded.has(prefix)) {
        this.#loaded.add(prefix);
        if (this.isReady) {
          this.#log.info(
            { users: this.users.size, aclRules: this.rules.length, denyEntries: this.denyEntries.size },
            'security cache loaded',
          );
          this.#resolveReady();
        }
      }
    } catch (err) {
      if (attempt === 0 || attempt % 50 === 0) this.#log.debug({ err, prefix }, 'security cache load failed; retrying');
      this.#retry(prefix, attempt + 1);
    }
  }

  #retry(prefix: string, attempt: number): void {
    if (this.#closed) return;
    setTimeout(() => void this.#sync(prefix, attempt), Math.min(100 * attempt, 2000)).unref();
  }

  #reset(prefix: string, kvs: KeyValue[]): void {
    if (prefix === USERS_PREFIX) this.users.clear();
    else if (prefix === ACL_PREFIX) this.#acl.clear();
    else this.denyEntries.clear();
    for (const kv of kvs) this.#apply(prefix, kv);
    this.#changed(prefix);
  }

  #apply(prefix: string, kv: KeyValue): void {
    let v: unknown;
    try {
      v = JSON.parse(kv.value.toString('utf8'));
    } catch {
      this.#log.warn({ key: kv.key }, 'security record is not JSON; ignored');
      return;
    }
    const name = kv.key.slice(prefix.length);
    if (prefix === USERS_PREFIX) this.users.set(name, v as UserRecord);
    else if (prefix === ACL_PREFIX) this.#acl.set(name, v as AclRule);
    else this.denyEntries.set(name, v as DenyEntry);
  }

  #remove(prefix: string, key: string): void {
    const name = key.slice(prefix.length);
    if (prefix === USERS_PREFIX) this.users.delete(name);
    else if (prefix === ACL_PREFIX) this.#acl.delete(name);
    else this.denyEntries.delete(name);
  }

  #changed(prefix: string): void {
    if (prefix === ACL_PREFIX) {
      this.rules = sortRules([...this.#acl.values()]);
      this.aclGeneration++;
    } else if (prefix === DENYLIST_PREFIX) {
      const ips = new CidrSet();
      for (const e of this.denyEntries.values()) if (e.kind === 'ip') ips.add(e.value);
      this.#ipDeny = ips;
    }
  }

  /** A deny-list entry that applies now to this username, client id or address, if any. */
  denied(q: { username?: string | undefined; clientId?: string; ip?: string }, now = Date.now()): DenyEntry | undefined {
    if (this.denyEntries.size === 0) return undefined;
    const live = (e: DenyEntry | undefined): DenyEntry | undefined =>
      e !== undefined && (e.expiresAt === undefined || e.expiresAt > now) ? e : undefined;
    if (q.clientId !== undefined) {
      const e = live(this.denyEntries.get(`clientid/${encodeURIComponent(q.clientId)}`));
      if (e !== undefined) return e;
    }
    if (q.username !== undefined) {
      const e = live(this.denyEntries.get(`username/${encodeURIComponent(q.username)}`));
      if (e !== undefined) return e;
    }
    if (q.ip !== undefined && this.#ipDeny.has(q.ip)) {
      for (const e of this.denyEntries.values()) {
        if (e.kind !== 'ip' || live(e) === undefined) continue;
        const one = new CidrSet();
        if (one.add(e.value) && one.has(q.ip)) return e;
      }
    }
    return undefined;
  }

  /** Records a deny-list entry locally at once (meta's watch confirms it later). */
  addLocalDeny(key: string, e: DenyEntry): void {
    this.denyEntries.set(key, e);
    this.#changed(DENYLIST_PREFIX);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    for (const c of this.#cancels.values()) c();
    this.#cancels.clear();
  }
}
