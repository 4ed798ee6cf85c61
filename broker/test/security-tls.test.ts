import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { once } from 'node:events';
import mqtt from 'mqtt';
import { connect as netConnect } from 'node:net';
import { collect, connectClient, randomId, rawConnectPacket, tempDir, waitFor } from './helpers.js';
import { granted, issue, makePki, settle, startSecureBroker } from './security-helpers.js';

const run = promisify(execFile);

test('MQTT over TLS and secure WebSocket: TLS 1.2+, mTLS with the certificate as username, reload without restart', async (t) => {
  const dir = await tempDir(t, 'robustmq-tls-');
  const pki = makePki(dir);
  const { ports, admin, broker, logs } = await startSecureBroker(t, {
    mqttsPort: 0,
    wssPort: 0,
    wsPort: 0,
    tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca, certUsernameFrom: 'cn' },
    auth: { chain: ['users'], listenerChains: { mqtts: ['cert', 'users'], wss: ['cert', 'users'] }, aclDefault: 'deny' },
  });
  await admin.putUser('alice', 'alice-secret-1', {});
  await admin.addAcl({ who: { all: true }, action: 'all', topic: 'devices/%u/#', permission: 'allow' });
  await admin.addAcl({ who: { username: 'alice' }, action: 'subscribe', topic: 'devices/#', permission: 'allow' });
  await settle();
  const ca = readFileSync(pki.ca);
  const mqtts = `mqtts://localhost:${ports.mqtts}`;
  let failures = 0;
  const counter = broker.security.metrics.tlsHandshakeFailures;
  const poll = setInterval(() => void counter.get().then((v) => (failures = v.values.reduce((a, x) => a + x.value, 0))), 20);
  t.after(() => clearInterval(poll));

  await t.test('mqtts:// with a password, server verified against the CA', async (t) => {
    const c = await connectClient(t, mqtts, { ca, username: 'alice', password: 'alice-secret-1' });
    const got = collect(c);
    await c.subscribeAsync('devices/alice/#', { qos: 1 });
    await c.publishAsync('devices/alice/t', 'over tls', { qos: 1 });
    await waitFor(() => got.length === 1, 3000, 'message over tls');
  });

  await t.test('client certificate: CN becomes the username (no password)', async (t) => {
    const c = await connectClient(t, mqtts, { ca, cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
    assert.deepEqual(await granted(c, 'devices/device-1/#'), [0], 'ACL %u expanded to the CN');
    assert.deepEqual(await granted(c, 'devices/alice/x'), [128], 'someone else’s topic is denied');
  });

  await t.test('TLS 1.1 is refused; plain MQTT bytes fail the handshake and are counted', async () => {
    const s = tlsConnect({
      host: '127.0.0.1',
      port: ports.mqtts as number,
      ca,
      servername: 'localhost',
      maxVersion: 'TLSv1.1',
      minVersion: 'TLSv1',
    });
    s.on('error', () => undefined);
    const secured = await new Promise<boolean>((resolve) => {
      s.once('secureConnect', () => resolve(true));
      s.once('close', () => resolve(false));
    });
    assert.equal(secured, false);
    const raw = netConnect({ host: '127.0.0.1', port: ports.mqtts as number });
    raw.on('error', () => undefined);
    raw.write(rawConnectPacket({ clientId: 'plain' }));
    await once(raw, 'close');
    await waitFor(() => failures > 0, 3000, 'handshake failure counted');
  });

  await t.test('openssl s_client negotiates TLS 1.2+ and verifies the chain', async () => {
    const { stdout, stderr } = await run('sh', [
      '-c',
      `echo | openssl s_client -connect 127.0.0.1:${ports.mqtts} -CAfile ${pki.ca} -servername localhost -brief 2>&1`,
    ]);
    const out = stdout + stderr;
    assert.match(out, /Protocol version: TLSv1\.[23]/);
    assert.match(out, /Verification: OK/);
  });

  await t.test('mosquitto_pub/mosquitto_sub with --cafile, --cert, --key, -u, -P', async () => {
    const topic = 'devices/device-1/mosq';
    const sub = execFile('mosquitto_sub', [
      '-h',
      'localhost',
      '-p',
      String(ports.mqtts),
      '--cafile',
      pki.ca,
      '-u',
      'alice',
      '-P',
      'alice-secret-1',
      '-t',
      topic,
      '-C',
      '1',
      '-W',
      '10',
      '-i',
      randomId('ms'),
    ]);
    let out = '';
    sub.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = once(sub, 'exit');
    await waitFor(
      () => broker.mqtt.connectedCount >= 1 && [...broker.mqtt.sessions.values()].some((s) => s.subscriptions.has(topic)),
      5000,
      'mosquitto_sub subscribed',
    );
    await run('mosquitto_pub', [
      '-h',
      'localhost',
      '-p',
      String(ports.mqtts),
      '--cafile',
      pki.ca,
      '--cert',
      pki.clientCert,
      '--key',
      pki.clientKey,
      '-u',
      'alice',
      '-P',
      'alice-secret-1',
      '-t',
      topic,
      '-m',
      'from mosquitto',
      '-q',
      '1',
    ]);
    await exited;
    assert.equal(out.trim(), 'from mosquitto');
    // a wrong password is refused (no certificate: the users authenticator decides)
    await assert.rejects(
      run('mosquitto_pub', [
        '-h',
        'localhost',
        '-p',
        String(ports.mqtts),
        '--cafile',
        pki.ca,
        '-u',
        'alice',
        '-P',
        'wrong-password',
        '-t',
        topic,
        '-m',
        'x',
      ]),
    );
  });

  await t.test('wss:// with a client certificate', async (t) => {
    const c = await connectClient(t, `wss://localhost:${ports.wss}/mqtt`, {
      ca,
      cert: readFileSync(pki.clientCert),
      key: readFileSync(pki.clientKey),
    });
    const got = collect(c);
    await c.subscribeAsync('devices/device-1/+');
    await c.publishAsync('devices/device-1/x', 'over wss');
    await waitFor(() => got.length === 1, 3000, 'message over wss');
  });

  await t.test('the certificate is reloaded when its files change; open connections stay up', async (t) => {
    const before = await peerSerial(ports.mqtts as number, ca);
    const keep = await connectClient(t, mqtts, { ca, username: 'alice', password: 'alice-secret-1' });
    const next = issue(dir, 'server2', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1');
    // Replace both files the way a secret volume does: new files renamed over the old ones.
    renameSync(next.key, pki.serverKey);
    renameSync(next.cert, pki.serverCert);
    await waitFor(() => logs.some((l) => l.msg === 'tls certificate reloaded'), 5000, 'reload logged');
    const after = await peerSerial(ports.mqtts as number, ca);
    assert.notEqual(after, before, 'new connections get the new certificate');
    assert.equal(keep.connected, true, 'an open connection is not dropped');
  });

  await t.test('a broken certificate file is refused on reload and the old one stays', async () => {
    const serial = await peerSerial(ports.mqtts as number, ca);
    const bad = join(dir, 'bad.pem');
    await run('sh', ['-c', `echo 'not a certificate' > ${bad}`]);
    renameSync(bad, pki.serverCert);
    await waitFor(() => logs.some((l) => l.msg === 'tls reload failed; keeping the previous certificate'), 5000, 'reload failure logged');
    assert.equal(await peerSerial(ports.mqtts as number, ca), serial);
  });
});

test('mTLS required: a client without a certificate fails the handshake', async (t) => {
  const dir = await tempDir(t, 'robustmq-mtls-');
  const pki = makePki(dir);
  const { ports } = await startSecureBroker(t, {
    mqttsPort: 0,
    tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca, requireClientCert: true, certUsernameFrom: 'san' },
    auth: { chain: ['cert'] },
  });
  const ca = readFileSync(pki.ca);
  const c = mqtt.connect(`mqtts://localhost:${ports.mqtts}`, { ca, reconnectPeriod: 0, connectTimeout: 3000 });
  const outcome = await new Promise<string>((resolve) => {
    c.once('connect', () => resolve('connected'));
    c.once('error', () => resolve('error'));
    c.once('close', () => resolve('closed'));
  });
  c.end(true);
  assert.notEqual(outcome, 'connected');
  const ok = await connectClient(t, `mqtts://localhost:${ports.mqtts}`, {
    ca,
    cert: readFileSync(pki.clientCert),
    key: readFileSync(pki.clientKey),
  });
  assert.equal(ok.connected, true, 'SAN device-1.example is the username');
});

test('TLS listeners are not bound without a certificate and key', async (t) => {
  const { ports } = await startSecureBroker(t, { mqttsPort: 0, wssPort: 0, wsPort: 0 });
  assert.deepEqual(Object.keys(ports).sort(), ['kafka', 'mqtt', 'ws']);
});

async function peerSerial(port: number, ca: Buffer): Promise<string> {
  const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
  await once(s, 'secureConnect');
  const serial = s.getPeerCertificate().serialNumber;
  s.destroy();
  return serial;
}
