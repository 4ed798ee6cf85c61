import {
  TlsMode,
  type CaSpec,
  type ListenerSpec,
  type RobustMQCluster,
  type RobustMQClusterSpec,
  type StorageSpec,
  type TlsSpec,
} from './types.js';

/** A partially filled spec as users write it (the API server fills CRD defaults; the operator re-applies them). */
export type SpecInput = { [K in keyof RobustMQClusterSpec]?: unknown };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const o = (v: unknown): Record<string, unknown> => (isObj(v) ? v : {});

function storage(v: unknown, size: string): StorageSpec {
  const s = o(v);
  return {
    size: typeof s.size === 'string' || typeof s.size === 'number' ? String(s.size) : size,
    ...(typeof s.storageClassName === 'string' ? { storageClassName: s.storageClassName } : {}),
    deleteClaimOnScaleDown: s.deleteClaimOnScaleDown !== false,
    deleteClaimOnDelete: s.deleteClaimOnDelete === true,
  };
}

const num = (v: unknown, d: number): number => (typeof v === 'number' ? v : d);

function caSpec(v: unknown): CaSpec {
  const c = o(v);
  return { generate: c.generate !== false, validityDays: num(c.validityDays, 365), renewalDays: num(c.renewalDays, 30) };
}

function tlsSpec(v: unknown): TlsSpec {
  const t = o(v);
  const ref = o(t.issuerRef);
  return {
    clusterCa: caSpec(t.clusterCa),
    clientsCa: caSpec(t.clientsCa),
    validityDays: num(t.validityDays, 90),
    renewalDays: num(t.renewalDays, 30),
    ...(Array.isArray(t.alternativeNames) ? { alternativeNames: (t.alternativeNames as unknown[]).map(String) } : {}),
    ...(typeof t.secretName === 'string' ? { secretName: t.secretName } : {}),
    ...(isObj(t.issuerRef)
      ? {
          issuerRef: {
            name: String(ref.name ?? ''),
            kind: String(ref.kind ?? ''),
            group: typeof ref.group === 'string' ? ref.group : 'cert-manager.io',
          },
        }
      : {}),
  };
}

/** How the TLS listeners get their certificate; `none` when no listener has tls. */
export function tlsMode(spec: RobustMQClusterSpec): TlsMode {
  if (!spec.listeners.some((l) => l.tls)) return TlsMode.None;
  if (spec.tls.secretName !== undefined) return TlsMode.Secret;
  if (spec.tls.issuerRef !== undefined) return TlsMode.CertManager;
  return TlsMode.Generated;
}

/** The spec with every default of the CRD filled in (the same defaults as crd.ts). */
export function withDefaults(input: unknown): RobustMQClusterSpec {
  const s = o(input);
  const meta = o(s.meta);
  const journal = o(s.journal);
  const broker = o(s.broker);
  const auto = o(broker.autoscaling);
  const drain = o(broker.drain);
  const metrics = o(s.metrics);
  const listeners = Array.isArray(s.listeners)
    ? (s.listeners as Record<string, unknown>[]).map((l): ListenerSpec => ({
        ...(l as unknown as ListenerSpec),
        tls: l.tls === true,
        type: (l.type as ListenerSpec['type']) ?? 'internal',
      }))
    : [
        { name: 'mqtt', protocol: 'mqtt' as const, port: 1883, tls: false, type: 'internal' as const },
        { name: 'kafka', protocol: 'kafka' as const, port: 9092, tls: false, type: 'internal' as const },
      ];
  return {
    version: typeof s.version === 'string' ? s.version : '0.1.0',
    ...(typeof s.image === 'string' ? { image: s.image } : {}),
    ...(typeof s.imagePullPolicy === 'string' ? { imagePullPolicy: s.imagePullPolicy as 'Always' } : {}),
    meta: {
      ...(meta as object),
      replicas: num(meta.replicas, 3),
      storage: storage(meta.storage, '10Gi'),
      maxLearnerLagEntries: num(meta.maxLearnerLagEntries, 100),
    },
    journal: {
      ...(journal as object),
      replicas: num(journal.replicas, 3),
      storage: storage(journal.storage, '50Gi'),
      scaleDown: journal.scaleDown === 'Block' ? 'Block' : 'Drain',
    },
    broker: {
      ...(broker as object),
      replicas: num(broker.replicas, 2),
      autoscaling: {
        ...(auto as object),
        enabled: auto.enabled !== false,
        minReplicas: num(auto.minReplicas, 2),
        maxReplicas: num(auto.maxReplicas, 10),
      },
      drain: { timeoutSeconds: num(drain.timeoutSeconds, 60), disconnectRatePerSecond: num(drain.disconnectRatePerSecond, 500) },
    },
    listeners,
    tls: tlsSpec(s.tls),
    ...(isObj(s.config) ? { config: s.config } : {}),
    metrics: {
      enabled: metrics.enabled !== false,
      podMonitor: {
        enabled: o(metrics.podMonitor).enabled === true,
        ...(isObj(o(metrics.podMonitor).labels) ? { labels: o(metrics.podMonitor).labels as Record<string, string> } : {}),
      },
    },
    ...(isObj(s.overrides) ? { overrides: s.overrides } : {}),
  };
}

/**
 * The CRD's validation rules (OpenAPI + CEL), repeated here so a cluster whose API server skipped
 * them (an old CRD, a disabled admission) is still refused with a clear condition. Returns every
 * problem found; empty = valid. `old` enables the transition rules.
 */
export function validateSpec(spec: RobustMQClusterSpec, old?: RobustMQCluster): string[] {
  const p: string[] = [];
  const m = spec.meta.replicas;
  if (!Number.isInteger(m) || m < 1 || m > 7 || m % 2 === 0) p.push('spec.meta.replicas: must be odd, 1 to 7');
  if (!Number.isInteger(spec.journal.replicas) || spec.journal.replicas < 1) p.push('spec.journal.replicas: must be at least 1');
  const a = spec.broker.autoscaling;
  if (a.minReplicas > a.maxReplicas) p.push('spec.broker.autoscaling: minReplicas must not exceed maxReplicas');
  const seen = new Set<string>();
  const ports = new Set<number>();
  for (const l of spec.listeners) {
    const k = `${l.protocol}/${l.tls}`;
    if (seen.has(k)) p.push(`spec.listeners[${l.name}]: at most one ${l.protocol} listener with tls=${l.tls}`);
    seen.add(k);
    if (ports.has(l.port)) p.push(`spec.listeners[${l.name}]: port ${l.port} is used twice`);
    ports.add(l.port);
    if (!/^[a-z]([-a-z0-9]{0,13}[a-z0-9])?$/.test(l.name))
      p.push(`spec.listeners[${l.name}]: name must be a DNS label of at most 15 characters`);
  }
  if (spec.tls?.secretName !== undefined && spec.tls.issuerRef !== undefined)
    p.push('spec.tls: secretName and issuerRef are mutually exclusive');
  const t = spec.tls;
  for (const [k, c] of [
    ['spec.tls', t],
    ['spec.tls.clusterCa', t.clusterCa],
    ['spec.tls.clientsCa', t.clientsCa],
  ] as const)
    if (!(c.renewalDays < c.validityDays)) p.push(`${k}: renewalDays must be less than validityDays`);
  if (!(t.clusterCa.validityDays > t.renewalDays + 1))
    p.push('spec.tls.clusterCa.validityDays: must exceed spec.tls.renewalDays + 1 (a server certificate never outlives its CA)');
  const ref = t.issuerRef;
  if (ref !== undefined && (ref.group ?? 'cert-manager.io') === 'cert-manager.io' && !['Issuer', 'ClusterIssuer'].includes(ref.kind))
    p.push('spec.tls.issuerRef.kind: must be Issuer or ClusterIssuer for group cert-manager.io');
  if (old !== undefined) {
    const before = withDefaults(old.spec);
    for (const role of ['meta', 'journal'] as const) {
      if (parseQuantity(spec[role].storage.size) < parseQuantity(before[role].storage.size))
        p.push(`spec.${role}.storage.size: may grow but never shrink (was ${before[role].storage.size})`);
    }
  }
  return p;
}

const SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  m: 1e-3,
};

/** A Kubernetes quantity ("10Gi", "500m", "1e3") as a number; NaN when malformed. */
export function parseQuantity(q: string): number {
  const r = /^([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE])|[eE]([+-]?\d+))?$/.exec(q.trim());
  if (r === null) return NaN;
  const base = Number(r[1]);
  if (r[3] !== undefined) return base * 10 ** Number(r[3]);
  return base * (SUFFIX[r[2] ?? ''] ?? NaN);
}
