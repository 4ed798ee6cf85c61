import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type KafkaConfig as KafkaJsConfig } from 'kafkajs';
import { SecurityAdmin } from '../src/index.js';
import type { SecurityMeta } from '../src/auth/memory-meta.js';
import { API_BY_KEY } from '../src/kafka/messages/index.js';
import { decodeResponseFrame, encodeRequestFrame, type ApiCodec } from '../src/kafka/protocol.js';
import { RawKafka, startKafkaBroker } from './kafka-helpers.js';
import { tempDir } from './helpers.js';
import { makePki } from './security-helpers.js';

const hasKcat = existsSync('/usr/bin/kcat');
const hasPython = spawnSync('/usr/bin/python3', ['-c', 'import kafka'], { stdio: 'ignore' }).status === 0;

function run(cmd: string, args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    p.stdin.end(input);
  });
}

const api = (key: number): ApiCodec => (API_BY_KEY as Record<number, ApiCodec>)[key]!;

/** kafka-python 2.0.2 with SASL PLAIN or SCRAM: SaslHandshake v0, then raw token frames. */
const PYTHON_PLAIN = `
import sys, json
from kafka import KafkaProducer, KafkaConsumer
bootstrap, user, password, mechanism, topic = sys.argv[1:6]
opts = dict(bootstrap_servers=bootstrap, security_protocol='SASL_PLAINTEXT', sasl_mechanism=mechanism,
            sasl_plain_username=user, sasl_plain_password=password, api_version_auto_timeout_ms=5000)
p = KafkaProducer(**opts)
for i in range(3):
    p.send(topic, key=b'k%d' % i, value=b'v%d' % i)
p.flush(10)
p.close()
c = KafkaConsumer(topic, auto_offset_reset='earliest', consumer_timeout_ms=3000, **opts)
print(json.dumps([m.key.decode() for m in c]))
c.close()
`;

test('Kafka SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) against the MQTT users, plain and over TLS', async (t) => {
  const dir = await tempDir(t, 'robustmq-kafka-sasl-');
  const pki = makePki(dir);
  const b = await startKafkaBroker(t, {
    kafka: { saslMechanisms: 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512' },
    broker: { kafkaTlsPort: 0, tls: { certFile: pki.serverCert, keyFile: pki.serverKey, reloadCheckMs: 60_000 } },
  });
  const admin = new SecurityAdmin(b.meta as unknown as SecurityMeta);
  await admin.putUser('kuser', 'kuser-secret-1');
  const store = b.broker.security.store;
  for (let i = 0; !store.users.has('kuser'); i++) {
    if (i > 200) throw new Error('user not seen by the broker');
    await sleep(10);
  }
  const tlsPort = b.broker.listeners.find((l) => l.name === 'kafka-tls')!.port;
  /** Sets olduser's password again (through the admin API: SCRAM-SHA-512 credentials are stored) and waits for the broker to see it. */
  const admin512Reset = async (): Promise<void> => {
    await admin.putUser('olduser', 'olduser-new-pw', { mustExist: true });
    for (let i = 0; store.users.get('olduser')?.scram512 === undefined; i++) {
      if (i > 200) throw new Error('new password not seen by the broker');
      await sleep(10);
    }
  };
  const bootstrap = `127.0.0.1:${b.kafkaPort}`;
  const kafkajs = (sasl: KafkaJsConfig['sasl'], extra: Partial<KafkaJsConfig> = {}): Kafka =>
    new Kafka({
      clientId: 'sasl-test',
      brokers: [bootstrap],
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      ...(sasl !== undefined ? { sasl } : {}),
      ...extra,
    });

  await t.test('before authentication only ApiVersions and SASL; unknown mechanisms get 33 with the list', async (t) => {
    const raw = await RawKafka.connect(t, b.kafkaPort);
    raw.send(encodeRequestFrame(api(17), 1, 1, 'raw', { mechanism: 'GSSAPI' }));
    const hs = decodeResponseFrame(api(17), 1, (await raw.next())!).body as { errorCode: number; mechanisms: string[] };
    assert.equal(hs.errorCode, 33);
    assert.deepEqual(hs.mechanisms, ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']);
    raw.send(encodeRequestFrame(api(36), 2, 2, 'raw', { authBytes: Buffer.from('\0kuser\0kuser-secret-1') }));
    const au = decodeResponseFrame(api(36), 2, (await raw.next())!).body as { errorCode: number };
    assert.equal(au.errorCode, 34, 'SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE');
    assert.ok(await raw.waitClosed(), 'closed after the illegal state');

    const raw2 = await RawKafka.connect(t, b.kafkaPort);
    raw2.send(encodeRequestFrame(api(18), 0, 1, 'raw', {}));
    assert.ok((await raw2.next()) !== undefined, 'ApiVersions is answered');
    raw2.send(encodeRequestFrame(api(3), 1, 2, 'raw', { topics: [] }));
    assert.equal(await raw2.next(), undefined, 'Metadata before authentication closes the connection');
  });

  await t.test('kafkajs PLAIN produces, SCRAM-SHA-256 consumes', async () => {
    const producer = kafkajs({ mechanism: 'plain', username: 'kuser', password: 'kuser-secret-1' }).producer();
    await producer.connect();
    await producer.send({
      topic: 'sasl-t',
      messages: [
        { key: 'a', value: '1' },
        { key: 'b', value: '2' },
      ],
    });
    await producer.disconnect();
    const consumer = kafkajs({ mechanism: 'scram-sha-256', username: 'kuser', password: 'kuser-secret-1' }).consumer({
      groupId: 'sasl-g',
      maxWaitTimeInMs: 100,
    });
    await consumer.connect();
    await consumer.subscribe({ topic: 'sasl-t', fromBeginning: true });
    const keys: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out with ${keys.length} messages`)), 15000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          keys.push(message.key?.toString() ?? '');
          if (keys.length === 2) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    await consumer.disconnect();
    assert.deepEqual(keys, ['a', 'b']);
  });

  await t.test('kafkajs SCRAM-SHA-512 produces and reads back', async () => {
    const kafka = kafkajs({ mechanism: 'scram-sha-512', username: 'kuser', password: 'kuser-secret-1' });
    const producer = kafka.producer();
    await producer.connect();
    const [meta] = await producer.send({ topic: 'sasl-512', messages: [{ key: 'k', value: 'sha512' }] });
    assert.equal(meta!.errorCode, 0);
    await producer.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets('sasl-512');
    assert.equal(offsets[0]!.high, '1');
    await admin.disconnect();
  });

  await t.test(
    'SCRAM-SHA-512 for a user stored before SHA-512 credentials: fails with a message until the password is set again',
    async () => {
      const { scram512: _, ...old } = store.users.get('kuser')!;
      await b.meta.put('/users/olduser', Buffer.from(JSON.stringify({ ...old, username: 'olduser' })));
      for (let i = 0; !store.users.has('olduser'); i++) {
        if (i > 200) throw new Error('user not seen by the broker');
        await sleep(10);
      }
      // same password as kuser (the record is a copy): SHA-256 works, SHA-512 explains itself
      const ok = kafkajs({ mechanism: 'scram-sha-256', username: 'olduser', password: 'kuser-secret-1' }).admin();
      await ok.connect();
      await ok.disconnect();
      const admin = kafkajs({ mechanism: 'scram-sha-512', username: 'olduser', password: 'kuser-secret-1' }).admin();
      await assert.rejects(admin.connect(), (err: Error) => {
        assert.equal(err.name, 'KafkaJSSASLAuthenticationError', err.message);
        assert.match(err.message, /no SCRAM-SHA-512 credentials.*set the password again/);
        return true;
      });
      await admin.disconnect();
      await admin512Reset();
      const again = kafkajs({ mechanism: 'scram-sha-512', username: 'olduser', password: 'olduser-new-pw' }).admin();
      await again.connect();
      await again.disconnect();
    },
  );

  await t.test('wrong password: SASL_AUTHENTICATION_FAILED (58) with a message, for PLAIN and SCRAM', async (t) => {
    for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
      const admin = kafkajs({ mechanism, username: 'kuser', password: 'wrong-password' } as KafkaJsConfig['sasl']).admin();
      await assert.rejects(admin.connect(), (err: Error) => {
        assert.equal(err.name, 'KafkaJSSASLAuthenticationError', err.message);
        assert.match(err.message, /authentication failed/i);
        return true;
      });
      await admin.disconnect();
    }
    const raw = await RawKafka.connect(t, b.kafkaPort);
    raw.send(encodeRequestFrame(api(17), 1, 1, 'raw', { mechanism: 'PLAIN' }));
    assert.equal((decodeResponseFrame(api(17), 1, (await raw.next())!).body as { errorCode: number }).errorCode, 0);
    raw.send(encodeRequestFrame(api(36), 1, 2, 'raw', { authBytes: Buffer.from('\0nobody\0whatever-pw') }));
    const au = decodeResponseFrame(api(36), 1, (await raw.next())!).body as { errorCode: number; errorMessage: string };
    assert.equal(au.errorCode, 58);
    assert.match(au.errorMessage, /Invalid username or password/);
    assert.ok(await raw.waitClosed());
  });

  await t.test('kcat (librdkafka) with SCRAM-SHA-512', { skip: !hasKcat && 'kcat not installed' }, async () => {
    const sasl = ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-512', '-X', 'sasl.username=kuser'];
    const p = await run(
      'kcat',
      ['-b', bootstrap, ...sasl, '-X', 'sasl.password=kuser-secret-1', '-t', 'kc-512', '-P', '-K:'],
      'a:1\nb:2\n',
    );
    assert.equal(p.code, 0, p.stderr);
    const c = await run('kcat', [
      '-b',
      bootstrap,
      ...sasl,
      '-X',
      'sasl.password=kuser-secret-1',
      '-t',
      'kc-512',
      '-C',
      '-e',
      '-f',
      '%k=%s\\n',
    ]);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.stdout.trim().split('\n'), ['a=1', 'b=2']);
    const bad = await run('kcat', ['-b', bootstrap, ...sasl, '-X', 'sasl.password=nope-nope', '-L', '-m', '3']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Authentication failed|SASL authentication error/i);
  });

  await t.test('kcat (librdkafka) with SASL_PLAINTEXT and SCRAM-SHA-256', { skip: !hasKcat && 'kcat not installed' }, async () => {
    const sasl = ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-256', '-X', 'sasl.username=kuser'];
    const p = await run(
      'kcat',
      ['-b', bootstrap, ...sasl, '-X', 'sasl.password=kuser-secret-1', '-t', 'kc-sasl', '-P', '-K:'],
      'x:1\ny:2\n',
    );
    assert.equal(p.code, 0, p.stderr);
    const c = await run('kcat', [
      '-b',
      bootstrap,
      ...sasl,
      '-X',
      'sasl.password=kuser-secret-1',
      '-t',
      'kc-sasl',
      '-C',
      '-e',
      '-f',
      '%k=%s\\n',
    ]);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.stdout.trim().split('\n'), ['x=1', 'y=2']);
    const bad = await run('kcat', ['-b', bootstrap, ...sasl, '-X', 'sasl.password=nope-nope', '-L', '-m', '3']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Authentication failed|SASL authentication error/i);
  });

  await t.test(
    'kafka-python 2.0.2 with SASL PLAIN and SCRAM-SHA-512 (SaslHandshake v0, raw tokens)',
    { skip: !hasPython && 'python3-kafka not installed' },
    async () => {
      const script = join(dir, 'sasl_plain.py');
      writeFileSync(script, PYTHON_PLAIN);
      for (const [mechanism, topic] of [
        ['PLAIN', 'py-sasl'],
        ['SCRAM-SHA-512', 'py-sasl-512'],
      ] as const) {
        const r = await run('/usr/bin/python3', [script, bootstrap, 'kuser', 'kuser-secret-1', mechanism, topic]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), ['k0', 'k1', 'k2'], mechanism);
      }
    },
  );

  await t.test('kafkajs over TLS (test CA) with SASL PLAIN; Metadata advertises the TLS port', async () => {
    const kafka = new Kafka({
      clientId: 'sasl-tls',
      brokers: [`localhost:${tlsPort}`],
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      ssl: { ca: [readFileSync(pki.ca)], servername: 'localhost' },
      sasl: { mechanism: 'plain', username: 'kuser', password: 'kuser-secret-1' },
    });
    const admin = kafka.admin();
    await admin.connect();
    const cluster = await admin.describeCluster();
    assert.equal(cluster.brokers[0]!.port, tlsPort);
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    const [meta] = await producer.send({ topic: 'sasl-t', messages: [{ key: 'tls', value: '3' }] });
    assert.equal(meta!.baseOffset, '2');
    await producer.disconnect();
  });
});
