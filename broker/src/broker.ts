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
import { KafkaServer } from './kafka/server.js';
import type { BrokerCluster } from './cluster.js';
import type { KafkaConfig } from './kafka/config.js';
import { BrokerSecurity } from './auth/security.js';
import { TLS_DEFAULTS, type AuthConfig, type LimitsConfig, type TlsConfig } from './auth/config.js';
import { TlsContextSource } from './listeners/tls-context.js';
import { TlsListener } from './listeners/tls-listener.js';
import { WsListener } from './listeners/ws-listener.js';
import type { Listener } from './listeners/types.js';

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
  /** Kafka protocol settings (`kafka.*` server keys); Kafka is served when `meta` and `journal` are given. */
  kafka?: Partial<KafkaConfig> | undefined;
  /** Node id reported to Kafka clients as the broker id (default 1). */
  nodeId?: number | undefined;
  /** The live brokers (registrations in meta) Kafka spreads partition leaders and group coordinators over; default: this one alone. */
  cluster?: BrokerCluster | undefined;
  /** Host Kafka clients are told to connect to (default: `host`, or 127.0.0.1 when it is a wildcard). */
  advertiseHost?: string | undefined;
  /** Port Kafka clients are told to connect to (default: the Kafka listener's bound port; set it behind NAT or a proxy). */
  kafkaAdvertisedPort?: number | undefined;
  /** Kafka over TLS port; bound only when `tls` names a certificate and a key. */
  kafkaTlsPort?: number | undefined;
  /** MQTT over TLS port; bound only when `tls` names a certificate and a key. */
  mqttsPort?: number | undefined;
  /** MQTT over WebSocket port (path /mqtt); not bound when undefined. */
  wsPort?: number | undefined;
  /** MQTT over secure WebSocket port; bound only when `tls` names a certificate and a key. */
  wssPort?: number | undefined;
  /** Certificate, key and CA files of the TLS listeners (reloaded when they change), mTLS. */
  tls?: Partial<TlsConfig> | undefined;
  /**
   * Authentication chain and ACL default; users, ACLs and the deny list live in `meta` (an
   * in-memory store without it). Anonymous access is off unless `allowAnonymous` is set.
   */
  auth?: Partial<AuthConfig> | undefined;
  /** Abuse protection: connection limits and rates, publish rates, flapping bans. */
  limits?: Partial<LimitsConfig> | undefined;
}

/**
 * The broker role: client-facing MQTT and Kafka listeners. Durable state lives in meta and the
 * journal (through the MQTT store interfaces).
 */
export class Broker {
  readonly listeners: readonly Listener[];
  /** Authentication, ACLs, deny list and abuse limits of the MQTT listeners. */
  readonly security: BrokerSecurity;
  readonly #tls: TlsContextSource | undefined;
  /** The MQTT protocol engine every MQTT connection is handed to. */
  readonly mqtt: MqttEngine;
  /** The Kafka protocol (undefined without meta and journal: the Kafka listener then refuses requests). */
  readonly kafka: KafkaServer | undefined;
  readonly #log: Logger;

  constructor(opts: BrokerOptions) {
    this.#log = opts.log;
    const metrics = createListenerMetrics(opts.registry);
    const mqttLog = opts.log.child({ component: 'mqtt' });
    const kafkaLog = opts.log.child({ component: 'kafka' });
    const tlsConfig: TlsConfig = { ...TLS_DEFAULTS, ...opts.tls };
    this.security = new BrokerSecurity({
      log: mqttLog,
      registry: opts.registry,
      meta: opts.meta,
      auth: opts.auth,
      limits: opts.limits,
      certUsernameFrom: tlsConfig.certUsernameFrom,
      reloadCheckMs: tlsConfig.reloadCheckMs,
    });
    const security = this.security;
    const maxPerListener = security.limits.maxConnectionsPerListener;
    const advertiseHost = opts.advertiseHost || (opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host);
    this.kafka =
      opts.meta !== undefined && opts.journal !== undefined
        ? new KafkaServer({
            meta: opts.meta,
            journal: opts.journal,
            log: kafkaLog,
            registry: opts.registry,
            config: opts.kafka,
            nodeId: opts.nodeId ?? 1,
            advertisedHost: () => advertiseHost,
            advertisedPort: () => opts.kafkaAdvertisedPort ?? this.listeners.find((l) => l.name === 'kafka')?.port ?? opts.kafkaPort,
            publish: (m) => this.mqtt.publish(m, undefined),
            users: security.store,
            cluster: opts.cluster,
          })
        : undefined;
    const kafka = this.kafka;
    this.mqtt = new MqttEngine({
      ...(kafka !== undefined ? { onPublish: (m: Parameters<KafkaServer['onPublish']>[0]) => kafka.onPublish(m) } : {}),
      security,
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
        transport: this.mqtt.config.tcpTransport,
        onConnection: (s) => {
          // The socket is already counted: more than the limit means this one is over it.
          const full = maxPerListener > 0 && (this.listeners[0]?.connectionCount ?? 0) > maxPerListener;
          const refused = full ? security.listenerFull('mqtt', s.remoteAddress, maxPerListener) : security.admit('mqtt', s.remoteAddress);
          if (refused !== undefined) {
            metrics.refused.inc({ listener: 'mqtt', reason: refused });
            s.destroy();
            return;
          }
          this.mqtt.handleSocket(s, { listener: 'mqtt', remoteAddress: s.remoteAddress ?? '' });
        },
      }),
      new TcpListener({
        name: 'kafka',
        host: opts.host,
        port: opts.kafkaPort,
        log: kafkaLog,
        metrics,
        transport: kafka?.config.tcpTransport ?? 'node',
        ...(kafka !== undefined ? { maxFrameBytes: kafka.config.maxRequestBytes } : {}),
        onConnection: (s) => {
          if (kafka !== undefined) kafka.handleSocket(s);
          else refuseKafkaConnection(s, kafkaLog);
        },
      }),
    ];
    const useTls =
      TlsContextSource.isConfigured(tlsConfig) &&
      (opts.mqttsPort !== undefined || opts.wssPort !== undefined || opts.kafkaTlsPort !== undefined);
    this.#tls = useTls
      ? new TlsContextSource(tlsConfig, mqttLog, (outcome) => security.metrics.tlsReloads.inc({ listener: 'tls', outcome }))
      : undefined;
    const common = {
      host: opts.host,
      log: mqttLog,
      metrics,
      securityMetrics: security.metrics,
      maxConnections: maxPerListener,
      admit: (listener: string, ip: string | undefined) => security.admit(listener, ip),
      full: (listener: string, ip: string | undefined, max: number) => security.listenerFull(listener, ip, max),
      onConnection: (s: Parameters<MqttEngine['handleSocket']>[0], info: Parameters<MqttEngine['handleSocket']>[1]) =>
        this.mqtt.handleSocket(s, info),
    };
    const maxPayloadBytes = this.mqtt.config.maxPacketSizeBytes + 16;
    const extra: Listener[] = [];
    if (this.#tls !== undefined && opts.mqttsPort !== undefined)
      extra.push(new TlsListener({ ...common, name: 'mqtts', port: opts.mqttsPort, tls: this.#tls }));
    if (opts.wsPort !== undefined) extra.push(new WsListener({ ...common, name: 'ws', port: opts.wsPort, path: '/mqtt', maxPayloadBytes }));
    if (this.#tls !== undefined && opts.wssPort !== undefined)
      extra.push(new WsListener({ ...common, name: 'wss', port: opts.wssPort, path: '/mqtt', maxPayloadBytes, tls: this.#tls }));
    if (this.#tls !== undefined && opts.kafkaTlsPort !== undefined) {
      const advertisedPort = (): number => this.listeners.find((l) => l.name === 'kafka-tls')?.port ?? (opts.kafkaTlsPort as number);
      extra.push(
        new TlsListener({
          ...common,
          name: 'kafka-tls',
          port: opts.kafkaTlsPort,
          log: kafkaLog,
          tls: this.#tls,
          // like the plain Kafka listener: no MQTT connection limits or rates
          maxConnections: 0,
          admit: () => undefined,
          onConnection: (s) => (kafka !== undefined ? kafka.handleSocket(s, { advertisedPort }) : refuseKafkaConnection(s, kafkaLog)),
        }),
      );
    }
    this.listeners = [...this.listeners, ...extra];
  }

  /** Resolves once the MQTT stores are open and sessions restored (connections wait for it anyway). */
  ready(): Promise<void> {
    return this.mqtt.ready;
  }

  /** Closes every listener; connections get `graceMs` to end on their own; MQTT state is flushed. */
  async close(graceMs: number): Promise<void> {
    this.mqtt.shutdown();
    this.kafka?.close();
    await Promise.all(this.listeners.map((l) => l.close(graceMs)));
    await this.mqtt.close();
    this.security.close();
    this.#tls?.close();
    this.#log.info('broker stopped');
  }
}
