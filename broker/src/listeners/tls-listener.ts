import type { Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { listen, closeServer, type Logger } from '@robustmq/common';
import type { ListenerMetrics } from '../metrics.js';
import type { SecurityMetrics } from '../auth/metrics.js';
import { certIdentity, type TlsContextSource } from './tls-context.js';
import type { AdmitCheck, FullCheck, Listener, MqttConnectionHandler } from './types.js';

export interface TlsListenerOptions {
  name: string;
  host: string;
  port: number;
  log: Logger;
  metrics: ListenerMetrics;
  securityMetrics: SecurityMetrics;
  tls: TlsContextSource;
  /** Open connections at most (0 = no limit); beyond it new ones are refused at accept. */
  maxConnections: number;
  admit: AdmitCheck;
  full: FullCheck;
  onConnection: MqttConnectionHandler;
}

/**
 * MQTT over TLS (8883). TLS 1.2 or newer; with a CA configured the client is asked for a
 * certificate (required with `tls.requireClientCert`, else optional); a verified certificate's
 * CN and SANs go with the connection for the `cert` authenticator. Refusals by rate, deny list or
 * connection limit happen at TCP accept, before the handshake costs anything.
 */
export class TlsListener implements Listener {
  readonly name: string;
  readonly #o: TlsListenerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = -1;
  #unsubscribe: (() => void) | undefined;

  constructor(o: TlsListenerOptions) {
    this.name = o.name;
    this.#o = o;
    const c = o.tls.config;
    this.#server = createServer({
      ...o.tls.options,
      requestCert: c.caFile !== '',
      rejectUnauthorized: c.requireClientCert,
      handshakeTimeout: c.handshakeTimeoutMs,
    });
    this.#server.on('connection', (raw: Socket) => this.#accept(raw));
    this.#server.on('secureConnection', (s: TLSSocket) => this.#secure(s));
    this.#server.on('tlsClientError', (err, s) => {
      o.securityMetrics.tlsHandshakeFailures.inc({ listener: o.name });
      o.log.debug({ err, listener: o.name, ip: s.remoteAddress }, 'tls handshake failed');
      s.destroy();
    });
    this.#server.on('error', (err) => o.log.error({ err, listener: o.name }, 'listener error'));
  }

  #accept(raw: Socket): void {
    const { metrics, name, maxConnections } = this.#o;
    const refused =
      maxConnections > 0 && this.#sockets.size >= maxConnections
        ? this.#o.full(name, raw.remoteAddress, maxConnections)
        : this.#o.admit(name, raw.remoteAddress);
    if (refused !== undefined) {
      metrics.refused.inc({ listener: name, reason: refused });
      raw.destroy();
      return;
    }
    this.#sockets.add(raw);
    metrics.accepted.inc({ listener: name });
    metrics.connections.inc({ listener: name });
    raw.once('close', () => {
      this.#sockets.delete(raw);
      metrics.connections.dec({ listener: name });
    });
    raw.on('error', () => undefined);
  }

  #secure(s: TLSSocket): void {
    s.on('error', (err) => this.#o.log.debug({ err, listener: this.name }, 'connection error'));
    const cert = s.authorized ? certIdentity(s.getPeerCertificate()) : undefined;
    this.#o.onConnection(s as unknown as Socket, {
      listener: this.name,
      remoteAddress: s.remoteAddress ?? '',
      peerCert: cert === undefined ? undefined : { authorized: true, ...cert },
    });
  }

  async listen(): Promise<number> {
    this.#port = await listen(this.#server as never, this.name, this.#o.host, this.#o.port);
    this.#unsubscribe = this.#o.tls.subscribe((opts) => this.#server.setSecureContext(opts));
    return this.#port;
  }

  get port(): number {
    return this.#port;
  }

  get connectionCount(): number {
    return this.#sockets.size;
  }

  async close(graceMs: number): Promise<void> {
    this.#unsubscribe?.();
    const closing = closeServer(this.#server as never);
    const gone = [...this.#sockets].map((s) => once(s, 'close').catch(() => undefined));
    for (const s of this.#sockets) s.end();
    const timer = new AbortController();
    await Promise.race([Promise.all(gone), sleep(graceMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    for (const s of this.#sockets) s.destroy();
    await closing;
  }
}
