import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { listen, closeServer, type Logger } from '@robustmq/common';
import type { ListenerMetrics } from '../metrics.js';
import type { SecurityMetrics } from '../auth/metrics.js';
import { certIdentity, type TlsContextSource } from './tls-context.js';
import type { AdmitCheck, FullCheck, Listener, MqttConnectionHandler } from './types.js';

/** WebSocket subprotocols of MQTT: `mqtt` (3.1.1 and 5.0) and `mqttv3.1` (3.1) [MQTT-6.0.0-3]. */
export const MQTT_SUBPROTOCOLS = ['mqtt', 'mqttv3.1'] as const;

export interface WsListenerOptions {
  name: string;
  host: string;
  port: number;
  /** HTTP path of the upgrade; other paths get 404. */
  path: string;
  log: Logger;
  metrics: ListenerMetrics;
  securityMetrics: SecurityMetrics;
  /** Secure WebSocket (wss) when given. */
  tls?: TlsContextSource | undefined;
  maxConnections: number;
  /** Largest WebSocket message accepted (bytes). */
  maxPayloadBytes: number;
  admit: AdmitCheck;
  full: FullCheck;
  onConnection: MqttConnectionHandler;
}

/**
 * MQTT over WebSocket (8083) and secure WebSocket (8084), path `/mqtt`. Every binary message is
 * MQTT bytes; the WebSocket becomes a byte stream (`createWebSocketStream`, which pauses the
 * socket when the reader is paused) and goes to the same MQTT engine as TCP connections.
 */
export class WsListener implements Listener {
  readonly name: string;
  readonly #o: WsListenerOptions;
  readonly #server: HttpServer | HttpsServer;
  readonly #wss: WebSocketServer;
  readonly #streams = new Set<Duplex>();
  #port = -1;
  #unsubscribe: (() => void) | undefined;

  constructor(o: WsListenerOptions) {
    this.name = o.name;
    this.#o = o;
    const onRequest = (_req: IncomingMessage, res: import('node:http').ServerResponse): void => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' }).end('MQTT over WebSocket: upgrade on ' + o.path + '\n');
    };
    if (o.tls !== undefined) {
      const c = o.tls.config;
      this.#server = createHttpsServer(
        { ...o.tls.options, requestCert: c.caFile !== '', rejectUnauthorized: c.requireClientCert, handshakeTimeout: c.handshakeTimeoutMs },
        onRequest,
      );
      this.#server.on('tlsClientError', (err, s) => {
        o.securityMetrics.tlsHandshakeFailures.inc({ listener: o.name });
        o.log.debug({ err, listener: o.name, ip: s.remoteAddress }, 'tls handshake failed');
      });
    } else this.#server = createHttpServer(onRequest);
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 10_000;
    this.#server.on('connection', (raw: Socket) => {
      const refused = this.#refusal(raw.remoteAddress);
      if (refused !== undefined) {
        o.metrics.refused.inc({ listener: o.name, reason: refused });
        raw.destroy();
      }
    });
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: o.maxPayloadBytes,
      perMessageDeflate: false,
      handleProtocols: (protocols) => MQTT_SUBPROTOCOLS.find((p) => protocols.has(p)) ?? false,
    });
    this.#server.on('upgrade', (req: IncomingMessage, sock: Duplex, head: Buffer) => this.#upgrade(req, sock, head));
    this.#server.on('error', (err) => o.log.error({ err, listener: o.name }, 'listener error'));
  }

  #refusal(address: string | undefined): string | undefined {
    const { maxConnections } = this.#o;
    if (maxConnections > 0 && this.#streams.size >= maxConnections) return this.#o.full(this.name, address, maxConnections);
    return this.#o.admit(this.name, address);
  }

  #upgrade(req: IncomingMessage, sock: Duplex, head: Buffer): void {
    const reject = (status: number, text: string): void => {
      sock.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      setTimeout(() => sock.destroy(), 1000).unref();
    };
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path !== this.#o.path) return reject(404, 'Not Found');
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!offered.some((p) => (MQTT_SUBPROTOCOLS as readonly string[]).includes(p))) return reject(400, 'Bad Request');
    this.#wss.handleUpgrade(req, sock, head, (ws: WebSocket) => this.#open(ws, req));
  }

  #open(ws: WebSocket, req: IncomingMessage): void {
    const { metrics, name } = this.#o;
    const raw = req.socket as Socket;
    const stream = createWebSocketStream(ws) as Duplex & { setNoDelay?: (v?: boolean) => unknown; remoteAddress?: string };
    // The MQTT connection treats the stream as a socket.
    stream.setNoDelay = () => raw.setNoDelay(true);
    Object.defineProperty(stream, 'remoteAddress', { get: () => raw.remoteAddress });
    stream.on('error', (err) => this.#o.log.debug({ err, listener: name }, 'connection error'));
    ws.on('error', () => undefined);
    this.#streams.add(stream);
    metrics.accepted.inc({ listener: name });
    metrics.connections.inc({ listener: name });
    stream.once('close', () => {
      this.#streams.delete(stream);
      metrics.connections.dec({ listener: name });
      ws.terminate();
    });
    const tlsSock = this.#o.tls !== undefined ? (raw as unknown as TLSSocket) : undefined;
    const cert = tlsSock?.authorized === true ? certIdentity(tlsSock.getPeerCertificate()) : undefined;
    this.#o.onConnection(stream as unknown as Socket, {
      listener: name,
      remoteAddress: raw.remoteAddress ?? '',
      peerCert: cert === undefined ? undefined : { authorized: true, ...cert },
    });
  }

  async listen(): Promise<number> {
    this.#port = await listen(this.#server as never, this.name, this.#o.host, this.#o.port);
    const tls = this.#o.tls;
    if (tls !== undefined) this.#unsubscribe = tls.subscribe((opts) => (this.#server as HttpsServer).setSecureContext(opts));
    return this.#port;
  }

  get port(): number {
    return this.#port;
  }

  get connectionCount(): number {
    return this.#streams.size;
  }

  async close(graceMs: number): Promise<void> {
    this.#unsubscribe?.();
    const closing = closeServer(this.#server as never);
    this.#server.closeIdleConnections();
    const gone = [...this.#streams].map((s) => once(s, 'close').catch(() => undefined));
    for (const s of this.#streams) s.end();
    const timer = new AbortController();
    await Promise.race([Promise.all(gone), sleep(graceMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    for (const s of this.#streams) s.destroy();
    for (const c of this.#wss.clients) c.terminate();
    this.#server.closeAllConnections();
    this.#wss.close();
    await closing;
  }
}
