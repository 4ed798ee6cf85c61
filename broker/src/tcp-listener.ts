import { createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { listen, closeServer, type Logger } from '@robustmq/common';
import type { ListenerMetrics } from './metrics.js';

export interface TcpListenerOptions {
  name: string;
  host: string;
  port: number;
  log: Logger;
  metrics: ListenerMetrics;
  /** Connections beyond this many are refused at accept. */
  maxConnections?: number;
  onConnection: (socket: Socket) => void;
}

/**
 * A TCP listener that knows its open connections, so shutdown can stop accepting, ask every
 * connection to end, and destroy what is left when the deadline passes.
 */
export class TcpListener {
  readonly name: string;
  readonly #opts: TcpListenerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = -1;
  readonly #accepted: { inc(): void };
  readonly #open: { inc(): void; dec(): void };
  // One 'close' and one 'error' listener for every socket of the listener, not a closure each.
  readonly #onClose: (this: Socket) => void;
  readonly #onError: (err: Error) => void;

  constructor(opts: TcpListenerOptions) {
    this.name = opts.name;
    this.#opts = opts;
    // Label sets bound once, not an object per accepted socket.
    this.#accepted = opts.metrics.accepted.labels({ listener: opts.name });
    const open = (this.#open = opts.metrics.connections.labels({ listener: opts.name }));
    const sockets = this.#sockets;
    this.#onClose = function (this: Socket): void {
      if (sockets.delete(this)) open.dec();
    };
    // A reset by the peer must not surface as an unhandled 'error' event.
    this.#onError = (err: Error): void => opts.log.debug({ err, listener: opts.name }, 'connection error');
    this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
    this.#server.on('error', (err) => opts.log.error({ err, listener: opts.name }, 'listener error'));
  }

  /** Binds; resolves with the bound port. */
  async listen(): Promise<number> {
    this.#port = await listen(this.#server, this.name, this.#opts.host, this.#opts.port);
    return this.#port;
  }

  get port(): number {
    return this.#port;
  }

  get connectionCount(): number {
    return this.#sockets.size;
  }

  #accept(socket: Socket): void {
    const { metrics, name, maxConnections } = this.#opts;
    if (maxConnections !== undefined && this.#sockets.size >= maxConnections) {
      metrics.refused.inc({ listener: name, reason: 'max_connections' });
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    this.#accepted.inc();
    this.#open.inc();
    socket.on('close', this.#onClose);
    socket.on('error', this.#onError);
    this.#opts.onConnection(socket);
  }

  /**
   * Stops accepting, half-closes every connection, and destroys those still open after
   * `graceMs`. Resolves once every socket is gone.
   */
  async close(graceMs: number): Promise<void> {
    const closing = closeServer(this.#server);
    const gone = [...this.#sockets].map((s) => once(s, 'close').catch(() => undefined));
    for (const s of this.#sockets) s.end();
    const timer = new AbortController();
    await Promise.race([Promise.all(gone), sleep(graceMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    for (const s of this.#sockets) s.destroy();
    await closing;
  }
}
