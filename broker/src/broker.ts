import type { Registry } from 'prom-client';
import type { Logger } from '@robustmq/common';
import { TcpListener } from './tcp-listener.js';
import { createListenerMetrics } from './metrics.js';
import { refuseMqttConnection } from './mqtt/unavailable.js';
import { refuseKafkaConnection } from './kafka/unavailable.js';

export interface BrokerOptions {
  host: string;
  mqttPort: number;
  kafkaPort: number;
  log: Logger;
  registry: Registry;
}

/**
 * The broker role: client-facing MQTT and Kafka listeners. Stateless; durable state lives in
 * meta and the journal.
 */
export class Broker {
  readonly listeners: readonly TcpListener[];
  readonly #log: Logger;

  constructor(opts: BrokerOptions) {
    this.#log = opts.log;
    const metrics = createListenerMetrics(opts.registry);
    const mqttLog = opts.log.child({ component: 'mqtt' });
    const kafkaLog = opts.log.child({ component: 'kafka' });
    this.listeners = [
      new TcpListener({
        name: 'mqtt',
        host: opts.host,
        port: opts.mqttPort,
        log: mqttLog,
        metrics,
        onConnection: (s) => refuseMqttConnection(s, mqttLog),
      }),
      new TcpListener({
        name: 'kafka',
        host: opts.host,
        port: opts.kafkaPort,
        log: kafkaLog,
        metrics,
        onConnection: (s) => refuseKafkaConnection(s, kafkaLog),
      }),
    ];
  }

  /** Closes every listener; connections get `graceMs` to end on their own. */
  async close(graceMs: number): Promise<void> {
    await Promise.all(this.listeners.map((l) => l.close(graceMs)));
    this.#log.info('broker stopped');
  }
}
