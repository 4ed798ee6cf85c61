import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GrpcMetaClient } from '@robustmq/meta';
import { adminHeaders, adminTokenFile, startServer, type RunningServer, runCtl } from '../src/index.js';

/** The first port of the kernel's ephemeral range (client connections and listeners on port 0 take theirs from it). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 11_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const handedOut = new Set<number>();
/**
 * A port that is free now and that no other test's connection will take before the node binds
 * it: chosen at random below the ephemeral range. (A port from listen(0) is in that range, and
 * a client connection elsewhere in the run may be given it as its local port in between.)
 */
async function freePort(): Promise<number> {
  const low = ephemeralLow();
  for (;;) {
    const port = 10_000 + Math.floor(Math.random() * (low - 10_000));
    if (handedOut.has(port)) continue;
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (!ok) continue;
    await new Promise((r) => s.close(r));
    handedOut.add(port);
    return port;
  }
}

const ctl = runCtl;

async function retry<T>(fn: () => Promise<T>, what: string, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
      await sleep(100);
    }
  }
}

test(
  'three meta processes: kill -9 the leader under writes, nothing acknowledged is lost; membership changes',
  { timeout: 120_000 },
  async (t) => {
    const base = mkdtempSync(join(tmpdir(), 'robustmq-meta-cluster-'));
    t.after(() => rmSync(base, { recursive: true, force: true }));
    const grpcPorts = new Map<number, number>();
    for (const id of [1, 2, 3, 4]) grpcPorts.set(id, await freePort());
    const peers = [1, 2, 3].map((id) => `${id}=127.0.0.1:${grpcPorts.get(id)}`).join(',');
    const args = (id: number, extra: string[] = []): string[] => [
      'start',
      '--roles',
      'meta',
      '--node-id',
      String(id),
      '--data-dir',
      join(base, `n${id}`),
      '--grpc-port',
      String(grpcPorts.get(id)),
      '--http-port',
      '0',
      '--meta-cluster-id',
      'e2e-cluster',
      '--meta-session-groups',
      '1',
      '--meta-offset-groups',
      '1',
      ...extra,
    ];
    const nodes = new Map<number, RunningServer>();
    t.after(() => {
      for (const n of nodes.values()) n.proc.kill('SIGKILL');
    });
    // every node that came up is registered for the kill above, even when another failed to start
    const started = await Promise.allSettled([1, 2, 3].map((id) => startServer(args(id, ['--meta-peers', peers]))));
    started.forEach((r, i) => {
      if (r.status === 'fulfilled') nodes.set(i + 1, r.value);
    });
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    const endpoints = [1, 2, 3].map((id) => `127.0.0.1:${grpcPorts.get(id)}`);
    const client = new GrpcMetaClient(endpoints, { timeoutMs: 10_000 });
    t.after(() => client.close());
    await retry(() => client.put('/e2e/hello', Buffer.from('world')), 'first write');

    // robust-ctl talks to any node's admin API
    const http1 = `127.0.0.1:${nodes.get(1)?.ports.http}`;
    // every node made its own admin token in its data dir
    const token = (id: number): string[] => ['--token-file', adminTokenFile(join(base, `n${id}`))];
    assert.equal((await ctl(['meta', 'get', '/e2e/ctl', '--server', http1])).code, 1, 'no token: refused');
    assert.equal((await ctl(['meta', 'put', '/e2e/ctl', 'via-ctl', '--server', http1, ...token(1)])).code, 0);
    const got = await ctl(['meta', 'get', '/e2e/ctl', '--server', `127.0.0.1:${nodes.get(2)?.ports.http}`, ...token(2)]);
    assert.equal(got.stdout, 'via-ctl\n');
    const st = await ctl(['meta', 'status', '--server', http1, ...token(1)]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^GROUP +LEADER +TERM/m);

    // writers keep writing while the leader of group 0 is killed
    const status = await client.status();
    const leader = status.groups[0]?.leader as number;
    assert.ok(leader >= 1 && leader <= 3);
    const acked: string[] = [];
    let stop = false;
    let firstFailureAt = 0;
    let recoveredAt = 0;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `/e2e/w${w}/${i}`;
        try {
          await client.put(key, Buffer.from(String(i)));
          acked.push(key);
          if (firstFailureAt > 0 && recoveredAt === 0) recoveredAt = Date.now();
        } catch {
          if (firstFailureAt === 0) firstFailureAt = Date.now();
        }
      }
    });
    await sleep(500);
    const killedAt = Date.now();
    nodes.get(leader)?.proc.kill('SIGKILL');
    await nodes.get(leader)?.exited;
    // a new leader serves: a write through the survivors succeeds
    const survivors = new GrpcMetaClient(
      [1, 2, 3].filter((id) => id !== leader).map((id) => `127.0.0.1:${grpcPorts.get(id)}`),
      { timeoutMs: 10_000 },
    );
    t.after(() => survivors.close());
    await survivors.put('/e2e/after-kill', Buffer.from('ok'));
    const failoverMs = Date.now() - killedAt;
    t.diagnostic(`write served again ${failoverMs} ms after kill -9 of leader ${leader}`);
    assert.ok(failoverMs < 2000, `a new leader served within 2 s (took ${failoverMs} ms)`);
    await sleep(300);
    stop = true;
    await Promise.all(writers);
    assert.ok(acked.length > 50, `writers made progress (${acked.length} acknowledged)`);
    for (const key of acked) assert.ok((await survivors.get(key)) !== undefined, `acknowledged ${key} survived`);

    // the killed node restarts on its data and catches up
    nodes.set(leader, await startServer(args(leader, ['--meta-peers', peers])));
    const lastKey = acked.at(-1) as string;
    const restartedHttp = `127.0.0.1:${nodes.get(leader)?.ports.http}`;
    await retry(async () => {
      const r = await fetch(`http://${restartedHttp}/api/v1/meta/kv?key=${encodeURIComponent('/e2e/after-kill')}&serializable=true`, {
        headers: adminHeaders(join(base, `n${leader}`)),
      });
      const b = (await r.json()) as { count: number };
      if (b.count !== 1) throw new Error('not caught up yet');
    }, 'restarted node catches up').catch((err: unknown) => {
      for (const l of nodes.get(leader)?.logs ?? []) if (l.component === 'meta') t.diagnostic(JSON.stringify(l));
      throw err;
    });
    void lastKey;

    // a fourth node joins as a learner, is promoted, and another voter is removed
    nodes.set(4, await startServer(args(4, ['--meta-join', 'true'])));
    const addr4 = `127.0.0.1:${grpcPorts.get(4)}`;
    const live = leader === 1 ? 2 : 1;
    const liveHttp = `127.0.0.1:${nodes.get(live)?.ports.http}`;
    const add = await ctl(['meta', 'member', 'add', '4', addr4, '--server', liveHttp, '--timeout-ms', '15000', ...token(live)]);
    assert.equal(add.code, 0, add.stderr);
    await retry(() => client.promote(4), 'promote node 4 once caught up', 20_000);
    const victim = [1, 2, 3].find((id) => id !== leader) as number;
    await retry(() => client.removeMember(victim), `remove node ${victim}`);
    const after = await client.status();
    for (const g of after.groups) {
      assert.ok(g.voters.includes(4), `node 4 votes in group ${g.group}`);
      assert.ok(!g.voters.includes(victim), `node ${victim} left group ${g.group}`);
    }
    await retry(() => client.put('/e2e/final', Buffer.from('done')), 'write after membership changes');
    const n4 = new GrpcMetaClient([addr4]);
    t.after(() => n4.close());
    assert.equal((await n4.get('/e2e/final'))?.value.toString(), 'done');
  },
);
