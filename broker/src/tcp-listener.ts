import { createServer, isIP, type Server, type Socket } from 'node:net';
import { lookup } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  listen,
  listenError,
  closeServer,
  hotCounter,
  UvTcpServer,
  uvTcpAvailable,
  uvTcpLoadError,
  type UvSocket,
  type Logger,
} from '@robustmq/common';
import type { ListenerMetrics } from './metrics.js';

/** A connection of a TCP listener: a Node socket, or one of our libuv addon (`transport: 'native'`). */
export type TcpSocket = Socket | UvSocket;

export interface TcpListenerOptions {
  name: string;
  host: string;
  port: number;
  log: Logger;
  metrics: ListenerMetrics;
  /** Connections beyond this many are refused at accept. */
  maxConnections?: number;
  /**
   * `native`: connections held by common/native/uvtcp.c (no net.Socket per connection), for
   * listeners of many idle clients; falls back to `node` with a warning where the addon is missing.
   */
  transport?: 'native' | 'node';
  /**
   * With the native transport: connections read size-prefixed frames of at most this many bytes
   * (UvSocket 'frame' events, no 'data'); Node sockets ignore it and deliver bytes.
   */
  maxFrameBytes?: number;
  onConnection: (socket: TcpSocket) => void;
}

/**
 * A TCP listener that knows its open connections, so shutdown can stop accepting, ask every
 * connection to end, and destroy what is left when the deadline passes.
 */
export class TcpListener {
  readonly name: string;
  readonly #opts: TcpListenerOptions;
  readonly #server: Server | undefined;
  #uvServer: UvTcpServer | undefined;
  readonly #sockets = new Set<TcpSocket>();
  #port = -1;
  readonly #accepted: { inc(): void };
  readonly #open: { inc(): void; dec(): void };
  // One 'close' and one 'error' listener for every socket of the listener, not a closure each.
  readonly #onClose: (this: TcpSocket) => void;
  readonly #onError: (err: Error) => void;

  constructor(opts: TcpListenerOptions) {
    this.name = opts.name;
    this.#opts = opts;
    // Label sets bound once, not an object per accepted socket.
    this.#accepted = hotCounter(opts.metrics.accepted, { listener: opts.name });
    const open = (this.#open = opts.metrics.connections.labels({ listener: opts.name }));
    const sockets = this.#sockets;
    this.#onClose = function (this: TcpSocket): void {
      if (sockets.delete(this)) open.dec();
    };
    // A reset by the peer must not surface as an unhandled 'error' event.
    this.#onError = (err: Error): void => opts.log.debug({ err, listener: opts.name }, 'connection error');
    if (opts.transport === 'native' && !uvTcpAvailable()) {
      opts.log.warn(
        { listener: opts.name, err: uvTcpLoadError()?.message },
        'native TCP transport unavailable (addon not built); using Node sockets',
      );
    }
    if (opts.transport === 'native' && uvTcpAvailable()) {
      this.#server = undefined;
    } else {
      this.#server = createServer({ noDelay: true }, (socket) => this.#accept(socket));
      this.#server.on('error', (err) => opts.log.error({ err, listener: opts.name }, 'listener error'));
    }
  }

  /** Which transport serves the connections. */
  get transport(): 'native' | 'node' {
    return this.#server === undefined ? 'native' : 'node';
  }

  /** Binds; resolves with the bound port. */
  async listen(): Promise<number> {
    if (this.#server !== undefined) {
      this.#port = await listen(this.#server, this.name, this.#opts.host, this.#opts.port);
      return this.#port;
    }
    try {
      // The addon binds addresses only; a host name is resolved first, as net.Server.listen does.
      const host = isIP(this.#opts.host) !== 0 ? this.#opts.host : (await lookup(this.#opts.host)).address;
      this.#uvServer = UvTcpServer.listen(host, this.#opts.port, (s) => this.#accept(s), 511, this.#opts.maxFrameBytes ?? 0);
    } catch (err) {
      throw listenError(this.name, this.#opts.host, this.#opts.port, err as Error); // as the Node path's
    }
    this.#port = this.#uvServer.port;
    return this.#port;
  }

  get port(): number {
    return this.#port;
  }

  get connectionCount(): number {
    return this.#sockets.size;
  }

  #accept(socket: TcpSocket): void {
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
    const closing = this.#server !== undefined ? closeServer(this.#server) : Promise.resolve(this.#uvServer?.close());
    const gone = [...this.#sockets].map(
      (s) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve()))),
    );
    for (const s of this.#sockets) (s as { end(): unknown }).end();
    const timer = new AbortController();
    await Promise.race([Promise.all(gone), sleep(graceMs, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    for (const s of this.#sockets) s.destroy();
    await Promise.all(gone);
    await closing;
  }
}
