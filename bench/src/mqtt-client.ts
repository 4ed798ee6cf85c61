/**
 * The generator's MQTT connections: a publisher, a subscriber and an idle client over one
 * hand-written framer. Nothing on the per-message path allocates or creates a promise.
 *
 * How this works: a Publisher owns a ring of a few write buffers, each pre-filled with `batch`
 * copies of its encoded PUBLISH. A tick of the Pump patches up to `batch` copies in the next free
 * buffer (packet id, send time, sequence) and hands it to the socket in one write; the buffer
 * stays busy until the write's callback says the kernel has it. A full socket (write() false), a
 * full QoS 1/2 window, no free buffer or the rate limit pause that publisher until the matching
 * event (drain, acknowledgement, write callback, timer) wakes the Pump again.
 * A Subscriber parses PUBLISH in place, reads the stamp from the payload and queues its
 * PUBACK/PUBREC/PUBCOMP into one write per received chunk.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { UvSocket, uvTcpAvailable } from '@robustmq/common';
import {
  DISCONNECT,
  encodeConnect,
  encodePublishTemplate,
  encodeSubscribe,
  nowMs,
  PacketType,
  patchPublish,
  PINGREQ,
  repeatTemplate,
  StampField,
  STAMP_BYTES,
  writeAck,
  type ProtocolLevel,
  type PublishTemplate,
} from './mqtt-packets.js';
import { MqttParser, packetName, publishPayloadOffset, type PacketHandler } from './mqtt-parser.js';
import type { ErrorCounts, Histogram } from './stats.js';
import type { TlsSettings } from './options.js';

export interface Target {
  host: string;
  port: number;
  tls: TlsSettings | null;
  username?: string | undefined;
  password?: string | undefined;
  level: ProtocolLevel;
  keepaliveS: number;
  connectTimeoutMs: number;
  /**
   * `native`: plain-TCP connections through our libuv addon (common/native/uvtcp.c), far less
   * CPU per connection than `net.connect`; TLS, host names and a missing addon use `node`.
   */
  transport?: 'native' | 'node';
}

/** Counters shared by every connection of one run (single-threaded, so plain fields). */
export class Totals {
  sent = 0;
  acked = 0;
  received = 0;
  duplicates = 0;
  lastReceiveMs = 0;
  readonly errors: ErrorCounts;
  readonly latency: Histogram;
  readonly ackLatency: Histogram;
  constructor(errors: ErrorCounts, latency: Histogram, ackLatency: Histogram) {
    this.errors = errors;
    this.latency = latency;
    this.ackLatency = ackLatency;
  }
}

const tlsFiles = new Map<string, Buffer>();
function file(path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  let b = tlsFiles.get(path);
  if (b === undefined) tlsFiles.set(path, (b = readFileSync(path)));
  return b;
}

/** Base: socket, framer, CONNECT/CONNACK, outgoing acknowledgements batched per received chunk. */
/** What the generator needs of a connection: a net or TLS socket, or a UvSocket of our addon. */
interface BenchSocket {
  readonly destroyed: boolean;
  readonly writableLength: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  on(event: string, listener: (...args: any[]) => void): unknown;
  write(data: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  end(data: Uint8Array): unknown;
  destroy(): unknown;
  setNoDelay(noDelay?: boolean): unknown;
}

/** Whether `sock` has a full write buffer. */
function needsDrain(sock: BenchSocket): boolean {
  return sock instanceof UvSocket ? sock.writableLength >= 16 * 1024 : (sock as net.Socket).writableNeedDrain;
}

export class BenchConnection implements PacketHandler {
  sock: BenchSocket | undefined;
  readonly clientId: string;
  protected readonly target: Target;
  protected readonly totals: Totals;
  protected readonly parser: MqttParser;
  /** Time of the chunk being parsed: one clock read per chunk, not per message. */
  protected chunkNowMs = 0;
  /** Made on the first acknowledgement: `conn` runs open thousands of connections that never ack. */
  private ackBuf: Buffer | undefined;
  private ackLen = 0;
  private flushScheduled = false;
  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.flushAcks();
  };
  isUp = false;
  private closing = false;
  private onConnack: ((code: number) => void) | undefined;
  private onClosed: (() => void) | undefined;
  connectStartedMs = 0;

  constructor(target: Target, totals: Totals, clientId: string) {
    this.target = target;
    this.totals = totals;
    this.clientId = clientId;
    this.parser = new MqttParser(this);
  }

  /** Connects and waits for a successful CONNACK; rejects with the error kind as message. */
  connect(): Promise<void> {
    const t = this.target;
    this.connectStartedMs = performance.now();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (kind: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.sock?.destroy();
        reject(new Error(kind));
      };
      const timer = setTimeout(() => fail('connect timeout'), t.connectTimeoutMs);
      const hello = (): void => {
        sock.write(
          encodeConnect({ level: t.level, clientId: this.clientId, keepaliveS: t.keepaliveS, username: t.username, password: t.password }),
        );
      };
      const native = t.tls === null && t.transport === 'native' && net.isIP(t.host) !== 0 && uvTcpAvailable();
      const sock: BenchSocket = native
        ? UvSocket.connect(t.port, t.host).on('connect', hello)
        : t.tls
          ? tls.connect(
              {
                host: t.host,
                port: t.port,
                ca: file(t.tls.ca),
                cert: file(t.tls.cert),
                key: file(t.tls.key),
                rejectUnauthorized: !t.tls.insecure,
                servername: net.isIP(t.host) ? undefined : t.host,
              },
              hello,
            )
          : net.connect({ host: t.host, port: t.port }, hello);
      this.sock = sock;
      sock.setNoDelay(true);
      sock.on('data', (chunk: Buffer) => {
        this.chunkNowMs = nowMs();
        this.parser.push(chunk);
        // acks of every chunk read in this turn of the event loop leave in one write
        if (this.ackLen > 0 && !this.flushScheduled) {
          this.flushScheduled = true;
          setImmediate(this.flush);
        }
      });
      sock.on('error', (err: NodeJS.ErrnoException) => {
        if (!settled) fail(`connect ${err.code ?? err.message}`);
        else if (!this.closing) this.totals.errors.add(`socket ${err.code ?? err.message}`);
      });
      sock.on('close', () => {
        const wasUp = this.isUp;
        this.isUp = false;
        if (!settled) fail('connection closed before CONNACK');
        else if (wasUp && !this.closing) this.totals.errors.add('connection closed by broker');
        this.onClosed?.();
      });
      this.onConnack = (code) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (code !== 0) {
          sock.destroy();
          reject(new Error(`CONNACK 0x${code.toString(16).padStart(2, '0')}`));
          return;
        }
        this.isUp = true;
        resolve();
      };
    });
  }

  onPacket(type: number, flags: number, buf: Buffer, start: number, end: number): void {
    if (type === PacketType.Connack) {
      if (end - start < 2) return this.onMalformed('short CONNACK');
      this.onConnack?.(buf[start + 1]!);
    } else if (type === PacketType.Pingresp) {
      // keep-alive answered
    } else if (type === PacketType.Disconnect) {
      this.totals.errors.add(`DISCONNECT from broker${end > start ? ` 0x${buf[start]!.toString(16)}` : ''}`);
    } else this.handle(type, flags, buf, start, end);
  }

  /** Role-specific packets. */
  protected handle(type: number, _flags: number, _buf: Buffer, _start: number, _end: number): void {
    this.totals.errors.add(`unexpected ${packetName(type)}`);
  }

  onMalformed(reason: string): void {
    this.totals.errors.add(`malformed packet from broker: ${reason}`);
    this.sock?.destroy();
  }

  /** Queues a 4-byte acknowledgement; all queued ones leave in one write after the chunk. */
  protected queueAck(type: number, packetId: number): void {
    let buf = (this.ackBuf ??= Buffer.allocUnsafe(4 * 256));
    if (this.ackLen + 4 > buf.length) {
      const next = Buffer.allocUnsafe(buf.length * 2);
      buf.copy(next, 0, 0, this.ackLen);
      this.ackBuf = buf = next;
    }
    writeAck(buf, this.ackLen, type, packetId);
    this.ackLen += 4;
  }

  private flushAcks(): void {
    if (this.ackLen === 0 || this.ackBuf === undefined || !this.sock || this.sock.destroyed) return;
    // the socket may keep the buffer until it drains, so hand it a copy (one per chunk)
    this.sock.write(Buffer.from(this.ackBuf.subarray(0, this.ackLen)));
    this.ackLen = 0;
  }

  ping(): void {
    if (this.isUp && this.sock && !needsDrain(this.sock)) this.sock.write(PINGREQ);
  }

  /** DISCONNECT and close; resolves when the socket is closed (or after `timeoutMs`). */
  close(timeoutMs = 2000): Promise<void> {
    const sock = this.sock;
    this.closing = true;
    if (!sock || sock.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        sock.destroy();
        resolve();
      }, timeoutMs);
      this.onClosed = () => {
        clearTimeout(timer);
        resolve();
      };
      if (this.isUp) sock.end(DISCONNECT);
      else sock.destroy();
    });
  }
}

export interface PublisherOptions {
  index: number;
  topic: string;
  qos: number;
  payloadBytes: number;
  /** Messages to send; Infinity until stopped. */
  count: number;
  /** Most unacknowledged QoS 1/2 messages. */
  inflight: number;
  /** PUBLISHes per write. */
  batch: number;
  retain: boolean;
}

const WRITE_BUFFERS = 4;

export class Publisher extends BenchConnection implements PumpSource {
  readonly o: PublisherOptions;
  private readonly template: PublishTemplate;
  private readonly packetBytes: number;
  private readonly chunks: Buffer[] = [];
  private readonly busy = new Uint8Array(WRITE_BUFFERS);
  private readonly written: (() => void)[] = [];
  private next = 0;
  private readonly sentAt: Float64Array;
  private readonly pidBusy: Uint8Array;
  private nextPid = 1;
  private readonly pidMax: number;
  inflight = 0;
  seq = 0;
  acked = 0;
  private blocked = false;
  stopped = false;
  /** Called when this publisher may be able to send again. */
  wake: () => void = () => undefined;

  constructor(target: Target, totals: Totals, clientId: string, o: PublisherOptions) {
    super(target, totals, clientId);
    this.o = o;
    this.template = encodePublishTemplate(target.level, o.topic, o.qos, o.payloadBytes, o.retain);
    this.packetBytes = this.template.bytes.length;
    for (let i = 0; i < WRITE_BUFFERS; i++) {
      this.chunks.push(repeatTemplate(this.template, o.batch));
      this.written.push(() => {
        this.busy[i] = 0;
        this.wake();
      });
    }
    // packet ids cycle through 1..pidMax: unique among the in-flight ones, and the per-id
    // tables stay small when there are many publishers
    this.pidMax = Math.min(65535, Math.max(16, 2 * o.inflight));
    this.sentAt = new Float64Array(o.qos > 0 ? this.pidMax + 1 : 0);
    this.pidBusy = new Uint8Array(o.qos > 0 ? this.pidMax + 1 : 0);
  }

  override connect(): Promise<void> {
    return super.connect().then(() => {
      this.sock!.on('drain', () => {
        this.blocked = false;
        this.wake();
      });
    });
  }

  get done(): boolean {
    return this.stopped || this.seq >= this.o.count || !this.isUp;
  }

  /** How many PUBLISHes this publisher can write now. */
  available(): number {
    if (this.done || this.blocked || this.busy[this.next] === 1) return 0;
    const n = Math.min(this.o.batch, this.o.count - this.seq);
    if (this.o.qos === 0) return n > 0 ? n : 0;
    // wait for room for a whole batch: trickling acknowledgements must not become tiny writes
    const room = this.o.inflight - this.inflight;
    return room >= Math.min(n, this.o.inflight) ? Math.min(n, room) : 0;
  }

  /** Patches and writes `n` PUBLISHes stamped with `t` as one write. */
  send(n: number, t: number): void {
    const i = this.next;
    const chunk = this.chunks[i]!;
    const len = this.packetBytes;
    const qos = this.o.qos;
    for (let k = 0; k < n; k++) {
      let pid = 0;
      if (qos > 0) {
        pid = this.nextPid;
        while (this.pidBusy[pid] === 1) pid = pid === this.pidMax ? 1 : pid + 1;
        this.nextPid = pid === this.pidMax ? 1 : pid + 1;
        this.pidBusy[pid] = 1;
        this.sentAt[pid] = t;
      }
      patchPublish(chunk, k * len, this.template, pid, t, this.o.index, this.seq++);
    }
    this.inflight += qos > 0 ? n : 0;
    this.totals.sent += n;
    this.busy[i] = 1;
    this.next = (i + 1) % WRITE_BUFFERS;
    if (!this.sock!.write(n === this.o.batch ? chunk : chunk.subarray(0, n * len), this.written[i])) this.blocked = true;
  }

  protected override handle(type: number, _flags: number, buf: Buffer, start: number, end: number): void {
    if (type !== PacketType.Puback && type !== PacketType.Pubrec && type !== PacketType.Pubcomp) {
      super.handle(type, _flags, buf, start, end);
      return;
    }
    if (end - start < 2) return this.onMalformed(`short ${packetName(type)}`);
    const pid = (buf[start]! << 8) | buf[start + 1]!;
    if (end - start > 2 && buf[start + 2]! >= 0x80) this.totals.errors.add(`${packetName(type)} 0x${buf[start + 2]!.toString(16)}`);
    if (type === PacketType.Pubrec) {
      this.queueAck(PacketType.Pubrel, pid);
      return;
    }
    if (pid > this.pidMax || this.pidBusy[pid] !== 1) {
      this.totals.errors.add(`${packetName(type)} for unknown packet id`);
      return;
    }
    this.pidBusy[pid] = 0;
    this.totals.ackLatency.record((this.chunkNowMs - this.sentAt[pid]!) * 1000);
    this.inflight--;
    this.acked++;
    this.totals.acked++;
    this.wake();
  }
}

/** Receives, checks the stamp, acknowledges. */
export class Subscriber extends BenchConnection {
  readonly filter: string;
  readonly qos: number;
  received = 0;
  /** Next expected sequence per publisher index (-1: none seen yet). */
  private nextSeq = new Int32Array(64).fill(-1);
  private gapCount = 0;
  private onSuback: ((ok: boolean) => void) | undefined;
  private readonly pidAt = { pos: 0 };

  constructor(target: Target, totals: Totals, clientId: string, filter: string, qos: number) {
    super(target, totals, clientId);
    this.filter = filter;
    this.qos = qos;
  }

  subscribe(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.onSuback = (ok) => (ok ? resolve() : reject(new Error('SUBACK failure')));
      this.sock!.write(encodeSubscribe(this.target.level, 1, this.filter, this.qos));
    });
  }

  /** Messages skipped in some publisher's sequence (loss when no total is known). */
  gaps(): number {
    return this.gapCount;
  }

  protected override handle(type: number, flags: number, buf: Buffer, start: number, end: number): void {
    if (type === PacketType.Publish) {
      const off = publishPayloadOffset(buf, start, end, flags, this.target.level, this.pidAt);
      if (off < 0 || end - off < STAMP_BYTES) {
        this.totals.errors.add('PUBLISH without a bench stamp');
      } else {
        const t = this.totals;
        t.latency.record((this.chunkNowMs - buf.readDoubleBE(off + StampField.SendTimeMs)) * 1000);
        const pub = buf.readUInt32BE(off + StampField.Publisher);
        const seq = buf.readUInt32BE(off + StampField.Seq);
        if (pub >= this.nextSeq.length) {
          const grown = new Int32Array(Math.max(pub + 1, this.nextSeq.length * 2)).fill(-1);
          grown.set(this.nextSeq);
          this.nextSeq = grown;
        }
        const expect = this.nextSeq[pub]!;
        if (expect >= 0 && seq < expect) t.duplicates++;
        else {
          if (expect >= 0 && seq > expect) this.gapCount += seq - expect;
          this.nextSeq[pub] = seq + 1;
          this.received++;
          t.received++;
          t.lastReceiveMs = this.chunkNowMs;
        }
      }
      const qos = (flags >>> 1) & 3;
      if (qos > 0 && this.pidAt.pos >= 0)
        this.queueAck(qos === 1 ? PacketType.Puback : PacketType.Pubrec, buf.readUInt16BE(this.pidAt.pos));
    } else if (type === PacketType.Pubrel) {
      if (end - start >= 2) this.queueAck(PacketType.Pubcomp, buf.readUInt16BE(start));
    } else if (type === PacketType.Suback) {
      const props = this.target.level === 5 ? 1 + buf[start + 2]! : 0;
      const code = buf[start + 2 + props];
      if (code === undefined || code >= 0x80) this.totals.errors.add(`SUBACK 0x${(code ?? 0).toString(16)}`);
      this.onSuback?.(code !== undefined && code < 0x80);
    } else super.handle(type, flags, buf, start, end);
  }
}

/** Something the Pump drives: an MQTT publisher or a Kafka producer connection. */
export interface PumpSource {
  readonly done: boolean;
  stopped: boolean;
  /** Messages it can send now (0: wait for an event, which must call `wake`). */
  available(): number;
  /** Sends `n` (≤ available()) messages stamped with send time `t`. */
  send(n: number, t: number): void;
  wake: () => void;
  /** Whether available() is all-or-nothing (a Kafka batch): never send a part of it. */
  readonly whole?: boolean;
}

/**
 * Drives sources: each tick writes one batch per source that can send, within the token bucket
 * of `ratePerS` messages (0 = unlimited). Resolves `finished` when every source is done.
 */
export class Pump {
  private readonly pubs: PumpSource[];
  private readonly ratePerS: number;
  private tokens = 0;
  private lastRefill = 0;
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private start = 0;
  private deadlineMs = Number.POSITIVE_INFINITY;
  private resolveFinished: () => void = () => undefined;
  readonly finished: Promise<void>;
  private isFinished = false;
  private readonly tick = (): void => this.run();

  private readonly minBurst: number;

  /** `minBurst`: the largest whole send of any source, so that many tokens can accumulate. */
  constructor(pubs: PumpSource[], ratePerS: number, minBurst = 1) {
    this.pubs = pubs;
    this.ratePerS = ratePerS;
    this.minBurst = minBurst;
    this.finished = new Promise((r) => (this.resolveFinished = r));
    for (const p of pubs) p.wake = () => this.wake();
  }

  begin(durationMs: number): void {
    this.lastRefill = performance.now();
    if (Number.isFinite(durationMs)) this.deadlineMs = this.lastRefill + durationMs;
    this.wake();
  }

  stop(): void {
    for (const p of this.pubs) p.stopped = true;
    this.wake();
  }

  wake(): void {
    if (this.scheduled || this.isFinished) return;
    this.scheduled = true;
    setImmediate(this.tick);
  }

  private run(): void {
    this.scheduled = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = performance.now();
    if (now >= this.deadlineMs) for (const p of this.pubs) p.stopped = true;
    const limited = this.ratePerS > 0;
    if (limited) {
      // burst of at most 50 ms of tokens, so a stall is not followed by an unbounded spike
      this.tokens = Math.min(this.tokens + ((now - this.lastRefill) / 1000) * this.ratePerS, Math.max(this.minBurst, this.ratePerS * 0.05));
      this.lastRefill = now;
    }
    const t = nowMs();
    let wrote = false;
    let waitingForTokens = false;
    let allDone = true;
    const n = this.pubs.length;
    for (let k = 0; k < n; k++) {
      const p = this.pubs[(this.start + k) % n]!;
      if (!p.done) allDone = false;
      let m = p.available();
      if (m === 0) continue;
      if (limited) {
        if (this.tokens < 1 || (p.whole === true && this.tokens < m)) {
          waitingForTokens = true;
          break;
        }
        m = Math.min(m, Math.floor(this.tokens));
        this.tokens -= m;
      }
      p.send(m, t);
      wrote = true;
    }
    this.start = (this.start + 1) % Math.max(1, n);
    if (allDone) {
      this.isFinished = true;
      this.resolveFinished();
      return;
    }
    if (wrote) this.wake();
    else if (waitingForTokens) this.timer = setTimeout(this.tick, Math.max(1, Math.ceil(1000 / this.ratePerS)));
    // everyone is waiting for an event (drain, ack, write done); still end on time
    else if (Number.isFinite(this.deadlineMs)) this.timer = setTimeout(this.tick, Math.max(1, Math.min(100, this.deadlineMs - now)));
  }
}

/** Runs `fn` over `items` with at most `concurrency` at a time. */
export async function forEachLimited<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}
