import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TestContext } from 'node:test';
import { createLogger, createMetricsRegistry, type LogLevel } from '@robustmq/common';
import { LocalNetwork, MetaNode } from '@robustmq/meta';
import { Journal } from '@robustmq/journal';
import { Broker, type BrokerOptions } from '../src/index.js';
import type { KafkaConfig } from '../src/kafka/config.js';
import { Framer } from '../src/kafka/framing.js';

export interface KafkaTestBroker {
  broker: Broker;
  kafkaPort: number;
  mqttPort: number;
  meta: MetaNode;
  journal: Journal;
  dir: string;
  /** Stops broker, journal and meta (data kept in `dir`). */
  stop(): Promise<void>;
}

const log = createLogger({ level: (process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel, service: 'kafka-test' });

/**
 * An all-in-one broker for Kafka tests: a single-node meta (local transport) and a journal in a
 * temporary directory, Kafka and MQTT on 127.0.0.1 port 0. Everything is stopped in `t.after`.
 * Pass `dir` to restart on the data of an earlier one.
 */
export async function startKafkaBroker(
  t: TestContext,
  opts: { kafka?: Partial<KafkaConfig>; dir?: string; broker?: Partial<BrokerOptions> } = {},
): Promise<KafkaTestBroker> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'robustmq-kafka-')));
  if (opts.dir === undefined) t.after(() => rm(dir, { recursive: true, force: true }));
  const registry = createMetricsRegistry();
  const net = new LocalNetwork();
  const meta = await MetaNode.open({
    nodeId: 1,
    dir: join(dir, 'meta'),
    log,
    registry,
    transport: net.transport(1),
    address: 'local:1',
    initialMembers: new Map([[1, 'local:1']]),
    tickMs: 10,
  });
  for (let i = 0; !meta.isReady(); i++) {
    if (i > 500) throw new Error('meta not ready');
    await sleep(10);
  }
  const journal = new Journal({ dataDir: join(dir, 'journal'), logger: log, registry, config: { fsyncPolicy: 'never' } });
  await journal.open();
  const broker = new Broker({
    host: '127.0.0.1',
    mqttPort: 0,
    kafkaPort: 0,
    log,
    registry,
    meta,
    journal,
    auth: { allowAnonymous: true },
    kafka: { groupInitialRebalanceDelayMs: 50, ...opts.kafka },
    ...opts.broker,
  });
  const ports = await Promise.all(broker.listeners.map((l) => l.listen()));
  await broker.ready();
  await broker.kafka!.ready;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await broker.close(100);
    await journal.close();
    await meta.close();
  };
  t.after(stop);
  const port = (name: string): number => ports[broker.listeners.findIndex((l) => l.name === name)]!;
  return { broker, kafkaPort: port('kafka'), mqttPort: port('mqtt'), meta, journal, dir, stop };
}

/** A raw Kafka connection for protocol tests: send frames, read whole response frames. */
export class RawKafka {
  readonly socket: Socket;
  readonly #framer = new Framer(64 * 1024 * 1024);
  readonly #frames: Buffer[] = [];
  #wake: (() => void) | undefined;
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      for (const f of this.#framer.push(c)) this.#frames.push(f);
      this.#wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake?.();
    });
    socket.on('error', () => undefined);
  }

  static async connect(t: TestContext, port: number): Promise<RawKafka> {
    const s = netConnect(port, '127.0.0.1');
    await once(s, 'connect');
    t.after(() => s.destroy());
    return new RawKafka(s);
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next response frame, or undefined once the server closed the connection. */
  async next(timeoutMs = 5000): Promise<Buffer | undefined> {
    const end = Date.now() + timeoutMs;
    while (this.#frames.length === 0 && !this.closed) {
      if (Date.now() > end) throw new Error('no kafka response');
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 50);
      });
    }
    return this.#frames.shift();
  }

  /** Resolves true once the server has closed the connection. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < end) await sleep(10);
    return this.closed;
  }
}
