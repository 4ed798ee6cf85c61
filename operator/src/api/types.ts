/** The RobustMQCluster resource (robustmq.io/v1alpha1) as TypeScript types; the CRD schema is in crd.ts. */

export const GROUP = 'robustmq.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'RobustMQCluster';
export const PLURAL = 'robustmqclusters';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface StorageSpec {
  size: string;
  storageClassName?: string;
  /** Delete the PVC of a node removed by a scale-down, so a later scale-up starts empty. */
  deleteClaimOnScaleDown: boolean;
  /** Delete every PVC when the RobustMQCluster is deleted. */
  deleteClaimOnDelete: boolean;
}

/** Scheduling and metadata added to a role's pods. */
export interface PodTemplateSpec {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  affinity?: unknown;
  topologySpreadConstraints?: unknown[];
  priorityClassName?: string;
  terminationGracePeriodSeconds?: number;
}

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface MetaSpec {
  replicas: number;
  storage: StorageSpec;
  resources?: ResourceRequirements;
  template?: PodTemplateSpec;
  /** A learner is promoted once it is at most this many entries behind the leader. */
  maxLearnerLagEntries: number;
}

export const JournalScaleDown = { Drain: 'Drain', Block: 'Block' } as const;
export type JournalScaleDown = (typeof JournalScaleDown)[keyof typeof JournalScaleDown];

export interface JournalSpec {
  replicas: number;
  storage: StorageSpec;
  resources?: ResourceRequirements;
  template?: PodTemplateSpec;
  scaleDown: JournalScaleDown;
}

export interface AutoscalingSpec {
  enabled: boolean;
  minReplicas: number;
  maxReplicas: number;
  /** autoscaling/v2 MetricSpec list; default: 70 % CPU. */
  metrics?: unknown[];
  /** autoscaling/v2 HorizontalPodAutoscalerBehavior; default: slow scale-down. */
  behavior?: unknown;
}

export interface BrokerSpec {
  replicas: number;
  resources?: ResourceRequirements;
  template?: PodTemplateSpec;
  autoscaling: AutoscalingSpec;
  drain: { timeoutSeconds: number; disconnectRatePerSecond: number };
}

export const ListenerProtocol = { Mqtt: 'mqtt', MqttWs: 'mqtt-ws', Kafka: 'kafka' } as const;
export type ListenerProtocol = (typeof ListenerProtocol)[keyof typeof ListenerProtocol];
export const ListenerType = { Internal: 'internal', LoadBalancer: 'loadbalancer', NodePort: 'nodeport' } as const;
export type ListenerType = (typeof ListenerType)[keyof typeof ListenerType];

export interface ListenerSpec {
  name: string;
  protocol: ListenerProtocol;
  port: number;
  tls: boolean;
  type: ListenerType;
  authentication?: { type: 'password' | 'tls' | 'scram-sha-512' };
}

export interface CaSpec {
  /** Generate and renew this CA; false = the user provides `<name>-cluster-ca` / `<name>-clients-ca` (ca.crt, ca.key). */
  generate: boolean;
  validityDays: number;
  renewalDays: number;
}

export interface IssuerRef {
  name: string;
  /** Issuer or ClusterIssuer for cert-manager.io; any kind for an external issuer group. */
  kind: string;
  group?: string;
}

/**
 * Certificates of the TLS listeners, in one of three modes: `generated` (neither secretName nor
 * issuerRef: the operator runs a cluster CA and a clients CA and issues the brokers' certificate),
 * `secret` (secretName: mounted as it is) and `cert-manager` (issuerRef: a Certificate is applied
 * and the Secret cert-manager writes is mounted).
 */
export interface TlsSpec {
  clusterCa: CaSpec;
  clientsCa: CaSpec;
  /** Lifetime of the generated or cert-manager server certificate. */
  validityDays: number;
  /** Issue the server certificate again this many days before it expires. */
  renewalDays: number;
  /** Extra DNS names or IP addresses of the server certificate (NodePort addresses, ingress names). */
  alternativeNames?: string[];
  /** An existing Secret with tls.crt and tls.key (and ca.crt for mTLS) for the listeners. */
  secretName?: string;
  /** A cert-manager issuer that signs the listener certificate. */
  issuerRef?: IssuerRef;
}

export const TlsMode = { None: 'none', Generated: 'generated', Secret: 'secret', CertManager: 'cert-manager' } as const;
export type TlsMode = (typeof TlsMode)[keyof typeof TlsMode];

export interface MetricsSpec {
  enabled: boolean;
  podMonitor: { enabled: boolean; labels?: Record<string, string> };
}

export interface OverridesSpec {
  meta?: Record<string, unknown>;
  journal?: Record<string, unknown>;
  broker?: Record<string, unknown>;
  services?: Record<string, unknown>;
}

export interface RobustMQClusterSpec {
  version: string;
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  meta: MetaSpec;
  journal: JournalSpec;
  broker: BrokerSpec;
  listeners: ListenerSpec[];
  tls: TlsSpec;
  config?: Record<string, unknown>;
  metrics: MetricsSpec;
  overrides?: OverridesSpec;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

export const MembershipOp = {
  AddLearner: 'AddLearner',
  Promote: 'Promote',
  RemoveVoter: 'RemoveVoter',
  RemoveLearner: 'RemoveLearner',
  ReplaceVoter: 'ReplaceVoter',
  TransferLeader: 'TransferLeader',
} as const;
export type MembershipOp = (typeof MembershipOp)[keyof typeof MembershipOp];

export interface PendingChange {
  op: MembershipOp;
  nodeId: number;
  phase: string;
  startedAt: string;
}

export interface MetaMemberStatus {
  nodeId: number;
  pod: string;
  /** UID of the node's PVC when it became a member: a different UID means the disk was replaced. */
  incarnation?: string;
}

export interface RobustMQClusterStatus {
  observedGeneration?: number;
  clusterId?: string;
  version?: string;
  operatorVersion?: string;
  conditions?: Condition[];
  meta?: {
    replicas: number;
    readyReplicas: number;
    updatedReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
    leader?: { nodeId: number; pod: string } | null;
    voters: MetaMemberStatus[];
    learners: MetaMemberStatus[];
    pendingChange: PendingChange | null;
  };
  journal?: { replicas: number; readyReplicas: number; draining: number[] };
  broker?: { replicas: number; readyReplicas: number; registered: number; selector: string };
  /** The listener certificate: mode, the mounted Secret, expiry of the certificate and of the generated CAs. */
  tls?: { mode: TlsMode; secretName: string; notAfter?: string; clusterCaNotAfter?: string; clientsCaNotAfter?: string } | null;
  listeners?: { name: string; type: ListenerType; addresses: { host: string; port: number }[]; bootstrap: string }[];
}

export interface RobustMQCluster {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: RobustMQClusterSpec;
  status?: RobustMQClusterStatus;
}

/** Annotations and labels the operator reads or writes. */
export const Annotations = {
  Paused: 'robustmq.io/pause-reconciliation',
  ConfigHash: 'robustmq.io/config-hash',
  SkipPreStopChecks: 'robustmq.io/skip-prestop-checks',
} as const;
export const Labels = {
  Name: 'app.kubernetes.io/name',
  Instance: 'app.kubernetes.io/instance',
  ManagedBy: 'app.kubernetes.io/managed-by',
  Component: 'app.kubernetes.io/component',
  Cluster: 'robustmq.io/cluster',
  Role: 'robustmq.io/role',
  PodIndex: 'apps.kubernetes.io/pod-index',
  RevisionHash: 'controller-revision-hash',
} as const;
export const MANAGED_BY = 'robustmq-operator';
export const FINALIZER = 'robustmq.io/finalizer';
export const READINESS_GATE_VOTER = 'robustmq.io/raft-voter';
export const READINESS_GATE_REGISTERED = 'robustmq.io/registered';
