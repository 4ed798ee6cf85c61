import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { createLogger, type LogLevel } from '@robustmq/common';
import { robustMQClusterCrd } from '../src/api/crd.js';
import { HttpMetaAdmin } from '../src/meta-admin.js';
import { Operator } from '../src/operator.js';
import { ApiServer, FakeCertManager, FakeMeta, MockControllers, certificateCrd, type KObj, type WatchEvent } from '../src/testing/index.js';

export const NS = 'rmq-test';

export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(25);
  }
}

export const log = createLogger({ level: (process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel, service: 'operator-test' });

export function kubeConfig(api: ApiServer): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig(NS));
  return kc;
}

export function containersReady(api: ApiServer, pod: string): boolean {
  const p = api.get('v1', 'Pod', NS, pod);
  return ((p?.status as { conditions?: { type: string; status: string }[] })?.conditions ?? []).some(
    (c) => c.type === 'ContainersReady' && c.status === 'True',
  );
}

export interface Env {
  api: ApiServer;
  mocks: MockControllers;
  meta: FakeMeta;
  /** The fake cert-manager, when started with `certManager: true`. */
  certManager?: FakeCertManager;
  operators: Operator[];
  startOperator(identity?: string): Promise<Operator>;
  cluster(name: string): KObj | undefined;
  condition(name: string, type: string): { status: string; reason: string; message: string; observedGeneration: number } | undefined;
  close(): Promise<void>;
}

/** Emulator + CRD + mock controllers + fake meta for cluster `name`; operators started on demand. */
export async function startEnv(name: string, o: { initialVoters?: number; catchUpMs?: number; certManager?: boolean } = {}): Promise<Env> {
  const api = new ApiServer();
  await api.start();
  api.put(robustMQClusterCrd() as unknown as KObj, 'test');
  const mocks = new MockControllers(api, { podStartMs: 10 });
  let certManager: FakeCertManager | undefined;
  if (o.certManager) {
    api.put(certificateCrd(), 'cert-manager');
    certManager = new FakeCertManager(api);
  }
  const meta = new FakeMeta({
    initialVoters: o.initialVoters ?? 3,
    isUp: (id) => containersReady(api, `${name}-meta-${id}`),
    catchUpMs: o.catchUpMs ?? 100,
  });
  await meta.start();
  // A broker registers in meta once its containers are ready and revokes it when it stops.
  const registrations = (ev: WatchEvent) => {
    const p = ev.object;
    if (p.kind !== 'Pod' || p.metadata.labels?.['robustmq.io/role'] !== 'broker') return;
    const ready = ((p.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []).some(
      (c) => c.type === 'ContainersReady' && c.status === 'True',
    );
    if (ev.type !== 'DELETED' && ready && p.metadata.deletionTimestamp === undefined) meta.register(p.metadata.name);
    else meta.deregister(p.metadata.name);
  };
  api.on('event', registrations);
  const operators: Operator[] = [];
  const env: Env = {
    api,
    mocks,
    meta,
    ...(certManager ? { certManager } : {}),
    operators,
    async startOperator(identity = `op-${operators.length}`) {
      const op = new Operator({
        kc: kubeConfig(api),
        log: log.child({ identity }),
        namespace: NS,
        leaseName: 'robustmq-operator',
        identity,
        leaseDurationMs: 1500,
        renewDeadlineMs: 1000,
        retryPeriodMs: 100,
        metricsHost: '127.0.0.1',
        metricsPort: 0,
        concurrency: 2,
        metaAdmin: (_cr, token) => new HttpMetaAdmin({ baseUrl: meta.url, token, timeoutMs: 2000 }),
        busyRequeueMs: 40,
        idleRequeueMs: 500,
        backoff: { baseMs: 50, maxMs: 500 },
        onLeadershipLost: () => undefined,
      });
      operators.push(op);
      await op.start();
      return op;
    },
    cluster: (n) => api.get('robustmq.io/v1alpha1', 'RobustMQCluster', NS, n),
    condition(n, type) {
      const c = env.cluster(n);
      return ((c?.status as { conditions?: never[] })?.conditions ?? []).find((x: { type: string }) => x.type === type);
    },
    async close() {
      for (const op of operators) await op.stop().catch(() => undefined);
      api.off('event', registrations);
      certManager?.stop();
      mocks.stop();
      await meta.stop();
      await api.stop();
    },
  };
  return env;
}

export function clusterObject(name: string, spec: Record<string, unknown> = {}): KObj {
  return {
    apiVersion: 'robustmq.io/v1alpha1',
    kind: 'RobustMQCluster',
    metadata: { name, namespace: NS },
    spec: {
      meta: { replicas: 3 },
      journal: { replicas: 2 },
      broker: { autoscaling: { enabled: true, minReplicas: 2, maxReplicas: 6 } },
      listeners: [
        { name: 'mqtt', protocol: 'mqtt', port: 1883 },
        { name: 'mqtts', protocol: 'mqtt', port: 8883, tls: true, type: 'loadbalancer' },
        { name: 'kafka', protocol: 'kafka', port: 9092 },
      ],
      ...spec,
    },
  };
}
