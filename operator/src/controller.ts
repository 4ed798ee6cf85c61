import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '@robustmq/common';
import { Annotations, Labels, MANAGED_BY, type RobustMQCluster } from './api/types.js';
import { ResilientInformer, Resources } from './informers.js';
import { Kube } from './kube.js';
import type { MetaAdmin } from './meta-admin.js';
import type { OperatorMetrics } from './metrics.js';
import { Reconciler, type Caches } from './reconciler.js';
import { WorkQueue } from './work-queue.js';

export interface ControllerOptions {
  kc: KubeConfig;
  log: Logger;
  metrics: OperatorMetrics;
  /** Watch one namespace; undefined = all. */
  namespace?: string;
  metaAdmin: (cr: RobustMQCluster, token: string) => MetaAdmin;
  operatorVersion: string;
  concurrency?: number;
  busyRequeueMs?: number;
  idleRequeueMs?: number;
  relistMs?: number;
  backoff?: { baseMs: number; maxMs: number };
}

/**
 * The operator's control loop: informers on the RobustMQCluster resources and on everything the
 * operator creates (label app.kubernetes.io/managed-by=robustmq-operator), events mapped to the
 * owning cluster's key, a work queue, and the Reconciler. Caches start at once (standbys keep them
 * warm); the queue starts only on `startWorking()`, i.e. once this replica leads.
 */
export class Controller {
  readonly caches: Caches;
  readonly queue: WorkQueue;
  readonly reconciler: Reconciler;
  readonly kube: Kube;
  #working = false;
  readonly #seen = new Map<string, string>();

  constructor(o: ControllerOptions) {
    this.kube = new Kube(o.kc);
    const inf = (type: (typeof Resources)[keyof typeof Resources], labelSelector?: string) =>
      new ResilientInformer<KubernetesObject>({
        kc: o.kc,
        type,
        ...(o.namespace ? { namespace: o.namespace } : {}),
        ...(labelSelector ? { labelSelector } : {}),
        log: o.log,
        metrics: o.metrics,
        ...(o.relistMs ? { relistMs: o.relistMs } : {}),
      });
    const managed = `${Labels.ManagedBy}=${MANAGED_BY}`;
    this.caches = {
      clusters: inf(Resources.clusters),
      statefulsets: inf(Resources.statefulsets, managed),
      deployments: inf(Resources.deployments, managed),
      services: inf(Resources.services, managed),
      configmaps: inf(Resources.configmaps, managed),
      secrets: inf(Resources.secrets, managed),
      pods: inf(Resources.pods, managed),
      pvcs: inf(Resources.pvcs, managed),
      pdbs: inf(Resources.pdbs, managed),
      hpas: inf(Resources.hpas, managed),
    };
    this.reconciler = new Reconciler({
      kube: this.kube,
      caches: this.caches,
      metaAdmin: o.metaAdmin,
      log: o.log,
      metrics: o.metrics,
      operatorVersion: o.operatorVersion,
      podMonitorAvailable: false,
      busyRequeueMs: o.busyRequeueMs ?? 5000,
      idleRequeueMs: o.idleRequeueMs ?? 300_000,
    });
    this.queue = new WorkQueue({
      handler: (key) => this.reconciler.reconcile(key),
      concurrency: o.concurrency ?? 4,
      log: o.log.child({ component: 'work-queue' }),
      onDepth: (n) => o.metrics.queueDepth.set(n),
      ...(o.backoff ? { backoff: o.backoff } : {}),
    });

    // The cluster itself: only spec (generation), annotation and deletion changes wake us;
    // our own status writes must not.
    const onCluster = (obj: KubernetesObject, deleted = false) => {
      const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
      if (deleted) {
        this.#seen.delete(key);
        return;
      }
      const fingerprint = JSON.stringify([
        obj.metadata?.generation,
        obj.metadata?.annotations ?? {},
        obj.metadata?.deletionTimestamp ?? null,
        obj.metadata?.finalizers ?? [],
      ]);
      if (this.#seen.get(key) === fingerprint) return;
      this.#seen.set(key, fingerprint);
      this.#enqueue(key);
    };
    this.caches.clusters.on('add', (o2) => onCluster(o2));
    this.caches.clusters.on('update', (o2) => onCluster(o2));
    this.caches.clusters.on('delete', (o2) => onCluster(o2, true));
    // Children: the owning cluster from the label, confirmed by the controller ownerReference where present.
    const onChild = (obj: KubernetesObject) => {
      const c = obj.metadata?.labels?.[Labels.Cluster];
      if (c === undefined) return;
      this.#enqueue(`${obj.metadata?.namespace}/${c}`);
    };
    for (const [name, cache] of Object.entries(this.caches)) {
      if (name === 'clusters') continue;
      cache.on('add', onChild);
      cache.on('update', onChild);
      cache.on('delete', onChild);
    }
    void Annotations;
  }

  #enqueue(key: string): void {
    if (this.#working) this.queue.add(key);
  }

  /** Starts every informer and waits for the first list of each. */
  async startCaches(): Promise<void> {
    await Promise.all(Object.values(this.caches).map((c) => c.start()));
    await Promise.all(Object.values(this.caches).map((c) => c.synced()));
  }

  /** Starts reconciling (after leadership is acquired): every known cluster is queued once. */
  startWorking(): void {
    this.#working = true;
    for (const cr of this.caches.clusters.list()) this.queue.add(`${cr.metadata?.namespace}/${cr.metadata?.name}`);
  }

  async stop(): Promise<void> {
    this.#working = false;
    this.queue.stop();
    await Promise.all(Object.values(this.caches).map((c) => c.stop()));
  }
}
