import { randomBytes, randomUUID } from 'node:crypto';
import type { KubernetesObject, V1Pod, V1PersistentVolumeClaim, V1Service, V1StatefulSet, V1Deployment } from '@kubernetes/client-node';
import type { Logger } from '@robustmq/common';
import { validateSpec, withDefaults, parseQuantity, tlsMode } from './api/defaults.js';
import {
  API_VERSION,
  Annotations,
  FINALIZER,
  KIND,
  Labels,
  READINESS_GATE_REGISTERED,
  READINESS_GATE_VOTER,
  type MetaMemberStatus,
  type PendingChange,
  type RobustMQCluster,
  type RobustMQClusterSpec,
  type RobustMQClusterStatus,
  type TlsMode,
} from './api/types.js';
import {
  createCa,
  isSignedBy,
  issueServerCert,
  keyMatches,
  parseCert,
  planCertificates,
  renewCa,
  sanList,
  sansOf,
  validityOf,
  type KeyPairPem,
} from './certificates.js';
import { ConditionType, mergeConditions, nowTime, type ConditionInput } from './conditions.js';
import { FIELD_MANAGER, SEED_FIELD_MANAGER, statusOf, type Kube } from './kube.js';
import {
  bootstrapPeers,
  desiredObjects,
  metaNodeAddress,
  names,
  selectorLabels,
  serverCertNames,
  specTlsInputs,
  type KubeObject,
  type TlsInputs,
} from './manifests.js';
import {
  isCaughtUp,
  metaStatefulSetReplicas,
  planMembership,
  safeToRemove,
  type Action,
  type PlanInput,
  type RaftView,
} from './membership.js';
import { raftView, type MetaAdmin, type MetaStatusResponse } from './meta-admin.js';
import type { OperatorMetrics } from './metrics.js';
import type { ReconcileResult } from './work-queue.js';
import type { ResilientInformer, Resources } from './informers.js';

type Observed = ReturnType<Reconciler['observe']>;
export type Caches = { [K in keyof typeof Resources]: ResilientInformer<KubernetesObject> };

export interface ReconcilerOptions {
  kube: Kube;
  caches: Caches;
  /** Meta's admin API for a cluster (tests point it at a fake). */
  metaAdmin: (cr: RobustMQCluster, token: string) => MetaAdmin;
  log: Logger;
  metrics: OperatorMetrics;
  operatorVersion: string;
  /** Create a PodMonitor (only when the monitoring.coreos.com API exists). */
  podMonitorAvailable: boolean;
  /** Requeue delay while a cluster is not Ready or a change is in flight. */
  busyRequeueMs: number;
  /** Periodic resync of a Ready cluster. */
  idleRequeueMs: number;
}

const isTrue = (pod: V1Pod, type: string) => pod.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;
const podIndex = (pod: KubernetesObject) =>
  Number(pod.metadata?.labels?.[Labels.PodIndex] ?? /-(\d+)$/.exec(pod.metadata?.name ?? '')?.[1] ?? -1);
const isDeleting = (o: KubernetesObject | undefined) => o?.metadata?.deletionTimestamp !== undefined;
const conditionOf = (pod: V1Pod, type: string) => pod.status?.conditions?.find((c) => c.type === type);
const DAY_MS = 86_400_000;
/** Reasons of CertificatesValid=False that keep the TLS listeners closed (and the cluster not Ready). */
const BLOCKING_CERT_REASONS = ['WaitingForCertificate', 'SecretMissing', 'CaMissing', 'InvalidCertificate'];

type SecretData = { data?: Record<string, string> };
const secretPem = (s: SecretData | undefined, key: string): string | undefined =>
  s?.data?.[key] ? Buffer.from(s.data[key], 'base64').toString('utf8') : undefined;
const b64 = (v: string) => Buffer.from(v, 'utf8').toString('base64');

/** What the TLS step hands to the rest of the reconcile. */
interface TlsOutcome {
  inputs: TlsInputs;
  condition?: ConditionInput;
  status?: RobustMQClusterStatus['tls'];
}

function expiry(pem: string | undefined): Date | undefined {
  const c = parseCert(pem);
  return c ? validityOf(c).notAfter : undefined;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * One reconcile of one RobustMQCluster: reads everything from the informer caches (never from
 * the event), applies the desired objects with server-side apply, advances meta membership by at
 * most one step, rolls at most one pod, and writes status through the status subresource when it
 * changed. Sub-steps run in a fixed order; status is aggregated last, also after an error.
 */
export class Reconciler {
  readonly #o: ReconcilerOptions;
  readonly #log: Logger;

  constructor(o: ReconcilerOptions) {
    this.#o = o;
    this.#log = o.log.child({ component: 'reconciler' });
  }

  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split('/') as [string, string];
    const cr = this.#o.caches.clusters.get(name, namespace) as unknown as RobustMQCluster | undefined;
    if (cr === undefined) return;
    const end = this.#o.metrics.reconcileDuration.startTimer();
    try {
      const r = await this.#reconcile(cr);
      this.#o.metrics.reconciles.inc({
        result: r?.requeueAfterMs !== undefined && r.requeueAfterMs < this.#o.idleRequeueMs ? 'requeue' : 'ok',
      });
      return r;
    } catch (err) {
      // Deleted while we worked: nothing left to reconcile.
      if (statusOf(err) === 404 && this.#o.caches.clusters.get(name, namespace) === undefined) return;
      this.#o.metrics.reconciles.inc({ result: 'error' });
      throw err;
    } finally {
      end();
    }
  }

  async #reconcile(cr: RobustMQCluster): Promise<ReconcileResult> {
    const ns = cr.metadata.namespace ?? 'default';
    const c = cr.metadata.name;
    const log = this.#log.child({ cluster: `${ns}/${c}` });
    const generation = cr.metadata.generation ?? 0;
    if (cr.metadata.deletionTimestamp !== undefined) return this.#finalize(cr, log);

    const prev = cr.status ?? {};
    if (cr.metadata.annotations?.[Annotations.Paused] === 'true') {
      const conditions = mergeConditions(
        prev.conditions,
        [
          {
            type: ConditionType.Ready,
            status: false,
            reason: 'Paused',
            message: `reconciliation paused by annotation ${Annotations.Paused}`,
          },
          { type: ConditionType.Paused, status: true, reason: 'Annotation' },
        ],
        generation,
      );
      await this.#writeStatus(cr, { ...prev, conditions, observedGeneration: generation });
      return;
    }
    if (!(cr.metadata.finalizers ?? []).includes(FINALIZER)) {
      await this.#o.kube.patchCluster(ns, c, {
        metadata: { finalizers: [...(cr.metadata.finalizers ?? []), FINALIZER], resourceVersion: cr.metadata.resourceVersion },
      });
    }

    const spec = withDefaults(cr.spec);
    const problems = [...validateSpec(spec), ...this.#storageShrinks(cr, spec)];
    if (problems.length > 0) {
      const conditions = mergeConditions(
        prev.conditions,
        [
          { type: ConditionType.Ready, status: false, reason: 'InvalidSpec', message: problems.join('; ') },
          { type: ConditionType.Reconciled, status: false, reason: 'InvalidSpec', message: problems.join('; ') },
        ],
        generation,
      );
      await this.#writeStatus(cr, { ...prev, conditions, observedGeneration: generation });
      if (prev.conditions?.find((x) => x.type === ConditionType.Reconciled)?.reason !== 'InvalidSpec')
        await this.#event(cr, 'Warning', 'InvalidSpec', problems.join('; '));
      return;
    }

    const obs = this.observe(cr);
    const status: RobustMQClusterStatus = structuredClone(prev);
    const conds: ConditionInput[] = [];
    let busy = false;

    // Meta's live membership; undefined while meta is unreachable or bootstrapping.
    const admin = this.#o.metaAdmin(cr, obs.adminToken);
    let metaStatus: MetaStatusResponse | undefined;
    try {
      metaStatus = await admin.status();
    } catch (err) {
      log.debug({ err }, 'meta status unavailable');
    }
    const raft: RaftView | undefined = metaStatus ? raftView(metaStatus) : undefined;
    if (metaStatus?.clusterId && !status.clusterId) status.clusterId = metaStatus.clusterId;

    // Incarnations: the PVC UID a member had when it joined (founding voters: when first seen).
    const incarnations = new Map<number, string>();
    for (const m of [...(prev.meta?.voters ?? []), ...(prev.meta?.learners ?? [])])
      if (m.incarnation) incarnations.set(m.nodeId, m.incarnation);
    const planInput: PlanInput = {
      desired: spec.meta.replicas,
      raft,
      pods: obs.metaPods,
      incarnations,
      maxLagEntries: spec.meta.maxLearnerLagEntries,
    };
    let action = planMembership(planInput);

    const journalReplicas = this.#journalReplicas(spec, obs, conds);
    const inputs = {
      metaReplicas: metaStatefulSetReplicas(spec.meta.replicas, raft, obs.metaSts?.spec?.replicas ?? 0),
      journalReplicas,
      bootstrapMode: status.clusterId ? ('join' as const) : ('bootstrap' as const),
      clusterId: status.clusterId || obs.bootstrapClusterId || randomUUID(),
      adminToken: obs.adminToken,
      operatorVersion: this.#o.operatorVersion,
    };
    const peers = obs.bootstrapPeers ?? bootstrapPeers(cr, spec.meta.replicas);

    // 0. Listener certificates (generated, an existing Secret, or cert-manager).
    const tls = await this.#tls(cr, spec, obs, log);
    if (tls.condition) conds.push(tls.condition);
    // Merge patch: an explicit null removes a block that is gone; absent stays absent.
    if (tls.status) status.tls = tls.status;
    else if (prev.tls) status.tls = null;
    else delete status.tls;
    const desiredInputs = { ...inputs, tls: tls.inputs };

    // 1. Children, by server-side apply.
    try {
      await this.#applyAll(cr, spec, desiredObjects(cr, spec, desiredInputs, peers), obs);
      conds.push({ type: ConditionType.Reconciled, status: true, reason: 'ApplySucceeded' });
    } catch (err) {
      const code = statusOf(err);
      conds.push({
        type: ConditionType.Reconciled,
        status: false,
        reason: code === 409 ? 'Conflict' : 'ApplyFailed',
        message: (err as Error).message,
      });
      await this.#writeStatus(cr, this.#aggregate(cr, spec, status, obs, raft, action, conds, generation, false));
      throw err;
    }

    // 2. Meta membership: at most one change per pass.
    action = await this.#executeMembership(cr, admin, action, planInput, status, log);
    if (action.op !== 'None') busy = true;

    // 3. Readiness gates: voters on meta pods, registration in meta on brokers.
    let registered: Set<string> | undefined;
    if (obs.brokerPods.length > 0) {
      try {
        registered = new Set((await admin.brokers()).map((b) => b.name));
      } catch (err) {
        log.debug({ err }, 'broker registrations unavailable');
      }
    }
    const pendingGates = await this.#syncGates(obs, raft, registered);
    if (pendingGates > 0) busy = true;

    // 4. Orphaned claims of removed ordinals, then rolls (one pod at a time).
    await this.#deleteScaledDownClaims(cr, spec, obs);
    if (action.op === 'None') {
      const rolled = await this.#roll(cr, obs, planInput, log);
      if (rolled) busy = true;
    }

    const next = this.#aggregate(cr, spec, status, obs, raft, action, conds, generation, busy, registered);
    await this.#writeStatus(cr, next);
    const ready = next.conditions?.find((x) => x.type === ConditionType.Ready)?.status === 'True';
    const certWait = tls.condition?.status === false && BLOCKING_CERT_REASONS.includes(tls.condition.reason);
    return { requeueAfterMs: ready && !busy && !certWait ? this.#o.idleRequeueMs : this.#o.busyRequeueMs };
  }

  /** Everything the reconcile reads, from the caches. */
  observe(cr: RobustMQCluster) {
    const ns = cr.metadata.namespace ?? 'default';
    const c = cr.metadata.name;
    const n = names(c);
    const k = this.#o.caches;
    const byRole = (role: 'meta' | 'journal' | 'broker') =>
      (k.pods.list(ns) as V1Pod[]).filter((p) => {
        const l = p.metadata?.labels ?? {};
        return l[Labels.Instance] === c && l[Labels.Role] === role;
      });
    const claims = k.pvcs.list(ns) as V1PersistentVolumeClaim[];
    const metaPods = new Map<number, { containersReady: boolean; claimUid?: string }>();
    const metaPodObjs = byRole('meta');
    for (const p of metaPodObjs) {
      const id = podIndex(p);
      const claim = claims.find((x) => x.metadata?.name === n.dataClaim('meta', id) && !isDeleting(x));
      metaPods.set(id, {
        containersReady: !isDeleting(p) && isTrue(p, 'ContainersReady'),
        ...(claim?.metadata?.uid ? { claimUid: claim.metadata.uid } : {}),
      });
    }
    const bootstrap = k.configmaps.get(n.bootstrap, ns) as { data?: Record<string, string> } | undefined;
    const secret = k.secrets.get(n.admin, ns) as { data?: Record<string, string> } | undefined;
    const token = secret?.data?.token ? Buffer.from(secret.data.token, 'base64').toString('utf8') : '';
    return {
      ns,
      metaSts: k.statefulsets.get(n.meta, ns) as V1StatefulSet | undefined,
      journalSts: k.statefulsets.get(n.journal, ns) as V1StatefulSet | undefined,
      broker: k.deployments.get(n.broker, ns) as V1Deployment | undefined,
      metaPods,
      metaPodObjs,
      journalPods: byRole('journal'),
      brokerPods: byRole('broker'),
      claims,
      bootstrapPeers: bootstrap?.data?.peers,
      bootstrapClusterId: bootstrap?.data?.clusterId,
      // A fresh token only when none exists yet; applying the same value again is a no-op.
      adminToken: token || randomBytes(24).toString('base64url'),
      services: (k.services.list(ns) as V1Service[]).filter((s) => s.metadata?.labels?.[Labels.Instance] === c),
    };
  }

  #storageShrinks(cr: RobustMQCluster, spec: RobustMQClusterSpec): string[] {
    const out: string[] = [];
    const n = names(cr.metadata.name);
    for (const role of ['meta', 'journal'] as const) {
      const sts = this.#o.caches.statefulsets.get(role === 'meta' ? n.meta : n.journal, cr.metadata.namespace) as V1StatefulSet | undefined;
      const current = sts?.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage;
      if (current !== undefined && parseQuantity(spec[role].storage.size) < parseQuantity(String(current)))
        out.push(`spec.${role}.storage.size: may grow but never shrink (is ${String(current)})`);
    }
    return out;
  }

  /**
   * Journal scale-down: `Block` refuses while the spec asks for fewer nodes than run; `Drain`
   * removes one node at a time (the highest ordinal) and only while every journal pod is ready.
   */
  #journalReplicas(spec: RobustMQClusterSpec, obs: Observed, conds: ConditionInput[]): number {
    const current = obs.journalSts?.spec?.replicas ?? 0;
    const want = spec.journal.replicas;
    if (current === 0 || want >= current) return want;
    if (spec.journal.scaleDown === 'Block') {
      conds.push({
        type: ConditionType.JournalReady,
        status: false,
        reason: 'ScaleDownBlocked',
        message: `journal.scaleDown is Block: not removing ${current - want} journal node(s)`,
      });
      return current;
    }
    const allReady = obs.journalPods.length >= current && obs.journalPods.every((p) => isTrue(p, 'Ready'));
    conds.push({ type: ConditionType.JournalReady, status: false, reason: 'Draining', message: `removing journal node ${current}` });
    return allReady ? current - 1 : current;
  }

  async #applyAll(cr: RobustMQCluster, spec: RobustMQClusterSpec, objs: KubeObject[], obs: Observed): Promise<void> {
    for (const o of objs) {
      if (o.kind === 'PodMonitor' && !this.#o.podMonitorAvailable) continue;
      if (o.kind === 'Deployment' && spec.broker.autoscaling.enabled) {
        await this.#applyAutoscaledDeployment(o, obs.broker);
        continue;
      }
      await this.#o.kube.apply(o as KubernetesObject);
    }
    // Objects that the spec no longer asks for (HPA after autoscaling was switched off, external listener Services).
    const wanted = new Set(objs.map((o) => `${o.kind}/${o.metadata.name}`));
    const ns = cr.metadata.namespace ?? 'default';
    const owned = (list: readonly KubernetesObject[]) =>
      list.filter(
        (o) =>
          o.metadata?.labels?.[Labels.Instance] === cr.metadata.name && o.metadata?.ownerReferences?.some((r) => r.uid === cr.metadata.uid),
      );
    for (const [kind, cache] of [
      ['HorizontalPodAutoscaler', this.#o.caches.hpas],
      ['Service', this.#o.caches.services],
    ] as const) {
      for (const o of owned(cache.list(ns))) {
        if (!wanted.has(`${kind}/${o.metadata?.name}`))
          await this.#o.kube.delete({
            apiVersion: kind === 'Service' ? 'v1' : 'autoscaling/v2',
            kind,
            metadata: { name: o.metadata!.name!, namespace: ns },
          });
      }
    }
  }

  /**
   * The HPA/SSA trap: our apply never carries `replicas` while the HPA owns it. If our manager
   * owns the field (autoscaling was just switched on) a second manager first takes over the
   * current value, so dropping it from our apply does not reset it; a new Deployment is seeded
   * with minReplicas by that manager right after creation.
   */
  async #applyAutoscaledDeployment(o: KubeObject, existing: V1Deployment | undefined): Promise<void> {
    const ref = { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace } };
    const mine = existing?.metadata?.managedFields?.some(
      (m) => m.manager === FIELD_MANAGER && m.operation === 'Apply' && JSON.stringify(m.fieldsV1 ?? {}).includes('"f:replicas"'),
    );
    if (existing !== undefined && mine)
      await this.#o.kube.apply({ ...ref, spec: { replicas: existing.spec?.replicas ?? 1 } } as KubernetesObject, SEED_FIELD_MANAGER);
    await this.#o.kube.apply(o as KubernetesObject);
    if (existing === undefined) {
      const min = (this.#o.caches.hpas.get(o.metadata.name, o.metadata.namespace) as { spec?: { minReplicas?: number } } | undefined)?.spec
        ?.minReplicas;
      const spec = (o as { spec?: unknown }).spec;
      void spec;
      await this.#o.kube.apply({ ...ref, spec: { replicas: min ?? 2 } } as KubernetesObject, SEED_FIELD_MANAGER);
    }
  }

  async #executeMembership(
    cr: RobustMQCluster,
    admin: MetaAdmin,
    action: Action,
    inp: PlanInput,
    status: RobustMQClusterStatus,
    log: Logger,
  ): Promise<Action> {
    const meta = (status.meta ??= { replicas: 0, readyReplicas: 0, voters: [], learners: [], pendingChange: null });
    const pending = (op: PendingChange['op'], nodeId: number, phase: string) => {
      const same = meta.pendingChange?.op === op && meta.pendingChange.nodeId === nodeId;
      meta.pendingChange = { op, nodeId, phase, startedAt: same ? meta.pendingChange!.startedAt : nowTime() };
    };
    const run = async (op: string, fn: () => Promise<void>, message: string): Promise<boolean> => {
      try {
        await fn();
        this.#o.metrics.membershipChanges.inc({ op, result: 'ok' });
        log.info({ op, message }, 'meta membership changed');
        await this.#event(cr, 'Normal', op, message);
        return true;
      } catch (err) {
        this.#o.metrics.membershipChanges.inc({ op, result: 'error' });
        log.warn({ err, op }, 'meta membership change failed');
        return false;
      }
    };
    switch (action.op) {
      case 'None':
        meta.pendingChange = null;
        break;
      case 'Wait':
        if (action.nodeId !== undefined && action.reason !== 'NoLeader')
          pending(action.reason === 'CatchingUp' ? 'Promote' : 'AddLearner', action.nodeId, action.reason);
        break;
      case 'Refuse':
        if (status.conditions?.find((x) => x.type === ConditionType.MetaMembershipSynced)?.reason !== action.reason)
          await this.#event(cr, 'Warning', action.reason, action.message);
        break;
      case 'AddLearner': {
        pending('AddLearner', action.nodeId, 'Adding');
        const addr = metaNodeAddress(cr, action.nodeId);
        if (await run('AddLearner', () => admin.addLearner(action.nodeId, addr), `added meta node ${action.nodeId} (${addr}) as learner`)) {
          const uid = inp.pods.get(action.nodeId)?.claimUid;
          meta.learners = [
            ...meta.learners.filter((m) => m.nodeId !== action.nodeId),
            { nodeId: action.nodeId, pod: names(cr.metadata.name).metaPod(action.nodeId), ...(uid ? { incarnation: uid } : {}) },
          ];
          pending('AddLearner', action.nodeId, 'CatchingUp');
        }
        break;
      }
      case 'Promote':
        pending('Promote', action.nodeId, 'Promoting');
        if (await run('Promote', () => admin.promote(action.nodeId), `promoted meta node ${action.nodeId} to voter`))
          pending('Promote', action.nodeId, 'Done');
        break;
      case 'TransferLeader':
        pending('TransferLeader', action.from, `to ${action.to}`);
        await run(
          'TransferLeader',
          async () => {
            const s = await admin.status();
            for (const g of s.groups) if (g.leader === action.from) await admin.transferLeader(g.group, action.to);
          },
          `moved meta leadership from node ${action.from} to node ${action.to} before removing node ${action.from}`,
        );
        break;
      case 'RemoveVoter':
      case 'RemoveLearner': {
        const op = action.replaced ? 'ReplaceVoter' : action.op;
        pending(op, action.nodeId, 'Removing');
        const why = action.replaced ? 'its disk was replaced (new PVC); it will be added back as a learner' : 'scale-down';
        if (await run(op, () => admin.remove(action.nodeId), `removed meta node ${action.nodeId} from the Raft configuration: ${why}`)) {
          meta.voters = meta.voters.filter((m) => m.nodeId !== action.nodeId);
          meta.learners = meta.learners.filter((m) => m.nodeId !== action.nodeId);
          pending(op, action.nodeId, action.replaced ? 'Rejoining' : 'Removed');
        }
        break;
      }
    }
    return action;
  }

  /**
   * Readiness gates. Meta pods: True while the node is a Raft voter. Brokers: True only while the
   * pod's containers are ready and meta lists the pod among the registered brokers, so endpoints
   * never include a broker other brokers cannot route to. When the registrations cannot be read
   * (meta unreachable) the broker gates are left as they are: a meta blip must not empty every
   * endpoint. Returns how many broker pods wait for their registration (the caller requeues).
   */
  async #syncGates(obs: Observed, raft: RaftView | undefined, registered: Set<string> | undefined): Promise<number> {
    const ns = obs.ns;
    for (const p of obs.metaPodObjs) {
      if (raft === undefined || isDeleting(p)) continue;
      const want = raft.voters.includes(podIndex(p));
      if (isTrue(p, READINESS_GATE_VOTER) !== want)
        await this.#setGate(ns, p, READINESS_GATE_VOTER, want, want ? 'RaftVoter' : 'NotAVoter');
    }
    let pending = 0;
    for (const p of obs.brokerPods) {
      if (isDeleting(p)) continue;
      const name = p.metadata?.name ?? '';
      const containersReady = isTrue(p, 'ContainersReady');
      let want: boolean;
      let reason: string;
      if (!containersReady) [want, reason] = [false, 'ContainersNotReady'];
      else if (registered === undefined) {
        if (!isTrue(p, READINESS_GATE_REGISTERED)) pending++;
        continue;
      } else if (registered.has(name)) [want, reason] = [true, 'Registered'];
      else [want, reason] = [false, 'NotRegistered'];
      if (containersReady && !want) pending++;
      const cur = conditionOf(p, READINESS_GATE_REGISTERED);
      if (cur === undefined || (cur.status === 'True') !== want || cur.reason !== reason)
        await this.#setGate(ns, p, READINESS_GATE_REGISTERED, want, reason);
    }
    return pending;
  }

  /** A Secret from the cache, or read directly when the cache has not seen it (yet): never regenerate a CA from a stale cache. */
  async #secret(ns: string, name: string): Promise<SecretData | undefined> {
    const cached = this.#o.caches.secrets.get(name, ns) as SecretData | undefined;
    if (cached !== undefined) return cached;
    try {
      return (await this.#o.kube.core.readNamespacedSecret({ name, namespace: ns })) as SecretData;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** The listener certificate for the current TLS mode (see api/types.ts TlsSpec). */
  async #tls(cr: RobustMQCluster, spec: RobustMQClusterSpec, obs: Observed, log: Logger): Promise<TlsOutcome> {
    const mode = tlsMode(spec);
    const n = names(cr.metadata.name);
    const prevMode = cr.status?.tls?.mode;
    if (prevMode === 'cert-manager' && mode !== 'cert-manager') {
      // Leaving cert-manager: its Certificate would keep rewriting the Secret we may now generate.
      try {
        await this.#o.kube.delete({
          apiVersion: 'cert-manager.io/v1',
          kind: 'Certificate',
          metadata: { name: n.brokerTls, namespace: obs.ns },
        });
      } catch (err) {
        log.debug({ err }, 'cert-manager Certificate not deleted');
      }
    }
    const sans = () =>
      sanList(
        serverCertNames(cr, spec, (svc) =>
          (obs.services.find((x) => x.metadata?.name === svc)?.status?.loadBalancer?.ingress ?? []).map((i) => ({
            ...(i.ip ? { ip: i.ip } : {}),
            ...(i.hostname ? { hostname: i.hostname } : {}),
          })),
        ),
      );
    const cond = (status: boolean, reason: string, message: string): ConditionInput => ({
      type: ConditionType.CertificatesValid,
      status,
      reason,
      message,
    });
    const iso = (d: Date | undefined) => (d ? { notAfter: nowTime(d) } : {});
    switch (mode) {
      case 'none':
        return { inputs: { mode } };
      case 'secret': {
        const secretName = spec.tls.secretName!;
        const inputs = specTlsInputs(spec, mode);
        const sec = await this.#secret(obs.ns, secretName);
        const status = { mode, secretName };
        if (sec === undefined)
          return {
            inputs,
            status,
            condition: cond(false, 'SecretMissing', `Secret ${secretName} not found: broker pods cannot start without it`),
          };
        const notAfter = expiry(secretPem(sec, 'tls.crt'));
        if (notAfter === undefined || secretPem(sec, 'tls.key') === undefined)
          return {
            inputs,
            status,
            condition: cond(false, 'InvalidCertificate', `Secret ${secretName} has no PEM certificate in tls.crt and key in tls.key`),
          };
        const left = (notAfter.getTime() - Date.now()) / DAY_MS;
        return {
          inputs,
          status: { ...status, ...iso(notAfter) },
          condition:
            left < spec.tls.renewalDays
              ? cond(false, 'ExpiringSoon', `the certificate in Secret ${secretName} expires at ${nowTime(notAfter)}; replace it`)
              : cond(true, 'Valid', `certificate valid until ${nowTime(notAfter)}`),
        };
      }
      case 'cert-manager':
        return this.#certManagerTls(cr, spec, obs, sans(), mode);
      case 'generated':
        return this.#generatedTls(cr, spec, obs, sans(), log);
    }
  }

  /**
   * cert-manager mode: the Certificate is applied with the desired objects; the brokers mount its
   * Secret once cert-manager has written it. Until then they run without the TLS listeners,
   * Progressing says WaitingForCertificate and an Event tells why.
   */
  async #certManagerTls(cr: RobustMQCluster, spec: RobustMQClusterSpec, obs: Observed, sans: string[], mode: TlsMode): Promise<TlsOutcome> {
    const secretName = names(cr.metadata.name).brokerTls;
    const sec = await this.#secret(obs.ns, secretName);
    const cert = parseCert(secretPem(sec, 'tls.crt'));
    const issued = cert !== undefined && secretPem(sec, 'tls.key') !== undefined;
    const mounted = (obs.broker?.spec?.template?.spec?.volumes ?? []).some((v) => v.name === 'tls' && v.secret?.secretName === secretName);
    const ref = spec.tls.issuerRef!;
    if (!issued) {
      const message = `waiting for cert-manager to issue Secret ${secretName} (${ref.kind} ${ref.name})`;
      if (cr.status?.conditions?.find((x) => x.type === ConditionType.CertificatesValid)?.reason !== 'WaitingForCertificate')
        await this.#event(cr, 'Normal', 'WaitingForCertificate', `${message}; brokers start without their TLS listeners until then`);
      return {
        inputs: { mode, certificateSans: sans, ...(mounted ? { mountSecret: secretName } : {}) },
        status: { mode, secretName },
        condition: { type: ConditionType.CertificatesValid, status: false, reason: 'WaitingForCertificate', message },
      };
    }
    const notAfter = validityOf(cert).notAfter;
    return {
      inputs: { mode, certificateSans: sans, mountSecret: secretName },
      status: { mode, secretName, notAfter: nowTime(notAfter) },
      condition: {
        type: ConditionType.CertificatesValid,
        status: true,
        reason: 'Issued',
        message: `issued by ${ref.kind} ${ref.name}, valid until ${nowTime(notAfter)}`,
      },
    };
  }

  /**
   * Generated mode: the cluster CA and clients CA Secrets (created, renewed with the same key near
   * expiry, never replaced while valid) and the brokers' certificate signed by the cluster CA,
   * issued again when it nears expiry, its SANs change or the CA key changed (certificates.ts
   * planCertificates). A CA with `generate: false` is the user's: read, never written.
   */
  async #generatedTls(cr: RobustMQCluster, spec: RobustMQClusterSpec, obs: Observed, sans: string[], log: Logger): Promise<TlsOutcome> {
    const c = cr.metadata.name;
    const n = names(c);
    const t = spec.tls;
    const now = new Date();
    const [clusterCaSec, clientsCaSec, leafSec] = await Promise.all([
      this.#secret(obs.ns, n.clusterCa),
      this.#secret(obs.ns, n.clientsCa),
      this.#secret(obs.ns, n.brokerTls),
    ]);
    const caOf = (sec: SecretData | undefined): KeyPairPem | undefined => {
      const certPem = secretPem(sec, 'ca.crt');
      const keyPem = secretPem(sec, 'ca.key');
      const cert = parseCert(certPem);
      return cert && keyPem && keyMatches(cert, keyPem) ? { certPem: certPem!, keyPem } : undefined;
    };
    let clusterCa = caOf(clusterCaSec);
    let clientsCa = caOf(clientsCaSec);
    const leafCert = parseCert(secretPem(leafSec, 'tls.crt'));
    const leafKey = secretPem(leafSec, 'tls.key');
    const caCert = parseCert(clusterCa?.certPem);
    const plan = planCertificates(
      {
        ...(clusterCa ? { clusterCa: validityOf(caCert!) } : {}),
        ...(clientsCa ? { clientsCa: validityOf(parseCert(clientsCa.certPem)!) } : {}),
        ...(leafCert && keyMatches(leafCert, leafKey)
          ? { leaf: { ...validityOf(leafCert), sans: sansOf(leafCert), signedByClusterCa: caCert ? isSignedBy(leafCert, caCert) : false } }
          : {}),
      },
      {
        caValidityDays: t.clusterCa.validityDays,
        caRenewalDays: t.clusterCa.renewalDays,
        clientsCaValidityDays: t.clientsCa.validityDays,
        clientsCaRenewalDays: t.clientsCa.renewalDays,
        validityDays: t.validityDays,
        renewalDays: t.renewalDays,
      },
      sans,
      now,
    );
    const warnings: string[] = [];
    const ensureCa = async (which: 'cluster' | 'clients', cur: KeyPairPem | undefined): Promise<KeyPairPem | undefined> => {
      const s = which === 'cluster' ? t.clusterCa : t.clientsCa;
      const action = which === 'cluster' ? plan.clusterCa : plan.clientsCa;
      const secretName = which === 'cluster' ? n.clusterCa : n.clientsCa;
      if (action === 'Keep') return cur;
      if (!s.generate) {
        if (action === 'Renew') warnings.push(`the ${which} CA in Secret ${secretName} (generate: false) expires soon; replace it`);
        return cur;
      }
      const next = action === 'Create' ? await createCa(`${c}-${which}-ca`, s.validityDays, now) : await renewCa(cur!, s.validityDays, now);
      log.info({ ca: which, action }, 'certificate authority written');
      await this.#event(
        cr,
        'Normal',
        action === 'Create' ? 'CaCreated' : 'CaRenewed',
        action === 'Create'
          ? `created the ${which} CA (Secret ${secretName})`
          : `renewed the ${which} CA certificate with the same key (Secret ${secretName})`,
      );
      return next;
    };
    clusterCa = await ensureCa('cluster', clusterCa);
    clientsCa = await ensureCa('clients', clientsCa);
    const missing = [clusterCa ? '' : n.clusterCa, clientsCa ? '' : n.clientsCa].filter((x) => x !== '');
    if (clusterCa === undefined || clientsCa === undefined)
      return {
        inputs: { mode: 'generated' },
        status: { mode: 'generated', secretName: n.brokerTls },
        condition: {
          type: ConditionType.CertificatesValid,
          status: false,
          reason: 'CaMissing',
          message: `CA Secret ${missing.join(', ')} (generate: false) missing or without a matching ca.crt and ca.key`,
        },
      };
    let leaf: KeyPairPem | undefined = leafCert && leafKey ? { certPem: secretPem(leafSec, 'tls.crt')!, keyPem: leafKey } : undefined;
    if (plan.leaf !== undefined || leaf === undefined) {
      leaf = await issueServerCert(clusterCa, {
        commonName: n.broker,
        dnsNames: sans.filter((x) => x.startsWith('dns:')).map((x) => x.slice(4)),
        ipAddresses: sans.filter((x) => x.startsWith('ip:')).map((x) => x.slice(3)),
        validityDays: t.validityDays,
        now,
      });
      log.info({ reason: plan.leaf }, 'broker certificate issued');
      await this.#event(
        cr,
        'Normal',
        'CertificateIssued',
        `issued the broker certificate (Secret ${n.brokerTls}): ${plan.leaf ?? 'Missing'}`,
      );
    }
    const caSecret = (ca: KeyPairPem, name: string) => ({
      name,
      type: 'Opaque',
      data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem) },
    });
    const leafNotAfter = expiry(leaf.certPem)!;
    const caNotAfter = expiry(clusterCa.certPem)!;
    const clientsNotAfter = expiry(clientsCa.certPem)!;
    return {
      inputs: {
        mode: 'generated',
        mountSecret: n.brokerTls,
        secrets: [
          ...(t.clusterCa.generate ? [caSecret(clusterCa, n.clusterCa)] : []),
          ...(t.clientsCa.generate ? [caSecret(clientsCa, n.clientsCa)] : []),
          {
            name: n.brokerTls,
            type: 'kubernetes.io/tls',
            data: { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem), 'ca.crt': b64(clusterCa.certPem) },
          },
        ],
      },
      status: {
        mode: 'generated',
        secretName: n.brokerTls,
        notAfter: nowTime(leafNotAfter),
        clusterCaNotAfter: nowTime(caNotAfter),
        clientsCaNotAfter: nowTime(clientsNotAfter),
      },
      condition:
        warnings.length > 0
          ? { type: ConditionType.CertificatesValid, status: false, reason: 'ExpiringSoon', message: warnings.join('; ') }
          : {
              type: ConditionType.CertificatesValid,
              status: true,
              reason: 'Valid',
              message: `broker certificate valid until ${nowTime(leafNotAfter)}; cluster CA until ${nowTime(caNotAfter)}`,
            },
    };
  }

  async #setGate(ns: string, p: V1Pod, type: string, status: boolean, reason: string): Promise<void> {
    try {
      await this.#o.kube.setPodCondition(ns, p.metadata!.name!, type, status, reason);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  /** PVCs of ordinals above the StatefulSet's replicas, once their pod is gone (deleteClaimOnScaleDown). */
  async #deleteScaledDownClaims(cr: RobustMQCluster, spec: RobustMQClusterSpec, obs: Observed): Promise<void> {
    const n = names(cr.metadata.name);
    for (const role of ['meta', 'journal'] as const) {
      if (!spec[role].storage.deleteClaimOnScaleDown) continue;
      const sts = role === 'meta' ? obs.metaSts : obs.journalSts;
      const replicas = sts?.spec?.replicas;
      if (replicas === undefined) continue;
      const pods = role === 'meta' ? obs.metaPodObjs : obs.journalPods;
      for (const claim of obs.claims) {
        const m = new RegExp(`^data-${n[role]}-(\\d+)$`).exec(claim.metadata?.name ?? '');
        if (m === null || isDeleting(claim)) continue;
        const ord = Number(m[1]);
        if (ord > replicas && !pods.some((p) => podIndex(p) === ord))
          await this.#o.kube.delete({
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            metadata: { name: claim.metadata!.name!, namespace: obs.ns },
          });
      }
    }
  }

  /**
   * OnDelete roll of meta, then journal: pods whose revision is not the StatefulSet's update
   * revision are deleted one at a time; unready ones first, then followers, the leader last after
   * handing over leadership; a ready voter only while the others keep a caught-up majority.
   */
  async #roll(cr: RobustMQCluster, obs: Observed, inp: PlanInput, log: Logger): Promise<boolean> {
    const outdated = (sts: V1StatefulSet | undefined, pods: V1Pod[]) => {
      const rev = sts?.status?.updateRevision;
      return rev === undefined ? [] : pods.filter((p) => !isDeleting(p) && p.metadata?.labels?.[Labels.RevisionHash] !== rev);
    };
    const anyDeleting = (pods: V1Pod[]) => pods.some(isDeleting);
    const metaOld = outdated(obs.metaSts, obs.metaPodObjs);
    if (metaOld.length > 0 && !anyDeleting(obs.metaPodObjs)) {
      const raft = inp.raft;
      const unready = metaOld.find((p) => !isTrue(p, 'ContainersReady'));
      const followers = metaOld.filter((p) => podIndex(p) !== raft?.leader).sort((a, b) => podIndex(b) - podIndex(a));
      const victim = unready ?? followers[0] ?? metaOld[0]!;
      const id = podIndex(victim);
      if (unready === undefined) {
        // Every other voter must be ready and caught up: the pod we stop must not cost the quorum.
        if (raft === undefined || !safeToRemove(id, inp) || !obs.metaPodObjs.every((p) => isTrue(p, 'Ready'))) return true;
        if (raft.leader === id) {
          const to = raft.voters.filter((v) => v !== id && isCaughtUp(v, inp))[0];
          if (to !== undefined) {
            const admin = this.#o.metaAdmin(cr, obs.adminToken);
            const s = await admin.status();
            for (const g of s.groups) if (g.leader === id) await admin.transferLeader(g.group, to);
            await this.#event(cr, 'Normal', 'TransferLeader', `moved meta leadership from node ${id} to node ${to} before restarting it`);
          }
          return true;
        }
      }
      await this.#o.kube.delete(victim);
      log.info({ pod: victim.metadata?.name }, 'rolling meta pod');
      await this.#event(cr, 'Normal', 'RollingPod', `restarting ${victim.metadata?.name} for the new pod template`);
      return true;
    }
    if (metaOld.length > 0) return true;
    const journalOld = outdated(obs.journalSts, obs.journalPods);
    if (journalOld.length > 0) {
      if (anyDeleting(obs.journalPods)) return true;
      const unready = journalOld.find((p) => !isTrue(p, 'Ready'));
      if (unready === undefined && !obs.journalPods.every((p) => isTrue(p, 'Ready'))) return true;
      const victim = unready ?? journalOld.sort((a, b) => podIndex(b) - podIndex(a))[0]!;
      await this.#o.kube.delete(victim);
      await this.#event(cr, 'Normal', 'RollingPod', `restarting ${victim.metadata?.name} for the new pod template`);
      return true;
    }
    return false;
  }

  #aggregate(
    cr: RobustMQCluster,
    spec: RobustMQClusterSpec,
    status: RobustMQClusterStatus,
    obs: Observed,
    raft: RaftView | undefined,
    action: Action,
    conds: ConditionInput[],
    generation: number,
    busy: boolean,
    registered?: Set<string>,
  ): RobustMQClusterStatus {
    const c = cr.metadata.name;
    const n = names(c);
    const ready = (pods: V1Pod[]) => pods.filter((p) => !isDeleting(p) && isTrue(p, 'Ready')).length;
    const member = (id: number, prevList: MetaMemberStatus[]): MetaMemberStatus => {
      const was = prevList.find((m) => m.nodeId === id)?.incarnation ?? obs.metaPods.get(id)?.claimUid;
      return { nodeId: id, pod: n.metaPod(id), ...(was ? { incarnation: was } : {}) };
    };
    const prevMembers = [...(status.meta?.voters ?? []), ...(status.meta?.learners ?? [])];
    const meta = status.meta ?? { replicas: 0, readyReplicas: 0, voters: [], learners: [], pendingChange: null };
    const replaced = action.op === 'RemoveVoter' || action.op === 'RemoveLearner' ? action.replaced : false;
    status.meta = {
      replicas: obs.metaSts?.spec?.replicas ?? 0,
      readyReplicas: ready(obs.metaPodObjs),
      updatedReplicas: obs.metaSts?.status?.updatedReplicas ?? 0,
      ...(obs.metaSts?.status?.currentRevision ? { currentRevision: obs.metaSts.status.currentRevision } : {}),
      ...(obs.metaSts?.status?.updateRevision ? { updateRevision: obs.metaSts.status.updateRevision } : {}),
      leader: raft && raft.leader !== 0 ? { nodeId: raft.leader, pod: n.metaPod(raft.leader) } : null,
      // A member whose disk was just replaced is recorded without its old incarnation.
      voters: raft
        ? raft.voters.map((id) =>
            member(id, replaced ? prevMembers.filter((m) => m.nodeId !== (action as { nodeId: number }).nodeId) : prevMembers),
          )
        : meta.voters,
      learners: raft ? raft.learners.map((id) => member(id, prevMembers)) : meta.learners,
      pendingChange: meta.pendingChange ?? null,
    };
    if (action.op === 'None') status.meta.pendingChange = null;
    status.journal = {
      replicas: obs.journalSts?.spec?.replicas ?? 0,
      readyReplicas: ready(obs.journalPods),
      draining:
        (obs.journalSts?.spec?.replicas ?? 0) > spec.journal.replicas && spec.journal.scaleDown === 'Drain'
          ? [obs.journalSts!.spec!.replicas!]
          : [],
    };
    const brokerReady = ready(obs.brokerPods);
    const liveBrokers = obs.brokerPods.filter((p) => !isDeleting(p));
    const brokerRegistered = registered
      ? liveBrokers.filter((p) => registered.has(p.metadata?.name ?? '')).length
      : liveBrokers.filter((p) => isTrue(p, READINESS_GATE_REGISTERED)).length;
    const brokerRunning = liveBrokers.filter((p) => isTrue(p, 'ContainersReady')).length;
    status.broker = {
      replicas: obs.broker?.status?.replicas ?? liveBrokers.length,
      readyReplicas: brokerReady,
      registered: brokerRegistered,
      selector: Object.entries(selectorLabels(c, 'broker'))
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    };
    status.listeners = spec.listeners.map((l) => {
      const svcName = l.type === 'internal' ? n.broker : n.listener(l.name);
      const svc = obs.services.find((s) => s.metadata?.name === svcName);
      const ingress = svc?.status?.loadBalancer?.ingress ?? [];
      return {
        name: l.name,
        type: l.type,
        addresses: ingress.map((i) => ({ host: i.ip ?? i.hostname ?? '', port: l.port })),
        bootstrap: `${svcName}.${obs.ns}.svc:${l.port}`,
      };
    });
    status.observedGeneration = generation;
    status.operatorVersion = this.#o.operatorVersion;
    status.version = spec.version;

    // Conditions.
    const voters = raft?.voters ?? [];
    const caughtUp = voters.filter((v) =>
      isCaughtUp(v, {
        desired: spec.meta.replicas,
        raft,
        pods: obs.metaPods,
        incarnations: new Map(),
        maxLagEntries: spec.meta.maxLearnerLagEntries,
      }),
    );
    const quorum: ConditionInput =
      raft === undefined || raft.leader === 0
        ? {
            type: ConditionType.MetaQuorumHealthy,
            status: false,
            reason: 'NoLeader',
            message: raft === undefined ? 'meta admin API unreachable' : 'no Raft leader',
          }
        : caughtUp.length * 2 <= voters.length
          ? {
              type: ConditionType.MetaQuorumHealthy,
              status: false,
              reason: 'QuorumLost',
              message: `${caughtUp.length} of ${voters.length} voters caught up`,
            }
          : {
              type: ConditionType.MetaQuorumHealthy,
              status: true,
              reason: caughtUp.length === voters.length ? 'QuorumHealthy' : 'Degraded',
              message: `${caughtUp.length} of ${voters.length} voters caught up`,
            };
    const sync: ConditionInput = (() => {
      switch (action.op) {
        case 'None':
          return { type: ConditionType.MetaMembershipSynced, status: true, reason: 'Synced', message: `voters ${voters.join(', ')}` };
        case 'Refuse':
          return { type: ConditionType.MetaMembershipSynced, status: false, reason: action.reason, message: action.message };
        case 'Wait':
          return {
            type: ConditionType.MetaMembershipSynced,
            status: false,
            reason: action.reason === 'NoLeader' ? 'NoLeader' : 'AddingVoter',
            message: action.message,
          };
        case 'AddLearner':
        case 'Promote':
          return {
            type: ConditionType.MetaMembershipSynced,
            status: false,
            reason: 'AddingVoter',
            message: `${action.op} node ${action.nodeId}`,
          };
        case 'TransferLeader':
          return {
            type: ConditionType.MetaMembershipSynced,
            status: false,
            reason: 'RemovingVoter',
            message: `moving leadership off node ${action.from}`,
          };
        default:
          return {
            type: ConditionType.MetaMembershipSynced,
            status: false,
            reason: action.replaced ? 'ReplacingVoter' : 'RemovingVoter',
            message: `removing node ${action.nodeId}`,
          };
      }
    })();
    const journal: ConditionInput =
      conds.find((x) => x.type === ConditionType.JournalReady) ??
      (status.journal.readyReplicas >= spec.journal.replicas
        ? { type: ConditionType.JournalReady, status: true, reason: 'AllNodesReady' }
        : {
            type: ConditionType.JournalReady,
            status: false,
            reason: 'JournalNotReady',
            message: `${status.journal.readyReplicas} of ${spec.journal.replicas} journal nodes ready`,
          });
    const brokers: ConditionInput =
      brokerReady > 0
        ? {
            type: ConditionType.BrokersAvailable,
            status: true,
            reason: 'BrokersReady',
            message: `${brokerReady} broker(s) ready, ${brokerRegistered} registered in meta`,
          }
        : brokerRunning > 0
          ? {
              type: ConditionType.BrokersAvailable,
              status: false,
              reason: 'NotRegistered',
              message: `${brokerRunning} broker pod(s) running, none registered in meta yet`,
            }
          : { type: ConditionType.BrokersAvailable, status: false, reason: 'NoEndpoints', message: 'no ready broker' };
    const certs = conds.find((x) => x.type === ConditionType.CertificatesValid);
    const certsBlocking = certs !== undefined && certs.status === false && BLOCKING_CERT_REASONS.includes(certs.reason);
    const reconciled = conds.find((x) => x.type === ConditionType.Reconciled) ?? {
      type: ConditionType.Reconciled,
      status: true,
      reason: 'ApplySucceeded',
    };
    const metaReady = status.meta.readyReplicas >= spec.meta.replicas;
    const all: ConditionInput[] = [reconciled, quorum, sync, journal, brokers, ...(certs ? [certs] : [])];
    const notReady = all.find((x) => x.status !== true && (x !== certs || certsBlocking));
    const readyCond: ConditionInput = notReady
      ? {
          type: ConditionType.Ready,
          status: false,
          reason:
            notReady.type === ConditionType.Reconciled
              ? notReady.reason
              : notReady.type === ConditionType.JournalReady
                ? 'JournalNotReady'
                : notReady.type === ConditionType.BrokersAvailable
                  ? 'NoBrokers'
                  : notReady.type === ConditionType.CertificatesValid
                    ? 'CertificatesNotReady'
                    : 'MetaNotReady',
          message: notReady.message ?? '',
        }
      : !metaReady
        ? {
            type: ConditionType.Ready,
            status: false,
            reason: 'MetaNotReady',
            message: `${status.meta.readyReplicas} of ${spec.meta.replicas} meta voters ready`,
          }
        : { type: ConditionType.Ready, status: true, reason: 'AllComponentsReady' };
    const progressing: ConditionInput =
      certs?.reason === 'WaitingForCertificate' && action.op === 'None'
        ? { type: ConditionType.Progressing, status: true, reason: 'WaitingForCertificate', message: certs.message ?? '' }
        : busy || action.op !== 'None'
          ? {
              type: ConditionType.Progressing,
              status: true,
              reason:
                action.op !== 'None' && action.op !== 'Refuse' ? 'MembershipChange' : action.op === 'Refuse' ? 'Blocked' : 'RollingUpdate',
              message: sync.message ?? '',
            }
          : { type: ConditionType.Progressing, status: false, reason: 'Idle' };
    status.conditions = mergeConditions(
      status.conditions,
      [readyCond, ...all, progressing, { type: ConditionType.Paused, status: false, reason: 'NotPaused' }],
      generation,
    );
    for (const cond of status.conditions)
      this.#o.metrics.resourceState.set({ namespace: obs.ns, name: c, condition: cond.type }, cond.status === 'True' ? 1 : 0);
    return status;
  }

  async #writeStatus(cr: RobustMQCluster, next: RobustMQClusterStatus): Promise<void> {
    if (sameJson(cr.status ?? {}, next)) return;
    // Merge patch: send explicit nulls for fields that disappeared.
    await this.#o.kube.patchClusterStatus(cr.metadata.namespace ?? 'default', cr.metadata.name, next);
  }

  async #event(cr: RobustMQCluster, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    try {
      await this.#o.kube.event(
        {
          kind: KIND,
          apiVersion: API_VERSION,
          name: cr.metadata.name,
          namespace: cr.metadata.namespace ?? 'default',
          ...(cr.metadata.uid ? { uid: cr.metadata.uid } : {}),
        },
        type,
        reason,
        message,
      );
    } catch (err) {
      this.#log.debug({ err }, 'event not recorded');
    }
  }

  /**
   * Deletion: pods are labelled to skip their preStop quorum checks (the whole cluster goes),
   * PVCs are deleted when asked, then the finalizer is removed; garbage collection removes the rest.
   */
  async #finalize(cr: RobustMQCluster, log: Logger): Promise<ReconcileResult> {
    if (!(cr.metadata.finalizers ?? []).includes(FINALIZER)) return;
    const ns = cr.metadata.namespace ?? 'default';
    const c = cr.metadata.name;
    const spec = withDefaults(cr.spec);
    for (const p of this.#o.caches.pods.list(ns)) {
      if (p.metadata?.labels?.[Labels.Instance] !== c || p.metadata.labels[Annotations.SkipPreStopChecks] === 'true') continue;
      try {
        await this.#o.kube.objects.patch(
          {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { name: p.metadata.name!, namespace: ns, labels: { [Annotations.SkipPreStopChecks]: 'true' } },
          },
          undefined,
          undefined,
          FIELD_MANAGER,
          undefined,
          'application/merge-patch+json',
        );
      } catch (err) {
        if (statusOf(err) !== 404) throw err;
      }
    }
    for (const claim of this.#o.caches.pvcs.list(ns)) {
      const role = claim.metadata?.labels?.[Labels.Role];
      if (claim.metadata?.labels?.[Labels.Instance] !== c || (role !== 'meta' && role !== 'journal')) continue;
      if (spec[role].storage.deleteClaimOnDelete)
        await this.#o.kube.delete({
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: claim.metadata!.name!, namespace: ns },
        });
    }
    await this.#o.kube.patchCluster(ns, c, {
      metadata: { finalizers: (cr.metadata.finalizers ?? []).filter((f) => f !== FINALIZER), resourceVersion: cr.metadata.resourceVersion },
    });
    log.info({}, 'finalized');
    return;
  }
}
