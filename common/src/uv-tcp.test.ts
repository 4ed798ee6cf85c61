import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { UvSocket, UvTcpServer, uvTcpAvailable, uvTcpLoadError, uvTcpOpenCount } from './uv-tcp.js';

const skip = uvTcpAvailable() ? false : `uvtcp addon not built: ${uvTcpLoadError()?.message}`;

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An echo server of the addon; every accepted socket is kept in `accepted`. */
function echoServer(): { server: UvTcpServer; accepted: UvSocket[] } {
  const accepted: UvSocket[] = [];
  const server = UvTcpServer.listen('127.0.0.1', 0, (s) => {
    accepted.push(s);
    s.on('data', function (this: UvSocket, chunk: Buffer) {
      this.write(chunk);
    });
    s.on('error', () => undefined);
  });
  return { server, accepted };
}

function connectUv(port: number): Promise<UvSocket> {
  const s = UvSocket.connect(port);
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads from `s` until `n` bytes arrived. */
function readBytes(s: UvSocket | Socket, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const onData = (c: Buffer): void => {
      parts.push(c);
      got += c.length;
      if (got >= n) {
        (s as UvSocket).off('data', onData);
        resolve(Buffer.concat(parts));
      }
    };
    (s as UvSocket).on('data', onData);
    (s as UvSocket).once('close', () => (got < n ? reject(new Error(`closed after ${got} of ${n} bytes`)) : undefined));
  });
}

test('echo round trips of many sizes between the addon server and an addon client', { skip }, async () => {
  const { server } = echoServer();
  const c = await connectUv(server.port);
  for (const size of [1, 2, 100, 4095, 4096, 65_535, 65_536, 65_537, 1 << 20]) {
    const data = randomBytes(size);
    const back = readBytes(c, size);
    assert.equal(c.write(data) || size >= 16 * 1024, true);
    assert.deepEqual(await back, data, `size ${size}`);
  }
  c.destroy();
  await once(c as never, 'close');
  server.close();
});

test('a Node client and a Node server interoperate with the addon (remote address, both directions)', { skip }, async () => {
  const { server, accepted } = echoServer();
  const n = netConnect(server.port, '127.0.0.1');
  await once(n, 'connect');
  const back = readBytes(n, 5);
  n.write('hello');
  assert.equal((await back).toString(), 'hello');
  assert.equal(accepted[0]?.remoteAddress, '127.0.0.1');
  assert.equal(accepted[0]?.remotePort, n.localPort);
  n.destroy();
  await until(() => accepted[0]?.destroyed === true, 'server side closed');
  server.close();

  const ns = createServer((s) => s.pipe(s));
  ns.listen(0, '127.0.0.1');
  await once(ns, 'listening');
  const c = await connectUv((ns.address() as { port: number }).port);
  const echoed = readBytes(c, 3);
  c.write(Buffer.from('abc'));
  assert.equal((await echoed).toString(), 'abc');
  c.destroy();
  ns.close();
});

test('a 16 MiB write to a peer that does not read queues, reports false and writableLength, then drains in order', { skip }, async () => {
  let serverSide: UvSocket | undefined;
  const server = UvTcpServer.listen('127.0.0.1', 0, (s) => {
    serverSide = s;
  });
  const client = await connectUv(server.port);
  client.pause(); // the client does not read: the kernel buffers fill up
  await until(() => serverSide !== undefined, 'accept');
  const s = serverSide as UvSocket;
  const data = randomBytes(16 << 20);
  let drained = false;
  s.on('drain', () => {
    drained = true;
  });
  let written = false;
  assert.equal(
    s.write(data, () => {
      written = true;
    }),
    false,
    'write reports backpressure',
  );
  assert.ok(s.writableLength > 0, 'bytes wait in the queue');
  assert.ok(s.writableLength <= data.length);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(drained, false, 'no drain while the peer does not read');
  const got = readBytes(client, data.length);
  client.resume();
  const received = await got;
  assert.equal(createHash('sha256').update(received).digest('hex'), createHash('sha256').update(data).digest('hex'));
  await until(() => drained, 'drain');
  assert.equal(written, true, 'the write callback ran once the bytes left');
  assert.equal(s.writableLength, 0);
  client.destroy();
  server.close();
});

test('end(): the peer sees the bytes written before it, then end; our side closes when the peer ends too', { skip }, async () => {
  const ns = createServer({ allowHalfOpen: true }, (s) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.on('end', () => {
      s.end(Buffer.concat(parts)); // echo what came, after the client's end
    });
  });
  ns.listen(0, '127.0.0.1');
  await once(ns, 'listening');
  const c = await connectUv((ns.address() as { port: number }).port);
  const echoed = readBytes(c, 6);
  let ended = false;
  c.on('end', () => {
    ended = true;
  });
  c.write(Buffer.from('abc'));
  c.end(Buffer.from('def'));
  assert.equal((await echoed).toString(), 'abcdef', 'half-closed: data still arrives');
  await once(c as never, 'close');
  assert.equal(ended, true);
  assert.equal(c.write(Buffer.from('x')), false, 'no write after close');
  ns.close();
});

test('a peer that ends its side still receives everything queued for it before our side ends', { skip }, async () => {
  const data = randomBytes(8 << 20);
  const server = UvTcpServer.listen('127.0.0.1', 0, (s) => {
    s.on('data', function (this: UvSocket) {
      this.write(data); // more than the socket buffers take at once: most of it is queued
    });
    s.on('error', () => undefined);
  });
  const n = netConnect({ port: server.port, host: '127.0.0.1', allowHalfOpen: true });
  await once(n, 'connect');
  n.end('go'); // our FIN follows the request at once
  const parts: Buffer[] = [];
  n.on('data', (c: Buffer) => parts.push(c));
  await once(n, 'end');
  const got = Buffer.concat(parts);
  assert.equal(got.length, data.length, 'every queued byte arrived before the FIN');
  assert.ok(got.equals(data));
  n.destroy();
  server.close();
});

test('the peer resetting the connection closes that socket only; destroy with queued writes frees everything', { skip }, async () => {
  const base = uvTcpOpenCount();
  const { server, accepted } = echoServer();
  const a = netConnect(server.port, '127.0.0.1');
  const b = netConnect(server.port, '127.0.0.1');
  await Promise.all([once(a, 'connect'), once(b, 'connect')]);
  await until(() => accepted.length === 2, 'two accepted');
  a.resetAndDestroy();
  await until(() => accepted.filter((s) => s.destroyed).length === 1, 'reset socket closed');
  // the other one still works
  const back = readBytes(b, 4);
  b.write('ping');
  assert.equal((await back).toString(), 'ping');

  // queued bytes (the peer does not read) are dropped by destroy, without leaking
  b.pause();
  const other = accepted.find((s) => !s.destroyed) as UvSocket;
  other.write(randomBytes(8 << 20));
  assert.ok(other.writableLength > 0);
  let closed = false;
  other.on('close', () => {
    closed = true;
  });
  other.destroy();
  other.destroy(); // twice is harmless
  await until(() => closed, 'close after destroy');
  assert.equal(other.write(Buffer.from('late')), false);
  b.destroy();
  server.close();
  await until(() => uvTcpOpenCount() === base, 'every connection released');
});

test('a stale id does not reach the connection that reuses its slot; many connections leave no slot behind', { skip }, async () => {
  const base = uvTcpOpenCount();
  const { server, accepted } = echoServer();
  const first = await connectUv(server.port);
  const firstId = first.id;
  first.destroy();
  await once(first as never, 'close');
  const second = await connectUv(server.port);
  assert.notEqual(second.id, firstId, 'a reused slot has a new id');
  assert.equal(first.write(Buffer.from('x')), false, 'the old socket cannot write');
  assert.equal(first.writableLength, 0);
  second.destroy();

  const clients = await Promise.all(Array.from({ length: 300 }, () => connectUv(server.port)));
  await until(() => accepted.length >= 302, 'all accepted');
  for (const c of clients) c.destroy();
  await until(() => uvTcpOpenCount() === base, 'all closed');
  server.close();
});

test('connecting to a closed port is an ECONNREFUSED error, then close; a closed server accepts no more', { skip }, async () => {
  const { server } = echoServer();
  const port = server.port;
  server.close();
  const c = UvSocket.connect(port);
  const [err] = (await once(c as never, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
  assert.match(err.message, /connect ECONNREFUSED/);
  await until(() => c.destroyed, 'closed');
  assert.throws(() => UvTcpServer.listen('127.0.0.1', 70_000, () => undefined), /port must be an integer in 0\.\.65535/);
  assert.throws(() => UvTcpServer.listen('not-an-address', 0, () => undefined), /bad address/);
});

test('binding a port in use fails with EADDRINUSE', { skip }, () => {
  const { server } = echoServer();
  assert.throws(() => UvTcpServer.listen('127.0.0.1', server.port, () => undefined), /EADDRINUSE/);
  server.close();
});

test('pause() stops data events until resume()', { skip }, async () => {
  let serverSide: UvSocket | undefined;
  const server = UvTcpServer.listen('127.0.0.1', 0, (s) => {
    serverSide = s;
  });
  const n = netConnect(server.port, '127.0.0.1');
  await once(n, 'connect');
  await until(() => serverSide !== undefined, 'accept');
  const s = serverSide as UvSocket;
  s.pause();
  let got = 0;
  s.on('data', (c: Buffer) => {
    got += c.length;
  });
  n.write('0123456789');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(got, 0, 'nothing while paused');
  s.resume();
  await until(() => got === 10, 'data after resume');
  n.destroy();
  server.close();
});

test('property: random writes in random chunk sizes arrive whole and in order (seeded, 30 runs)', { skip }, async () => {
  const { server } = echoServer();
  let seed = 0x2545f491;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  for (let run = 0; run < 30; run++) {
    const c = await connectUv(server.port);
    const chunks = Array.from({ length: 1 + rand(20) }, () => randomBytes(1 + rand(rand(2) === 0 ? 100 : 200_000)));
    const total = chunks.reduce((a, b) => a + b.length, 0);
    const back = readBytes(c, total);
    for (let i = 0; i < chunks.length;) {
      const k = 1 + rand(3);
      const group = chunks.slice(i, i + k);
      if (group.length === 1) c.write(group[0] as Buffer);
      else c.writev(group);
      i += k;
    }
    assert.deepEqual(await back, Buffer.concat(chunks), `seed run ${run}`);
    c.destroy();
  }
  server.close();
});

test('an exception thrown by a listener becomes an uncaughtException; the process goes on serving', { skip }, () => {
  const script = `
    const { UvTcpServer, UvSocket } = await import(${JSON.stringify(new URL('./uv-tcp.js', import.meta.url).href)});
    let caught = 0;
    process.on('uncaughtException', (e) => { caught++; if (e.message !== 'boom') process.exit(3); });
    const server = UvTcpServer.listen('127.0.0.1', 0, (s) => {
      s.on('data', function (c) { if (c.toString() === 'boom') throw new Error('boom'); this.write(c); });
    });
    const c = UvSocket.connect(server.port);
    c.on('connect', () => c.write(Buffer.from('boom')));
    setTimeout(() => {
      c.on('data', (d) => { console.log('echo ' + d + ' caught ' + caught); process.exit(0); });
      c.write(Buffer.from('ok'));
    }, 100);
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /echo ok caught 1/);
});
