import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startServer, ANY_PORTS_ANONYMOUS } from '../src/index.js';

// Anonymous MQTT access is an explicit setting (off by default).
const anyPorts = ANY_PORTS_ANONYMOUS;

async function connect(port: number, clientId: string, clean: boolean): Promise<mqtt.MqttClient> {
  const c = mqtt.connect({ host: '127.0.0.1', port, clientId, clean, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

test(
  'QoS 1 messages for an offline persistent session survive kill -9 of the server (stored in meta and the journal)',
  { timeout: 60_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'robustmq-mqtt-durable-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    let srv = await startServer(['start', '--data-dir', dir, ...anyPorts]);
    t.after(() => srv.proc.kill('SIGKILL'));

    // a persistent session subscribes at QoS 1 and goes away
    const sub = await connect(srv.ports.mqtt as number, 'durable-sub', false);
    await sub.subscribeAsync('plant/+/temp', { qos: 1 });
    await sub.endAsync();

    // a publisher sends QoS 1 messages; each PUBACK means stored
    const pub = await connect(srv.ports.mqtt as number, 'publisher', true);
    const acked: string[] = [];
    for (let i = 0; i < 200; i++) {
      const payload = `reading-${i}`;
      await pub.publishAsync(`plant/${i % 5}/temp`, payload, { qos: 1 });
      acked.push(payload);
    }
    await pub.publishAsync('plant/status', 'retained-state', { qos: 1, retain: true });
    pub.end(true);

    srv.proc.kill('SIGKILL');
    await srv.exited;
    srv = await startServer(['start', '--data-dir', dir, ...anyPorts]);

    // the session resumes with everything that was acknowledged, in order, and the retained message is there
    const back = mqtt.connect({
      host: '127.0.0.1',
      port: srv.ports.mqtt as number,
      clientId: 'durable-sub',
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    const got: string[] = [];
    const done = new Promise<void>((resolve) =>
      back.on('message', (_topic, payload) => {
        got.push(payload.toString());
        if (got.length >= acked.length) resolve();
      }),
    );
    const present = await new Promise<boolean>((resolve, reject) => {
      back.once('connect', (ack) => resolve(ack.sessionPresent));
      back.once('error', reject);
    });
    assert.equal(present, true, 'the session survived the crash');
    await done;
    assert.deepEqual(got, acked, 'every acknowledged message arrives once, in order');
    const retained = await new Promise<string>((resolve) => {
      back.on('message', (topic, payload, packet) => {
        if (topic === 'plant/status' && packet.retain) resolve(payload.toString());
      });
      void back.subscribeAsync('plant/status', { qos: 1 });
    });
    assert.equal(retained, 'retained-state');
    await back.endAsync();
    assert.equal(await srv.stop(), 0);
  },
);
