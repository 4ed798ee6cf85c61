import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectClient, randomId, RawClient, startBroker } from './helpers.js';

test('limits give the protocol reason code and a metric', async (t) => {
  const { url, port, broker } = await startBroker(t, {
    mqtt: { sysIntervalMs: 0, maxSubscriptionsPerClient: 2, maxTopicLevels: 4, maxTopicLengthBytes: 32 },
  });

  await t.test('subscriptions per client: 0x97 (5.0) / 0x80 (3.1.1)', async (t) => {
    const c5 = await connectClient(t, url, { protocolVersion: 5 });
    await c5.subscribeAsync(['a', 'b']);
    const g5 = await c5.subscribeAsync('c').catch((err: { packet: { granted: number[] } }) => err.packet.granted.map((qos) => ({ qos })));
    assert.equal(g5[0]?.qos, 0x97);
    const c4 = await connectClient(t, url, { protocolVersion: 4 });
    await c4.subscribeAsync(['a', 'b']);
    const g4 = await c4.subscribeAsync('c').catch((err: { packet: { granted: number[] } }) => err.packet.granted.map((qos) => ({ qos })));
    assert.equal(g4[0]?.qos, 0x80);
  });

  await t.test('topic levels and length: SUBACK 0x8F / PUBACK 0x90', async (t) => {
    const c = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    c.send({
      cmd: 'subscribe',
      messageId: 3,
      subscriptions: [
        { topic: 'a/b/c/d/e', qos: 0, nl: false, rap: false, rh: 0 },
        { topic: 'x'.repeat(40), qos: 0, nl: false, rap: false, rh: 0 },
      ],
    });
    const ack = await c.waitFor<{ cmd: 'suback'; granted: number[] }>('suback');
    assert.deepEqual(ack.granted, [0x8f, 0x8f]);
    c.send({ cmd: 'publish', topic: 'a/b/c/d/e', payload: Buffer.from('x'), qos: 1, messageId: 4, dup: false, retain: false });
    assert.equal((await c.waitFor<{ cmd: 'puback'; reasonCode: number }>('puback')).reasonCode, 0x90);
  });

  await t.test('counted per limit', async () => {
    const hits = await broker.mqtt.metrics.limitHits.get();
    const names = new Set(hits.values.filter((v) => v.value > 0).map((v) => v.labels.limit));
    for (const n of ['subscriptions', 'topic_levels', 'topic_length']) assert.ok(names.has(n), n);
  });
});
