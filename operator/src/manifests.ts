import { createHash } from 'node:crypto';
import { stringify as toYaml } from 'yaml';
import {
  API_VERSION,
  Annotations,
  KIND,
  Labels,
  MANAGED_BY,
  READINESS_GATE_REGISTERED,
  READINESS_GATE_VOTER,
  type ListenerSpec,
  type PodTemplateSpec,
  type RobustMQCluster,
  type RobustMQClusterSpec,
  type TlsMode,
} from './api/types.js';

/** Any Kubernetes object the operator applies. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: unknown[];
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export const Ports = { grpcMeta: 1228, grpcJournal: 1778, http: 58080 } as const;
export const DATA_DIR = '/var/lib/robustmq';
export const CONFIG_DIR = '/etc/robustmq';
export const DEFAULT_IMAGE_REPO = 'ghcr.io/robustmq/robustmq';
/**
 * Node ids: meta = StatefulSet ordinal (ordinals start at 1, as robust-server's node ids do);
 * journal = JOURNAL_ID_OFFSET + ordinal so the two never collide in meta's registry.
 */
export const JOURNAL_ID_OFFSET = 100;

/**
 * The admin API token: a generated Secret, mounted into every pod as robust-server's
 * `auth.adminTokenFile` (ROBUSTMQ_AUTH_ADMIN_TOKEN_FILE) and sent by the operator as a bearer token.
 */
export const ADMIN_TOKEN_FILE = `${CONFIG_DIR}/admin/token`;

export type Role = 'meta' | 'journal' | 'broker';

/** Object names of a cluster, in one place. */
export const names = (c: string) => ({
  meta: `${c}-meta`,
  metaHeadless: `${c}-meta-headless`,
  journal: `${c}-journal`,
  journalHeadless: `${c}-journal-headless`,
  broker: `${c}-broker`,
  config: `${c}-config`,
  bootstrap: `${c}-meta-bootstrap`,
  admin: `${c}-admin`,
  clusterCa: `${c}-cluster-ca`,
  clientsCa: `${c}-clients-ca`,
  brokerTls: `${c}-broker-tls`,
  listener: (l: string) => `${c}-${l}`,
  metaPod: (id: number) => `${c}-meta-${id}`,
  journalPod: (ord: number) => `${c}-journal-${ord}`,
  dataClaim: (role: 'meta' | 'journal', ord: number) => `data-${c}-${role}-${ord}`,
});

/** What the desired objects depend on besides the spec. Everything here is observed, not invented. */
export interface DesiredInputs {
  /** Meta StatefulSet replicas: the spec's, or more while members above it are still in the Raft configuration. */
  metaReplicas: number;
  /** Journal StatefulSet replicas: the spec's, or more while a node drains. */
  journalReplicas: number;
  /** Bootstrap ConfigMap: "bootstrap" until meta reports a cluster id, then "join". */
  bootstrapMode: 'bootstrap' | 'join';
  clusterId: string;
  adminToken: string;
  operatorVersion: string;
  /** Listener certificates; default: what the spec alone says (secretName mounted, nothing else). */
  tls?: TlsInputs;
}

/** Where the TLS listeners' certificate comes from, as the reconciler found it. */
export interface TlsInputs {
  mode: TlsMode;
  /** The Secret the brokers mount (tls.crt, tls.key, ca.crt); undefined = not available yet: TLS listeners stay closed. */
  mountSecret?: string;
  /** Secrets the operator generated (base64 data), applied as they are: the CAs and the server certificate. */
  secrets?: { name: string; type: string; data: Record<string, string> }[];
  /** SANs of the cert-manager Certificate (`dns:`/`ip:` entries, see certificates.ts sanList). */
  certificateSans?: string[];
}

/** Mount path of the listener certificate (tls.crt, tls.key, ca.crt). */
export const TLS_DIR = `${CONFIG_DIR}/tls`;
/** Mount path of the clients CA certificate (generated mode with certificate authentication). */
export const CLIENTS_CA_DIR = `${CONFIG_DIR}/clients-ca`;
export const CLUSTER_DOMAIN = 'cluster.local';

/**
 * The names the server certificate must carry: every client Service of a TLS listener (`<svc>`,
 * `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.cluster.local`), the load-balancer addresses
 * already assigned to them, and spec.tls.alternativeNames.
 */
export function serverCertNames(
  cr: RobustMQCluster,
  spec: RobustMQClusterSpec,
  ingress: (service: string) => { ip?: string; hostname?: string }[] = () => [],
): string[] {
  const n = names(cr.metadata.name);
  const ns = cr.metadata.namespace ?? 'default';
  const svcs = [n.broker, ...spec.listeners.filter((l) => l.tls && l.type !== 'internal').map((l) => n.listener(l.name))];
  return [
    ...svcs.flatMap((s) => [s, `${s}.${ns}`, `${s}.${ns}.svc`, `${s}.${ns}.svc.${CLUSTER_DOMAIN}`]),
    ...svcs.flatMap((s) => ingress(s).flatMap((i) => [i.ip ?? '', i.hostname ?? ''])),
    ...(spec.tls.alternativeNames ?? []),
  ].filter((x) => x !== '');
}

/** True when a TLS listener authenticates clients by certificate: then robust-server gets a CA to check them (mTLS). */
export const usesClientCerts = (spec: RobustMQClusterSpec): boolean =>
  spec.listeners.some((l) => l.tls && l.authentication?.type === 'tls');

export function commonLabels(c: string): Record<string, string> {
  return { [Labels.Name]: 'robustmq', [Labels.Instance]: c, [Labels.ManagedBy]: MANAGED_BY, [Labels.Cluster]: c };
}

export function selectorLabels(c: string, role: Role): Record<string, string> {
  return { [Labels.Instance]: c, [Labels.Role]: role };
}

export function roleLabels(c: string, role: Role): Record<string, string> {
  return { ...commonLabels(c), [Labels.Role]: role, [Labels.Component]: role };
}

export function ownerReference(cr: RobustMQCluster): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: cr.metadata.name,
    uid: cr.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function imageOf(spec: RobustMQClusterSpec): string {
  return spec.image ?? `${DEFAULT_IMAGE_REPO}:${spec.version}`;
}

/** The rendered server configuration file shared by every role (spec.config). */
export function renderServerConfig(spec: RobustMQClusterSpec): string {
  return toYaml(spec.config ?? {}, { sortMapEntries: true });
}

export function hashOf(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
}

/** Listener → the robust-server port variable that opens it (one per protocol and TLS setting). */
export function listenerPortEnv(l: ListenerSpec): string {
  if (l.protocol === 'kafka') return l.tls ? 'ROBUSTMQ_KAFKA_TLS_PORT' : 'ROBUSTMQ_KAFKA_PORT';
  if (l.protocol === 'mqtt-ws') return l.tls ? 'ROBUSTMQ_WSS_PORT' : 'ROBUSTMQ_WS_PORT';
  return l.tls ? 'ROBUSTMQ_MQTTS_PORT' : 'ROBUSTMQ_MQTT_PORT';
}

/** JSON merge patch (RFC 7386), used for spec.overrides. */
export function mergePatch<T>(target: T, patch: unknown): T {
  if (patch === undefined) return target;
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch as T;
  const out: Record<string, unknown> =
    typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) Reflect.deleteProperty(out, k);
    else out[k] = mergePatch(out[k], v);
  }
  return out as T;
}

const env = (name: string, value: string) => ({ name, value });
const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });

function podScheduling(c: string, role: Role, t: PodTemplateSpec | undefined): Record<string, unknown> {
  const spread = {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 100,
          podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selectorLabels(c, role) } },
        },
      ],
    },
  };
  return {
    affinity: t?.affinity ?? spread,
    ...(t?.nodeSelector ? { nodeSelector: t.nodeSelector } : {}),
    ...(t?.tolerations ? { tolerations: t.tolerations } : {}),
    ...(t?.topologySpreadConstraints ? { topologySpreadConstraints: t.topologySpreadConstraints } : {}),
    ...(t?.priorityClassName ? { priorityClassName: t.priorityClassName } : {}),
  };
}

const securityContext = {
  runAsNonRoot: true,
  runAsUser: 10001,
  runAsGroup: 10001,
  fsGroup: 10001,
  seccompProfile: { type: 'RuntimeDefault' },
};
const containerSecurity = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };

const probes = {
  readinessProbe: { httpGet: { path: '/health/ready', port: 'metrics' }, periodSeconds: 5, failureThreshold: 3 },
  livenessProbe: { httpGet: { path: '/health/live', port: 'metrics' }, periodSeconds: 10, failureThreshold: 6, initialDelaySeconds: 10 },
};

/**
 * Meta entrypoint. Pods named in the bootstrap peers bootstrap the cluster while the bootstrap
 * ConfigMap says so; any other pod, and every pod once the cluster exists (mode "join"), starts
 * in join mode and waits for the operator to add it as a learner: a pod with an empty disk never
 * founds a second cluster. A node with data on disk resumes from it either way.
 */
export const META_START_SCRIPT = [
  'set -e',
  'if [ "$RMQ_META_MODE" = join ] || ! echo ",$RMQ_META_PEERS," | grep -q ",$ROBUSTMQ_NODE_ID="; then',
  '  export ROBUSTMQ_META_JOIN=true',
  'else',
  '  export ROBUSTMQ_META_PEERS="$RMQ_META_PEERS"',
  'fi',
  `exec robust-server start --config ${CONFIG_DIR}/server.yaml`,
].join('\n');

export const JOURNAL_START_SCRIPT = [
  'set -e',
  `export ROBUSTMQ_NODE_ID=$((${JOURNAL_ID_OFFSET} + RMQ_POD_INDEX))`,
  `exec robust-server start --config ${CONFIG_DIR}/server.yaml`,
].join('\n');

/** Brokers have no ordinal: a stable id from the pod name (meta tells brokers apart by registration). */
export const BROKER_START_SCRIPT = [
  'set -e',
  'export ROBUSTMQ_NODE_ID=$(( $(printf %s "$HOSTNAME" | cksum | cut -d" " -f1) % 1000000000 + 1000000 ))',
  `exec robust-server start --config ${CONFIG_DIR}/server.yaml`,
].join('\n');

/**
 * Meta preStop: hand over leadership of every group this node leads, unless the pod carries the
 * skip label (set by the operator when the whole cluster is deleted). Bounded by the grace period.
 */
export const META_PRESTOP_SCRIPT = [
  'grep -q "skip-prestop-checks" /etc/podinfo/labels 2>/dev/null && exit 0',
  "exec node -e '",
  'const base = "http://127.0.0.1:" + (process.env.ROBUSTMQ_HTTP_PORT || 58080) + "/api/v1/meta";',
  'const token = require("fs").readFileSync(process.env.ROBUSTMQ_AUTH_ADMIN_TOKEN_FILE, "utf8").trim();',
  'const h = { "content-type": "application/json", authorization: "Bearer " + token };',
  '(async () => { const s = await (await fetch(base + "/status", { headers: h })).json();',
  '  for (const g of s.groups) { const to = g.voters.find((v) => v !== s.nodeId);',
  '    if (g.leader === s.nodeId && to !== undefined) await fetch(base + "/transfer-leader", { method: "POST", headers: h, body: JSON.stringify({ group: g.group, to }) }); } })().catch(() => {});\'',
].join('\n');

function commonEnv(c: string, ns: string, role: Role): unknown[] {
  const n = names(c);
  return [
    env('ROBUSTMQ_ROLES', role),
    env('ROBUSTMQ_DATA_DIR', DATA_DIR),
    env('ROBUSTMQ_HTTP_PORT', String(Ports.http)),
    ...(role === 'meta' ? [] : [env('ROBUSTMQ_META_ENDPOINTS', `${n.meta}.${ns}.svc:${Ports.grpcMeta}`)]),
    env('ROBUSTMQ_AUTH_ADMIN_TOKEN_FILE', ADMIN_TOKEN_FILE),
  ];
}

function volumes(c: string): unknown[] {
  return [
    { name: 'config', configMap: { name: names(c).config } },
    { name: 'podinfo', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
    { name: 'tmp', emptyDir: {} },
    { name: 'admin-token', secret: { secretName: names(c).admin, defaultMode: 0o400, items: [{ key: 'token', path: 'token' }] } },
  ];
}

const mounts = (withData: boolean): unknown[] => [
  ...(withData ? [{ name: 'data', mountPath: DATA_DIR }] : [{ name: 'tmp', mountPath: DATA_DIR, subPath: 'data' }]),
  { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
  { name: 'podinfo', mountPath: '/etc/podinfo', readOnly: true },
  { name: 'tmp', mountPath: '/tmp', subPath: 'tmp' },
  { name: 'admin-token', mountPath: `${CONFIG_DIR}/admin`, readOnly: true },
];

/**
 * The listener certificate in the broker pods. The whole Secret is mounted (no subPath), so the
 * kubelet replaces the files when the Secret changes and robust-server reloads them
 * (tls.reloadCheckMs): a renewed certificate needs no roll. ca.crt is handed to the server only
 * for certificate authentication (it asks clients for a certificate when it has a CA).
 */
function tlsVolume(spec: RobustMQClusterSpec, c: string, tls: TlsInputs): { volumes: unknown[]; mounts: unknown[]; env: unknown[] } {
  if (tls.mountSecret === undefined) return { volumes: [], mounts: [], env: [] };
  const mtls = usesClientCerts(spec);
  const clientsCa = mtls && tls.mode === 'generated';
  return {
    volumes: [
      { name: 'tls', secret: { secretName: tls.mountSecret, defaultMode: 0o440 } },
      ...(clientsCa
        ? [
            {
              name: 'clients-ca',
              secret: { secretName: names(c).clientsCa, defaultMode: 0o440, items: [{ key: 'ca.crt', path: 'ca.crt' }] },
            },
          ]
        : []),
    ],
    mounts: [
      { name: 'tls', mountPath: TLS_DIR, readOnly: true },
      ...(clientsCa ? [{ name: 'clients-ca', mountPath: CLIENTS_CA_DIR, readOnly: true }] : []),
    ],
    env: [
      env('ROBUSTMQ_TLS_CERT_FILE', `${TLS_DIR}/tls.crt`),
      env('ROBUSTMQ_TLS_KEY_FILE', `${TLS_DIR}/tls.key`),
      ...(mtls ? [env('ROBUSTMQ_TLS_CA_FILE', clientsCa ? `${CLIENTS_CA_DIR}/ca.crt` : `${TLS_DIR}/ca.crt`)] : []),
    ],
  };
}

/** TLS inputs from the spec alone: an existing Secret is mounted as it is; other modes need the reconciler. */
export function specTlsInputs(spec: RobustMQClusterSpec, mode: TlsMode): TlsInputs {
  return mode === 'secret' && spec.tls.secretName !== undefined ? { mode, mountSecret: spec.tls.secretName } : { mode };
}

/** The cert-manager Certificate for the brokers; its Secret carries our labels (secretTemplate) so the operator's informer sees it. */
export function brokerCertificate(cr: RobustMQCluster, spec: RobustMQClusterSpec, sans: string[]): KubeObject {
  const c = cr.metadata.name;
  const n = names(c);
  const ref = spec.tls.issuerRef!;
  const dnsNames = sans.filter((x) => x.startsWith('dns:')).map((x) => x.slice(4));
  const ipAddresses = sans.filter((x) => x.startsWith('ip:')).map((x) => x.slice(3));
  return {
    apiVersion: 'cert-manager.io/v1',
    kind: 'Certificate',
    metadata: { name: n.brokerTls, namespace: cr.metadata.namespace ?? 'default', labels: roleLabels(c, 'broker') },
    spec: {
      secretName: n.brokerTls,
      secretTemplate: { labels: roleLabels(c, 'broker') },
      dnsNames,
      ...(ipAddresses.length > 0 ? { ipAddresses } : {}),
      duration: `${spec.tls.validityDays * 24}h`,
      renewBefore: `${spec.tls.renewalDays * 24}h`,
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
      usages: ['server auth', 'digital signature', 'key encipherment'],
      issuerRef: { name: ref.name, kind: ref.kind, group: ref.group ?? 'cert-manager.io' },
    },
  };
}

function claimTemplate(c: string, role: 'meta' | 'journal', spec: RobustMQClusterSpec): unknown {
  const s = spec[role].storage;
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name: 'data', labels: roleLabels(c, role) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      resources: { requests: { storage: s.size } },
      ...(s.storageClassName !== undefined ? { storageClassName: s.storageClassName } : {}),
    },
  };
}

function metaStatefulSet(cr: RobustMQCluster, spec: RobustMQClusterSpec, inp: DesiredInputs, configHash: string): KubeObject {
  const c = cr.metadata.name;
  const ns = cr.metadata.namespace ?? 'default';
  const n = names(c);
  const t = spec.meta.template;
  const sts: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: n.meta, namespace: ns, labels: roleLabels(c, 'meta') },
    spec: {
      serviceName: n.metaHeadless,
      replicas: inp.metaReplicas,
      ordinals: { start: 1 },
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      persistentVolumeClaimRetentionPolicy: {
        whenScaled: spec.meta.storage.deleteClaimOnScaleDown ? 'Delete' : 'Retain',
        whenDeleted: spec.meta.storage.deleteClaimOnDelete ? 'Delete' : 'Retain',
      },
      selector: { matchLabels: selectorLabels(c, 'meta') },
      template: {
        metadata: {
          labels: { ...(t?.labels ?? {}), ...roleLabels(c, 'meta') },
          annotations: { ...(t?.annotations ?? {}), [Annotations.ConfigHash]: configHash },
        },
        spec: {
          readinessGates: [{ conditionType: READINESS_GATE_VOTER }],
          securityContext,
          terminationGracePeriodSeconds: t?.terminationGracePeriodSeconds ?? 60,
          ...podScheduling(c, 'meta', t),
          containers: [
            {
              name: 'meta',
              image: imageOf(spec),
              ...(spec.imagePullPolicy ? { imagePullPolicy: spec.imagePullPolicy } : {}),
              command: ['/bin/sh', '-c', META_START_SCRIPT],
              env: [
                fieldEnv('POD_NAME', 'metadata.name'),
                fieldEnv('ROBUSTMQ_NODE_ID', `metadata.labels['${Labels.PodIndex}']`),
                ...commonEnv(c, ns, 'meta'),
                env('ROBUSTMQ_GRPC_PORT', String(Ports.grpcMeta)),
                env('ROBUSTMQ_ADVERTISE_HOST', `$(POD_NAME).${n.metaHeadless}.${ns}.svc`),
                { name: 'RMQ_META_MODE', valueFrom: { configMapKeyRef: { name: n.bootstrap, key: 'mode' } } },
                { name: 'RMQ_META_PEERS', valueFrom: { configMapKeyRef: { name: n.bootstrap, key: 'peers' } } },
                { name: 'ROBUSTMQ_META_CLUSTER_ID', valueFrom: { configMapKeyRef: { name: n.bootstrap, key: 'clusterId' } } },
              ],
              ports: [
                { name: 'grpc', containerPort: Ports.grpcMeta, protocol: 'TCP' },
                { name: 'metrics', containerPort: Ports.http, protocol: 'TCP' },
              ],
              ...probes,
              lifecycle: { preStop: { exec: { command: ['/bin/sh', '-c', META_PRESTOP_SCRIPT] } } },
              ...(spec.meta.resources ? { resources: spec.meta.resources } : {}),
              securityContext: containerSecurity,
              volumeMounts: mounts(true),
            },
          ],
          volumes: volumes(c),
        },
      },
      volumeClaimTemplates: [claimTemplate(c, 'meta', spec)],
    },
  };
  return mergePatch(sts, spec.overrides?.meta);
}

function journalStatefulSet(cr: RobustMQCluster, spec: RobustMQClusterSpec, inp: DesiredInputs, configHash: string): KubeObject {
  const c = cr.metadata.name;
  const ns = cr.metadata.namespace ?? 'default';
  const n = names(c);
  const t = spec.journal.template;
  const sts: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: n.journal, namespace: ns, labels: roleLabels(c, 'journal') },
    spec: {
      serviceName: n.journalHeadless,
      replicas: inp.journalReplicas,
      ordinals: { start: 1 },
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      persistentVolumeClaimRetentionPolicy: {
        whenScaled: spec.journal.storage.deleteClaimOnScaleDown ? 'Delete' : 'Retain',
        whenDeleted: spec.journal.storage.deleteClaimOnDelete ? 'Delete' : 'Retain',
      },
      selector: { matchLabels: selectorLabels(c, 'journal') },
      template: {
        metadata: {
          labels: { ...(t?.labels ?? {}), ...roleLabels(c, 'journal') },
          annotations: { ...(t?.annotations ?? {}), [Annotations.ConfigHash]: configHash },
        },
        spec: {
          securityContext,
          terminationGracePeriodSeconds: t?.terminationGracePeriodSeconds ?? 60,
          ...podScheduling(c, 'journal', t),
          containers: [
            {
              name: 'journal',
              image: imageOf(spec),
              ...(spec.imagePullPolicy ? { imagePullPolicy: spec.imagePullPolicy } : {}),
              command: ['/bin/sh', '-c', JOURNAL_START_SCRIPT],
              env: [
                fieldEnv('POD_NAME', 'metadata.name'),
                fieldEnv('RMQ_POD_INDEX', `metadata.labels['${Labels.PodIndex}']`),
                ...commonEnv(c, ns, 'journal'),
                env('ROBUSTMQ_GRPC_PORT', String(Ports.grpcJournal)),
                env('ROBUSTMQ_ADVERTISE_HOST', `$(POD_NAME).${n.journalHeadless}.${ns}.svc`),
              ],
              ports: [
                { name: 'grpc', containerPort: Ports.grpcJournal, protocol: 'TCP' },
                { name: 'metrics', containerPort: Ports.http, protocol: 'TCP' },
              ],
              ...probes,
              ...(spec.journal.resources ? { resources: spec.journal.resources } : {}),
              securityContext: containerSecurity,
              volumeMounts: mounts(true),
            },
          ],
          volumes: volumes(c),
        },
      },
      volumeClaimTemplates: [claimTemplate(c, 'journal', spec)],
    },
  };
  return mergePatch(sts, spec.overrides?.journal);
}

/**
 * The broker Deployment. While autoscaling is on, `replicas` is left out: the HPA owns it, and
 * sending it (even unchanged) from our field manager would fight the HPA on every reconcile.
 */
function brokerDeployment(cr: RobustMQCluster, spec: RobustMQClusterSpec, configHash: string, tlsIn: TlsInputs): KubeObject {
  const c = cr.metadata.name;
  const ns = cr.metadata.namespace ?? 'default';
  const n = names(c);
  const t = spec.broker.template;
  const tls = tlsVolume(spec, c, tlsIn);
  const dep: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: n.broker, namespace: ns, labels: roleLabels(c, 'broker') },
    spec: {
      ...(spec.broker.autoscaling.enabled ? {} : { replicas: spec.broker.replicas }),
      selector: { matchLabels: selectorLabels(c, 'broker') },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
      template: {
        metadata: {
          labels: { ...(t?.labels ?? {}), ...roleLabels(c, 'broker') },
          annotations: { ...(t?.annotations ?? {}), [Annotations.ConfigHash]: configHash },
        },
        spec: {
          readinessGates: [{ conditionType: READINESS_GATE_REGISTERED }],
          securityContext,
          terminationGracePeriodSeconds: t?.terminationGracePeriodSeconds ?? spec.broker.drain.timeoutSeconds + 15,
          ...podScheduling(c, 'broker', t),
          containers: [
            {
              name: 'broker',
              image: imageOf(spec),
              ...(spec.imagePullPolicy ? { imagePullPolicy: spec.imagePullPolicy } : {}),
              command: ['/bin/sh', '-c', BROKER_START_SCRIPT],
              env: [
                // The name the broker registers in meta under; the registered readiness gate matches it to this pod.
                fieldEnv('POD_NAME', 'metadata.name'),
                fieldEnv('ROBUSTMQ_ADVERTISE_HOST', 'status.podIP'),
                ...commonEnv(c, ns, 'broker'),
                env('ROBUSTMQ_JOURNAL_ENDPOINT', `${n.journalHeadless}.${ns}.svc:${Ports.grpcJournal}`),
                env('ROBUSTMQ_SHUTDOWN_TIMEOUT_MS', String(spec.broker.drain.timeoutSeconds * 1000)),
                ...spec.listeners.map((l) => env(listenerPortEnv(l), String(l.port))),
                ...tls.env,
              ],
              ports: [
                ...spec.listeners.map((l) => ({ name: l.name, containerPort: l.port, protocol: 'TCP' })),
                { name: 'metrics', containerPort: Ports.http, protocol: 'TCP' },
              ],
              ...probes,
              // Let endpoint removal propagate before the server starts its own drain on SIGTERM.
              lifecycle: { preStop: { sleep: { seconds: 5 } } },
              ...(spec.broker.resources ? { resources: spec.broker.resources } : {}),
              securityContext: containerSecurity,
              volumeMounts: [...mounts(false), ...tls.mounts],
            },
          ],
          volumes: [...volumes(c), ...tls.volumes],
        },
      },
    },
  };
  return mergePatch(dep, spec.overrides?.broker);
}

function service(cr: RobustMQCluster, name: string, role: Role, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: cr.metadata.namespace ?? 'default', labels: roleLabels(cr.metadata.name, role) },
    spec: { selector: selectorLabels(cr.metadata.name, role), ...spec },
  };
}

function services(cr: RobustMQCluster, spec: RobustMQClusterSpec): KubeObject[] {
  const c = cr.metadata.name;
  const n = names(c);
  const tcp = (name: string, port: number) => ({ name, port, targetPort: port, protocol: 'TCP' });
  const internal = spec.listeners.filter((l) => l.type === 'internal');
  const external = spec.listeners.filter((l) => l.type !== 'internal');
  return [
    service(cr, n.metaHeadless, 'meta', {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      ports: [tcp('grpc', Ports.grpcMeta), tcp('metrics', Ports.http)],
    }),
    service(cr, n.meta, 'meta', { type: 'ClusterIP', ports: [tcp('grpc', Ports.grpcMeta), tcp('http', Ports.http)] }),
    service(cr, n.journalHeadless, 'journal', {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      ports: [tcp('grpc', Ports.grpcJournal), tcp('metrics', Ports.http)],
    }),
    mergePatch(
      service(cr, n.broker, 'broker', { type: 'ClusterIP', ports: [...internal.map((l) => tcp(l.name, l.port)), tcp('http', Ports.http)] }),
      spec.overrides?.services,
    ),
    ...external.map((l) =>
      mergePatch(
        service(cr, n.listener(l.name), 'broker', {
          type: l.type === 'loadbalancer' ? 'LoadBalancer' : 'NodePort',
          externalTrafficPolicy: 'Local',
          ports: [tcp(l.name, l.port)],
        }),
        spec.overrides?.services,
      ),
    ),
  ];
}

function pdb(cr: RobustMQCluster, role: Role, maxUnavailable: number | string, extra: Record<string, unknown> = {}): KubeObject {
  const c = cr.metadata.name;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: `${c}-${role}`, namespace: cr.metadata.namespace ?? 'default', labels: roleLabels(c, role) },
    spec: { maxUnavailable, selector: { matchLabels: selectorLabels(c, role) }, ...extra },
  };
}

function hpa(cr: RobustMQCluster, spec: RobustMQClusterSpec): KubeObject {
  const c = cr.metadata.name;
  const a = spec.broker.autoscaling;
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: names(c).broker, namespace: cr.metadata.namespace ?? 'default', labels: roleLabels(c, 'broker') },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: names(c).broker },
      minReplicas: a.minReplicas,
      maxReplicas: a.maxReplicas,
      metrics: a.metrics ?? [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
      // Scaling brokers down disconnects clients, who reconnect all at once: go slowly.
      behavior: a.behavior ?? {
        scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Pods', value: 1, periodSeconds: 120 }] },
        scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Percent', value: 100, periodSeconds: 60 }] },
      },
    },
  };
}

/** "1=<pod>.<headless>.<ns>.svc:1228,…" for the founding voters 1..replicas. */
export function bootstrapPeers(cr: RobustMQCluster, replicas: number): string {
  const n = names(cr.metadata.name);
  const ns = cr.metadata.namespace ?? 'default';
  return Array.from({ length: replicas }, (_, i) => `${i + 1}=${n.metaPod(i + 1)}.${n.metaHeadless}.${ns}.svc:${Ports.grpcMeta}`).join(',');
}

/** gRPC address of meta node `id`, as meta's membership API wants it. */
export function metaNodeAddress(cr: RobustMQCluster, id: number): string {
  const n = names(cr.metadata.name);
  return `${n.metaPod(id)}.${n.metaHeadless}.${cr.metadata.namespace ?? 'default'}.svc:${Ports.grpcMeta}`;
}

/** The bootstrap ConfigMap's peers are fixed at creation: they name the founding voters only. */
export function bootstrapConfigMap(cr: RobustMQCluster, inp: DesiredInputs, peers: string): KubeObject {
  const c = cr.metadata.name;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: names(c).bootstrap, namespace: cr.metadata.namespace ?? 'default', labels: roleLabels(c, 'meta') },
    data: { mode: inp.bootstrapMode, peers, clusterId: inp.clusterId },
  };
}

/**
 * Every object of a cluster, as a pure function of the spec and the observed inputs. Order is
 * apply order: configuration first, Services before the workloads that need their DNS names.
 */
export function desiredObjects(cr: RobustMQCluster, spec: RobustMQClusterSpec, inp: DesiredInputs, peers: string): KubeObject[] {
  const c = cr.metadata.name;
  const ns = cr.metadata.namespace ?? 'default';
  const serverYaml = renderServerConfig(spec);
  const configHash = hashOf(serverYaml, imageOf(spec), spec.tls.secretName ?? '');
  const owner = ownerReference(cr);
  const tls = inp.tls ?? specTlsInputs(spec, spec.listeners.some((l) => l.tls) ? (spec.tls.secretName ? 'secret' : 'generated') : 'none');
  const objs: KubeObject[] = [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: names(c).config, namespace: ns, labels: commonLabels(c) },
      data: { 'server.yaml': serverYaml },
    },
    bootstrapConfigMap(cr, inp, peers),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: names(c).admin, namespace: ns, labels: commonLabels(c) },
      type: 'Opaque',
      stringData: { token: inp.adminToken },
    },
    ...(tls.secrets ?? []).map((x): KubeObject => ({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: x.name, namespace: ns },
      type: x.type,
      data: x.data,
    })),
    ...(tls.certificateSans ? [brokerCertificate(cr, spec, tls.certificateSans)] : []),
    ...services(cr, spec),
    metaStatefulSet(cr, spec, inp, configHash),
    journalStatefulSet(cr, spec, inp, configHash),
    brokerDeployment(cr, spec, configHash, tls),
    pdb(cr, 'meta', 1),
    pdb(cr, 'journal', 1),
    pdb(cr, 'broker', '25%', { unhealthyPodEvictionPolicy: 'AlwaysAllow' }),
    ...(spec.broker.autoscaling.enabled ? [hpa(cr, spec)] : []),
    ...(spec.metrics.podMonitor.enabled ? [podMonitor(cr, spec)] : []),
  ];
  for (const o of objs) {
    o.metadata.ownerReferences = [owner];
    o.metadata.labels = { ...commonLabels(c), ...(o.metadata.labels ?? {}) };
  }
  return objs;
}

function podMonitor(cr: RobustMQCluster, spec: RobustMQClusterSpec): KubeObject {
  const c = cr.metadata.name;
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PodMonitor',
    metadata: {
      name: c,
      namespace: cr.metadata.namespace ?? 'default',
      labels: { ...commonLabels(c), ...(spec.metrics.podMonitor.labels ?? {}) },
    },
    spec: {
      selector: { matchLabels: { [Labels.Instance]: c, [Labels.ManagedBy]: MANAGED_BY } },
      podMetricsEndpoints: [{ port: 'metrics', path: '/metrics', interval: '30s' }],
    },
  };
}
