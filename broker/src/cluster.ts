import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, RobustError, type Logger } from '@robustmq/common';
import { prefixEnd, type MetaClient } from '@robustmq/meta';

/** Broker registrations live in meta under `/brokers/<nodeId>`, each attached to its broker's lease. */
export const BROKERS_PREFIX = '/brokers/';

/** What a broker publishes about itself (the JSON value of `/brokers/<nodeId>`; GET /api/v1/brokers lists them). */
export interface BrokerRegistration {
  nodeId: number;
  /** Pod name (POD_NAME) or host name: the operator matches it to the broker pod. */
  name: string;
  /** Host other brokers and clients reach this one at (advertiseHost). */
  host: string;
  /** Bound listener ports by name: mqtt, kafka, kafkaTls, http, … (only those bound). */
  ports: Record<string, number>;
  version: string;
  /** ISO 8601 time the process started. */
  startedAt: string;
}

/** The live brokers of the cluster as this broker sees them. */
export interface BrokerCluster {
  /** Live brokers sorted by node id; this broker is always among them (unless it is leaving and others remain). */
  live(): readonly BrokerRegistration[];
  /** Called after every change of the live set; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
}

/**
 * 32-bit FNV-1a of a string's UTF-16 code units, finished with murmur3's fmix32 so that keys
 * differing only in their last characters still spread: stable across processes and versions.
 */
export function stableHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The broker that coordinates a key (a group id) among `ids`: rendezvous hashing, so a broker
 * joining or leaving moves only the keys it gains or held, and every broker with the same live
 * set picks the same one. -1 when `ids` is empty.
 */
export function coordinatorOf(key: string, ids: readonly number[]): number {
  let best = -1;
  let bestScore = -1;
  for (const id of ids) {
    const score = stableHash(`${key}\u0000${id}`);
    if (score > bestScore || (score === bestScore && id < best)) [best, bestScore] = [id, score];
  }
  return best;
}

/**
 * The broker reported as a partition's leader: consecutive partitions of a topic go to
 * consecutive brokers of the sorted live set, starting at the topic's hash, so the load spreads
 * evenly. Any broker serves any partition (data is in the journal); this only steers clients.
 */
export function partitionLeaderOf(topic: string, partition: number, sortedIds: readonly number[]): number {
  if (sortedIds.length === 0) return -1;
  return sortedIds[(stableHash(topic) + partition) % sortedIds.length] as number;
}

export interface BrokerMembershipOptions {
  meta: MetaClient;
  log: Logger;
  /** Lease time to live: a broker that stops renewing disappears this long after. */
  ttlMs: number;
  /** This broker's registration (read at every (re)registration and for the local entry of `live()`). */
  self: () => BrokerRegistration;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;

/**
 * A broker's membership in the cluster: its registration in meta and the live view of all
 * registrations.
 *
 * How this works: registration grants a lease of `ttlMs`, puts `/brokers/<nodeId>` on it and
 * renews it every third of the TTL. A renewal that fails is retried until the TTL since the last
 * success has passed; a lease meta no longer knows (expired, lost) or a deleted key starts a new
 * registration, with exponential backoff between attempts. `stop()` revokes the lease, so the key
 * disappears at once instead of after the TTL. The live view is a range of `/brokers/` followed by
 * a watch from the next revision; a watch that fails is replaced by a new range and watch.
 */
export class BrokerMembership implements BrokerCluster {
  readonly #opts: BrokerMembershipOptions;
  readonly #log: Logger;
  readonly #abort = new AbortController();
  readonly #listeners = new Set<() => void>();
  #others = new Map<number, BrokerRegistration>();
  #leaseId: number | undefined;
  #registered = false;
  /** The live view has been read from meta at least once. */
  #loaded = false;
  #leaving = false;
  /** Set when the watch saw our own key deleted while the lease lives: register again. */
  #keyLost = false;
  #unwatch: (() => void) | undefined;
  #wakeWatch: (() => void) | undefined;
  #started = false;

  constructor(opts: BrokerMembershipOptions) {
    this.#opts = opts;
    this.#log = opts.log;
  }

  get #key(): string {
    return `${BROKERS_PREFIX}${this.#opts.self().nodeId}`;
  }

  /** Starts registering and watching; both retry until `stop()`. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    void this.#registerLoop();
    void this.#watchLoop();
  }

  /**
   * True while this broker's registration is in meta and it has read the others' (readiness: a
   * broker that does not know the others yet would take every group for its own).
   */
  isRegistered(): boolean {
    return this.#registered && this.#loaded;
  }

  live(): readonly BrokerRegistration[] {
    const self = this.#opts.self();
    const all = new Map(this.#others);
    if (this.#leaving && [...all.keys()].some((id) => id !== self.nodeId)) all.delete(self.nodeId);
    else all.set(self.nodeId, self);
    return [...all.values()].sort((a, b) => a.nodeId - b.nodeId);
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const l of this.#listeners) {
      try {
        l();
      } catch (err) {
        this.#log.error({ err }, 'broker membership listener failed');
      }
    }
  }

  async #registerLoop(): Promise<void> {
    const { meta, ttlMs } = this.#opts;
    const signal = this.#abort.signal;
    let backoffMs = MIN_BACKOFF_MS;
    while (!signal.aborted) {
      let lease: number | undefined;
      try {
        const granted = await meta.leaseGrant(ttlMs);
        lease = granted.id;
        if (signal.aborted) {
          // stopped while the grant was in flight: that lease must not outlive us
          await meta.leaseRevoke(lease).catch(() => undefined);
          break;
        }
        this.#leaseId = lease;
        this.#keyLost = false;
        await meta.put(this.#key, Buffer.from(JSON.stringify(this.#opts.self())), { lease });
        if (signal.aborted) break;
        this.#registered = true;
        backoffMs = MIN_BACKOFF_MS;
        this.#log.info({ nodeId: this.#opts.self().nodeId, lease, ttlMs: granted.ttlMs }, 'broker registered');
        await this.#keepAlive(lease, granted.ttlMs, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.#log.warn({ err, retryMs: backoffMs }, 'broker registration failed; retrying');
      }
      if (signal.aborted) break;
      this.#registered = false;
      this.#leaseId = undefined;
      // the old lease (if meta still has it) would only keep a stale key alive
      if (lease !== undefined) meta.leaseRevoke(lease).catch(() => undefined);
      await sleep(backoffMs, undefined, { signal }).catch(() => undefined);
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    }
  }

  /** Renews the lease until stopped; returns (or throws) when the registration is lost. */
  async #keepAlive(lease: number, ttlMs: number, signal: AbortSignal): Promise<void> {
    const { meta } = this.#opts;
    let lastOk = Date.now();
    while (!signal.aborted) {
      await sleep(Math.max(10, Math.floor(ttlMs / 3)), undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      if (this.#keyLost) {
        this.#log.warn({ lease }, 'broker registration deleted; registering again');
        return;
      }
      try {
        await meta.leaseKeepAlive(lease);
        lastOk = Date.now();
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof RobustError && err.code === ErrorCode.LeaseNotFound) {
          this.#log.warn({ lease }, 'broker lease expired; registering again');
          return;
        }
        if (Date.now() - lastOk >= ttlMs) {
          this.#log.warn({ err, lease }, 'broker lease not renewed within its ttl; registering again');
          return;
        }
        this.#log.debug({ err, lease }, 'broker lease renewal failed; retrying');
      }
    }
  }

  async #watchLoop(): Promise<void> {
    const { meta } = this.#opts;
    const signal = this.#abort.signal;
    let backoffMs = MIN_BACKOFF_MS;
    while (!signal.aborted) {
      try {
        const r = await meta.range(BROKERS_PREFIX, prefixEnd(BROKERS_PREFIX));
        if (signal.aborted) return;
        const next = new Map<number, BrokerRegistration>();
        for (const kv of r.kvs) {
          const b = parseRegistration(kv.value);
          if (b !== undefined) next.set(b.nodeId, b);
        }
        this.#others = next;
        this.#loaded = true;
        this.#changed();
        backoffMs = MIN_BACKOFF_MS;
        await new Promise<void>((resolve) => {
          this.#wakeWatch = resolve;
          this.#unwatch = meta.watch(
            BROKERS_PREFIX,
            prefixEnd(BROKERS_PREFIX),
            { startRevision: r.revision + 1 },
            (batch) => {
              for (const e of batch.events) this.#apply(e.type, e.kv.key, e.kv.value);
              this.#changed();
            },
            (err) => {
              if (!signal.aborted) this.#log.warn({ err }, 'broker registration watch failed; watching again');
              resolve();
            },
          );
        });
        this.#unwatch?.();
        this.#unwatch = undefined;
      } catch (err) {
        if (signal.aborted) return;
        this.#log.debug({ err }, 'broker registrations not readable yet; retrying');
      }
      await sleep(backoffMs, undefined, { signal }).catch(() => undefined);
      backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
    }
  }

  #apply(type: 'put' | 'delete', key: string, value: Buffer): void {
    const id = Number(key.slice(BROKERS_PREFIX.length));
    if (!Number.isInteger(id)) return;
    if (type === 'delete') {
      this.#others.delete(id);
      if (id === this.#opts.self().nodeId && this.#registered && !this.#abort.signal.aborted) this.#keyLost = true;
      return;
    }
    const b = parseRegistration(value);
    if (b !== undefined) this.#others.set(b.nodeId, b);
  }

  /**
   * Leaves the cluster: this broker drops out of its own live view (groups move to the others),
   * the lease is revoked so the registration disappears at once, and the watch ends.
   */
  async stop(timeoutMs = 3000): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#leaving = true;
    this.#abort.abort();
    this.#changed();
    const lease = this.#leaseId;
    this.#registered = false;
    this.#leaseId = undefined;
    if (lease !== undefined) {
      const timer = new AbortController();
      try {
        await Promise.race([
          this.#opts.meta.leaseRevoke(lease),
          sleep(timeoutMs, undefined, { signal: timer.signal }).then(() => {
            throw new RobustError(ErrorCode.Timeout, `lease revoke took longer than ${timeoutMs} ms`);
          }),
        ]);
        this.#log.info({ lease }, 'broker deregistered');
      } catch (err) {
        this.#log.warn({ err, lease }, 'broker lease not revoked; it expires after its ttl');
      } finally {
        timer.abort();
      }
    }
    this.#unwatch?.();
    this.#unwatch = undefined;
    this.#wakeWatch?.();
  }
}

function parseRegistration(value: Buffer): BrokerRegistration | undefined {
  try {
    const b = JSON.parse(value.toString('utf8')) as BrokerRegistration;
    return Number.isInteger(b.nodeId) ? b : undefined;
  } catch {
    return undefined;
  }
}
