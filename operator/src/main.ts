import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, createLogger } from '@robustmq/common';
import { loadConfig } from './config.js';
import { HttpMetaAdmin } from './meta-admin.js';
import { names } from './manifests.js';
import { Operator } from './operator.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  process.stderr.write(`${(err as ConfigError).message}\n`);
  process.exit(2);
}
const log = createLogger({ level: config.logLevel, service: 'operator' });
const kc = new KubeConfig();
kc.loadFromDefault(); // in-cluster service account, or KUBECONFIG for development

const operator = new Operator({
  kc,
  log,
  namespace: config.namespace,
  ...(config.watchNamespace ? { watchNamespace: config.watchNamespace } : {}),
  leaseName: config.leaseName,
  identity: config.identity,
  leaseDurationMs: config.leaseDurationMs,
  renewDeadlineMs: config.renewDeadlineMs,
  retryPeriodMs: config.retryPeriodMs,
  metricsHost: config.metricsHost,
  metricsPort: config.metricsPort,
  concurrency: config.concurrency,
  metaAdmin: (cr, token) => {
    const ns = cr.metadata.namespace ?? 'default';
    const n = names(cr.metadata.name);
    return new HttpMetaAdmin({
      baseUrl: `http://${n.meta}.${ns}.svc:${config.metaAdminPort}`,
      nodeUrl: (id) => `http://${n.metaPod(id)}.${n.metaHeadless}.${ns}.svc:${config.metaAdminPort}`,
      token,
    });
  },
  onLeadershipLost: () => process.exit(1),
});

const shutdown = async (signal: string): Promise<void> => {
  log.info({ signal }, 'shutting down');
  await operator.stop();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
await operator.start();
log.info({ metricsPort: operator.metricsPort, identity: config.identity }, 'listening');
