import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { collectGarbage, decodeFrames, encodeTextFrame } from './inspector-gc.js';

test('text frames: masked out, unmasked in, split anywhere', () => {
  const f = encodeTextFrame('x'.repeat(300));
  assert.equal(f[0], 0x81);
  assert.equal(f[1], 0x80 | 126);
  assert.equal(f.readUInt16BE(2), 300);
  const server = Buffer.concat([Buffer.from([0x81, 5]), Buffer.from('hello'), Buffer.from([0x81, 126, 0, 200]), Buffer.alloc(200, 0x61)]);
  assert.deepEqual(decodeFrames(server.subarray(0, 6)), { texts: [], used: 0 });
  const all = decodeFrames(server);
  assert.deepEqual(all.texts, ['hello', 'a'.repeat(200)]);
  assert.equal(all.used, server.length);
});

test('collectGarbage runs a collection in a process started with --inspect=127.0.0.1:0', async (t) => {
  const child = spawn(process.execPath, ['--inspect=127.0.0.1:0', '-e', 'setInterval(() => {}, 1000)'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /Debugger listening on (ws:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once('exit', () => reject(new Error(`exited: ${err}`)));
  });
  await collectGarbage(url, 10_000);
  child.kill('SIGKILL');
  await once(child, 'exit');
});
