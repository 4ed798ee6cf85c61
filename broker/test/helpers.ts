import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { createLogger, createMetricsRegistry, type LogLevel } from '@robustmq/common';
import { Broker, type BrokerOptions } from '../src/index.js';

export interface TestBroker {
  broker: Broker;
  port: number;
  url: string;
}

/** Starts a broker on 127.0.0.1:0 (MQTT and Kafka), closed in `t.after`. */
export async function startBroker(t: TestContext | undefined, opts: Partial<BrokerOptions> = {}): Promise<TestBroker> {
  const log = createLogger({ level: (process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel, service: 'broker-test' });
  // Anonymous access is an explicit setting (off by default): these tests are about MQTT, not auth.
  const broker = new Broker({
    host: '127.0.0.1',
    mqttPort: 0,
    kafkaPort: 0,
    log,
    registry: createMetricsRegistry(),
    ...opts,
    auth: { allowAnonymous: true, ...opts.auth },
  });
  const [port] = await Promise.all(broker.listeners.map((l) => l.listen()));
  await broker.ready();
  t?.after(() => broker.close(200));
  return { broker, port: port as number, url: `mqtt://127.0.0.1:${port}` };
}

export async function tempDir(t: TestContext, prefix = 'robustmq-mqtt-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export function randomId(prefix = 'c'): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

/** Connects mqtt.js (no reconnects) and waits for CONNACK; ended in `t.after`. */
export async function connectClient(t: TestContext | undefined, url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, clientId: randomId(), ...opts });
  collect(c); // from the start: messages may arrive together with CONNACK
  t?.after(() => new Promise<void>((r) => c.end(true, {}, () => r())));
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
  c.removeAllListeners('error');
  c.on('error', () => undefined);
  return c;
}

/** The CONNACK error code mqtt.js reports for a refused CONNECT. */
export async function connectRefused(url: string, opts: IClientOptions = {}): Promise<number | undefined> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, clientId: randomId(), ...opts });
  try {
    return await new Promise<number | undefined>((resolve, reject) => {
      c.once('connect', () => reject(new Error('connected')));
      c.once('error', (err: Error & { code?: number }) => resolve(err.code));
      c.once('close', () => resolve(undefined));
    });
  } finally {
    c.end(true);
  }
}

export interface Received {
  topic: string;
  payload: Buffer;
  packet: mqtt.IPublishPacket;
}

const collected = new WeakMap<MqttClient, Received[]>();

/** The messages a client received (collected since `connectClient`). */
export function collect(c: MqttClient): Received[] {
  let out = collected.get(c);
  if (out === undefined) {
    const arr: Received[] = [];
    collected.set(c, arr);
    c.on('message', (topic, payload, packet) => arr.push({ topic, payload, packet }));
    out = arr;
  }
  return out;
}

export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A raw TCP connection collecting what the server sends. */
export async function rawConnect(t: TestContext, port: number): Promise<{ sock: Socket; data: () => Buffer; closed: () => boolean }> {
  const sock = netConnect({ host: '127.0.0.1', port });
  t.after(() => void sock.destroy());
  const chunks: Buffer[] = [];
  let isClosed = false;
  sock.on('data', (c: Buffer) => chunks.push(c));
  sock.on('close', () => (isClosed = true));
  sock.on('error', () => undefined);
  await once(sock, 'connect');
  return { sock, data: () => Buffer.concat(chunks), closed: () => isClosed };
}

/** `events.once` for mqtt.js clients (their typed emitter does not match Node's overloads). */
export function onceEvent<T extends unknown[] = unknown[]>(c: MqttClient, name: string): Promise<T> {
  return once(c as unknown as NodeJS.EventEmitter, name) as Promise<T>;
}

/** A CONNECT packet (3.1.1 unless `level`), built by hand for raw-socket tests. */
export function rawConnectPacket(opts: { clientId: string; clean?: boolean; keepAlive?: number; level?: number; name?: string }): Buffer {
  const name = Buffer.from(opts.name ?? (opts.level === 3 ? 'MQIsdp' : 'MQTT'));
  const id = Buffer.from(opts.clientId);
  const body = Buffer.concat([
    Buffer.from([0, name.length]),
    name,
    Buffer.from([opts.level ?? 4, opts.clean === false ? 0 : 0x02, 0, opts.keepAlive ?? 60]),
    ...(opts.level === 5 ? [Buffer.from([0])] : []),
    Buffer.from([id.length >> 8, id.length & 0xff]),
    id,
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** A bare MQTT client over a raw socket: sends what it is told, acknowledges nothing by itself. */
export class RawClient {
  readonly sock: Socket;
  readonly packets: mqttPacket.Packet[] = [];
  closed = false;
  readonly #version: number;

  private constructor(sock: Socket, version: number) {
    this.sock = sock;
    this.#version = version;
    const parser = mqttPacket.parser({ protocolVersion: version });
    parser.on('packet', (p: mqttPacket.Packet) => this.packets.push(p));
    sock.on('data', (c: Buffer) => parser.parse(c));
    sock.on('close', () => (this.closed = true));
    sock.on('error', () => undefined);
  }

  static async connect(
    t: TestContext,
    port: number,
    connect: Partial<mqttPacket.IConnectPacket> & { clientId: string },
  ): Promise<RawClient> {
    const sock = netConnect({ host: '127.0.0.1', port });
    t.after(() => void sock.destroy());
    await once(sock, 'connect');
    const version = connect.protocolVersion ?? 4;
    const c = new RawClient(sock, version);
    c.send({
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version as 3 | 4 | 5,
      clean: true,
      keepalive: 60,
      ...connect,
    });
    await c.waitFor('connack');
    return c;
  }

  send(p: mqttPacket.Packet): void {
    this.sock.write(mqttPacket.generate(p, { protocolVersion: this.#version }));
  }

  /** Waits for the n-th packet (1-based) of type `cmd` and returns it. */
  async waitFor<P extends mqttPacket.Packet = mqttPacket.Packet>(cmd: string, n = 1, timeoutMs = 3000): Promise<P> {
    await waitFor(() => this.packets.filter((p) => p.cmd === cmd).length >= n, timeoutMs, `${cmd} #${n}`);
    return this.packets.filter((p) => p.cmd === cmd)[n - 1] as P;
  }

  of<P extends mqttPacket.Packet>(cmd: string): P[] {
    return this.packets.filter((p) => p.cmd === cmd) as P[];
  }

  async subscribe(topic: string, qos: 0 | 1 | 2, messageId = 1): Promise<void> {
    const before = this.of('suback').length;
    this.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] });
    await this.waitFor('suback', before + 1);
  }

  end(): void {
    this.sock.destroy();
  }
}
