import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Lease,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from './api/types.js';

export const FIELD_MANAGER = 'robustmq-operator';
/** Seeds broker `replicas` once when the HPA takes over (see Kube.seedReplicas). */
export const SEED_FIELD_MANAGER = 'robustmq-operator-seed';

/** HTTP status of a client-node error (ApiException.code, or the watch error's statusCode). */
export function statusOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return typeof e?.code === 'number' ? e.code : undefined;
}

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits (Date#toISOString has three, which the API server rejects). */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * The writes the operator makes, in one place: server-side apply with one field manager,
 * status through the status subresource, pod readiness-gate conditions, Events, Leases.
 */
export class Kube {
  readonly objects: KubernetesObjectApi;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly coordination: CoordinationV1Api;
  readonly kc: KubeConfig;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
  }

  /** Server-side apply with force: the operator is the only writer of what it applies. */
  async apply<T extends KubernetesObject>(obj: T, fieldManager = FIELD_MANAGER): Promise<T> {
    return this.objects.patch(obj, undefined, undefined, fieldManager, true, PatchStrategy.ServerSideApply);
  }

  async delete(obj: KubernetesObject): Promise<boolean> {
    try {
      await this.objects.delete(obj, undefined, undefined, undefined, undefined, 'Background');
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      throw err;
    }
  }

  /** JSON merge patch of the custom resource's main resource (finalizers). */
  async patchCluster(namespace: string, name: string, body: object): Promise<void> {
    await this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Status through the status subresource (merge patch: status is ours alone). */
  async patchClusterStatus(namespace: string, name: string, status: object): Promise<void> {
    await this.custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Sets one pod condition (a readiness gate) with a strategic merge patch keyed by type. */
  async setPodCondition(namespace: string, name: string, type: string, status: boolean, reason: string): Promise<void> {
    const condition = {
      type,
      status: status ? 'True' : 'False',
      reason,
      lastTransitionTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    };
    await this.core.patchNamespacedPodStatus(
      { namespace, name, body: { status: { conditions: [condition] } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
  }

  async event(
    involved: { kind: string; apiVersion: string; name: string; namespace: string; uid?: string },
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace: involved.namespace,
      body: {
        metadata: { generateName: `${involved.name}.`, namespace: involved.namespace },
        involvedObject: {
          kind: involved.kind,
          apiVersion: involved.apiVersion,
          name: involved.name,
          namespace: involved.namespace,
          ...(involved.uid ? { uid: involved.uid } : {}),
        },
        type,
        reason,
        message,
        source: { component: FIELD_MANAGER },
        reportingComponent: FIELD_MANAGER,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }

  async readLease(namespace: string, name: string): Promise<V1Lease | undefined> {
    try {
      return await this.coordination.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }
}
