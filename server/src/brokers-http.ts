import { prefixEnd, type MetaClient } from '@robustmq/meta';
import { BROKERS_PREFIX, type BrokerRegistration } from '@robustmq/broker';
import { apiHandler, sendJson, type AdminHttp } from './admin-http.js';

/**
 * The live brokers in the admin API: every registration under `/brokers/` in meta (each held by
 * its broker's lease, so a stopped broker is gone at once and a crashed one after
 * `broker.registrationTtlMs`). The operator reads this to mark broker pods registered.
 *
 *   GET /api/v1/brokers → {"brokers": [{nodeId, name, host, ports, version, startedAt}, …]} (by node id)
 */
export function registerBrokerRoutes(http: AdminHttp, meta: () => MetaClient): void {
  http.route(
    'GET',
    '/api/v1/brokers',
    apiHandler(async (_req, res) => {
      const r = await meta().range(BROKERS_PREFIX, prefixEnd(BROKERS_PREFIX));
      const brokers: BrokerRegistration[] = [];
      for (const kv of r.kvs) {
        try {
          brokers.push(JSON.parse(kv.value.toString('utf8')) as BrokerRegistration);
        } catch {
          // not a registration (written by hand): left out
        }
      }
      brokers.sort((a, b) => a.nodeId - b.nodeId);
      sendJson(res, 200, { brokers });
    }),
  );
}
