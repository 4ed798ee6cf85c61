import type { Registry } from 'prom-client';
import type { Logger } from '@robustmq/common';
import type { MetaClient } from '@robustmq/meta';
import type { JournalClient } from '@robustmq/journal';
import { TcpListener } from './tcp-listener.js';
import { createListenerMetrics } from './metrics.js';
import { MqttEngine } from './mqtt/engine.js';
import type { MqttConfig } from './mqtt/config.js';
import type { MqttStores } from './mqtt/stores/types.js';
import { refuseKafkaConnection } from './kafka/unavailable.js';

export interface BrokerOptions {
  host: string;
  mqttPort: number;
  kafkaPort: number;
  log: Logger;
  registry: Registry;
  /** MQTT engine configuration; unset keys take `MQTT_DEFAULTS` (broker/src/mqtt/config.ts). */
  mqtt?: Partial<MqttConfig>;
  /**
   * MQTT persistence: stores to write through (journal/meta-backed in a cluster), or a factory
   * opening them. Default: file stores under `dataDir`, or memory stores without one.
   */
  mqttStores?: MqttStores | (() => Promise<MqttStores>);
  /** Directory for the file-backed MQTT stores (sessions, inboxes, retained messages). */
  dataDir?: string;
  /** Cluster metadata (users, ACLs, streams, routes, offsets): in-process or over gRPC. */
  meta?: MetaClient;
  /** Storage of streams and inboxes: in-process or over gRPC. */
  journal?: JournalClient;
}

/**
 * The broker role: client-facing MQTT and Kafka listeners. Durable state lives in meta and the
 * journal (through the MQTT store interfaces).
 */
export class Broker {
  readonly listeners: readonly TcpListener[];
  /** The MQTT protocol engine every MQTT connection is handed to. */
  readonly mqtt: MqttEngine;
  readonly #log: Logger;

  constructor(opts: BrokerOptions) {
    this.#log = opts.log;
    const metrics = createListenerMetrics(opts.registry);
    const mqttLog = opts.log.child({ component: 'mqtt' });
    const kafkaLog = opts.log.child({ component: 'kafka' });
    this.mqtt = new MqttEngine({
      log: mqttLog,
      registry: opts.registry,
      ...(opts.mqtt !== undefined ? { config: opts.mqtt } : {}),
      ...(opts.mqttStores !== undefined ? { stores: opts.mqttStores } : {}),
      ...(opts.dataDir !== undefined ? { dataDir: opts.dataDir } : {}),
    });
    this.listeners = [
      new TcpListener({
        name: 'mqtt',
        host: opts.host,
        port: opts.mqttPort,
        log: mqttLog,
        metrics,
        onConnection: (s) => this.mqtt.handleSocket(s),
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

  /** Resolves once the MQTT stores are open and sessions restored (connections wait for it anyway). */
  ready(): Promise<void> {
    return this.mqtt.ready;
  }

  /** Closes every listener; connections get `graceMs` to end on their own; MQTT state is flushed. */
  async close(graceMs: number): Promise<void> {
    this.mqtt.shutdown();
    await Promise.all(this.listeners.map((l) => l.close(graceMs)));
    await this.mqtt.close();
    this.#log.info('broker stopped');
  }
}
