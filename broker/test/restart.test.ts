import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { collect, connectClient, randomId, sleep, startBroker, tempDir, waitFor } from './helpers.js';

const child = fileURLToPath(new URL('./fixtures/broker-child.js', import.meta.url));

async function spawnBroker(dataDir: string): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [child, dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, 'line')) as [string];
  const { port } = JSON.parse(line) as { port: number };
  return { proc, url: `mqtt://127.0.0.1:${port}` };
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = once(proc, 'exit');
  proc.kill('SIGKILL');
  await gone;
}

test('persistence across a SIGKILL restart', async (t) => {
  const dir = await tempDir(t);
  let b = await spawnBroker(dir);
  t.after(() => kill(b.proc));
  const clientId = randomId('durable');

  // A persistent QoS 1 subscriber, then offline.
  const sub = await connectClient(undefined, b.url, { clientId, clean: false });
  await sub.subscribeAsync('durable/#', { qos: 1 });
  await new Promise<void>((r) => sub.end(false, {}, () => r()));

  // A retained message and a pending will survive too.
  const pub = await connectClient(undefined, b.url);
  await pub.publishAsync('durable/retained', 'kept', { qos: 1, retain: true });
  const acked: string[] = [];
  for (let i = 0; i < 50; i++) {
    await pub.publishAsync('durable/x', `m${i}`, { qos: 1 });
    acked.push(`m${i}`);
  }
  // Fire-and-forget publishes: only the PUBACKed ones are promised.
  const inflight = Array.from({ length: 20 }, (_, i) =>
    pub.publishAsync('durable/x', `late${i}`, { qos: 1 }).then(
      () => acked.push(`late${i}`),
      () => undefined,
    ),
  );
  await sleep(5);
  await kill(b.proc);
  await Promise.race([Promise.allSettled(inflight), sleep(200)]);
  pub.end(true);

  b = await spawnBroker(dir);
  const again = await connectClient(t, b.url, { clientId, clean: false });
  const got = collect(again);
  await waitFor(() => acked.every((p) => got.some((m) => String(m.payload) === p)), 5000, 'every acknowledged message');
  assert.ok(got.every((m) => m.packet.qos === 1));

  const fresh = await connectClient(t, b.url);
  const r = collect(fresh);
  await fresh.subscribeAsync('durable/retained');
  await waitFor(() => r.length === 1);
  assert.equal(String(r[0]?.payload), 'kept');
});

test('graceful close keeps sessions and a pending will is published after restart', async (t) => {
  const dir = await tempDir(t);
  const first = await startBroker(undefined, { dataDir: dir, mqtt: { sysIntervalMs: 0 } });
  const clientId = randomId('willer');
  const w = await connectClient(undefined, first.url, {
    clientId,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 300 },
    will: { topic: 'restart/will', payload: Buffer.from('bye'), qos: 1, retain: true, properties: { willDelayInterval: 1 } },
  });
  w.stream.destroy();
  await sleep(50);
  await first.broker.close(100);

  const second = await startBroker(t, { dataDir: dir, mqtt: { sysIntervalMs: 0 } });
  assert.ok(second.broker.mqtt.sessions.has(clientId));
  const s = await connectClient(t, second.url);
  const got = collect(s);
  await s.subscribeAsync('restart/#', { qos: 1 });
  await waitFor(() => got.some((m) => m.topic === 'restart/will'), 3000, 'will after restart');
});
