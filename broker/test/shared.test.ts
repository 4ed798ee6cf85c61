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

  await t.test("leaving one group keeps the session's messages of its other groups", async (t) => {
    // A clean session with Receive Maximum 1 in two groups, the only member of g-keep: its
    // queued g-keep messages must stay with it when it leaves g-leave [MQTT-3.10.4-3].
    const a = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5, properties: { receiveMaximum: 1 } });
    await a.subscribe('$share/g-leave/lv/1', 1, 1);
    await a.subscribe('$share/g-keep/lv/2', 1, 2);
    const pub = await connectClient(t, url);
    for (const m of ['m1', 'm2', 'm3']) await pub.publishAsync('lv/2', m, { qos: 1 });
    await a.waitFor('publish', 1);
    a.send({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['$share/g-leave/lv/1'] });
    await a.waitFor('unsuback');
    for (let n = 1; n <= 3; n++) {
      const p = await a.waitFor<IPublishPacket>('publish', n);
      a.send({ cmd: 'puback', messageId: p.messageId! });
    }
    assert.deepEqual(
      a.of<IPublishPacket>('publish').map((p) => String(p.payload)),
      ['m1', 'm2', 'm3'],
    );
  });

  await t.test("leaving one group does not hand the other groups' messages to other members", async (t) => {
    const a = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5, properties: { receiveMaximum: 1 } });
    await a.subscribe('$share/h1/hx/1', 1, 1);
    await a.subscribe('$share/h2/hx/2', 1, 2);
    const b = await connectClient(t, url, { protocolVersion: 5 });
    const gb = collect(b);
    await b.subscribeAsync('$share/h2/hx/2', { qos: 1 });
    const pub = await connectClient(t, url);
    // round robin over a and b: some land on a, which acknowledges nothing yet
    for (let i = 0; i < 6; i++) await pub.publishAsync('hx/2', String(i), { qos: 1 });
    await waitFor(() => a.of('publish').length >= 1 && gb.length + a.of('publish').length >= 4);
    const aFirst = String(a.of<IPublishPacket>('publish')[0]!.payload);
    a.send({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['$share/h1/hx/1'] });
    await a.waitFor('unsuback');
    await sleep(200);
    // the message a is sending stays a's alone
    assert.equal(
      gb.some((m) => String(m.payload) === aFirst),
      false,
    );
  });

  await t.test("a redispatched message carries the new member's subscription identifier", async (t) => {
    const lazy = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    lazy.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '$share/g3/sid/#', qos: 1 }],
      properties: { subscriptionIdentifier: 1 },
    });
    await lazy.waitFor('suback');
    const good = await connectClient(t, url, { protocolVersion: 5 });
    const got = collect(good);
    await good.subscribeAsync('$share/g3/sid/#', { qos: 1, properties: { subscriptionIdentifier: 2 } });
    const pub = await connectClient(t, url);
    for (let i = 0; i < 6; i++) await pub.publishAsync('sid/x', String(i), { qos: 1 });
    await waitFor(() => lazy.of('publish').length + got.length === 6);
    assert.ok(lazy.of('publish').length > 0);
    lazy.end();
    await waitFor(() => got.length === 6, 2000, 'redispatch');
    for (const m of got) assert.deepEqual(m.packet.properties?.subscriptionIdentifier, 2, `message ${String(m.payload)}`);
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
