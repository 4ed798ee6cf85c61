/**
 * Kafka connections of the generator: framing of size-prefixed responses, promise-based control
 * requests (setup only), and a producer whose Produce requests are pre-built frames patched per
 * send (see ProduceFrame) and pipelined up to an in-flight window, driven by the same Pump as the
 * MQTT publishers. Responses arrive in request order on a connection (a Kafka guarantee), so the
 * producer keeps its send times in a ring.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { ApiKey, decodeProduceResponse, encodeRequest, kafkaErrorName, KafkaReader, ProduceFrame } from './kafka-wire.js';
import type { PumpSource } from './mqtt-client.js';
import type { ErrorCounts, Histogram } from './stats.js';
import type { TlsSettings } from './options.js';

export interface KafkaTarget {
  host: string;
  port: number;
  tls: TlsSettings | null;
  clientId: string;
  connectTimeoutMs: number;
}

export class KafkaConnection {
  sock: net.Socket | undefined;
  protected readonly target: KafkaTarget;
  protected readonly errors: ErrorCounts;
  private chunks: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the frame being assembled needs (4 while its size is not known yet). */
  private frameBytes = 0;
  private correlation = 1;
  private readonly pending = new Map<number, { resolve: (r: KafkaReader) => void; reject: (e: Error) => void }>();
  private closing = false;
  isUp = false;

  constructor(target: KafkaTarget, errors: ErrorCounts) {
    this.target = target;
    this.errors = errors;
  }

  connect(): Promise<void> {
    const t = this.target;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error('connect timeout'));
      }, t.connectTimeoutMs);
      const ok = (): void => {
        clearTimeout(timer);
        this.isUp = true;
        resolve();
      };
      const sock = t.tls
        ? tls.connect(
            {
              host: t.host,
              port: t.port,
              ca: t.tls.ca ? readFileSync(t.tls.ca) : undefined,
              cert: t.tls.cert ? readFileSync(t.tls.cert) : undefined,
              key: t.tls.key ? readFileSync(t.tls.key) : undefined,
              rejectUnauthorized: !t.tls.insecure,
            },
            ok,
          )
        : net.connect({ host: t.host, port: t.port }, ok);
      this.sock = sock;
      sock.setNoDelay(true);
      sock.on('data', (chunk: Buffer) => this.onData(chunk));
      sock.on('error', (err: NodeJS.ErrnoException) => {
        if (!this.isUp) {
          clearTimeout(timer);
          reject(new Error(`connect ${err.code ?? err.message}`));
        } else if (!this.closing) this.errors.add(`socket ${err.code ?? err.message}`);
      });
      sock.on('close', () => {
        if (this.isUp && !this.closing) this.errors.add('connection closed by broker');
        this.isUp = false;
        for (const p of this.pending.values()) p.reject(new Error('connection closed'));
        this.pending.clear();
        this.onClose();
      });
    });
  }

  protected onClose(): void {}

  private onData(chunk: Buffer): void {
    // A large Fetch response arrives in many chunks: collect them and join once the frame is
    // complete (joining on every chunk would copy the response over and over).
    if (this.pendingBytes > 0) {
      this.chunks.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.frameBytes) return;
      chunk = Buffer.concat(this.chunks, this.pendingBytes);
      this.chunks = [];
      this.pendingBytes = 0;
    }
    let pos = 0;
    while (pos + 4 <= chunk.length) {
      const size = chunk.readInt32BE(pos);
      if (pos + 4 + size > chunk.length) break;
      const corr = chunk.readInt32BE(pos + 4);
      try {
        this.onResponse(corr, new KafkaReader(chunk, pos + 8, pos + 4 + size));
      } catch (err) {
        this.errors.add(`bad response: ${(err as Error).message}`);
      }
      pos += 4 + size;
    }
    if (pos < chunk.length) {
      const rest = chunk.subarray(pos);
      this.frameBytes = rest.length >= 4 ? rest.readInt32BE(0) + 4 : Number.MAX_SAFE_INTEGER;
      // keep a private copy of a short tail: the socket's chunk may be a slice of a pooled buffer
      this.chunks = [rest.length < 4096 ? Buffer.from(rest) : rest];
      this.pendingBytes = rest.length;
      if (this.frameBytes === Number.MAX_SAFE_INTEGER) this.frameBytes = 4; // re-check once 4 bytes are in
    }
  }

  protected onResponse(corr: number, r: KafkaReader): void {
    const p = this.pending.get(corr);
    if (!p) {
      this.errors.add('response with an unknown correlation id');
      return;
    }
    this.pending.delete(corr);
    p.resolve(r);
  }

  /** One control request (setup, fetch); resolves with a reader at the response body. */
  request(apiKey: ApiKey, body: Buffer): Promise<KafkaReader> {
    const corr = this.correlation++;
    return new Promise((resolve, reject) => {
      this.pending.set(corr, { resolve, reject });
      this.sock!.write(encodeRequest(apiKey, corr, this.target.clientId, body));
    });
  }

  close(): Promise<void> {
    this.closing = true;
    const sock = this.sock;
    if (!sock || sock.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      sock.once('close', () => resolve());
      sock.end();
      setTimeout(() => sock.destroy(), 1000).unref();
    });
  }
}

export interface ProducerOptions {
  topic: string;
  partitions: number[];
  acks: number;
  timeoutMs: number;
  /** Records per RecordBatch. */
  batchRecords: number;
  /** Partitions (one batch each) per request; default 1. */
  partitionsPerRequest?: number;
  batch: Buffer;
  inflight: number;
  /** Records to send; Infinity until stopped. */
  count: number;
}

export class KafkaProducer extends KafkaConnection implements PumpSource {
  readonly o: ProducerOptions;
  /** Records per request (batch records × partitions per request). */
  readonly perRequest: number;
  private readonly perRequestPartitions: number[];
  private readonly frames: ProduceFrame[] = [];
  private readonly busy: Uint8Array;
  private readonly written: (() => void)[] = [];
  private slot = 0;
  private readonly sentAt: Float64Array;
  private head = 0; // oldest unanswered request in sentAt
  inflight = 0;
  sent = 0;
  acked = 0;
  private nextPartition = 0;
  private nextCorrelation = 1_000_000;
  private blocked = false;
  private corked = false;
  stopped = false;
  readonly whole = true;
  private readonly ackLatency: Histogram;
  wake: () => void = () => undefined;

  constructor(target: KafkaTarget, errors: ErrorCounts, ackLatency: Histogram, o: ProducerOptions) {
    super(target, errors);
    this.o = o;
    this.perRequestPartitions = new Array<number>(Math.max(1, Math.min(o.partitionsPerRequest ?? 1, o.partitions.length))).fill(0);
    this.perRequest = o.batchRecords * this.perRequestPartitions.length;
    this.ackLatency = ackLatency;
    const slots = Math.max(2, o.inflight);
    this.busy = new Uint8Array(slots);
    for (let i = 0; i < slots; i++) {
      this.frames.push(
        new ProduceFrame(target.clientId, o.topic, o.acks, o.timeoutMs, o.batch, o.batchRecords, this.perRequestPartitions.length),
      );
      this.written.push(() => {
        this.busy[i] = 0;
        if (this.o.acks === 0) {
          this.acked += this.perRequest;
          this.inflight--;
        }
        this.wake();
      });
    }
    this.sentAt = new Float64Array(slots);
  }

  override connect(): Promise<void> {
    return super.connect().then(() => {
      this.sock!.on('drain', () => {
        this.blocked = false;
        this.wake();
      });
    });
  }

  protected override onClose(): void {
    this.wake();
  }

  get done(): boolean {
    return this.stopped || this.sent >= this.o.count || !this.isUp;
  }

  available(): number {
    if (this.done || this.blocked || this.inflight >= this.o.inflight || this.busy[this.slot] === 1) return 0;
    return this.perRequest;
  }

  send(_n: number, t: number): void {
    const i = this.slot;
    const frame = this.frames[i]!;
    const parts = this.perRequestPartitions;
    for (let p = 0; p < parts.length; p++) {
      parts[p] = this.o.partitions[this.nextPartition]!;
      this.nextPartition = (this.nextPartition + 1) % this.o.partitions.length;
    }
    frame.patch(this.nextCorrelation++, parts, t);
    this.sentAt[(this.head + this.inflight) % this.sentAt.length] = t;
    this.inflight++;
    this.sent += this.perRequest;
    this.busy[i] = 1;
    this.slot = (i + 1) % this.frames.length;
    const sock = this.sock!;
    if (!this.corked) {
      // the requests sent in one turn leave in one writev: a send(2) on loopback costs tens of
      // µs of CPU here (it wakes the peer), so one per request would make the generator the limit
      this.corked = true;
      sock.cork();
      process.nextTick(() => {
        this.corked = false;
        sock.uncork();
      });
    }
    if (!sock.write(frame.bytes, this.written[i])) this.blocked = true;
  }

  private readonly onProduceError = (code: number): void => this.errors.add(`produce ${kafkaErrorName(code)}`, this.o.batchRecords);

  protected override onResponse(corr: number, r: KafkaReader): void {
    if (corr < 1_000_000) return super.onResponse(corr, r);
    const t = performance.timeOrigin + performance.now();
    this.ackLatency.recordMany((t - this.sentAt[this.head]!) * 1000, this.perRequest);
    this.head = (this.head + 1) % this.sentAt.length;
    this.inflight--;
    const before = this.errors.total;
    decodeProduceResponse(r, this.onProduceError);
    if (this.errors.total === before) this.acked += this.perRequest;
    this.wake();
  }
}
