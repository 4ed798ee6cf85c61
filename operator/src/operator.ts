import { createServer, type Server } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import { closeServer, createMetricsRegistry, listen, type Logger } from '@robustmq/common';
import type { RobustMQCluster } from './api/types.js';
import { Controller } from './controller.js';
import { LeaderElector } from './leader-election.js';
import type { MetaAdmin } from './meta-admin.js';
import { OperatorMetrics } from './metrics.js';

export const OPERATOR_VERSION = '0.1.0';

export interface OperatorOptions {
  kc: KubeConfig;
  log: Logger;
  namespace: string;
  watchNamespace?: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  metricsHost: string;
  metricsPort: number;
  concurrency: number;
  metaAdmin: (cr: RobustMQCluster, token: string) => MetaAdmin;
  busyRequeueMs?: number;
  idleRequeueMs?: number;
  relistMs?: number;
  backoff?: { baseMs: number; maxMs: number };
  /** Called when the Lease is lost (main.ts exits the process). */
  onLeadershipLost: () => void;
}

/**
 * One operator replica: caches, leader election, the controller, and the metrics and health
 * endpoint (/metrics, /healthz, /readyz). main.ts runs one; tests run two against the emulator.
 */
export class Operator {
  readonly controller: Controller;
  readonly elector: LeaderElector;
  readonly metrics: OperatorMetrics;
  readonly #o: OperatorOptions;
  readonly #abort = new AbortController();
  readonly #server: Server;
  #port = 0;

  constructor(o: OperatorOptions) {
    this.#o = o;
    const registry = createMetricsRegistry({ service: 'operator' });
    this.metrics = new OperatorMetrics(registry);
    this.controller = new Controller({
      kc: o.kc,
      log: o.log,
      metrics: this.metrics,
      ...(o.watchNamespace ? { namespace: o.watchNamespace } : {}),
      metaAdmin: o.metaAdmin,
      operatorVersion: OPERATOR_VERSION,
      concurrency: o.concurrency,
      ...(o.busyRequeueMs !== undefined ? { busyRequeueMs: o.busyRequeueMs } : {}),
      ...(o.idleRequeueMs !== undefined ? { idleRequeueMs: o.idleRequeueMs } : {}),
      ...(o.relistMs !== undefined ? { relistMs: o.relistMs } : {}),
      ...(o.backoff ? { backoff: o.backoff } : {}),
    });
    this.elector = new LeaderElector(
      this.controller.kube,
      {
        namespace: o.namespace,
        name: o.leaseName,
        identity: o.identity,
        leaseDurationMs: o.leaseDurationMs,
        renewDeadlineMs: o.renewDeadlineMs,
        retryPeriodMs: o.retryPeriodMs,
      },
      o.log,
    );
    let synced = false;
    this.#server = createServer((req, res) => {
      if (req.url === '/metrics') {
        void registry.metrics().then((body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body));
      } else if (req.url === '/healthz') res.writeHead(200).end('ok');
      else if (req.url === '/readyz') res.writeHead(synced ? 200 : 503).end(synced ? 'ok' : 'caches not synced');
      else res.writeHead(404).end();
    });
    this.#markSynced = () => (synced = true);
  }
  readonly #markSynced: () => void;

  get metricsPort(): number {
    return this.#port;
  }

  /** Starts the caches and the election; reconciling begins once this replica leads. */
  async start(): Promise<void> {
    this.#port = await listen(this.#server as never, 'metrics', this.#o.metricsHost, this.#o.metricsPort);
    await this.controller.startCaches();
    this.#markSynced();
    void this.elector
      .run(this.#abort.signal, () => {
        this.metrics.isLeader.set(0);
        void this.controller.stop();
        this.#o.onLeadershipLost();
      })
      .then(() => {
        if (this.#abort.signal.aborted) return;
        this.metrics.isLeader.set(1);
        this.controller.startWorking();
      });
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.controller.stop();
    await this.elector.release();
    this.#server.closeAllConnections();
    await closeServer(this.#server as never);
  }
}
