import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, generateKeyPairSync, pbkdf2Sync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import mqtt from 'mqtt';
import { SignJWT, exportJWK } from 'jose';
import { connectClient, connectRefused, onceEvent, randomId, sleep, tempDir, waitFor } from './helpers.js';
import { settle, startSecureBroker } from './security-helpers.js';

test('anonymous access is off by default: refused, and the log says why', async (t) => {
  const { ports, logs } = await startSecureBroker(t);
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  assert.equal(await connectRefused(url, { protocolVersion: 4 }), 5, '3.1.1: not authorized');
  assert.equal(await connectRefused(url, { protocolVersion: 5 }), 0x87, '5.0: not authorized');
  const line = logs.find((l) => l.msg === 'mqtt connect refused');
  assert.match(String(line?.why), /anonymous access is off .*no users exist yet \(create one with robust-ctl user create\)/);
});

test('anonymous access as an explicit setting', async (t) => {
  const { ports } = await startSecureBroker(t, { auth: { allowAnonymous: true } });
  const c = await connectClient(t, `mqtt://127.0.0.1:${ports.mqtt}`);
  assert.equal(c.connected, true);
  // credentials nobody knows are still refused
  assert.equal(await connectRefused(`mqtt://127.0.0.1:${ports.mqtt}`, { username: 'ghost', password: 'boo' }), 4);
});

test('built-in users: scrypt hashes in meta, right and wrong passwords, deletion takes effect at once', async (t) => {
  const { ports, admin, meta } = await startSecureBroker(t);
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  await admin.putUser('bob', 'correct horse battery', { mustNotExist: true });
  await settle();
  const stored = JSON.parse(((await meta.get('/users/bob'))?.value ?? Buffer.alloc(0)).toString()) as Record<
    string,
    { algo?: string; salt?: string }
  >;
  assert.equal(stored.password?.algo, 'scrypt');
  assert.ok(!JSON.stringify(stored).includes('correct horse'), 'no clear-text password in meta');
  const other = JSON.parse(
    (
      (
        await (async () => {
          await admin.putUser('carol', 'correct horse battery', {});
          return meta.get('/users/carol');
        })()
      )?.value ?? Buffer.alloc(0)
    ).toString(),
  ) as typeof stored;
  assert.notEqual(other.password?.salt, stored.password?.salt, 'a salt per user');
  await settle();

  const c = await connectClient(t, url, { username: 'bob', password: 'correct horse battery' });
  assert.equal(c.connected, true);
  assert.equal(await connectRefused(url, { username: 'bob', password: 'wrong', protocolVersion: 4 }), 4);
  assert.equal(await connectRefused(url, { username: 'bob', password: 'wrong', protocolVersion: 5 }), 0x86);
  await assert.rejects(admin.putUser('bob', 'another password', { mustNotExist: true }), { code: 'ERR_ALREADY_EXISTS' });
  await admin.deleteUser('bob');
  await settle();
  assert.equal(await connectRefused(url, { username: 'bob', password: 'correct horse battery' }), 4);
});

test('JWT: HS256, RS256 and ES256 (public key and JWKS), claims → username and ACL, expiry closes the connection', async (t) => {
  const dir = await tempDir(t, 'robustmq-jwt-');
  const secret = randomBytes(32).toString('hex');
  writeFileSync(join(dir, 'secret'), `${secret}\n`);
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'rsa.pub'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' };
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
  const { ports, logs } = await startSecureBroker(t, {
    auth: {
      chain: ['jwt'],
      aclDefault: 'deny',
      jwt: {
        secretFile: join(dir, 'secret'),
        publicKeyFile: join(dir, 'rsa.pub'),
        jwksFile: join(dir, 'jwks.json'),
        usernameClaim: 'sub',
        aclClaim: 'acl',
        requireExp: true,
        issuer: '',
        audience: '',
      },
    },
  });
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  const now = Math.floor(Date.now() / 1000);
  const claims = { acl: [{ action: 'all', topic: 'users/%u/#', permission: 'allow' }] };
  const hs = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('jwt-user')
    .setExpirationTime(now + 600)
    .sign(Buffer.from(secret));
  const rs = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256' })
    .setSubject('rs-user')
    .setExpirationTime(now + 600)
    .sign(rsa.privateKey);
  const es = await new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'ec-1' })
    .setSubject('es-user')
    .setExpirationTime(now + 600)
    .sign(ec.privateKey);

  for (const [token, user] of [
    [hs, 'jwt-user'],
    [rs, 'rs-user'],
    [es, 'es-user'],
  ] as const) {
    const c = await connectClient(t, url, { username: 'anything', password: token, protocolVersion: 5 });
    const ok = await c.subscribeAsync(`users/${user}/inbox`);
    assert.equal(ok[0]?.qos, 0, `${user}: ACL from the claims, %u = sub`);
    await assert.rejects(
      c.publishAsync(`users/someone-else/x`, 'no', { qos: 1 }),
      { code: 0x87 },
      `${user}: publishing elsewhere is not authorized`,
    );
  }
  // bad signature, expired, and no exp
  const forged = `${hs.slice(0, hs.lastIndexOf('.'))}.${Buffer.from('forged').toString('base64url')}`;
  assert.equal(await connectRefused(url, { username: 'x', password: forged, protocolVersion: 5 }), 0x86);
  const expired = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('late')
    .setExpirationTime(now - 10)
    .sign(Buffer.from(secret));
  assert.equal(await connectRefused(url, { username: 'x', password: expired, protocolVersion: 5 }), 0x86);
  const noExp = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('forever').sign(Buffer.from(secret));
  assert.equal(await connectRefused(url, { username: 'x', password: noExp, protocolVersion: 5 }), 0x86);

  // a token that expires while connected: DISCONNECT 0x87 when it does
  const short = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('short')
    .setExpirationTime(Math.floor(Date.now() / 1000) + 1)
    .sign(Buffer.from(secret));
  const c = await connectClient(t, url, { username: 'x', password: short, protocolVersion: 5 });
  const [packet] = await onceEvent<[mqtt.IDisconnectPacket]>(c, 'disconnect');
  assert.equal(packet.reasonCode, 0x87);
  assert.ok(logs.some((l) => l.msg === 'token expired; connection closed' && l.clientId !== undefined));
});

test('HTTP webhook: allow, deny, ignore; cached with a TTL; a timeout or an error fails closed', async (t) => {
  let requests = 0;
  const bodies: Record<string, unknown>[] = [];
  const hook = createServer((req, res) => {
    requests++;
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      const b = JSON.parse(text) as { username: string; password: string; clientId: string; peerAddress: string };
      bodies.push(b);
      const answer = (o: unknown, status = 200): void =>
        void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(o));
      if (b.username === 'hook-allow' && b.password === 'pw') answer({ result: 'allow' });
      else if (b.username === 'hook-deny') answer({ result: 'deny' });
      else if (b.username === 'hook-slow') setTimeout(() => answer({ result: 'allow' }), 1000);
      else if (b.username === 'hook-500') answer({ error: 'boom' }, 500);
      else answer({ result: 'ignore' });
    });
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  t.after(() => void hook.close());
  const { ports, admin } = await startSecureBroker(t, {
    auth: {
      chain: ['webhook', 'users'],
      webhook: {
        url: `http://127.0.0.1:${(hook.address() as { port: number }).port}/auth`,
        timeoutMs: 300,
        cacheTtlMs: 60_000,
        cacheMaxEntries: 100,
      },
    },
  });
  await admin.putUser('local', 'local-password', {});
  await settle();
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  const id = randomId();
  await connectClient(t, url, { clientId: id, username: 'hook-allow', password: 'pw' });
  assert.deepEqual(Object.keys(bodies[0] ?? {}).sort(), ['clientId', 'listener', 'password', 'peerAddress', 'username']);
  assert.equal(bodies[0]?.peerAddress, '127.0.0.1');
  const before = requests;
  const again = await connectClient(t, url, { clientId: id, username: 'hook-allow', password: 'pw' });
  assert.equal(again.connected, true);
  assert.equal(requests, before, 'the second identical CONNECT is answered from the cache');
  assert.equal(await connectRefused(url, { username: 'hook-deny', password: 'pw' }), 4);
  assert.equal(await connectRefused(url, { username: 'hook-slow', password: 'pw' }), 5, 'timeout fails closed');
  assert.equal(await connectRefused(url, { username: 'hook-500', password: 'pw' }), 5, 'an error status fails closed');
  // ignore → the next authenticator (users) decides
  const local = await connectClient(t, url, { username: 'local', password: 'local-password' });
  assert.equal(local.connected, true);
});

/** The client side of SCRAM-SHA-256 (RFC 5802) for the test. */
function scramClient(
  user: string,
  password: string,
): { first: Buffer; final: (serverFirst: Buffer) => Buffer; verify: (serverFinal: Buffer) => boolean } {
  const nonce = randomBytes(12).toString('base64');
  const bare = `n=${user},r=${nonce}`;
  let serverSig = Buffer.alloc(0);
  return {
    first: Buffer.from(`n,,${bare}`),
    final: (sf) => {
      const text = sf.toString();
      const a = Object.fromEntries(text.split(',').map((p) => [p[0], p.slice(2)]));
      const salted = pbkdf2Sync(password, Buffer.from(a.s as string, 'base64'), Number(a.i), 32, 'sha256');
      const clientKey = createHmac('sha256', salted).update('Client Key').digest();
      const storedKey = createHash('sha256').update(clientKey).digest();
      const withoutProof = `c=biws,r=${a.r}`;
      const authMessage = `${bare},${text},${withoutProof}`;
      const sig = createHmac('sha256', storedKey).update(authMessage).digest();
      const proof = Buffer.from(clientKey.map((b, i) => b ^ (sig[i] as number)));
      serverSig = createHmac('sha256', createHmac('sha256', salted).update('Server Key').digest()).update(authMessage).digest();
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
    },
    verify: (sfin) => sfin.toString() === `v=${serverSig.toString('base64')}`,
  };
}

test('MQTT 5 enhanced authentication: SCRAM-SHA-256 over AUTH', async (t) => {
  const { ports, admin } = await startSecureBroker(t, { auth: { chain: ['users', 'scram'] } });
  await admin.putUser('sam', 'scram-password-1', {});
  await settle();
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  const attempt = async (password: string): Promise<{ ok: boolean; code?: number; verified?: boolean }> => {
    const sc = scramClient('sam', password);
    const c = mqtt.connect(url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      clientId: randomId(),
      properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: sc.first },
    });
    c.handleAuth = (packet, cb) => {
      const data = packet.properties?.authenticationData as Buffer;
      cb(undefined, {
        cmd: 'auth',
        reasonCode: 0x18,
        properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: sc.final(data) },
      });
    };
    try {
      return await new Promise((resolve) => {
        c.once('connect', (ack) => resolve({ ok: true, verified: sc.verify(ack.properties?.authenticationData as Buffer) }));
        c.once('error', (err: Error & { code?: number }) => resolve({ ok: false, ...(err.code !== undefined ? { code: err.code } : {}) }));
      });
    } finally {
      c.end(true);
    }
  };
  const good = await attempt('scram-password-1');
  assert.deepEqual(good, { ok: true, verified: true }, 'connected, and the server proved it knows the key');
  const bad = await attempt('not-the-password');
  assert.equal(bad.ok, false);
  assert.equal(bad.code, 0x86);
  // a method that is not offered
  const other = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, properties: { authenticationMethod: 'KERBEROS' } });
  const [err] = await onceEvent<[Error & { code?: number }]>(other, 'error');
  other.end(true);
  assert.equal(err.code, 0x8c);
});

test('deny list by client id, username, IP/CIDR, with expiry, checked at CONNECT', async (t) => {
  const { ports, admin, broker } = await startSecureBroker(t, { auth: { allowAnonymous: true } });
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  await admin.putUser('dave', 'dave-password', {});
  await admin.addDeny({ kind: 'clientid', value: 'bad-device', reason: 'stolen' });
  await admin.addDeny({ kind: 'username', value: 'dave', reason: '' });
  await settle();
  assert.equal(await connectRefused(url, { clientId: 'bad-device', protocolVersion: 4 }), 5);
  assert.equal(await connectRefused(url, { clientId: 'bad-device', protocolVersion: 5 }), 0x87);
  assert.equal(await connectRefused(url, { username: 'dave', password: 'dave-password' }), 5);
  await admin.deleteDeny('username', 'dave');
  await settle();
  assert.equal((await connectClient(t, url, { username: 'dave', password: 'dave-password' })).connected, true);

  // an entry that expires
  await admin.addDeny({ kind: 'clientid', value: 'timeout-device', reason: 'cool down', expiresAt: Date.now() + 300 });
  await settle();
  assert.equal(await connectRefused(url, { clientId: 'timeout-device' }), 5);
  await sleep(350);
  assert.equal((await connectClient(t, url, { clientId: 'timeout-device' })).connected, true);

  // a CIDR block: refused at accept, before any MQTT byte
  await admin.addDeny({ kind: 'ip', value: '127.0.0.0/8', reason: 'test' });
  await settle();
  assert.equal(await connectRefused(url, {}), undefined, 'closed without CONNACK');
  const refused = await broker.security.metrics.connectRefused.get();
  assert.ok(refused.values.some((v) => v.labels.reason === 'denylist' && v.value > 0));
  await assert.rejects(admin.addDeny({ kind: 'ip', value: '300.1.1.1/8', reason: '' }), { code: 'ERR_CONFIG_INVALID' });
});

test('flapping: N connects in a window ban the client id for a while', async (t) => {
  const { ports, meta, logs } = await startSecureBroker(t, {
    auth: { allowAnonymous: true },
    limits: { flapMaxConnects: 3, flapWindowMs: 10_000, flapBanMs: 600 },
  });
  const url = `mqtt://127.0.0.1:${ports.mqtt}`;
  for (let i = 0; i < 2; i++) {
    const c = await connectClient(undefined, url, { clientId: 'flappy' });
    await c.endAsync();
  }
  assert.equal(await connectRefused(url, { clientId: 'flappy', protocolVersion: 5 }), 0x87, 'third connect in the window: banned');
  assert.equal(await connectRefused(url, { clientId: 'flappy' }), 5, 'still banned');
  await waitFor(() => logs.some((l) => l.msg === 'flapping client banned' && l.clientId === 'flappy'), 1000, 'ban logged');
  assert.ok((await meta.get('/denylist/clientid/flappy')) !== undefined, 'the ban is a deny-list entry in meta');
  await sleep(650);
  assert.equal((await connectClient(t, url, { clientId: 'flappy' })).connected, true, 'the ban expired');
});
