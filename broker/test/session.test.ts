import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IPublishPacket } from 'mqtt-packet';
import { collect, connectClient, onceEvent, randomId, RawClient, sleep, startBroker, waitFor } from './helpers.js';

test('sessions', async (t) => {
  const { url, port, broker } = await startBroker(t, { mqtt: { sysIntervalMs: 0, maxQueuedMessages: 5, maxInflightMessages: 4 } });

  await t.test('unacknowledged QoS 1/2 messages are redelivered with DUP on resume', async (t) => {
    const clientId = randomId();
    const a = await RawClient.connect(t, port, { clientId, clean: false });
    await a.subscribe('dup/+', 2);
    const pub = await connectClient(t, url);
    await pub.publishAsync('dup/1', 'one', { qos: 1 });
    await pub.publishAsync('dup/2', 'two', { qos: 2 });
    const first = [await a.waitFor<IPublishPacket>('publish', 1), await a.waitFor<IPublishPacket>('publish', 2)];
    assert.equal(first[0]?.dup, false);
    a.end();
    await sleep(50);
    const b = await RawClient.connect(t, port, { clientId, clean: false });
    assert.equal(b.of<{ cmd: 'connack'; sessionPresent: boolean }>('connack')[0]?.sessionPresent, true);
    const again = [await b.waitFor<IPublishPacket>('publish', 1), await b.waitFor<IPublishPacket>('publish', 2)];
    for (let i = 0; i < 2; i++) {
      assert.equal(again[i]?.dup, true);
      assert.equal(again[i]?.messageId, first[i]?.messageId);
      assert.equal(String(again[i]?.payload), String(first[i]?.payload));
    }
    // PUBREC for the QoS 2 one → PUBREL; after reconnect the PUBREL is resent, not the PUBLISH
    b.send({ cmd: 'puback', messageId: again[0]?.messageId as number });
    b.send({ cmd: 'pubrec', messageId: again[1]?.messageId as number });
    await b.waitFor('pubrel');
    b.end();
    await sleep(50);
    const c = await RawClient.connect(t, port, { clientId, clean: false });
    const rel = await c.waitFor<{ cmd: 'pubrel'; messageId: number }>('pubrel');
    assert.equal(rel.messageId, again[1]?.messageId);
    await sleep(50);
    assert.equal(c.of('publish').length, 0);
    c.send({ cmd: 'pubcomp', messageId: rel.messageId });
    c.send({ cmd: 'disconnect' });
  });

  await t.test('offline persistent session queues QoS 1/2, drops QoS 0, keeps subscriptions', async (t) => {
    const clientId = randomId();
    const s1 = await connectClient(t, url, { clientId, clean: false });
    await s1.subscribeAsync('off/#', { qos: 1 });
    await new Promise<void>((r) => s1.end(false, {}, () => r()));
    const pub = await connectClient(t, url);
    await pub.publishAsync('off/a', 'q0', { qos: 0 });
    await pub.publishAsync('off/a', 'q1', { qos: 1 });
    await pub.publishAsync('off/a', 'q2', { qos: 2 });
    const s2 = await connectClient(t, url, { clientId, clean: false, manualConnect: false });
    const got = collect(s2);
    await waitFor(() => got.length === 2);
    assert.deepEqual(
      got.map((m) => String(m.payload)),
      ['q1', 'q2'],
    );
    assert.deepEqual(
      got.map((m) => m.packet.qos),
      [1, 1],
    );
  });

  await t.test('queue limit with drop-oldest keeps the newest messages and counts drops', async (t) => {
    const clientId = randomId();
    const s1 = await connectClient(t, url, { clientId, clean: false });
    await s1.subscribeAsync('lim/#', { qos: 1 });
    await new Promise<void>((r) => s1.end(false, {}, () => r()));
    const pub = await connectClient(t, url);
    for (let i = 0; i < 8; i++) await pub.publishAsync('lim/a', String(i), { qos: 1 });
    const s2 = await connectClient(t, url, { clientId, clean: false });
    const got = collect(s2);
    await waitFor(() => got.length === 5);
    await sleep(50);
    assert.deepEqual(
      got.map((m) => String(m.payload)),
      ['3', '4', '5', '6', '7'],
    );
    const dropped = await broker.mqtt.metrics.messagesDropped.get();
    assert.ok(dropped.values.some((v) => v.labels.reason === 'queue_full' && v.value >= 3));
  });

  await t.test('clean session discards the old session', async (t) => {
    const clientId = randomId();
    const s1 = await connectClient(t, url, { clientId, clean: false });
    await s1.subscribeAsync('cs/#', { qos: 1 });
    await new Promise<void>((r) => s1.end(false, {}, () => r()));
    const s2 = await connectClient(t, url, { clientId, clean: true });
    const got = collect(s2);
    const pub = await connectClient(t, url);
    await pub.publishAsync('cs/a', 'x', { qos: 1 });
    await sleep(100);
    assert.equal(got.length, 0);
  });

  await t.test('5.0 session expiry interval ends the session', async (t) => {
    const clientId = randomId();
    const s1 = await connectClient(t, url, { clientId, protocolVersion: 5, clean: true, properties: { sessionExpiryInterval: 1 } });
    await s1.subscribeAsync('exp/#', { qos: 1 });
    await new Promise<void>((r) => s1.end(false, {}, () => r()));
    assert.ok(broker.mqtt.sessions.has(clientId));
    await waitFor(() => !broker.mqtt.sessions.has(clientId), 3000, 'session expiry');
    const s2 = mqttConnect5(url, clientId);
    t.after(() => void s2.end(true));
    const [connack] = await onceEvent<[{ sessionPresent: boolean }]>(s2, 'connect');
    assert.equal(connack.sessionPresent, false);
  });

  await t.test('in-flight window: extra messages wait and flow as acks arrive', async (t) => {
    const a = await RawClient.connect(t, port, { clientId: randomId() });
    await a.subscribe('win/#', 1);
    const pub = await connectClient(t, url);
    for (let i = 0; i < 6; i++) await pub.publishAsync('win/x', String(i), { qos: 1 });
    await a.waitFor('publish', 4);
    await sleep(50);
    assert.equal(a.of('publish').length, 4);
    a.send({ cmd: 'puback', messageId: a.of<IPublishPacket>('publish')[0]?.messageId ?? 0 });
    await a.waitFor('publish', 5);
  });

  await t.test('inbound QoS 2 is exactly once: a retransmitted PUBLISH is not delivered twice', async (t) => {
    const sub = await connectClient(t, url);
    const got = collect(sub);
    await sub.subscribeAsync('eo/#', { qos: 2 });
    const p = await RawClient.connect(t, port, { clientId: randomId() });
    p.send({ cmd: 'publish', topic: 'eo/a', payload: Buffer.from('x'), qos: 2, messageId: 42, dup: false, retain: false });
    await p.waitFor('pubrec');
    p.send({ cmd: 'publish', topic: 'eo/a', payload: Buffer.from('x'), qos: 2, messageId: 42, dup: true, retain: false });
    await p.waitFor('pubrec', 2);
    p.send({ cmd: 'pubrel', messageId: 42 });
    await p.waitFor('pubcomp');
    await sleep(100);
    assert.equal(got.length, 1);
  });
});

import mqtt from 'mqtt';
function mqttConnect5(url: string, clientId: string): mqtt.MqttClient {
  return mqtt.connect(url, { clientId, protocolVersion: 5, clean: false, reconnectPeriod: 0, properties: { sessionExpiryInterval: 10 } });
}

test('queue limit with drop-new keeps the oldest messages, refuses the newer ones and counts drops', async (t) => {
  const { url, broker } = await startBroker(t, { mqtt: { sysIntervalMs: 0, maxQueuedMessages: 5, queueDropPolicy: 'drop-new' } });
  const clientId = randomId();
  const s1 = await connectClient(t, url, { clientId, clean: false });
  await s1.subscribeAsync('limn/#', { qos: 1 });
  await new Promise<void>((r) => s1.end(false, {}, () => r()));
  const pub = await connectClient(t, url);
  for (let i = 0; i < 8; i++) await pub.publishAsync('limn/a', String(i), { qos: 1 });
  const s2 = await connectClient(t, url, { clientId, clean: false });
  const got = collect(s2);
  await waitFor(() => got.length === 5);
  await sleep(100);
  assert.deepEqual(
    got.map((m) => String(m.payload)),
    ['0', '1', '2', '3', '4'],
  );
  const dropped = await broker.mqtt.metrics.messagesDropped.get();
  assert.ok(
    dropped.values.some((v) => v.labels.reason === 'queue_full' && v.value === 3),
    JSON.stringify(dropped.values),
  );
});
