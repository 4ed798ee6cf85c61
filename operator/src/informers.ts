import { setTimeout as sleep } from 'node:timers/promises';
import {
  KubernetesObjectApi,
  makeInformer,
  type KubeConfig,
  type KubernetesObject,
  type ObjectCache,
  type Informer,
} from '@kubernetes/client-node';
import type { Logger } from '@robustmq/common';
import type { OperatorMetrics } from './metrics.js';
import { statusOf } from './kube.js';

export interface ResourceType {
  /** Short name for logs and metrics (statefulsets). */
  resource: string;
  apiVersion: string;
  kind: string;
  /** URL path prefix: /api/v1 or /apis/apps/v1. */
  base: string;
}

export const Resources = {
  clusters: {
    resource: 'robustmqclusters',
    apiVersion: 'robustmq.io/v1alpha1',
    kind: 'RobustMQCluster',
    base: '/apis/robustmq.io/v1alpha1',
  },
  statefulsets: { resource: 'statefulsets', apiVersion: 'apps/v1', kind: 'StatefulSet', base: '/apis/apps/v1' },
  deployments: { resource: 'deployments', apiVersion: 'apps/v1', kind: 'Deployment', base: '/apis/apps/v1' },
  services: { resource: 'services', apiVersion: 'v1', kind: 'Service', base: '/api/v1' },
  configmaps: { resource: 'configmaps', apiVersion: 'v1', kind: 'ConfigMap', base: '/api/v1' },
  secrets: { resource: 'secrets', apiVersion: 'v1', kind: 'Secret', base: '/api/v1' },
  pods: { resource: 'pods', apiVersion: 'v1', kind: 'Pod', base: '/api/v1' },
  pvcs: { resource: 'persistentvolumeclaims', apiVersion: 'v1', kind: 'PersistentVolumeClaim', base: '/api/v1' },
  pdbs: { resource: 'poddisruptionbudgets', apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', base: '/apis/policy/v1' },
  hpas: {
    resource: 'horizontalpodautoscalers',
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    base: '/apis/autoscaling/v2',
  },
} as const satisfies Record<string, ResourceType>;

/**
 * A client-node informer that does not stay dead. client-node 1.4's ListWatch stops for good
 * on any error other than 410 (it calls the ERROR callbacks and returns): we restart it with
 * exponential backoff (1 s → 30 s), and relist from scratch every `relistMs` so a missed event
 * is repaired. A 410 Gone is handled by client-node itself (it clears the resourceVersion and
 * relists on the next start).
 */
export class ResilientInformer<T extends KubernetesObject> {
  readonly type: ResourceType;
  readonly #informer: Informer<T> & ObjectCache<T>;
  readonly #log: Logger;
  readonly #metrics: OperatorMetrics | undefined;
  readonly #relistMs: number;
  readonly #abort = new AbortController();
  #failures = 0;
  #relistTimer: NodeJS.Timeout | undefined;
  #synced: Promise<void>;
  #markSynced: () => void = () => undefined;

  constructor(o: {
    kc: KubeConfig;
    type: ResourceType;
    namespace?: string;
    labelSelector?: string;
    log: Logger;
    metrics?: OperatorMetrics;
    relistMs?: number;
  }) {
    this.type = o.type;
    this.#log = o.log.child({ component: 'informer', resource: o.type.resource });
    this.#metrics = o.metrics;
    this.#relistMs = o.relistMs ?? 600_000;
    const objects = KubernetesObjectApi.makeApiClient(o.kc);
    const path = o.namespace ? `${o.type.base}/namespaces/${o.namespace}/${o.type.resource}` : `${o.type.base}/${o.type.resource}`;
    const list = async () => {
      const r = await objects.list<T>(
        o.type.apiVersion,
        o.type.kind,
        o.namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        o.labelSelector,
      );
      this.#touch();
      queueMicrotask(() => this.#markSynced());
      return r;
    };
    this.#informer = makeInformer<T>(o.kc, path, list, o.labelSelector);
    this.#synced = new Promise((r) => (this.#markSynced = r));
    this.#informer.on('error', (err) => void this.#restart(err));
    this.#informer.on('add', () => this.#touch());
    this.#informer.on('update', () => this.#touch());
    this.#informer.on('delete', () => this.#touch());
  }

  #touch(): void {
    this.#failures = 0;
    this.#metrics?.informerLastEvent.set({ resource: this.type.resource }, Date.now() / 1000);
  }

  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void {
    this.#informer.on(verb, cb);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#informer.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.#informer.list(namespace);
  }

  async start(): Promise<void> {
    await this.#informer.start();
    this.#scheduleRelist();
  }

  /** Resolves after the first successful list. */
  synced(): Promise<void> {
    return this.#synced;
  }

  /** Forgets the resourceVersion and lists again (client-node relists only when it has none). */
  async relist(): Promise<void> {
    await this.#informer.stop();
    (this.#informer as unknown as { resourceVersion: string }).resourceVersion = '';
    await this.#informer.start();
  }

  #scheduleRelist(): void {
    clearTimeout(this.#relistTimer);
    this.#relistTimer = setTimeout(() => {
      if (this.#abort.signal.aborted) return;
      this.relist().catch((err: unknown) => this.#log.warn({ err }, 'relist failed'));
      this.#scheduleRelist();
    }, this.#relistMs);
    this.#relistTimer.unref();
  }

  async #restart(err: unknown): Promise<void> {
    if (this.#abort.signal.aborted) return;
    this.#failures++;
    const delayMs = Math.min(30_000, 1000 * 2 ** (this.#failures - 1));
    this.#log.warn({ status: statusOf(err), message: (err as Error)?.message, retryInMs: delayMs }, 'informer failed, restarting');
    this.#metrics?.informerRestarts.inc({ resource: this.type.resource });
    await sleep(delayMs, undefined, { signal: this.#abort.signal }).catch(() => undefined);
    if (this.#abort.signal.aborted) return;
    try {
      await this.#informer.start();
    } catch (e) {
      void this.#restart(e);
    }
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    clearTimeout(this.#relistTimer);
    await this.#informer.stop();
  }
}
