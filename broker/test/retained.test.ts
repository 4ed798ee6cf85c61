import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connectClient, sleep, startBroker, waitFor } from './helpers.js';

test('retained messages', async (t) => {
  const { url, broker } = await startBroker(t, { mqtt: { sysIntervalMs: 0, maxRetainedMessages: 3 } });
  const pub = await connectClient(t, url, { protocolVersion: 5 });

  await t.test('set, replace, clear with an empty payload', async (t) => {
    await pub.publishAsync('r/a', 'first', { qos: 1, retain: true });
    await pub.publishAsync('r/a', 'second', { qos: 1, retain: true });
    const s1 = await connectClient(t, url);
    const got1 = collect(s1);
    await s1.subscribeAsync('r/#', { qos: 1 });
    await waitFor(() => got1.length === 1);
    assert.equal(String(got1[0]?.payload), 'second');
    assert.equal(got1[0]?.packet.retain, true);
    await pub.publishAsync('r/a', '', { qos: 1, retain: true });
    const s2 = await connectClient(t, url);
    const got2 = collect(s2);
    await s2.subscribeAsync('r/#', { qos: 1 });
    await sleep(100);
    assert.equal(got2.length, 0);
  });

  await t.test('forwarded messages carry RETAIN=0 unless Retain As Published', async (t) => {
    const s = await connectClient(t, url, { protocolVersion: 5 });
    const got = collect(s);
    await s.subscribeAsync('rap/plain', { qos: 0 });
    await s.subscribeAsync('rap/asis', { qos: 0, rap: true });
    await pub.publishAsync('rap/plain', 'x', { retain: true });
    await pub.publishAsync('rap/asis', 'y', { retain: true });
    await waitFor(() => got.length === 2);
    const byTopic = Object.fromEntries(got.map((m) => [m.topic, m.packet.retain]));
    assert.deepEqual(byTopic, { 'rap/plain': false, 'rap/asis': true });
    await pub.publishAsync('rap/plain', '', { retain: true });
    await pub.publishAsync('rap/asis', '', { retain: true });
  });

  await t.test('retain handling 0, 1 and 2', async (t) => {
    await pub.publishAsync('rh/x', 'kept', { qos: 1, retain: true });
    const s = await connectClient(t, url, { protocolVersion: 5 });
    const got = collect(s);
    await s.subscribeAsync('rh/#', { qos: 0, rh: 2 });
    await sleep(50);
    assert.equal(got.length, 0, 'rh=2 sends nothing');
    await s.unsubscribeAsync('rh/#');
    await s.subscribeAsync('rh/#', { qos: 0, rh: 1 });
    await waitFor(() => got.length === 1);
    await s.subscribeAsync('rh/#', { qos: 0, rh: 1 });
    await sleep(50);
    assert.equal(got.length, 1, 'rh=1 only for a new subscription');
    await s.subscribeAsync('rh/#', { qos: 0, rh: 0 });
    await waitFor(() => got.length === 2, 1000, 'rh=0 on every subscribe');
    await pub.publishAsync('rh/x', '', { retain: true });
  });

  await t.test('retained message limit refuses new topics', async () => {
    for (let i = 0; i < 5; i++) await pub.publishAsync(`lim/${i}`, 'v', { qos: 1, retain: true });
    assert.equal(broker.mqtt.stores.retain.size, 3);
    const hits = await broker.mqtt.metrics.limitHits.get();
    assert.ok(hits.values.some((v) => v.labels.limit === 'retained_messages'));
  });
});
