import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IPublishPacket } from 'mqtt-packet';
import { collect, connectClient, randomId, RawClient, sleep, startBroker, waitFor } from './helpers.js';

test('shared subscriptions', async (t) => {
  const { url, port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });

  await t.test('$share round robin: each message to exactly one member', async (t) => {
    const members = await Promise.all([5, 4, 5].map((v) => connectClient(t, url, { protocolVersion: v as 4 | 5 })));
    const got = members.map(collect);
    for (const m of members) await m.subscribeAsync('$share/g1/sh/#', { qos: 1 });
    const plain = await connectClient(t, url);
    const plainGot = collect(plain);
    await plain.subscribeAsync('sh/#');
    const pub = await connectClient(t, url);
    for (let i = 0; i < 30; i++) await pub.publishAsync('sh/x', String(i), { qos: 1 });
    await waitFor(() => got.reduce((n, g) => n + g.length, 0) === 30 && plainGot.length === 30);
    await sleep(50);
    assert.equal(
      got.reduce((n, g) => n + g.length, 0),
      30,
    );
    for (const g of got) assert.equal(g.length, 10);
  });

  await t.test('$queue/ works as one group', async (t) => {
    const a = await connectClient(t, url);
    const b = await connectClient(t, url);
    const ga = collect(a);
    const gb = collect(b);
    await a.subscribeAsync('$queue/qq');
    await b.subscribeAsync('$queue/qq');
    const pub = await connectClient(t, url);
    for (let i = 0; i < 10; i++) await pub.publishAsync('qq', String(i), { qos: 1 });
    await waitFor(() => ga.length + gb.length === 10);
    assert.ok(ga.length > 0 && gb.length > 0);
  });

  await t.test("a leaving member's unacknowledged messages go to another member", async (t) => {
    const lazy = await RawClient.connect(t, port, { clientId: randomId() });
    await lazy.subscribe('$share/g2/rd/#', 1);
    const good = await connectClient(t, url);
    const got = collect(good);
    await good.subscribeAsync('$share/g2/rd/#', { qos: 1 });
    const pub = await connectClient(t, url);
    for (let i = 0; i < 10; i++) await pub.publishAsync('rd/x', String(i), { qos: 1 });
    await waitFor(() => lazy.of('publish').length + got.length === 10);
    const lazyIds = lazy.of<IPublishPacket>('publish').map((p) => String(p.payload));
    assert.ok(lazyIds.length > 0);
    lazy.end();
    await waitFor(() => got.length === 10, 2000, 'redispatch');
    assert.deepEqual(got.map((m) => String(m.payload)).sort(), Array.from({ length: 10 }, (_, i) => String(i)).sort());
  });

  await t.test('No Local on a shared subscription is a protocol error', async (t) => {
    const c = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/x', qos: 0, nl: true, rap: false, rh: 0 }] });
    const d = await c.waitFor<{ cmd: 'disconnect'; reasonCode: number }>('disconnect');
    assert.equal(d.reasonCode, 0x82);
  });
});

test('shared subscription strategies', async (t) => {
  for (const strategy of ['random', 'sticky', 'hash_clientid', 'hash_topic'] as const) {
    await t.test(strategy, async (t) => {
      const { url } = await startBroker(t, { mqtt: { sysIntervalMs: 0, sharedStrategy: strategy } });
      const ms = await Promise.all([0, 1, 2].map(() => connectClient(t, url)));
      const got = ms.map(collect);
      for (const m of ms) await m.subscribeAsync('$share/s/st/#', { qos: 1 });
      const pub = await connectClient(t, url);
      for (let i = 0; i < 30; i++) await pub.publishAsync(`st/${i % 3}`, String(i), { qos: 1 });
      await waitFor(() => got.reduce((n, g) => n + g.length, 0) === 30);
      const counts = got.map((g) => g.length);
      if (strategy === 'sticky' || strategy === 'hash_clientid') assert.equal(counts.filter((c) => c > 0).length, 1, String(counts));
      if (strategy === 'hash_topic') {
        for (const g of got) assert.ok(new Set(g.map((m) => m.topic)).size <= 3);
        const owner = new Map<string, number>();
        got.forEach((g, i) => g.forEach((m) => assert.equal(owner.get(m.topic) ?? (owner.set(m.topic, i), i), i)));
      }
    });
  }
});
