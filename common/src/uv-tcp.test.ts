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

test('accepted and connected sockets have TCP_NODELAY (accepted ones inherit it from the listener)', { skip }, async () => {
  const { server, accepted } = echoServer();
  const c = await connectUv(server.port);
  try {
    const back = readBytes(c, 1);
    c.write(Buffer.from('x'));
    await back;
    assert.equal(c.noDelay, true);
    assert.equal(accepted[0]?.noDelay, true);
  } finally {
    c.destroy();
    server.close();
  }
  await once(c as never, 'close');
  assert.equal(c.noDelay, undefined);
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

/** A framed listener (maxFrame): every frame its sockets emit, and the frame errors. */
function framedServer(maxFrame: number): { server: UvTcpServer; frames: Buffer[]; errors: number[]; accepted: UvSocket[] } {
  const frames: Buffer[] = [];
  const errors: number[] = [];
  const accepted: UvSocket[] = [];
  const server = UvTcpServer.listen(
    '127.0.0.1',
    0,
    (s) => {
      accepted.push(s);
      assert.equal(s.framed, true);
      s.on('frame', (f: Buffer) => frames.push(Buffer.from(f)));
      s.on('frameError', (size: number) => errors.push(size));
      s.on('error', () => undefined);
    },
    511,
    maxFrame,
  );
  return { server, frames, errors, accepted };
}

const sized = (body: Buffer): Buffer => {
  const head = Buffer.alloc(4);
  head.writeInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
};

test('framed listener: frames of 0 B to 1 MiB sent in random pieces arrive whole, byte-exact and in order (seeded)', { skip }, async () => {
  const { server, frames } = framedServer(4 << 20);
  let seed = 0x9e3779b9;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  for (let run = 0; run < 8; run++) {
    frames.length = 0;
    // small frames, frames around the slab sizes (16–256 KiB), and larger ones
    const sizes = Array.from({ length: 5 + rand(30) }, () => [0, 1, 3, 4, 100, 4093, 16_380, 65_536, 262_140, 300_000, 1 << 20][rand(11)]!);
    const bodies = sizes.map((n) => randomBytes(n));
    const wire = Buffer.concat(bodies.map(sized));
    const n = netConnect(server.port, '127.0.0.1');
    n.setNoDelay(true);
    await once(n, 'connect');
    for (let pos = 0; pos < wire.length;) {
      const k = Math.min(wire.length - pos, 1 + rand(rand(2) === 0 ? 10 : 300_000));
      n.write(wire.subarray(pos, pos + k));
      pos += k;
      if (rand(3) === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => frames.length === bodies.length, `run ${run}: ${bodies.length} frames`, 20_000);
    for (let i = 0; i < bodies.length; i++) assert.ok(frames[i]!.equals(bodies[i]!), `run ${run}, frame ${i} (${bodies[i]!.length} B)`);
    n.destroy();
  }
  server.close();
});

test(
  'framed listener: a negative or oversized size is a frameError after the frames before it; nothing more is read',
  { skip },
  async () => {
    const { server, frames, errors, accepted } = framedServer(1000);
    for (const bad of [-2, 1001]) {
      frames.length = 0;
      errors.length = 0;
      const n = netConnect(server.port, '127.0.0.1');
      await once(n, 'connect');
      const head = Buffer.alloc(4);
      head.writeInt32BE(bad, 0);
      n.write(Buffer.concat([sized(Buffer.from('first')), sized(Buffer.alloc(1000, 7)), head, sized(Buffer.from('after'))]));
      await until(() => errors.length === 1, 'frameError');
      await new Promise((r) => setTimeout(r, 30));
      assert.deepEqual(errors, [bad]);
      assert.deepEqual(
        frames.map((f) => f.length),
        [5, 1000],
      );
      accepted.at(-1)!.destroy();
      n.destroy();
    }
    server.close();
  },
);

test('framed listener: pause() holds frames back until resume()', { skip }, async () => {
  const { server, frames, accepted } = framedServer(1 << 20);
  const n = netConnect(server.port, '127.0.0.1');
  await once(n, 'connect');
  await until(() => accepted.length === 1, 'accept');
  accepted[0]!.pause();
  n.write(Buffer.concat([sized(Buffer.from('a')), sized(Buffer.from('bc'))]));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(frames.length, 0, 'nothing while paused');
  accepted[0]!.resume();
  await until(() => frames.length === 2, 'frames after resume');
  assert.deepEqual(
    frames.map((f) => f.toString()),
    ['a', 'bc'],
  );
  n.destroy();
  server.close();
});

test('cork() holds writes until uncork(): one write, callbacks after it, writableLength counts the held bytes', { skip }, async () => {
  const { server, accepted } = echoServer();
  const c = await connectUv(server.port);
  await until(() => accepted.length === 1, 'accept');
  const back = readBytes(c, 9);
  const done: number[] = [];
  c.cork();
  c.write(Buffer.from('abc'), () => done.push(1));
  c.writev([Buffer.from('de'), Buffer.from('f')], () => done.push(2));
  c.cork();
  c.write(Buffer.from('ghi'));
  assert.equal(c.writableLength, 9);
  c.uncork(); // still held: one cork() left
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(done, []);
  c.uncork();
  assert.equal((await back).toString(), 'abcdefghi');
  await until(() => done.length === 2, 'write callbacks');
  // a held write larger than the high water mark answers false, and 'drain' follows the uncork
  c.cork();
  assert.equal(c.write(Buffer.alloc(20_000)), false);
  const drained = once(c as never, 'drain');
  c.uncork();
  await drained;
  c.destroy();
  server.close();
});
