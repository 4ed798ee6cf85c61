import { Counter, Gauge, type Registry } from 'prom-client';

/** Listener metrics, labelled by listener name (mqtt, kafka, …). */
export interface ListenerMetrics {
  connections: Gauge<'listener'>;
  accepted: Counter<'listener'>;
  refused: Counter<'listener' | 'reason'>;
}

export function createListenerMetrics(registry: Registry): ListenerMetrics {
  return {
    connections: new Gauge({
      name: 'robustmq_broker_connections',
      help: 'Open client connections per listener',
      labelNames: ['listener'],
      registers: [registry],
    }),
    accepted: new Counter({
      name: 'robustmq_broker_connections_accepted_total',
      help: 'Client connections accepted per listener',
      labelNames: ['listener'],
      registers: [registry],
    }),
    refused: new Counter({
      name: 'robustmq_broker_connections_refused_total',
      help: 'Client connections refused per listener and reason',
      labelNames: ['listener', 'reason'],
      registers: [registry],
    }),
  };
}
