import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { meta as metaProto } from '@robustmq/proto';
import { ErrorCode, RobustError } from '@robustmq/common';
import { MetaNode } from '../node/meta-node.js';
import { LocalNetwork } from '../node/transport.js';
import { createMetaService } from './meta-service.js';
import { GrpcMetaClient } from './grpc-meta-client.js';

const log = pino({ level: 'silent' });

async function serve(
  t: { after: (fn: () => Promise<void> | void) => void },
  patch: (impl: metaProto.MetaServer) => metaProto.MetaServer = (i) => i,
): Promise<{ address: string; node: MetaNode; server: grpc.Server; batches: () => number }> {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-meta-grpc-'));
  const node = await MetaNode.open({
    nodeId: 1,
    dir,
    log,
    registry: new Registry(),
    transport: new LocalNetwork().transport(1),
    address: 'local:1',
    initialMembers: new Map([[1, 'local:1']]),
    tickMs: 10,
  });
  while (!node.isReady()) await sleep(5);
  const impl = patch(createMetaService(node, () => ({ roles: ['meta'], ready: true }), log));
  let batches = 0;
  const batch = impl.batch;
  impl.batch = (call) => {
    call.on('data', () => batches++);
    batch(call);
  };
  const server = new grpc.Server();
  server.addService(metaProto.MetaService, impl as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  t.after(async () => {
    server.forceShutdown();
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { address: `127.0.0.1:${port}`, node, server, batches: () => batches };
}

test('KV calls made together travel as few Batch messages and each gets its own answer', async (t) => {
  const s = await serve(t);
  const c = new GrpcMetaClient([s.address]);
  t.after(() => c.close());
  const puts = await Promise.all(Array.from({ length: 300 }, (_, i) => c.put(`/cluster/batch/k${i}`, Buffer.from(`v${i}`))));
  assert.equal(new Set(puts.map((p) => p.revision)).size, 300, 'each put has its own revision');
  assert.ok(s.batches() < 30, `300 concurrent puts took ${s.batches()} stream messages`);
  const got = await c.range('/cluster/batch/', '/cluster/batch0');
  assert.equal(got.count, 300);
  assert.equal((await c.get('/cluster/batch/k7'))?.value.toString(), 'v7');
  const txn = await c.txn({
    compare: [{ key: '/cluster/batch/k7', target: 'value', result: '=', value: Buffer.from('v7') }],
    success: [{ op: 'put', key: '/cluster/batch/k7', value: Buffer.from('changed') }],
    failure: [],
  });
  assert.equal(txn.succeeded, true);
  const del = await c.delete('/cluster/batch/', '/cluster/batch0');
  assert.equal(del.deleted, 300);
});

test('the error of one batched call reaches its caller with the RobustMQ code; the others succeed', async (t) => {
  const s = await serve(t);
  const c = new GrpcMetaClient([s.address]);
  t.after(() => c.close());
  const [bad, good] = await Promise.allSettled([
    c.put('/cluster/x', Buffer.from('1'), { lease: 424242 }),
    c.put('/cluster/y', Buffer.from('2')),
  ]);
  assert.equal(bad.status, 'rejected');
  assert.ok(bad.status === 'rejected' && bad.reason instanceof RobustError && bad.reason.code === ErrorCode.LeaseNotFound, String(bad));
  assert.equal(good.status, 'fulfilled');
});

test('a server without the Batch RPC is served with unary calls', async (t) => {
  const s = await serve(t, (impl) => ({
    ...impl,
    batch: (call) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'no batch here' }),
  }));
  const c = new GrpcMetaClient([s.address]);
  t.after(() => c.close());
  await c.put('/cluster/u', Buffer.from('unary'));
  assert.equal((await c.get('/cluster/u'))?.value.toString(), 'unary');
  await c.put('/cluster/u', Buffer.from('again'));
  assert.equal((await c.get('/cluster/u'))?.value.toString(), 'again');
});

test('calls on a stream whose server went away fail with an error, not a hang', async (t) => {
  const s = await serve(t);
  const c = new GrpcMetaClient([s.address], { timeoutMs: 800 });
  t.after(() => c.close());
  await c.put('/cluster/before', Buffer.from('1'));
  s.server.forceShutdown();
  const t0 = Date.now();
  await assert.rejects(c.put('/cluster/after', Buffer.from('2')), RobustError);
  assert.ok(Date.now() - t0 < 3000);
});
