import { Counter, Gauge, type Registry } from 'prom-client';

/** Metrics of authentication, authorization and abuse protection. */
export interface SecurityMetrics {
  authAttempts: Counter<'listener' | 'method' | 'outcome'>;
  connectRefused: Counter<'listener' | 'reason'>;
  aclDenied: Counter<'action'>;
  rateLimited: Counter<'limit'>;
  flappingBans: Counter;
  denyEntries: Gauge;
  tokenExpired: Counter;
  tlsReloads: Counter<'listener' | 'outcome'>;
  tlsHandshakeFailures: Counter<'listener'>;
}

/** Registers the metrics (a registry already holding them gets the existing instances back). */
export function createSecurityMetrics(registry: Registry): SecurityMetrics {
  const r = [registry];
  const reuse = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    authAttempts: reuse(
      'robustmq_mqtt_auth_total',
      () =>
        new Counter({
          name: 'robustmq_mqtt_auth_total',
          help: 'Authentication decisions per listener, authenticator and outcome (allow, deny, ignore)',
          labelNames: ['listener', 'method', 'outcome'],
          registers: r,
        }),
    ),
    connectRefused: reuse(
      'robustmq_mqtt_connect_refused_total',
      () =>
        new Counter({
          name: 'robustmq_mqtt_connect_refused_total',
          help: 'CONNECTs (or accepted sockets) refused by security, per reason',
          labelNames: ['listener', 'reason'],
          registers: r,
        }),
    ),
    aclDenied: reuse(
      'robustmq_mqtt_acl_denied_total',
      () =>
        new Counter({
          name: 'robustmq_mqtt_acl_denied_total',
          help: 'PUBLISH and SUBSCRIBE requests denied by ACL',
          labelNames: ['action'],
          registers: r,
        }),
    ),
    rateLimited: reuse(
      'robustmq_mqtt_rate_limited_total',
      () =>
        new Counter({
          name: 'robustmq_mqtt_rate_limited_total',
          help: 'Times a rate limit acted (connect_rate refused a socket; publish_rate / publish_bytes paused a reader)',
          labelNames: ['limit'],
          registers: r,
        }),
    ),
    flappingBans: reuse(
      'robustmq_mqtt_flapping_bans_total',
      () => new Counter({ name: 'robustmq_mqtt_flapping_bans_total', help: 'Client ids banned for flapping', registers: r }),
    ),
    denyEntries: reuse(
      'robustmq_mqtt_denylist_entries',
      () => new Gauge({ name: 'robustmq_mqtt_denylist_entries', help: 'Deny-list entries in the broker cache', registers: r }),
    ),
    tokenExpired: reuse(
      'robustmq_mqtt_token_expired_total',
      () => new Counter({ name: 'robustmq_mqtt_token_expired_total', help: 'Connections closed because their JWT expired', registers: r }),
    ),
    tlsReloads: reuse(
      'robustmq_tls_reloads_total',
      () =>
        new Counter({
          name: 'robustmq_tls_reloads_total',
          help: 'Certificate reloads per listener and outcome (ok, failed)',
          labelNames: ['listener', 'outcome'],
          registers: r,
        }),
    ),
    tlsHandshakeFailures: reuse(
      'robustmq_tls_handshake_failures_total',
      () =>
        new Counter({
          name: 'robustmq_tls_handshake_failures_total',
          help: 'TLS handshakes that failed (bad or missing client certificate, protocol version, timeout)',
          labelNames: ['listener'],
          registers: r,
        }),
    ),
  };
}
