import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connectClient, startBroker, waitFor } from './helpers.js';

test('QoS 0, 1 and 2 in both directions', async (t) => {
  const { url } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  for (const protocolVersion of [3, 4, 5] as const) {
    await t.test(`MQTT ${protocolVersion}`, async (t) => {
      const opts = { protocolVersion, ...(protocolVersion === 3 ? { protocolId: 'MQIsdp' as const } : {}) };
      const sub = await connectClient(t, url, opts);
      const pub = await connectClient(t, url, opts);
      const got = collect(sub);
      await sub.subscribeAsync({
        [`q/${protocolVersion}/0`]: { qos: 0 },
        [`q/${protocolVersion}/1`]: { qos: 1 },
        [`q/${protocolVersion}/2`]: { qos: 2 },
      });
      for (const sq of [0, 1, 2] as const) {
        for (const pq of [0, 1, 2] as const) await pub.publishAsync(`q/${protocolVersion}/${sq}`, `${pq}`, { qos: pq });
      }
      await waitFor(() => got.length === 9, 3000, '9 messages');
      for (const m of got) {
        const sq = Number(m.topic.split('/')[2]);
        const pq = Number(m.payload.toString());
        // delivered at min(publish QoS, subscription QoS)
        assert.equal(m.packet.qos, Math.min(sq, pq), `${m.topic} ${pq}`);
        if (m.packet.qos > 0) assert.ok((m.packet.messageId ?? 0) > 0);
        assert.equal(m.packet.retain, false);
      }
    });
  }

  await t.test('overlapping subscriptions: one copy at the highest QoS', async (t) => {
    const sub = await connectClient(t, url, { protocolVersion: 4 });
    const pub = await connectClient(t, url);
    const got = collect(sub);
    await sub.subscribeAsync('ov/#', { qos: 0 });
    await sub.subscribeAsync('ov/+/x', { qos: 2 });
    await sub.subscribeAsync('ov/a/x', { qos: 1 });
    await pub.publishAsync('ov/a/x', 'm', { qos: 2 });
    await waitFor(() => got.length >= 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got.length, 1);
    assert.equal(got[0]?.packet.qos, 2);
  });

  await t.test('5.0 overlapping subscriptions carry every subscription identifier', async (t) => {
    const sub = await connectClient(t, url, { protocolVersion: 5 });
    const pub = await connectClient(t, url, { protocolVersion: 5 });
    const got = collect(sub);
    await sub.subscribeAsync('ids/#', { qos: 1, properties: { subscriptionIdentifier: 7 } });
    await sub.subscribeAsync('ids/+', { qos: 0, properties: { subscriptionIdentifier: 9 } });
    await pub.publishAsync('ids/a', 'm', { qos: 1 });
    await waitFor(() => got.length >= 1);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(got.length, 1);
    const ids = got[0]?.packet.properties?.subscriptionIdentifier;
    assert.deepEqual([ids].flat().sort(), [7, 9]);
    assert.equal(got[0]?.packet.qos, 1);
  });
});
