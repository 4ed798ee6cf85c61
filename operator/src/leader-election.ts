import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from '@robustmq/common';
import { microTime, statusOf, type Kube } from './kube.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

/**
 * Lease-based leader election (coordination.k8s.io/v1), the client-go algorithm: a candidate
 * takes the Lease when it is free or expired (renewTime + leaseDuration in the past), the holder
 * renews it every retry period, and every write is a PUT carrying the resourceVersion read, so two
 * candidates racing for one Lease get one 409. A holder that cannot renew within renewDeadline
 * reports the loss (main.ts exits: standbys take over with warm caches).
 */
export class LeaderElector {
  readonly #kube: Kube;
  readonly #o: LeaderElectionOptions;
  readonly #log: Logger;
  #leading = false;

  constructor(kube: Kube, o: LeaderElectionOptions, log: Logger) {
    this.#kube = kube;
    this.#o = o;
    this.#log = log.child({ component: 'leader-election' });
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  /** Resolves when leadership is acquired; then keeps renewing until `signal` aborts; calls onLost once if it fails. */
  async run(signal: AbortSignal, onLost: () => void): Promise<void> {
    while (!signal.aborted && !(await this.#tryAcquireOrRenew())) {
      await sleep(this.#o.retryPeriodMs, undefined, { signal }).catch(() => undefined);
    }
    if (signal.aborted) return;
    this.#leading = true;
    this.#log.info({ lease: this.#o.name, identity: this.#o.identity }, 'leader elected');
    void (async () => {
      let lastRenew = Date.now();
      while (!signal.aborted) {
        await sleep(this.#o.retryPeriodMs, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) break;
        if (await this.#tryAcquireOrRenew()) lastRenew = Date.now();
        else if (Date.now() - lastRenew > this.#o.renewDeadlineMs) {
          this.#leading = false;
          this.#log.error({ lease: this.#o.name }, 'leadership lost');
          onLost();
          return;
        }
      }
      if (this.#leading) await this.release();
    })();
  }

  /** Gives the Lease up (clean shutdown) so a standby takes over without waiting for expiry. */
  async release(): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    try {
      const lease = await this.#kube.readLease(this.#o.namespace, this.#o.name);
      if (lease?.spec?.holderIdentity !== this.#o.identity) return;
      lease.spec.holderIdentity = undefined as unknown as string;
      lease.spec.leaseDurationSeconds = 1;
      await this.#kube.coordination.replaceNamespacedLease({ namespace: this.#o.namespace, name: this.#o.name, body: lease });
    } catch (err) {
      this.#log.warn({ err }, 'releasing the lease failed');
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const seconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    try {
      const lease = await this.#kube.readLease(this.#o.namespace, this.#o.name);
      if (lease === undefined) {
        await this.#kube.coordination.createNamespacedLease({
          namespace: this.#o.namespace,
          body: {
            metadata: { name: this.#o.name, namespace: this.#o.namespace },
            spec: {
              holderIdentity: this.#o.identity,
              leaseDurationSeconds: seconds,
              acquireTime: microTime(now) as unknown as Date,
              renewTime: microTime(now) as unknown as Date,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity;
      const renewed = spec.renewTime ? new Date(spec.renewTime as unknown as string).getTime() : 0;
      const expired = renewed + (spec.leaseDurationSeconds ?? seconds) * 1000 < now.getTime();
      if (holder && holder !== this.#o.identity && !expired) return false;
      const taking = holder !== this.#o.identity;
      const body: V1Lease = {
        ...lease,
        spec: {
          ...spec,
          holderIdentity: this.#o.identity,
          leaseDurationSeconds: seconds,
          renewTime: microTime(now) as unknown as Date,
          ...(taking
            ? { acquireTime: microTime(now) as unknown as Date, leaseTransitions: (spec.leaseTransitions ?? 0) + (holder ? 1 : 0) }
            : { acquireTime: spec.acquireTime }),
        },
      };
      await this.#kube.coordination.replaceNamespacedLease({ namespace: this.#o.namespace, name: this.#o.name, body });
      return true;
    } catch (err) {
      const code = statusOf(err);
      if (code !== 409) this.#log.warn({ err: code === undefined ? err : undefined, status: code }, 'lease update failed');
      return false;
    }
  }
}
