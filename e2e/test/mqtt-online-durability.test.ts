import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startServer, type RunningServer, ANY_PORTS_ANONYMOUS, sleep, waitUntil } from '../src/index.js';

// Issue #5: QoS 1/2 messages delivered to an ONLINE persistent session survive kill -9 of a
// real robust-server until the client acknowledges them, and come back (DUP, same packet id)
// when the session resumes; acknowledged ones do not.

const anyPorts = ANY_PORTS_ANONYMOUS;

/** A bare client: sends what it is told and acknowledges nothing by itself. */
class RawClient {
  readonly packets: mqttPacket.Packet[] = [];
  readonly #sock: Socket;
  readonly #version: 4 | 5;

  private constructor(sock: Socket, version: 4 | 5) {
    this.#sock = sock;
    this.#version = version;
    const parser = mqttPacket.parser({ protocolVersion: version });
    parser.on('packet', (p: mqttPacket.Packet) => this.packets.push(p));
    sock.on('data', (c: Buffer) => parser.parse(c));
    sock.on('error', () => undefined);
  }

  /** Connects with CleanSession=0 (3.1.1); returns the client and the CONNACK's Session Present. */
  static async connect(t: TestContext, port: number, clientId: string): Promise<{ c: RawClient; present: boolean }> {
    const sock = netConnect({ host: '127.0.0.1', port });
    t.after(() => void sock.destroy());
    await once(sock, 'connect');
    const c = new RawClient(sock, 4);
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, keepalive: 60, clientId });
    const ack = await c.next<mqttPacket.IConnackPacket>('connack');
    assert.equal(ack.returnCode, 0);
    return { c, present: ack.sessionPresent };
  }

  send(p: mqttPacket.Packet): void {
    this.#sock.write(mqttPacket.generate(p, { protocolVersion: this.#version }));
  }

  of<P extends mqttPacket.Packet>(cmd: string): P[] {
    return this.packets.filter((p) => p.cmd === cmd) as P[];
  }

  /** Waits for the n-th packet (1-based) of type `cmd`. */
  async next<P extends mqttPacket.Packet>(cmd: string, n = 1): Promise<P> {
    await waitUntil(() => this.of(cmd).length >= n, `${cmd} #${n}`);
    return this.of<P>(cmd)[n - 1] as P;
  }

  /** Disconnects without DISCONNECT (the session stays). */
  drop(): void {
    this.#sock.destroy();
  }
}

async function connectMqtt(port: number, clientId: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const c = mqtt.connect({
    host: '127.0.0.1',
    port,
    clientId,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...opts,
  });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

/** Starts a server on a fresh data directory; `kill` SIGKILLs it and starts it again on the same directory. */
async function serverOnDir(t: TestContext): Promise<{ port: () => number; srv: () => RunningServer; kill: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-mqtt-online-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const args = ['start', '--data-dir', dir, ...anyPorts];
  let srv = await startServer(args);
  t.after(() => srv.proc.kill('SIGKILL'));
  return {
    port: () => srv.ports.mqtt as number,
    srv: () => srv,
    kill: async () => {
      await srv.stop('SIGKILL');
      srv = await startServer(args);
    },
  };
}

test(
  'QoS 1 to an online persistent session: unacknowledged messages survive kill -9 and come back with DUP',
  { timeout: 30_000 },
  async (t) => {
    const { port, srv, kill } = await serverOnDir(t);
    const first = await RawClient.connect(t, port(), 'online-q1-sub');
    first.c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'online/q1', qos: 1 }] });
    await first.c.next('suback');

    // 50 messages, each PUBACKed to the publisher; the server's window (32) is in flight, the rest queue
    const pub = await connectMqtt(port(), 'online-q1-pub');
    const payloads = Array.from({ length: 50 }, (_, i) => `m${i}`);
    for (const p of payloads) await pub.publishAsync('online/q1', p, { qos: 1 });
    await pub.endAsync();
    await first.c.next('publish', 32);

    // the subscriber acknowledges the first 10 (10 more go out), the rest never
    const sent = first.c.of<mqttPacket.IPublishPacket>('publish');
    for (const p of sent.slice(0, 10)) first.c.send({ cmd: 'puback', messageId: p.messageId as number });
    await first.c.next('publish', 42);
    await sleep(200); // the acks reach the journal (each turn's acks are one append)
    const before = new Map(first.c.of<mqttPacket.IPublishPacket>('publish').map((p) => [p.payload.toString(), p.messageId]));
    assert.equal(before.size, 42);

    await kill();

    const again = await RawClient.connect(t, port(), 'online-q1-sub');
    assert.equal(again.present, true, 'the session survived');
    // window 32: the 32 in flight come back first; acknowledging them lets the 8 never sent follow
    const resent = await again.c.next<mqttPacket.IPublishPacket>('publish', 32);
    for (const p of again.c.of<mqttPacket.IPublishPacket>('publish')) again.c.send({ cmd: 'puback', messageId: p.messageId as number });
    await again.c.next('publish', 40);
    await sleep(200);
    const got = again.c.of<mqttPacket.IPublishPacket>('publish');
    assert.deepEqual(
      got.map((p) => p.payload.toString()),
      payloads.slice(10),
      'every unacknowledged message, in order; none of the acknowledged ones',
    );
    assert.ok(resent !== undefined);
    for (const p of got.slice(0, 32)) {
      const m = p.payload.toString();
      assert.equal(p.dup, true, `${m} was sent before the kill: DUP`);
      assert.equal(p.messageId, before.get(m), `${m} keeps its packet id`);
    }
    for (const p of got.slice(32)) assert.equal(p.dup, false, `${p.payload.toString()} was never sent`);
    for (const p of got.slice(32)) again.c.send({ cmd: 'puback', messageId: p.messageId as number });
    await sleep(200);
    again.c.drop();

    // all acknowledged: a kill and a resume re-send nothing
    await kill();
    const third = await RawClient.connect(t, port(), 'online-q1-sub');
    assert.equal(third.present, true);
    await sleep(300);
    assert.deepEqual(
      third.c.packets.map((p) => p.cmd),
      ['connack'],
    );
    third.c.drop();
    assert.equal(await srv().stop(), 0);
  },
);

test(
  'QoS 2 to an online persistent session: PUBLISH before PUBREC comes back with DUP, PUBREL after it; kill -9',
  { timeout: 30_000 },
  async (t) => {
    const { port, srv, kill } = await serverOnDir(t);
    const first = await RawClient.connect(t, port(), 'online-q2-sub');
    first.c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'online/q2', qos: 2 }] });
    await first.c.next('suback');

    // three messages, each PUBRECed to the publisher (mqtt.js completes the exchange: PUBCOMP)
    const pub = await connectMqtt(port(), 'online-q2-pub');
    for (const p of ['a', 'b', 'c']) await pub.publishAsync('online/q2', p, { qos: 2 });
    await pub.endAsync();
    const [a, b, c] = (await first.c.next('publish', 3), first.c.of<mqttPacket.IPublishPacket>('publish'));
    assert.deepEqual(
      [a, b, c].map((p) => p?.payload.toString()),
      ['a', 'b', 'c'],
    );
    const idA = a?.messageId as number;
    // only `a` gets PUBREC (→ PUBREL, no PUBCOMP); `b` and `c` are not acknowledged at all
    first.c.send({ cmd: 'pubrec', messageId: idA });
    assert.equal((await first.c.next<mqttPacket.IPubrelPacket>('pubrel')).messageId, idA);

    await kill();

    const again = await RawClient.connect(t, port(), 'online-q2-sub');
    assert.equal(again.present, true, 'the session survived');
    assert.equal((await again.c.next<mqttPacket.IPubrelPacket>('pubrel')).messageId, idA, 'PUBREL for the PUBRECed message');
    await again.c.next('publish', 2);
    await sleep(200);
    const got = again.c.of<mqttPacket.IPublishPacket>('publish');
    assert.deepEqual(
      got.map((p) => [p.payload.toString(), p.dup, p.messageId, p.qos]),
      [
        ['b', true, b?.messageId, 2],
        ['c', true, c?.messageId, 2],
      ],
      'the messages not PUBRECed come back with DUP under their ids; `a` is not re-sent',
    );
    // complete everything
    again.c.send({ cmd: 'pubcomp', messageId: idA });
    for (const p of got) again.c.send({ cmd: 'pubrec', messageId: p.messageId as number });
    await again.c.next('pubrel', 3);
    for (const p of got) again.c.send({ cmd: 'pubcomp', messageId: p.messageId as number });
    await sleep(200); // the PUBCOMP markers reach the journal
    again.c.drop();

    // completed exchanges stay completed across another kill -9: no PUBLISH and no extra PUBREL
    await kill();
    const third = await RawClient.connect(t, port(), 'online-q2-sub');
    assert.equal(third.present, true);
    await sleep(300);
    assert.deepEqual(
      third.c.packets.map((p) => p.cmd),
      ['connack'],
      'nothing re-sent after PUBCOMP',
    );
    third.c.drop();
    assert.equal(await srv().stop(), 0);
  },
);

test(
  'MQTT 5 session expiry > 0: a QoS 1 message the client did not acknowledge survives kill -9 (mqtt.js)',
  { timeout: 30_000 },
  async (t) => {
    const { port, srv, kill } = await serverOnDir(t);
    const v5 = { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 300 } };

    // the first connection's application never acknowledges (mqtt.js sends PUBACK only after
    // `done`, and handles the next packet only then: `world` stays unread in its stream)
    const got1: string[] = [];
    const sub = await connectMqtt(port(), 'online-v5-sub', {
      ...v5,
      customHandleAcks: (_topic, message, _packet, _done) => void got1.push(message.toString()),
    });
    t.after(() => sub.end(true));
    await sub.subscribeAsync('online/v5', { qos: 1 });
    const pub = await connectMqtt(port(), 'online-v5-pub', { protocolVersion: 5 });
    await pub.publishAsync('online/v5', 'hello', { qos: 1 });
    await pub.publishAsync('online/v5', 'world', { qos: 1 });
    await pub.endAsync();
    await waitUntil(() => got1.length === 1, 'the first message reaches the online subscriber');
    await sleep(100);
    assert.deepEqual(got1, ['hello']);

    await kill();
    sub.end(true);

    const back = mqtt.connect({ host: '127.0.0.1', port: port(), clientId: 'online-v5-sub', reconnectPeriod: 0, ...v5 });
    t.after(() => back.end(true));
    const got2: Array<[string, boolean]> = [];
    back.on('message', (_topic, payload, packet) => got2.push([payload.toString(), packet.dup]));
    const present = await new Promise<boolean>((resolve, reject) => {
      back.once('connect', (ack) => resolve(ack.sessionPresent));
      back.once('error', reject);
    });
    assert.equal(present, true, 'the session (expiry 300 s) survived the crash');
    await waitUntil(() => got2.length === 2, 'both messages again');
    assert.deepEqual(got2, [
      ['hello', true],
      ['world', true],
    ]);
    await sleep(200); // mqtt.js acknowledged them: a resume now brings nothing
    await back.endAsync();
    const last = await connectMqtt(port(), 'online-v5-sub', v5);
    const got3: string[] = [];
    last.on('message', (_topic, payload) => got3.push(payload.toString()));
    await sleep(300);
    assert.deepEqual(got3, []);
    await last.endAsync();
    assert.equal(await srv().stop(), 0);
  },
);
