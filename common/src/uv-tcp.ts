import { createRequire } from 'node:module';

/**
 * TCP on libuv without a Node.js `net.Socket` per connection (common/native/uvtcp.c), for
 * listeners that hold very many mostly idle connections. A connection costs the addon's
 * ~280 B struct plus one `UvSocket` here, against ~1.4 KB of objects for a `net.Socket`.
 *
 * `UvSocket` offers the part of the `net.Socket` interface a protocol handler needs (data, end,
 * close, error and drain events, write, end, destroy, pause, resume, writableLength) with one
 * listener slot per event instead of an EventEmitter. Everything runs on the thread that loaded
 * the addon first (the main thread).
 */
interface UvTcpAddon {
  init(handlers: {
    onConnection: (serverId: number, id: number, address: string, port: number) => void;
    onData: (id: number, data: Buffer) => void;
    onEnd: (id: number) => void;
    onClose: (id: number, err: number) => void;
    onDrain: (id: number) => void;
    onConnect: (id: number, status: number) => void;
    onFrames: (id: number, slab: Buffer, start: number, end: number, badSize: number) => void;
  }): void;
  listen(host: string, port: number, backlog: number, maxFrame: number): [number, number];
  closeServer(serverId: number): void;
  connect(host: string, port: number): number;
  write(id: number, data: Uint8Array): number;
  writev(id: number, data: Uint8Array[]): number;
  queued(id: number): number;
  pause(id: number): void;
  resume(id: number): void;
  end(id: number): void;
  destroy(id: number): void;
  openCount(): number;
  errName(code: number): string;
  noDelay(id: number): number;
}

const SLOT_MASK = (1 << 20) - 1;
/** libuv error codes the wrapper produces itself. */
const UV_EPIPE = -32;
const UV_ECANCELED = -125;
/** Like a net.Socket's default highWaterMark: write() answers false once this much waits. */
const HIGH_WATER_MARK = 16 * 1024;

let addon: UvTcpAddon | undefined;
let loadError: Error | undefined;
/** Open connections by slot (the id's low 20 bits). */
const sockets: (UvSocket | undefined)[] = [];
const servers: (UvTcpServer | undefined)[] = [];

function load(): UvTcpAddon | undefined {
  if (addon !== undefined || loadError !== undefined) return addon;
  try {
    const m = createRequire(import.meta.url)('../../native/build/Release/robustmq_uvtcp.node') as UvTcpAddon;
    m.init({
      onConnection(serverId, id, address, port) {
        const server = servers[serverId];
        const s = new UvSocket(id, address, port);
        s.framed = server !== undefined && server.maxFrame > 0;
        sockets[id & SLOT_MASK] = s;
        if (server === undefined) s.destroy();
        else server.onConnection(s);
      },
      onData(id, data) {
        socketOf(id)?._emit1('data', data);
      },
      onEnd(id) {
        socketOf(id)?._onEnd();
      },
      onClose(id, err) {
        const s = socketOf(id);
        if (s === undefined) return;
        sockets[id & SLOT_MASK] = undefined;
        s._onClose(err);
      },
      onDrain(id) {
        socketOf(id)?._onDrain();
      },
      onConnect(id, status) {
        socketOf(id)?._onConnect(status);
      },
      onFrames(id, slab, start, end, badSize) {
        socketOf(id)?._onFrames(slab, start, end, badSize);
      },
    });
    addon = m;
  } catch (err) {
    loadError = err as Error;
  }
  return addon;
}

function socketOf(id: number): UvSocket | undefined {
  const s = sockets[id & SLOT_MASK];
  return s !== undefined && s.id === id ? s : undefined;
}

/** Whether the addon is built and loaded; `uvTcpLoadError()` says why not. */
export function uvTcpAvailable(): boolean {
  return load() !== undefined;
}

export function uvTcpLoadError(): Error | undefined {
  load();
  return loadError;
}

/** Connections the addon holds open (accepted and connected), for tests and leak checks. */
export function uvTcpOpenCount(): number {
  return load()?.openCount() ?? 0;
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be an integer in 0..65535, got ${port}`);
}

function need(): UvTcpAddon {
  const a = load();
  if (a === undefined) throw new Error(`the uvtcp addon is not available: ${loadError?.message ?? 'not built'}`);
  return a;
}

type Listener = (...args: never[]) => void;
type EventName = 'data' | 'end' | 'close' | 'error' | 'drain' | 'connect' | 'frame' | 'frameError';

/** An error of the addon, shaped like Node's system errors (`code` is the libuv name). */
function uvError(code: number, syscall: string): NodeJS.ErrnoException {
  const text = need().errName(code);
  const name = text.slice(0, text.indexOf(':'));
  const e = new Error(`${syscall} ${text}`) as NodeJS.ErrnoException;
  e.code = name;
  e.errno = code;
  e.syscall = syscall;
  return e;
}

/** One connection of the addon. Listeners: one function per event, an array from the second on. */
export class UvSocket {
  readonly id: number;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The peer's end is followed by ours (like a net.Socket with allowHalfOpen false). */
  readonly allowHalfOpen = false;
  destroyed = false;
  /** Accepted by a framed listener: 'frame' events instead of 'data' (see UvTcpServer.listen). */
  framed = false;
  #needDrain = false;
  #ended = false;
  /** The error 'close' reports: given to destroy(), or of a failed connect. */
  #pendingError: Error | undefined;
  /** cork() depth; while above 0 writes collect in #corked and leave as one writev on uncork(). */
  #corkDepth = 0;
  #corked: Uint8Array[] | undefined;
  #corkedBytes = 0;
  #corkedCallbacks: ((err?: Error) => void)[] | undefined;
  /** Callbacks of writes still queued; called when the queue empties. */
  #writeCallbacks: ((err?: Error) => void)[] | undefined;
  #onData: Listener | Listener[] | undefined;
  #onEnd: Listener | Listener[] | undefined;
  #onClose: Listener | Listener[] | undefined;
  #onError: Listener | Listener[] | undefined;
  #onDrain: Listener | Listener[] | undefined;
  #onConnect: Listener | Listener[] | undefined;
  #onFrame: Listener | Listener[] | undefined;
  #onFrameError: Listener | Listener[] | undefined;

  /** @internal */
  constructor(id: number, remoteAddress: string, remotePort: number) {
    this.id = id;
    this.remoteAddress = remoteAddress;
    this.remotePort = remotePort;
  }

  /** Opens a client connection; 'connect' follows, or 'error' and 'close'. */
  static connect(port: number, host = '127.0.0.1'): UvSocket {
    checkPort(port);
    const id = need().connect(host, port);
    const s = new UvSocket(id, host, port);
    sockets[id & SLOT_MASK] = s;
    return s;
  }

  /** Bytes written and not yet taken by the kernel (held by cork() included). */
  get writableLength(): number {
    return this.destroyed ? 0 : need().queued(this.id) + this.#corkedBytes;
  }

  on(event: EventName, fn: Listener): this {
    this.#set(event, add(this.#slot(event), fn));
    return this;
  }

  addListener(event: EventName, fn: Listener): this {
    return this.on(event, fn);
  }

  once(event: EventName, fn: Listener): this {
    const once = (...args: never[]): void => {
      this.off(event, once);
      fn(...args);
    };
    return this.on(event, once);
  }

  off(event: EventName, fn: Listener): this {
    this.#set(event, remove(this.#slot(event), fn));
    return this;
  }

  removeListener(event: EventName, fn: Listener): this {
    return this.off(event, fn);
  }

  listenerCount(event: EventName): number {
    const l = this.#slot(event);
    return l === undefined ? 0 : Array.isArray(l) ? l.length : 1;
  }

  #slot(event: EventName): Listener | Listener[] | undefined {
    switch (event) {
      case 'data':
        return this.#onData;
      case 'end':
        return this.#onEnd;
      case 'close':
        return this.#onClose;
      case 'error':
        return this.#onError;
      case 'drain':
        return this.#onDrain;
      case 'connect':
        return this.#onConnect;
      case 'frame':
        return this.#onFrame;
      case 'frameError':
        return this.#onFrameError;
    }
  }

  #set(event: EventName, l: Listener | Listener[] | undefined): void {
    if (event === 'data') this.#onData = l;
    else if (event === 'end') this.#onEnd = l;
    else if (event === 'close') this.#onClose = l;
    else if (event === 'error') this.#onError = l;
    else if (event === 'drain') this.#onDrain = l;
    else if (event === 'frame') this.#onFrame = l;
    else if (event === 'frameError') this.#onFrameError = l;
    else this.#onConnect = l;
  }

  /** @internal Calls the listeners of `event` with `this` bound to the socket, like an EventEmitter. */
  _emit1(event: EventName, arg?: unknown): boolean {
    const l = this.#slot(event);
    if (l === undefined) return false;
    if (typeof l === 'function') (l as (this: UvSocket, a: unknown) => void).call(this, arg);
    else for (const f of [...l]) (f as (this: UvSocket, a: unknown) => void).call(this, arg);
    return true;
  }

  setNoDelay(): this {
    return this; // every connection has TCP_NODELAY already
  }

  /** Whether the socket has TCP_NODELAY (read from the kernel); undefined once closed. */
  get noDelay(): boolean | undefined {
    if (this.destroyed) return undefined;
    const on = need().noDelay(this.id);
    return on < 0 ? undefined : on === 1;
  }

  setKeepAlive(): this {
    return this;
  }

  /** Sends `data` after what is queued; false once `highWaterMark` bytes wait ('drain' follows). */
  write(data: Uint8Array | string, cb?: (err?: Error) => void): boolean {
    if (this.destroyed || this.#ended) return this.#refuseWrite(cb);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.#corkDepth > 0) return this.#hold([buf], cb);
    const queued = need().write(this.id, buf);
    return this.#afterWrite(queued, cb);
  }

  /** Sends several buffers as one write. */
  writev(chunks: Uint8Array[], cb?: (err?: Error) => void): boolean {
    if (this.destroyed || this.#ended) return this.#refuseWrite(cb);
    if (this.#corkDepth > 0) return this.#hold(chunks, cb);
    return this.#afterWrite(need().writev(this.id, chunks), cb);
  }

  /** Holds writes until the matching uncork(), as net.Socket does: they leave as one writev. */
  cork(): void {
    this.#corkDepth++;
  }

  uncork(): void {
    if (this.#corkDepth === 0 || --this.#corkDepth > 0) return;
    const chunks = this.#corked;
    const cbs = this.#corkedCallbacks;
    this.#corked = this.#corkedCallbacks = undefined;
    this.#corkedBytes = 0;
    if (chunks === undefined) return;
    if (this.destroyed) {
      for (const cb of cbs ?? []) this.#refuseWrite(cb);
      return;
    }
    const queued = chunks.length === 1 ? need().write(this.id, chunks[0]!) : need().writev(this.id, chunks);
    const below = this.#afterWrite(queued, cbs === undefined || cbs.length === 1 ? cbs?.[0] : (err) => cbs.forEach((cb) => cb(err)));
    // #hold() may have answered false: the addon reports a drain only for bytes it queued
    if (below && this.#needDrain) {
      this.#needDrain = false;
      process.nextTick(() => this._emit1('drain'));
    }
  }

  #hold(chunks: Uint8Array[], cb: ((err?: Error) => void) | undefined): boolean {
    const held = (this.#corked ??= []);
    for (const c of chunks) {
      held.push(c);
      this.#corkedBytes += c.length;
    }
    if (cb !== undefined) (this.#corkedCallbacks ??= []).push(cb);
    if (this.writableLength < HIGH_WATER_MARK) return true;
    this.#needDrain = true;
    return false;
  }

  /** A write after end() or destroy(): EPIPE, like a net.Socket. */
  #refuseWrite(cb: ((err?: Error) => void) | undefined): false {
    if (cb !== undefined) process.nextTick(cb, uvError(UV_EPIPE, 'write'));
    return false;
  }

  #afterWrite(queued: number, cb: ((err?: Error) => void) | undefined): boolean {
    if (queued < 0) {
      const err = uvError(queued, 'write');
      if (cb !== undefined) process.nextTick(cb, err);
      this.destroy(err);
      return false;
    }
    if (cb !== undefined) {
      if (queued === 0) process.nextTick(cb);
      else (this.#writeCallbacks ??= []).push(cb);
    }
    if (queued >= HIGH_WATER_MARK) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  /** Writes `data` if given, then shuts our side down once everything queued is written. */
  end(cb?: () => void): this;
  end(data?: Uint8Array | string, cb?: () => void): this;
  end(data?: Uint8Array | string | (() => void), cb?: () => void): this {
    if (typeof data === 'function') [data, cb] = [undefined, data];
    if (this.destroyed || this.#ended) return this;
    if (data !== undefined) this.write(data);
    if (this.#corkDepth > 0) {
      // as net.Socket: end() flushes what cork() holds
      this.#corkDepth = 1;
      this.uncork();
    }
    this.#ended = true;
    if (cb !== undefined) {
      // like net.Socket's 'finish': once the kernel has every byte written before the end
      if (need().queued(this.id) === 0) process.nextTick(cb);
      else (this.#writeCallbacks ??= []).push(() => cb());
    }
    need().end(this.id);
    return this;
  }

  /** Closes at once; queued bytes are dropped. 'close' follows (after 'error' when `err` is given). */
  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.#pendingError = err;
    need().destroy(this.id);
    return this;
  }

  pause(): this {
    if (!this.destroyed) need().pause(this.id);
    return this;
  }

  resume(): this {
    if (!this.destroyed) need().resume(this.id);
    return this;
  }

  /** @internal */
  _onEnd(): void {
    this._emit1('end');
    // The peer is done: end our side too, as a net.Socket without allowHalfOpen does.
    if (!this.destroyed && !this.#ended) this.end();
  }

  /** @internal The queue is empty: every queued write is done. */
  _onDrain(): void {
    const cbs = this.#writeCallbacks;
    if (cbs !== undefined) {
      this.#writeCallbacks = undefined;
      for (const cb of cbs) cb();
    }
    if (!this.#needDrain) return;
    this.#needDrain = false;
    this._emit1('drain');
  }

  /**
   * @internal Whole frames of a framed listener, lying in slab[start, end) with their size
   * prefixes: one 'frame' per frame (without its prefix, a view of the slab), then a
   * 'frameError' with the size when a prefix was out of range (reading has stopped then).
   */
  _onFrames(slab: Buffer, start: number, end: number, badSize: number): void {
    let pos = start;
    while (pos < end && !this.destroyed) {
      const size = slab.readInt32BE(pos);
      this._emit1('frame', slab.subarray(pos + 4, pos + 4 + size));
      pos += 4 + size;
    }
    if (badSize !== -1 && !this.destroyed) this._emit1('frameError', badSize);
  }

  /** @internal */
  _onConnect(status: number): void {
    if (status === 0) this._emit1('connect');
    else if (!this.destroyed) this.#pendingError = uvError(status, 'connect');
  }

  /** @internal */
  _onClose(err: number): void {
    this.destroyed = true;
    const cbs = this.#writeCallbacks;
    if (cbs !== undefined) {
      this.#writeCallbacks = undefined;
      const closed = uvError(UV_EPIPE, 'write'); // closed before these bytes were written
      for (const cb of cbs) cb(closed);
    }
    const error = this.#pendingError ?? (err !== 0 && err !== UV_ECANCELED ? uvError(err, 'read') : undefined);
    this.#pendingError = undefined;
    if (error !== undefined) {
      // Like an EventEmitter: an 'error' nobody listens to is thrown (as an uncaught exception).
      if (!this._emit1('error', error)) throw error;
    }
    this._emit1('close', error !== undefined);
  }
}

function add(cur: Listener | Listener[] | undefined, fn: Listener): Listener | Listener[] {
  if (cur === undefined) return fn;
  if (Array.isArray(cur)) return [...cur, fn];
  return [cur, fn];
}

function remove(cur: Listener | Listener[] | undefined, fn: Listener): Listener | Listener[] | undefined {
  if (cur === fn) return undefined;
  if (!Array.isArray(cur)) return cur;
  const i = cur.indexOf(fn);
  if (i < 0) return cur;
  const next = cur.filter((_, j) => j !== i);
  return next.length === 1 ? next[0] : next;
}

/** A listening socket of the addon. */
export class UvTcpServer {
  readonly #serverId: number;
  readonly port: number;
  readonly onConnection: (socket: UvSocket) => void;
  /** > 0: connections read frames of at most this many bytes. */
  readonly maxFrame: number;
  #closed = false;

  private constructor(serverId: number, port: number, onConnection: (socket: UvSocket) => void, maxFrame: number) {
    this.#serverId = serverId;
    this.port = port;
    this.onConnection = onConnection;
    this.maxFrame = maxFrame;
  }

  /**
   * Binds and listens; throws a readable error (e.g. `EADDRINUSE`) when it cannot. With
   * `maxFrame` > 0 the connections read size-prefixed frames (`int32 size` + `size` bytes, as
   * Kafka's): they emit 'frame' per frame instead of 'data', and 'frameError' with the size
   * when a prefix is negative or above `maxFrame` (nothing more is read).
   */
  static listen(host: string, port: number, onConnection: (socket: UvSocket) => void, backlog = 511, maxFrame = 0): UvTcpServer {
    checkPort(port);
    if (!Number.isInteger(maxFrame) || maxFrame < 0 || maxFrame > 0x7fffffff)
      throw new RangeError(`maxFrame must be an integer in 0..2^31-1, got ${maxFrame}`);
    const [serverId, bound] = need().listen(host, port, backlog, maxFrame);
    const s = new UvTcpServer(serverId, bound, onConnection, maxFrame);
    servers[serverId] = s;
    return s;
  }

  /** Stops accepting; open connections stay. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    servers[this.#serverId] = undefined;
    need().closeServer(this.#serverId);
  }
}
