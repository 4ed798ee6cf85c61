import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectClient, connectRefused, waitFor } from './helpers.js';
import { startSecureBroker } from './security-helpers.js';

test('per-listener connection limit', async (t) => {
  const { ports, broker, logs } = await startSecureBroker(t, { auth: { allowAnonymous: true }, limits: { maxConnectionsPerListener: 2 } });
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  await connectClient(t, url);
  const second = await connectClient(t, url);
  assert.equal(await connectRefused(url), undefined, 'third open connection: refused at accept');
  const m = await broker.security.metrics.connectRefused.get();
  assert.ok(m.values.some((v) => v.labels.reason === 'max_connections' && v.value >= 1));
  assert.ok(logs.some((l) => l.msg === 'listener connection limit reached' && l.ip === '127.0.0.1'));
  await second.endAsync();
  await waitFor(() => (broker.listeners[0]?.connectionCount ?? 0) < 2, 2000, 'slot freed');
  assert.equal((await connectClient(t, url)).connected, true);
});

test('connection rate per IP', async (t) => {
  const { ports, broker, logs } = await startSecureBroker(t, { auth: { allowAnonymous: true }, limits: { connectRatePerIp: 3 } });
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  for (let i = 0; i < 3; i++) await connectClient(t, url);
  assert.equal(await connectRefused(url), undefined, 'fourth connection within the second: refused at accept');
  const refused = await broker.security.metrics.connectRefused.get();
  assert.ok(refused.values.some((v) => v.labels.reason === 'connect_rate' && v.value >= 1));
  assert.ok(logs.some((l) => l.msg === 'connection rate limit reached' && l.ip === '127.0.0.1'));
});

test('publish rate per client: over the budget the reader pauses (nothing is lost)', async (t) => {
  const { ports, broker } = await startSecureBroker(t, {
    auth: { allowAnonymous: true },
    limits: { publishRatePerClient: 20, publishBytesPerSecPerClient: 1_000_000 },
  });
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  const sub = await connectClient(t, url);
  let n = 0;
  sub.on('message', () => n++);
  await sub.subscribeAsync('rate/#', { qos: 1 });
  const pub = await connectClient(t, url, { clientId: 'fast-publisher' });
  const start = Date.now();
  await Promise.all(Array.from({ length: 40 }, (_, i) => pub.publishAsync('rate/x', String(i), { qos: 1 })));
  const took = Date.now() - start;
  await waitFor(() => n === 40, 5000, 'all 40 delivered');
  assert.ok(took >= 800, `40 messages at 20/s (burst 20) take about a second (took ${took} ms)`);
  const hits = await broker.security.metrics.rateLimited.get();
  assert.ok(hits.values.some((v) => v.labels.limit === 'publish_rate' && v.value > 0));
});

test('publish bytes per second per client', async (t) => {
  const { ports } = await startSecureBroker(t, { auth: { allowAnonymous: true }, limits: { publishBytesPerSecPerClient: 20_000 } });
  const pub = await connectClient(t, `mqtt://127.0.0.1:${ports.mqtt}`);
  const start = Date.now();
  const payload = Buffer.alloc(10_000);
  for (let i = 0; i < 5; i++) await pub.publishAsync('bytes/x', payload, { qos: 1 });
  assert.ok(Date.now() - start >= 800, '50 kB at 20 kB/s (burst 20 kB) takes over a second');
});
