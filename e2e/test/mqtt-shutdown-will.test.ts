import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { startServer, ANY_PORTS_ANONYMOUS, sleep, waitUntil } from '../src/index.js';

// Wills of clients whose connections a graceful shutdown closes (issue #5): for the client that
// is a network failure, so the wills are published (or kept, when delayed) before the stores close.

const anyPorts = ANY_PORTS_ANONYMOUS;

/** Connects; `onMessage` is attached first (queued messages can arrive with the CONNACK). */
async function connect(
  port: number,
  opts: mqtt.IClientOptions,
  onMessage?: (topic: string, payload: Buffer) => void,
): Promise<mqtt.MqttClient> {
  const c = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  c.on('error', () => undefined); // the server going away is expected here
  if (onMessage !== undefined) c.on('message', onMessage);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

const DELAY_SEC = 6;

test(
  'SIGTERM publishes the wills of the connections it closes, and keeps a delayed one for after the restart',
  { timeout: 50_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'robustmq-mqtt-will-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const args = ['start', '--data-dir', dir, ...anyPorts];
    let srv = await startServer(args);
    t.after(() => srv.proc.kill('SIGKILL'));
    const port = (): number => srv.ports.mqtt as number;

    // a persistent QoS 1 subscriber, connected while the server stops: the wills go to its inbox
    const watch = await connect(port(), { clientId: 'will-watch', clean: false, protocolVersion: 4 });
    await watch.subscribeAsync('wills/#', { qos: 1 });
    const will = (topic: string, payload: string, properties?: { willDelayInterval: number }): mqtt.IClientOptions['will'] => ({
      topic,
      payload: Buffer.from(payload),
      qos: 1,
      retain: true,
      ...(properties ? { properties } : {}),
    });
    const clients = [
      // 3.1.1 clean session: the session ends with the connection, the will goes now
      await connect(port(), { clientId: 'w-clean', clean: true, protocolVersion: 4, will: will('wills/clean', 'clean-gone') }),
      // 5.0 Session Expiry 0: the session ends first, so a delayed will goes now (5.0 §3.1.3.2.2)
      await connect(port(), {
        clientId: 'w-v5-ends',
        clean: true,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 0 },
        will: will('wills/v5-ends', 'v5-gone', { willDelayInterval: 60 }),
      }),
      // 3.1.1 persistent session: no will delay, the will goes now and the session stays
      await connect(port(), { clientId: 'w-persistent', clean: false, protocolVersion: 4, will: will('wills/persistent', 'p-gone') }),
      // 5.0 persistent session with a will delay: kept in the session record, published after the restart when due
      await connect(port(), {
        clientId: 'w-delayed',
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 300 },
        will: will('wills/delayed', 'late', { willDelayInterval: DELAY_SEC }),
      }),
    ];
    t.after(() => clients.forEach((c) => c.end(true)));
    // a client that says DISCONNECT has no will published [MQTT-3.1.2-10]
    const polite = await connect(port(), { clientId: 'w-polite', clean: true, protocolVersion: 4, will: will('wills/polite', 'no') });
    await polite.endAsync();

    const stoppedAt = Date.now();
    assert.equal(await srv.stop(), 0, srv.stderr());
    watch.end(true);
    srv = await startServer(args);

    // the retained wills are there: published before the stores closed
    const retained = new Map<string, string>();
    const probe = await connect(port(), { clientId: 'will-probe', clean: true, protocolVersion: 4 }, (topic, payload) =>
      retained.set(topic, payload.toString()),
    );
    t.after(() => probe.end(true));
    await probe.subscribeAsync('wills/#', { qos: 1 });
    await waitUntil(() => retained.size >= 3, 'the retained wills');
    assert.equal(retained.get('wills/clean'), 'clean-gone');
    assert.equal(retained.get('wills/v5-ends'), 'v5-gone');
    assert.equal(retained.get('wills/persistent'), 'p-gone');
    assert.equal(retained.has('wills/polite'), false);
    if (Date.now() - stoppedAt < (DELAY_SEC - 1) * 1000) assert.equal(retained.has('wills/delayed'), false, 'the delayed will waits');

    // the persistent subscriber finds each will once in its inbox, then the delayed one when due
    const got: string[] = [];
    const back = await connect(port(), { clientId: 'will-watch', clean: false, protocolVersion: 4 }, (topic) => got.push(topic));
    t.after(() => back.end(true));
    await waitUntil(() => got.includes('wills/delayed'), 'the delayed will', DELAY_SEC * 1000 + 5000);
    assert.ok(Date.now() - stoppedAt >= DELAY_SEC * 1000 - 100, 'not before its delay (counted from the shutdown)');
    await sleep(200);
    assert.deepEqual([...got].sort(), ['wills/clean', 'wills/delayed', 'wills/persistent', 'wills/v5-ends']);
    await waitUntil(() => retained.has('wills/delayed'), 'the delayed will at the probe');
    assert.equal(retained.get('wills/delayed'), 'late');
    await back.endAsync();
    await probe.endAsync();
    assert.equal(await srv.stop(), 0);
  },
);
