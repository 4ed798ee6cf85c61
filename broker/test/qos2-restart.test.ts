import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type mqttPacket from 'mqtt-packet';
import { connectClient, RawClient, sleep, startBroker, tempDir } from './helpers.js';

// QoS 2 packet-id state of persistent sessions in the file stores (`inbox.jsonl`), across kill -9
// of a broker process and the compaction each open does. e2e/test/mqtt-qos2-restart.test.ts runs
// the same exchanges against robust-server (journal-backed stores).

const child = fileURLToPath(new URL('./fixtures/broker-child.js', import.meta.url));

async function spawnBroker(dataDir: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [child, dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, 'line')) as [string];
  return { proc, port: (JSON.parse(line) as { port: number }).port };
}

async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = once(proc, 'exit');
  proc.kill('SIGKILL');
  await gone;
}

test('QoS 2 state of persistent sessions survives kill -9 with the file stores', async (t) => {
  const dir = await tempDir(t);
  let b = await spawnBroker(dir);
  t.after(() => kill(b.proc));

  // outbound: the subscriber takes a QoS 2 message to PUBREL and never sends PUBCOMP
  const sub = await RawClient.connect(t, b.port, { clientId: 'fq2-sub', clean: false });
  await sub.subscribe('fq2/out', 2);
  const pub = await connectClient(undefined, `mqtt://127.0.0.1:${b.port}`, { clientId: 'fq2-feed' });
  await pub.publishAsync('fq2/out', 'exactly-once', { qos: 2 });
  await pub.endAsync();
  const p = await sub.waitFor<mqttPacket.IPublishPacket>('publish');
  const outId = p.messageId as number;
  sub.send({ cmd: 'pubrec', messageId: outId });
  await sub.waitFor('pubrel');
  sub.end();

  // inbound: the publisher's QoS 2 id 9 is accepted (PUBREC), then the broker dies
  const inPub = await RawClient.connect(t, b.port, { clientId: 'fq2-pub', clean: false });
  inPub.send({ cmd: 'publish', topic: 'fq2/in', payload: Buffer.from('once'), qos: 2, messageId: 9, retain: false, dup: false });
  await inPub.waitFor('pubrec');
  inPub.end();

  // two restarts: the second replays the log the first one compacted
  for (let round = 0; round < 2; round++) {
    await kill(b.proc);
    b = await spawnBroker(dir);
    const again = await RawClient.connect(t, b.port, { clientId: 'fq2-sub', clean: false });
    assert.equal(again.packets[0]?.cmd === 'connack' && (again.packets[0] as mqttPacket.IConnackPacket).sessionPresent, true);
    assert.equal((await again.waitFor<mqttPacket.IPubrelPacket>('pubrel')).messageId, outId, `round ${round}: PUBREL again`);
    await sleep(100);
    assert.equal(again.of('publish').length, 0, `round ${round}: the released message is not re-sent`);
    again.end();
  }

  // a watcher subscribes (persistent) before the retransmission, then the exchange completes
  const watch = await RawClient.connect(t, b.port, { clientId: 'fq2-watch', clean: false });
  await watch.subscribe('fq2/in', 1);
  const resumed = await RawClient.connect(t, b.port, { clientId: 'fq2-pub', clean: false });
  resumed.send({ cmd: 'publish', topic: 'fq2/in', payload: Buffer.from('once'), qos: 2, messageId: 9, retain: false, dup: true });
  assert.equal((await resumed.waitFor<mqttPacket.IPubrecPacket>('pubrec')).messageId, 9);
  resumed.send({ cmd: 'pubrel', messageId: 9 });
  await resumed.waitFor('pubcomp');
  resumed.send({ cmd: 'publish', topic: 'fq2/in', payload: Buffer.from('next'), qos: 2, messageId: 9, retain: false, dup: false });
  await resumed.waitFor('pubrec', 2);
  const next = await watch.waitFor<mqttPacket.IPublishPacket>('publish');
  assert.equal(next.payload.toString(), 'next', 'the retransmission was not routed again');
  assert.equal(watch.of('publish').length, 1);

  const last = await RawClient.connect(t, b.port, { clientId: 'fq2-sub', clean: false });
  await last.waitFor('pubrel');
  last.send({ cmd: 'pubcomp', messageId: outId });
  await sleep(100);
  last.end();
  await kill(b.proc);
  b = await spawnBroker(dir);
  const done = await RawClient.connect(t, b.port, { clientId: 'fq2-sub', clean: false });
  await sleep(200);
  assert.deepEqual(
    done.packets.map((x) => x.cmd),
    ['connack'],
    'after PUBCOMP nothing is re-sent',
  );
});

test('a clean session publishes its will when the broker closes gracefully (file stores)', async (t) => {
  const dir = await tempDir(t);
  const first = await startBroker(undefined, { dataDir: dir, mqtt: { sysIntervalMs: 0 } });
  const willer = await connectClient(undefined, first.url, {
    clientId: 'graceful-willer',
    clean: true,
    will: { topic: 'graceful/will', payload: Buffer.from('bye'), qos: 1, retain: true },
  });
  await first.broker.close(100);
  willer.end(true);

  const second = await startBroker(t, { dataDir: dir, mqtt: { sysIntervalMs: 0 } });
  const retained = await second.broker.mqtt.stores.retain.get('graceful/will');
  assert.equal(retained?.payload.toString(), 'bye', 'the will was stored before the stores closed');
});
