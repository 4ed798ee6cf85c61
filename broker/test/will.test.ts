import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connectClient, randomId, RawClient, sleep, startBroker, waitFor } from './helpers.js';

test('will messages', async (t) => {
  const { url, port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const watcher = await connectClient(t, url, { protocolVersion: 5 });
  const got = collect(watcher);
  await watcher.subscribeAsync('will/#', { qos: 1 });

  await t.test('published when the connection drops', async (t) => {
    const c = await RawClient.connect(t, port, {
      clientId: randomId(),
      will: { topic: 'will/drop', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    c.end();
    await waitFor(() => got.some((m) => m.topic === 'will/drop'));
  });

  await t.test('discarded by DISCONNECT 0x00, sent with 0x04', async (t) => {
    const a = await RawClient.connect(t, port, {
      clientId: randomId(),
      protocolVersion: 5,
      will: { topic: 'will/normal', payload: Buffer.from('x'), qos: 0, retain: false },
    });
    a.send({ cmd: 'disconnect', reasonCode: 0 });
    const b = await RawClient.connect(t, port, {
      clientId: randomId(),
      protocolVersion: 5,
      will: { topic: 'will/with', payload: Buffer.from('y'), qos: 0, retain: false },
    });
    b.send({ cmd: 'disconnect', reasonCode: 4 });
    await waitFor(() => got.some((m) => m.topic === 'will/with'));
    await sleep(50);
    assert.equal(
      got.some((m) => m.topic === 'will/normal'),
      false,
    );
  });

  await t.test('kept by a 5.0 DISCONNECT with an error reason code (0x80, 0x83)', async (t) => {
    for (const rc of [0x80, 0x83]) {
      const topic = `will/error-${rc}`;
      const c = await RawClient.connect(t, port, {
        clientId: randomId(),
        protocolVersion: 5,
        will: { topic, payload: Buffer.from('e'), qos: 0, retain: false },
      });
      c.send({ cmd: 'disconnect', reasonCode: rc });
      await waitFor(() => got.some((m) => m.topic === topic), 3000, `will after DISCONNECT 0x${rc.toString(16)}`);
    }
  });

  await t.test('will delay: sent after the delay, with will properties', async (t) => {
    const c = await RawClient.connect(t, port, {
      clientId: randomId(),
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 60 },
      will: {
        topic: 'will/delayed',
        payload: Buffer.from('late'),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 1, contentType: 'text/plain', userProperties: { a: '1' } },
      },
    });
    const t0 = Date.now();
    c.end();
    await waitFor(() => got.some((m) => m.topic === 'will/delayed'), 3000);
    assert.ok(Date.now() - t0 >= 900);
    const m = got.find((x) => x.topic === 'will/delayed');
    assert.equal(m?.packet.properties?.contentType, 'text/plain');
    assert.deepEqual({ ...m?.packet.properties?.userProperties }, { a: '1' });
  });

  await t.test('will delay: reconnecting in time cancels it', async (t) => {
    const clientId = randomId();
    const c = await RawClient.connect(t, port, {
      clientId,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/cancelled', payload: Buffer.from('no'), qos: 0, retain: false, properties: { willDelayInterval: 1 } },
    });
    c.end();
    await sleep(200);
    await RawClient.connect(t, port, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
    await sleep(1200);
    assert.equal(
      got.some((m) => m.topic === 'will/cancelled'),
      false,
    );
  });

  await t.test('sent at once when the session ends before the delay', async (t) => {
    const c = await RawClient.connect(t, port, {
      clientId: randomId(),
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 0 },
      will: { topic: 'will/sessionend', payload: Buffer.from('now'), qos: 0, retain: false, properties: { willDelayInterval: 30 } },
    });
    c.end();
    await waitFor(() => got.some((m) => m.topic === 'will/sessionend'), 1000);
  });

  await t.test('3.1.1 session takeover publishes the old connection will', async (t) => {
    const clientId = randomId();
    await RawClient.connect(t, port, { clientId, will: { topic: 'will/takeover', payload: Buffer.from('t'), qos: 0, retain: false } });
    await RawClient.connect(t, port, { clientId });
    await waitFor(() => got.some((m) => m.topic === 'will/takeover'), 1000);
  });
});
