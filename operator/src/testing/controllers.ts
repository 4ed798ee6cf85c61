import { createHash, randomBytes } from 'node:crypto';
import { isReady, type ApiServer, type KObj, type WatchEvent } from './api-server.js';

/**
 * Small stand-ins for kube-controller-manager and the kubelet (Strimzi's MockKube3 idea), running
 * in-process on the emulator's event stream: StatefulSets (ordinal pods, PVCs from templates,
 * OnDelete updates, revision hashes, retention on scale-down), Deployments (template-hash pods,
 * rolling replacement), a kubelet (Running/ContainersReady after a delay, Ready = containers
 * ready and every readiness gate True), PVC binding and an HPA with a settable fake metric.
 * Work is coalesced per object and run on the next tick, never inside the emitting write.
 */

type Meta = { name: string; namespace: string; labels?: Record<string, string>; uid: string };
const md = (o: KObj) => o.metadata as unknown as Meta;
const hash = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 10);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

export interface MockClusterOptions {
  /** Delay from pod creation to Running + ContainersReady. */
  podStartMs?: number;
}

export class MockControllers {
  readonly #api: ApiServer;
  readonly #o: Required<MockClusterOptions>;
  readonly #pending = new Map<string, () => void>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Pods whose containers the kubelet reports not ready (crash-looping, probe failing). */
  readonly unhealthy = new Set<string>();
  /** The HPA's fake metric: desired replicas per HPA name (clamped to min/max). */
  readonly hpaDesired = new Map<string, number>();
  #stopped = false;
  readonly #listener: (ev: WatchEvent) => void;

  constructor(api: ApiServer, o: MockClusterOptions = {}) {
    this.#api = api;
    this.#o = { podStartMs: o.podStartMs ?? 20 };
    this.#listener = (ev) => this.#on(ev);
    api.on('event', this.#listener);
  }

  stop(): void {
    this.#stopped = true;
    this.#api.off('event', this.#listener);
    for (const t of this.#timers) clearTimeout(t);
  }

  #later(key: string, fn: () => void, delayMs = 0): void {
    if (this.#stopped || this.#pending.has(key)) return;
    this.#pending.set(key, fn);
    const t = setTimeout(() => {
      this.#timers.delete(t);
      this.#pending.delete(key);
      if (!this.#stopped) fn();
    }, delayMs);
    this.#timers.add(t);
  }

  /** Marks a pod's containers healthy or not (the kubelet re-evaluates at once). */
  setHealthy(namespace: string, pod: string, healthy: boolean): void {
    if (healthy) this.unhealthy.delete(`${namespace}/${pod}`);
    else this.unhealthy.add(`${namespace}/${pod}`);
    this.#later(`kubelet/${namespace}/${pod}`, () => this.#kubelet(namespace, pod));
  }

  setHpaMetric(namespace: string, hpa: string, desired: number): void {
    this.hpaDesired.set(`${namespace}/${hpa}`, desired);
    this.#later(`hpa/${namespace}/${hpa}`, () => this.#hpa(namespace, hpa));
  }

  #on(ev: WatchEvent): void {
    const o = ev.object;
    const m = md(o);
    const owner = (o.metadata.ownerReferences as { kind: string; name: string }[] | undefined)?.[0];
    switch (o.kind) {
      case 'StatefulSet':
        if (ev.type !== 'DELETED') this.#later(`sts/${m.namespace}/${m.name}`, () => this.#statefulSet(m.namespace, m.name));
        break;
      case 'Deployment':
        if (ev.type !== 'DELETED') this.#later(`deploy/${m.namespace}/${m.name}`, () => this.#deployment(m.namespace, m.name));
        this.#later(`hpa-all/${m.namespace}`, () => this.#allHpas(m.namespace));
        break;
      case 'Pod':
        if (ev.type !== 'DELETED')
          this.#later(
            `kubelet/${m.namespace}/${m.name}`,
            () => this.#kubelet(m.namespace, m.name),
            (o.status as object | undefined) ? 0 : this.#o.podStartMs,
          );
        if (owner?.kind === 'StatefulSet')
          this.#later(`sts/${m.namespace}/${owner.name}`, () => this.#statefulSet(m.namespace, owner.name));
        if (owner?.kind === 'Deployment')
          this.#later(`deploy/${m.namespace}/${owner.name}`, () => this.#deployment(m.namespace, owner.name));
        break;
      case 'PersistentVolumeClaim':
        if (ev.type !== 'DELETED' && (o.status as { phase?: string } | undefined)?.phase !== 'Bound')
          this.#later(`pvc/${m.namespace}/${m.name}`, () => {
            const pvc = this.#api.get('v1', 'PersistentVolumeClaim', m.namespace, m.name);
            if (pvc)
              this.#api.put(
                {
                  ...pvc,
                  status: { phase: 'Bound', capacity: (pvc.spec as { resources?: { requests?: object } }).resources?.requests ?? {} },
                },
                'persistentvolume-binder',
              );
          });
        break;
      case 'HorizontalPodAutoscaler':
        if (ev.type !== 'DELETED') this.#later(`hpa/${m.namespace}/${m.name}`, () => this.#hpa(m.namespace, m.name));
        break;
    }
  }

  #podFromTemplate(
    owner: KObj,
    name: string,
    template: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: unknown },
    labels: Record<string, string>,
  ): KObj {
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: md(owner).namespace,
        labels: { ...(template.metadata?.labels ?? {}), ...labels },
        annotations: { ...(template.metadata?.annotations ?? {}) },
        ownerReferences: [
          {
            apiVersion: owner.apiVersion,
            kind: owner.kind,
            name: md(owner).name,
            uid: md(owner).uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: structuredClone(template.spec ?? {}),
    };
  }

  #statefulSet(ns: string, name: string): void {
    const sts = this.#api.get('apps/v1', 'StatefulSet', ns, name);
    if (!sts || sts.metadata.deletionTimestamp) return;
    const spec = sts.spec as {
      replicas: number;
      ordinals?: { start?: number };
      template: { metadata?: { labels?: Record<string, string> }; spec?: { volumes?: unknown[] } };
      volumeClaimTemplates?: { metadata: { name: string; labels?: Record<string, string> }; spec: unknown }[];
      persistentVolumeClaimRetentionPolicy?: { whenScaled?: string };
    };
    const start = spec.ordinals?.start ?? 0;
    const rev = `${name}-${hash(spec.template)}`;
    const pods = this.#api
      .list('v1', 'Pod', ns)
      .filter((p) => (p.metadata.ownerReferences as { uid: string }[] | undefined)?.some((r) => r.uid === md(sts).uid));
    const ordOf = (p: KObj) => Number(/-(\d+)$/.exec(p.metadata.name)![1]);
    // Remove ordinals above the range (highest first; Parallel removes them all at once).
    for (const p of pods.filter((x) => ordOf(x) >= start + spec.replicas || ordOf(x) < start).sort((a, b) => ordOf(b) - ordOf(a))) {
      this.#api.remove('v1', 'Pod', ns, p.metadata.name);
      if (spec.persistentVolumeClaimRetentionPolicy?.whenScaled === 'Delete')
        for (const t of spec.volumeClaimTemplates ?? [])
          this.#api.remove('v1', 'PersistentVolumeClaim', ns, `${t.metadata.name}-${name}-${ordOf(p)}`);
    }
    for (let ord = start; ord < start + spec.replicas; ord++) {
      const podName = `${name}-${ord}`;
      for (const t of spec.volumeClaimTemplates ?? []) {
        const claim = `${t.metadata.name}-${name}-${ord}`;
        if (!this.#api.get('v1', 'PersistentVolumeClaim', ns, claim))
          this.#api.put(
            {
              apiVersion: 'v1',
              kind: 'PersistentVolumeClaim',
              metadata: { name: claim, namespace: ns, labels: { ...(t.metadata.labels ?? {}) } },
              spec: structuredClone(t.spec),
            },
            'statefulset-controller',
          );
      }
      if (pods.some((p) => p.metadata.name === podName)) continue;
      const tmpl = structuredClone(spec.template) as { metadata?: { labels?: Record<string, string> }; spec?: { volumes?: unknown[] } };
      tmpl.spec = {
        ...(tmpl.spec ?? {}),
        volumes: [
          ...(tmpl.spec?.volumes ?? []),
          ...(spec.volumeClaimTemplates ?? []).map((t) => ({
            name: t.metadata.name,
            persistentVolumeClaim: { claimName: `${t.metadata.name}-${name}-${ord}` },
          })),
        ],
      };
      this.#api.put(
        this.#podFromTemplate(sts, podName, tmpl, {
          'apps.kubernetes.io/pod-index': String(ord),
          'statefulset.kubernetes.io/pod-name': podName,
          'controller-revision-hash': rev,
        }),
        'statefulset-controller',
      );
    }
    const now2 = this.#api
      .list('v1', 'Pod', ns)
      .filter((p) => (p.metadata.ownerReferences as { uid: string }[] | undefined)?.some((r) => r.uid === md(sts).uid));
    const status = {
      observedGeneration: sts.metadata.generation,
      replicas: now2.length,
      readyReplicas: now2.filter(isReady).length,
      availableReplicas: now2.filter(isReady).length,
      currentReplicas: now2.filter((p) => p.metadata.labels?.['controller-revision-hash'] === rev).length,
      updatedReplicas: now2.filter((p) => p.metadata.labels?.['controller-revision-hash'] === rev).length,
      currentRevision: (sts.status as { currentRevision?: string } | undefined)?.currentRevision ?? rev,
      updateRevision: rev,
    };
    if (status.updatedReplicas === status.replicas) status.currentRevision = rev;
    if (JSON.stringify(sts.status) !== JSON.stringify(status)) this.#api.put({ ...sts, status }, 'statefulset-controller');
  }

  #deployment(ns: string, name: string): void {
    const dep = this.#api.get('apps/v1', 'Deployment', ns, name);
    if (!dep || dep.metadata.deletionTimestamp) return;
    const spec = dep.spec as { replicas: number; template: { metadata?: { labels?: Record<string, string> } } };
    const th = hash(spec.template);
    const pods = this.#api
      .list('v1', 'Pod', ns)
      .filter((p) => (p.metadata.ownerReferences as { uid: string }[] | undefined)?.some((r) => r.uid === md(dep).uid));
    const current = pods.filter((p) => p.metadata.labels?.['pod-template-hash'] === th);
    const old = pods.filter((p) => p.metadata.labels?.['pod-template-hash'] !== th);
    // Scale the current revision to replicas; remove old pods once enough new ones are ready (maxUnavailable 0).
    for (let i = current.length; i < spec.replicas; i++)
      this.#api.put(
        this.#podFromTemplate(dep, `${name}-${th.slice(0, 8)}-${randomBytes(3).toString('hex')}`, spec.template, {
          'pod-template-hash': th,
        }),
        'replicaset-controller',
      );
    for (const p of current.slice(spec.replicas)) this.#api.remove('v1', 'Pod', ns, p.metadata.name);
    if (current.filter(isReady).length >= spec.replicas) for (const p of old) this.#api.remove('v1', 'Pod', ns, p.metadata.name);
    const all = this.#api
      .list('v1', 'Pod', ns)
      .filter((p) => (p.metadata.ownerReferences as { uid: string }[] | undefined)?.some((r) => r.uid === md(dep).uid));
    const status = {
      observedGeneration: dep.metadata.generation,
      replicas: all.length,
      readyReplicas: all.filter(isReady).length,
      availableReplicas: all.filter(isReady).length,
      updatedReplicas: all.filter((p) => p.metadata.labels?.['pod-template-hash'] === th).length,
    };
    if (JSON.stringify(dep.status) !== JSON.stringify(status)) this.#api.put({ ...dep, status }, 'deployment-controller');
  }

  #kubelet(ns: string, name: string): void {
    const pod = this.#api.get('v1', 'Pod', ns, name);
    if (!pod || pod.metadata.deletionTimestamp) return;
    const st = (pod.status ?? {}) as {
      phase?: string;
      podIP?: string;
      conditions?: { type: string; status: string; reason?: string; lastTransitionTime?: string }[];
    };
    const containersReady = !this.unhealthy.has(`${ns}/${name}`);
    const gates = ((pod.spec as { readinessGates?: { conditionType: string }[] }).readinessGates ?? []).map((g) => g.conditionType);
    const conds = [...(st.conditions ?? [])];
    const gatesOk = gates.every((g) => conds.some((c) => c.type === g && c.status === 'True'));
    const set = (type: string, ok: boolean) => {
      const i = conds.findIndex((c) => c.type === type);
      const status = ok ? 'True' : 'False';
      if (i >= 0 && conds[i]!.status === status) return;
      const c = { type, status, lastTransitionTime: now() };
      if (i >= 0) conds[i] = c;
      else conds.push(c);
    };
    set('PodScheduled', true);
    set('Initialized', true);
    set('ContainersReady', containersReady);
    set('Ready', containersReady && gatesOk);
    const next = {
      ...st,
      phase: 'Running',
      podIP: st.podIP ?? `10.244.${randomBytes(1)[0]}.${(randomBytes(1)[0]! % 250) + 1}`,
      conditions: conds,
    };
    if (JSON.stringify(next) !== JSON.stringify(pod.status)) this.#api.put({ ...pod, status: next }, 'kubelet');
  }

  #allHpas(ns: string): void {
    for (const h of this.#api.list('autoscaling/v2', 'HorizontalPodAutoscaler', ns)) this.#hpa(ns, h.metadata.name);
  }

  #hpa(ns: string, name: string): void {
    const hpa = this.#api.get('autoscaling/v2', 'HorizontalPodAutoscaler', ns, name);
    if (!hpa) return;
    const spec = hpa.spec as { minReplicas?: number; maxReplicas: number; scaleTargetRef: { name: string } };
    const dep = this.#api.get('apps/v1', 'Deployment', ns, spec.scaleTargetRef.name);
    if (!dep) return;
    const current = (dep.spec as { replicas?: number }).replicas ?? 1;
    const wanted = this.hpaDesired.get(`${ns}/${name}`) ?? current;
    const desired = Math.max(spec.minReplicas ?? 1, Math.min(spec.maxReplicas, wanted));
    if (desired !== current) this.#api.scale('apps/v1', 'Deployment', ns, spec.scaleTargetRef.name, desired, 'horizontal-pod-autoscaler');
    const status = { currentReplicas: current, desiredReplicas: desired };
    if (JSON.stringify(hpa.status) !== JSON.stringify(status)) this.#api.put({ ...hpa, status }, 'horizontal-pod-autoscaler');
  }
}
