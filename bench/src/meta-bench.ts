/**
 * Meta benchmark: committed writes per second and latency with concurrent clients over gRPC,
 * against 1 and 3 meta nodes on loopback (real robust-server processes), and watch fan-out:
 * one write seen by N watchers. Usage: robust-bench meta [--seconds N] [--warmup-seconds N] [--clients N] [--watchers N]
 * [--nodes 1,3] [--skip-grpc]. Each load runs unmeasured for the warm-up first (the follower processes
 * are fresh, and V8 compiles their hot code during the first seconds), then for --seconds measured;
 * CPU per write is reported for the leader (this process, with its clients) and each follower.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { meta as metaProto } from '@robustmq/proto';
import { GrpcMetaClient, GrpcRaftTransport, MetaNode, type MetaClient } from '@robustmq/meta';

const SERVER = fileURLToPath(new URL('../../../bin/robust-server', import.meta.url));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

function startNode(args: string[]): Promise<ChildProcess> {
  // ROBUST_BENCH_NODE_ARGS passes options to the spawned nodes, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p".
  const nodeArgs = (process.env.ROBUST_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const proc = spawn(process.execPath, [...nodeArgs, SERVER, 'start', '--bind-host', '127.0.0.1', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      if (l.includes('"msg":"listening"')) resolve(proc);
    });
    proc.once('exit', (code) => reject(new Error(`robust-server exited with ${code}`)));
  });
}

/** CPU time (user + system, µs) a child process has used so far, from /proc; 0 where there is no /proc. */
function childCpuMicros(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // Fields after the command name (which may hold spaces) start at ") "; utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100; // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/** Runs `load` and reports CPU µs per write of this process and of each child, next to the load's own result. */
async function withCpu<T extends { writes: number }>(
  procs: ChildProcess[],
  load: () => Promise<T>,
): Promise<T & { cpuSelfUs: number; cpuChildUs: number[] }> {
  const self0 = process.cpuUsage();
  const kids0 = procs.map((p) => childCpuMicros(p.pid));
  const r = await load();
  const self = process.cpuUsage(self0);
  const perWrite = (us: number): number => (r.writes === 0 ? 0 : us / r.writes);
  return {
    ...r,
    cpuSelfUs: perWrite(self.user + self.system),
    cpuChildUs: procs.map((p, i) => perWrite(childCpuMicros(p.pid) - (kids0[i] as number))),
  };
}

function cpuNote(r: { cpuSelfUs: number; cpuChildUs: number[] }): string {
  const kids = r.cpuChildUs.map((c) => c.toFixed(0)).join('/');
  return `CPU/write: leader+clients ${r.cpuSelfUs.toFixed(0)} µs${kids === '' ? '' : `, followers ${kids} µs`}`;
}

/** Sum (seconds) and count of the leader's WAL writes so far, from its metrics. */
async function walWrites(registry: Registry): Promise<{ sum: number; count: number }> {
  // A histogram's values carry the series name (_bucket, _sum, _count) in metricName.
  const m = ((await registry.getSingleMetric('robustmq_meta_wal_write_seconds')?.get())?.values ?? []) as {
    metricName?: string;
    value: number;
  }[];
  const pick = (name: string): number => m.filter((v) => v.metricName === name).reduce((n, v) => n + v.value, 0);
  return { sum: pick('robustmq_meta_wal_write_seconds_sum'), count: pick('robustmq_meta_wal_write_seconds_count') };
}

function cpuCell(r: { cpuSelfUs: number; cpuChildUs: number[] }): string {
  return [r.cpuSelfUs, ...r.cpuChildUs].map((c) => c.toFixed(0)).join(' / ');
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function writeLoad(
  client: MetaClient,
  clients: number,
  seconds: number,
): Promise<{ writes: number; perSec: number; p50: number; p99: number; errors: number }> {
  const lat: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const value = Buffer.alloc(64, 'v');
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        try {
          await client.put(`/bench/c${c}/k${i % 100}`, value);
          lat.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { writes: lat.length, perSec: lat.length / seconds, p50: percentile(lat, 50), p99: percentile(lat, 99), errors };
}

async function watchFanOut(client: MetaClient, watchers: number): Promise<{ p50: number; max: number; seen: number }> {
  const key = `/bench/watch/${Date.now()}`;
  const delays: number[] = [];
  let t0 = 0;
  let resolveAll: () => void = () => undefined;
  const all = new Promise<void>((r) => (resolveAll = r));
  const cancels = Array.from({ length: watchers }, () =>
    client.watch(key, undefined, {}, () => {
      delays.push(performance.now() - t0);
      if (delays.length === watchers) resolveAll();
    }),
  );
  await new Promise((r) => setTimeout(r, 1500)); // let every watch stream open
  t0 = performance.now();
  await client.put(key, Buffer.from('x'));
  await Promise.race([all, new Promise((r) => setTimeout(r, 10_000))]);
  for (const c of cancels) c();
  delays.sort((a, b) => a - b);
  return { p50: percentile(delays, 50), max: delays.at(-1) ?? 0, seen: delays.length };
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string' },
      'warmup-seconds': { type: 'string' },
      clients: { type: 'string' },
      watchers: { type: 'string' },
      nodes: { type: 'string' },
      'skip-grpc': { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(
      'robust-bench meta [--seconds 10] [--warmup-seconds 1] [--clients 64] [--watchers 1000 (0: none)] [--nodes 1,3] [--skip-grpc]\n',
    );
    return 0;
  }
  const seconds = Number(values.seconds ?? 10);
  const warmup = Number(values['warmup-seconds'] ?? 1);
  const clients = Number(values.clients ?? 64);
  const watchers = Number(values.watchers ?? 1000);
  const rows: string[][] = [];
  const nodeCounts = (values.nodes ?? '1,3').split(',').map(Number);
  for (const nodes of nodeCounts) {
    const base = mkdtempSync(join(tmpdir(), 'robustmq-meta-bench-'));
    const ports = await Promise.all(Array.from({ length: nodes }, freePort));
    const peers = new Map(ports.map((p, i) => [i + 1, `127.0.0.1:${p}`]));
    const procs: ChildProcess[] = [];
    // Node 1 runs inside this process, so its clients call it in-process (as brokers do in the
    // all-in-one server) and what is measured is consensus: WAL, fsync and replication over
    // gRPC to the other nodes, which are real robust-server processes.
    const log = pino({ level: 'warn' });
    const registry = new Registry();
    const transport = new GrpcRaftTransport({ nodeId: 1, clusterId: () => 'bench', log });
    transport.setSelfAddress(peers.get(1) as string);
    const server = new grpc.Server();
    server.addService(metaProto.MetaRaftService, transport.service() as unknown as grpc.UntypedServiceImplementation);
    let node: MetaNode | undefined;
    server.addService(
      metaProto.MetaService,
      (await import('@robustmq/meta')).createMetaService(
        new Proxy({} as MetaClient, {
          get:
            (_t, k: string) =>
            (...a: unknown[]) =>
              (node as unknown as Record<string, (...x: unknown[]) => unknown>)[k]?.(...a),
        }),
        () => ({ roles: ['meta'], ready: true }),
        log,
      ) as unknown as grpc.UntypedServiceImplementation,
    );
    await new Promise<void>((r, j) =>
      server.bindAsync(peers.get(1) as string, grpc.ServerCredentials.createInsecure(), (e) => (e ? j(e) : r())),
    );
    try {
      const peerSpec = [...peers].map(([id, a]) => `${id}=${a}`).join(',');
      node = await MetaNode.open({
        nodeId: 1,
        dir: join(base, 'n1'),
        log,
        registry,
        transport,
        address: peers.get(1) as string,
        initialMembers: peers,
        clusterId: 'bench',
        sessionGroups: 1,
        offsetGroups: 1,
      });
      for (let i = 1; i < nodes; i++) {
        procs.push(
          await startNode([
            '--roles',
            'meta',
            '--node-id',
            String(i + 1),
            '--data-dir',
            join(base, `n${i + 1}`),
            '--grpc-port',
            String(ports[i]),
            '--http-port',
            '0',
            '--meta-peers',
            peerSpec,
            '--meta-cluster-id',
            'bench',
            '--meta-session-groups',
            '1',
            '--meta-offset-groups',
            '1',
            // The leader's stream into a node stays open until the bench ends, so a graceful stop
            // would wait out the whole timeout; 3 s keeps it under the SIGKILL below (5 s).
            '--shutdown-timeout-ms',
            '3000',
          ]),
        );
      }
      while (!node.isReady()) await new Promise((r) => setTimeout(r, 20));
      // keep leadership here so the in-process clients talk to the leader
      for (let g = 0; g < node.groups.length; g++) if (node.group(g).leader !== 1) await node.transferLeader(g, 1);
      if (warmup > 0) await writeLoad(node, clients, warmup);
      const wal0 = await walWrites(registry);
      const inproc = await withCpu(procs, () => writeLoad(node as MetaNode, clients, seconds));
      const wal = await walWrites(registry);
      rows.push([
        `${nodes}`,
        'in-process',
        `${clients}`,
        inproc.perSec.toFixed(0),
        inproc.p50.toFixed(2),
        inproc.p99.toFixed(2),
        String(inproc.errors),
        cpuCell(inproc),
      ]);
      process.stderr.write(
        `${nodes} node(s), in-process clients: ${inproc.perSec.toFixed(0)} writes/s; ${cpuNote(inproc)}; ` +
          `leader WAL write+fsync ${(((wal.sum - wal0.sum) / Math.max(1, wal.count - wal0.count)) * 1000).toFixed(2)} ms mean over ${wal.count - wal0.count}\n`,
      );
      const remote = new GrpcMetaClient([peers.get(1) as string]);
      if (values['skip-grpc'] !== true) {
        if (warmup > 0) await writeLoad(remote, clients, warmup);
        const g = await withCpu(procs, () => writeLoad(remote, clients, seconds));
        rows.push([
          `${nodes}`,
          'gRPC',
          `${clients}`,
          g.perSec.toFixed(0),
          g.p50.toFixed(2),
          g.p99.toFixed(2),
          String(g.errors),
          cpuCell(g),
        ]);
        process.stderr.write(`${nodes} node(s), gRPC clients: ${g.perSec.toFixed(0)} writes/s; ${cpuNote(g)}\n`);
      }
      if (nodes === 3 && watchers > 0) {
        const f = await watchFanOut(node, watchers);
        process.stdout.write(
          `watch fan-out (in-process watchers): 1 write seen by ${f.seen}/${watchers}, delay p50 ${f.p50.toFixed(2)} ms, max ${f.max.toFixed(2)} ms\n`,
        );
        const fr = await watchFanOut(remote, watchers);
        process.stdout.write(
          `watch fan-out (gRPC watch streams): 1 write seen by ${fr.seen}/${watchers}, delay p50 ${fr.p50.toFixed(1)} ms, max ${fr.max.toFixed(1)} ms\n`,
        );
      }
      remote.close();
    } finally {
      // SIGTERM first so the nodes exit cleanly (and write a --cpu-prof profile if asked to).
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null) return resolve();
              const t = setTimeout(() => p.kill('SIGKILL'), 5000);
              p.once('exit', () => {
                clearTimeout(t);
                resolve();
              });
              p.kill('SIGTERM');
            }),
        ),
      );
      await node?.close();
      server.forceShutdown();
      rmSync(base, { recursive: true, force: true });
    }
  }
  process.stdout.write(
    `\n| meta nodes | client | concurrency | writes/s | p50 ms | p99 ms | errors | CPU µs/write (leader / followers) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n`,
  );
  for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(await run(process.argv.slice(2)));
