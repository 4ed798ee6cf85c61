import { test } from 'node:test';
import assert from 'node:assert/strict';
import { duplexPair, type Duplex } from 'node:stream';
import { connect as netConnect, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { connectClient, randomId, sleep, waitFor } from './helpers.js';
import { settle, startSecureBroker } from './security-helpers.js';

/** A small deterministic PRNG (mulberry32) so a failure can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS: Packet[] = [
  { cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, messageId: 7, retain: false, dup: false },
  { cmd: 'publish', topic: 'fuzz/q2', payload: Buffer.alloc(40, 1), qos: 2, messageId: 9, retain: true, dup: false },
  {
    cmd: 'subscribe',
    messageId: 3,
    subscriptions: [
      { topic: 'x/+/#', qos: 2 },
      { topic: '$share/g/y', qos: 1 },
    ],
  },
  { cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['x/+/#'] },
  { cmd: 'puback', messageId: 1 },
  { cmd: 'pubrec', messageId: 2 },
  { cmd: 'pubrel', messageId: 2 },
  { cmd: 'pubcomp', messageId: 2 },
  { cmd: 'pingreq' },
  { cmd: 'disconnect' },
  { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from('n,,n=a,r=b') } },
];

function connectBytes(v: 4 | 5, id: string, extra: Partial<mqttPacket.IConnectPacket> = {}): Buffer {
  return mqttPacket.generate(
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: v, clientId: id, clean: true, keepalive: 30, ...extra },
    { protocolVersion: v },
  );
}

/** One fuzz input: a CONNECT (valid, mutated or absent) followed by valid and mutated packets. */
function makeInput(rnd: () => number, i: number): Buffer {
  const v = rnd() < 0.5 ? 4 : 5;
  const parts: Buffer[] = [];
  const mutate = (b: Buffer): Buffer => {
    const m = Buffer.from(b);
    const kind = rnd();
    if (kind < 0.4)
      for (let k = 0; k < 1 + rnd() * 4; k++) {
        const at = Math.floor(rnd() * m.length);
        m[at] = (m[at] as number) ^ (1 << Math.floor(rnd() * 8));
      }
    else if (kind < 0.6) return m.subarray(0, Math.floor(rnd() * m.length));
    else if (kind < 0.75)
      return Buffer.concat([m, Buffer.from(Array.from({ length: Math.floor(rnd() * 32) }, () => Math.floor(rnd() * 256)))]);
    else if (kind < 0.85)
      m[1] = Math.floor(rnd() * 256); // remaining length lies
    else return Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256)));
    return m;
  };
  const connect = connectBytes(v, `fz-${i}`, rnd() < 0.2 ? { username: 'u', password: Buffer.from('p') } : {});
  const r = rnd();
  parts.push(r < 0.6 ? connect : r < 0.9 ? mutate(connect) : Buffer.alloc(0));
  const n = Math.floor(rnd() * 6);
  for (let k = 0; k < n; k++) {
    const seeds = v === 5 ? SEEDS : SEEDS.filter((p) => p.cmd !== 'auth');
    const seed = seeds[Math.floor(rnd() * seeds.length)] as Packet;
    const bytes = mqttPacket.generate(seed, { protocolVersion: v });
    parts.push(rnd() < 0.5 ? bytes : mutate(bytes));
  }
  return Buffer.concat(parts);
}

/** Cuts `b` into random pieces (split anywhere, down to single bytes). */
function split(rnd: () => number, b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < b.length) {
    const len = rnd() < 0.2 ? 1 : 1 + Math.floor(rnd() * (b.length - at));
    out.push(b.subarray(at, at + len));
    at += len;
  }
  return out;
}

test('fuzz: random and mutated packets, random splits, into the per-connection state machine', async (t) => {
  const { broker, admin } = await startSecureBroker(t, { auth: { allowAnonymous: true, chain: ['users', 'scram'] } });
  await admin.putUser('u', 'password-1', {});
  await settle();
  const seed = Number(process.env.FUZZ_SEED ?? 1234);
  const rnd = prng(seed);
  const inputs = Number(process.env.FUZZ_INPUTS ?? 2000);
  const ends: Duplex[] = [];
  for (let i = 0; i < inputs; i++) {
    const [client, server] = duplexPair();
    (server as Duplex & { setNoDelay: () => void }).setNoDelay = () => undefined;
    client.on('data', () => undefined);
    client.on('error', () => undefined);
    server.on('error', () => undefined);
    broker.mqtt.handleSocket(server as unknown as Socket, { listener: 'mqtt', remoteAddress: '10.0.0.1' });
    for (const piece of split(rnd, makeInput(rnd, i))) client.write(piece);
    ends.push(client, server);
    if (i % 200 === 199) {
      await sleep(5);
      for (const c of ends.splice(0)) c.destroy();
    }
  }
  for (const c of ends) c.destroy();
  t.diagnostic(`fuzz inputs tried: ${inputs} (seed ${seed})`);
  await waitFor(() => broker.mqtt.connectedCount === 0, 5000, 'every fuzz connection gone');
  // the engine still serves
  const { ports } = { ports: { mqtt: broker.listeners[0]?.port as number } };
  const c = await connectClient(t, `mqtt://127.0.0.1:${ports.mqtt}`);
  await c.publishAsync('after/fuzz', 'ok', { qos: 1 });
});

test('soak: mutated traffic from many connections while good clients lose nothing; memory stays bounded', async (t) => {
  const { broker, ports } = await startSecureBroker(t, { auth: { allowAnonymous: true } });
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  const sub = await connectClient(t, url, { clientId: randomId('good-sub'), protocolVersion: 5 });
  const got: string[] = [];
  sub.on('message', (_topic, payload) => got.push(payload.toString()));
  await sub.subscribeAsync('good/#', { qos: 1 });
  const pub = await connectClient(t, url, { clientId: randomId('good-pub'), protocolVersion: 4 });
  const rnd = prng(99);
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let stop = false;
  let sent = 0;
  let badInputs = 0;
  const attackers = Array.from({ length: 20 }, async () => {
    while (!stop) {
      const s = netConnect({ host: '127.0.0.1', port: ports.mqtt as number });
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      await new Promise((r) => s.once('connect', r).once('error', r));
      for (const piece of split(rnd, makeInput(rnd, badInputs++))) s.write(piece);
      await sleep(Math.floor(rnd() * 10));
      s.destroy();
    }
  });
  const N = 300;
  for (let i = 0; i < N; i++) {
    await pub.publishAsync('good/x', String(i), { qos: 1 });
    sent++;
  }
  await waitFor(() => got.length >= N, 10_000, 'every good message');
  stop = true;
  await Promise.all(attackers);
  t.diagnostic(`soak: ${sent} good messages, ${badInputs} mutated connections`);
  assert.deepEqual(
    got,
    Array.from({ length: N }, (_, i) => String(i)),
    'nothing lost, nothing duplicated, in order',
  );
  await waitFor(() => broker.mqtt.connectedCount === 2, 5000, 'attackers gone');
  global.gc?.();
  const grewMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6;
  assert.ok(grewMb < 64, `heap grew ${grewMb.toFixed(1)} MB`);
});
