import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError, LogLevels } from '@robustmq/common';

const num = () => z.coerce.number().int();

const Config = z.object({
  logLevel: z.enum(LogLevels).default('info'),
  /** Namespace to watch; empty = all namespaces (the chart's default, with a ClusterRole). */
  watchNamespace: z.string().default(''),
  /** Namespace of the leader-election Lease (the operator's own). */
  namespace: z.string().min(1).default('default'),
  leaseName: z.string().min(1).default('robustmq-operator'),
  identity: z.string().min(1).default(hostname()),
  leaseDurationMs: num().min(1000).default(15_000),
  renewDeadlineMs: num().min(500).default(10_000),
  retryPeriodMs: num().min(100).default(2000),
  metricsPort: num().min(0).max(65535).default(8080),
  metricsHost: z.string().default('0.0.0.0'),
  concurrency: num().min(1).default(4),
  /** Scheme and port of meta's admin API; the host is `<cluster>-meta.<namespace>.svc`. */
  metaAdminPort: num().min(1).max(65535).default(58080),
});
export type OperatorConfig = Readonly<z.infer<typeof Config>>;

/** The operator's configuration from OPERATOR_* variables; every problem reported at once. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const r = Config.safeParse({
    logLevel: env.OPERATOR_LOG_LEVEL,
    watchNamespace: env.OPERATOR_WATCH_NAMESPACE,
    namespace: env.OPERATOR_NAMESPACE,
    leaseName: env.OPERATOR_LEASE_NAME,
    identity: env.OPERATOR_IDENTITY,
    leaseDurationMs: env.OPERATOR_LEASE_DURATION_MS,
    renewDeadlineMs: env.OPERATOR_RENEW_DEADLINE_MS,
    retryPeriodMs: env.OPERATOR_RETRY_PERIOD_MS,
    metricsPort: env.OPERATOR_METRICS_PORT,
    metricsHost: env.OPERATOR_METRICS_HOST,
    concurrency: env.OPERATOR_CONCURRENCY,
    metaAdminPort: env.OPERATOR_META_ADMIN_PORT,
  });
  if (r.success) return Object.freeze(r.data);
  throw new ConfigError(r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
}
