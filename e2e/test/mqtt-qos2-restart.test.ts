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

// QoS 2 exchanges of persistent sessions (issue #5) across a restart of a real robust-server,
// graceful (SIGTERM) and kill -9: the packet-id state is stored before PUBREC / PUBREL go out.

const anyPorts = ANY_PORTS_ANONYMOUS;

/** A bare 3.1.1 client: sends what it is told and acknowledges nothing by itself. */
class RawClient {
  readonly packets: mqttPacket.Packet[] = [];
  readonly #sock: Socket;

  private constructor(sock: Socket) {
    this.#sock = sock;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p: mqttPacket.Packet) => this.packets.push(p));
    sock.on('data', (c: Buffer) => parser.parse(c));
    sock.on('error', () => undefined);
  }

  /** Connects with CleanSession=0 and returns the client and the CONNACK's Session Present. */
  static async connect(t: TestContext, port: number, clientId: string): Promise<{ c: RawClient; present: boolean }> {
    const sock = netConnect({ host: '127.0.0.1', port });
    t.after(() => void sock.destroy());
    await once(sock, 'connect');
    const c = new RawClient(sock);
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, keepalive: 60, clientId });
    const ack = await c.next<mqttPacket.IConnackPacket>('connack');
    assert.equal(ack.returnCode, 0);
    return { c, present: ack.sessionPresent };
  }

  send(p: mqttPacket.Packet): void {
    this.#sock.write(mqttPacket.generate(p, { protocolVersion: 4 }));
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

async function connectMqtt(port: number, clientId: string, clean: boolean): Promise<mqtt.MqttClient> {
  const c = mqtt.connect({ host: '127.0.0.1', port, clientId, clean, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

/** Starts a server on a fresh data directory; `restart` stops it with `signal` and starts it again. */
async function serverOnDir(t: TestContext): Promise<{ srv: () => RunningServer; restart: (signal: NodeJS.Signals) => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-mqtt-qos2-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const args = ['start', '--data-dir', dir, ...anyPorts];
  let srv = await startServer(args);
  t.after(() => srv.proc.kill('SIGKILL'));
  return {
    srv: () => srv,
    restart: async (signal) => {
      const code = await srv.stop(signal);
      if (signal === 'SIGTERM') assert.equal(code, 0, `graceful stop: ${srv.stderr()}`);
      srv = await startServer(args);
    },
  };
}

const port = (s: RunningServer): number => s.ports.mqtt as number;

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  test(`inbound QoS 2: a retransmission after PUBREC and a ${signal} restart is not delivered again`, { timeout: 50_000 }, async (t) => {
    const { srv, restart } = await serverOnDir(t);

    // an offline persistent subscriber collects what is routed, in its inbox
    const sub = await connectMqtt(port(srv()), 'q2in-sub', false);
    await sub.subscribeAsync('q2/in', { qos: 1 });
    await sub.endAsync();

    // the publisher (persistent session) sends QoS 2 id 7 and gets PUBREC: accepted and stored
    const first = await RawClient.connect(t, port(srv()), 'q2in-pub');
    first.c.send({ cmd: 'publish', topic: 'q2/in', payload: Buffer.from('once'), qos: 2, messageId: 7, retain: false, dup: false });
    assert.equal((await first.c.next<mqttPacket.IPubrecPacket>('pubrec')).messageId, 7);
    first.c.drop();

    await restart(signal);

    // the publisher resumes and retransmits the PUBLISH (DUP) before PUBREL, as the spec has it
    const again = await RawClient.connect(t, port(srv()), 'q2in-pub');
    assert.equal(again.present, true, 'the publisher session survived');
    again.c.send({ cmd: 'publish', topic: 'q2/in', payload: Buffer.from('once'), qos: 2, messageId: 7, retain: false, dup: true });
    assert.equal((await again.c.next<mqttPacket.IPubrecPacket>('pubrec')).messageId, 7);
    again.c.send({ cmd: 'pubrel', messageId: 7 });
    assert.equal((await again.c.next<mqttPacket.IPubcompPacket>('pubcomp')).messageId, 7);
    // id 7 is free again: a new message with it is routed
    again.c.send({ cmd: 'publish', topic: 'q2/in', payload: Buffer.from('next'), qos: 2, messageId: 7, retain: false, dup: false });
    await again.c.next('pubrec', 2);
    again.c.send({ cmd: 'pubrel', messageId: 7 });
    await again.c.next('pubcomp', 2);

    const back = mqtt.connect({ host: '127.0.0.1', port: port(srv()), clientId: 'q2in-sub', clean: false, reconnectPeriod: 0 });
    t.after(() => back.end(true));
    const got: string[] = [];
    back.on('message', (_topic, payload) => got.push(payload.toString()));
    await waitUntil(() => got.includes('next'), 'the message after the retransmitted one');
    assert.deepEqual(got, ['once', 'next'], 'the QoS 2 message is delivered exactly once');
    await back.endAsync();
    assert.equal(await srv().stop(), 0);
  });
}

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  test(`outbound QoS 2: after a ${signal} restart the server re-sends PUBREL, not the PUBLISH`, { timeout: 50_000 }, async (t) => {
    const { srv, restart } = await serverOnDir(t);

    const first = await RawClient.connect(t, port(srv()), 'q2out-sub');
    first.c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/out', qos: 2 }] });
    await first.c.next('suback');
    const pub = await connectMqtt(port(srv()), 'q2out-pub', true);
    await pub.publishAsync('q2/out', 'exactly-once', { qos: 2 });
    await pub.endAsync();

    // PUBLISH → PUBREC → PUBREL, and the subscriber never sends PUBCOMP
    const p = await first.c.next<mqttPacket.IPublishPacket>('publish');
    assert.equal(p.qos, 2);
    const id = p.messageId as number;
    first.c.send({ cmd: 'pubrec', messageId: id });
    assert.equal((await first.c.next<mqttPacket.IPubrelPacket>('pubrel')).messageId, id);
    first.c.drop();

    await restart(signal);

    const again = await RawClient.connect(t, port(srv()), 'q2out-sub');
    assert.equal(again.present, true, 'the subscriber session survived');
    assert.equal((await again.c.next<mqttPacket.IPubrelPacket>('pubrel')).messageId, id, 'PUBREL is re-sent for the released id');
    again.c.send({ cmd: 'pubcomp', messageId: id });
    // a later message still flows, and the old one never comes back as a PUBLISH
    const pub2 = await connectMqtt(port(srv()), 'q2out-pub', true);
    await pub2.publishAsync('q2/out', 'later', { qos: 2 });
    await pub2.endAsync();
    const later = await again.c.next<mqttPacket.IPublishPacket>('publish');
    assert.equal(later.payload.toString(), 'later');
    assert.equal(again.c.of('publish').length, 1, 'the completed message is not re-sent');
    again.c.send({ cmd: 'pubrec', messageId: later.messageId as number });
    await again.c.next('pubrel', 2);
    again.c.send({ cmd: 'pubcomp', messageId: later.messageId as number });
    await sleep(100);
    again.c.drop();

    // once PUBCOMP arrived, nothing is re-sent on the next resume
    const third = await RawClient.connect(t, port(srv()), 'q2out-sub');
    assert.equal(third.present, true);
    await sleep(300);
    assert.deepEqual(
      third.c.packets.map((x) => x.cmd),
      ['connack'],
      'no PUBLISH or PUBREL after the exchanges completed',
    );
    third.c.drop();
    assert.equal(await srv().stop(), 0);
  });
}
