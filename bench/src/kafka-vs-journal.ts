/**
 * `robust-bench kafka-vs-journal`: the Kafka path against the journal underneath it, in one run
 * (issue #7: produce ≥ 0.8 of the journal's own append rate, consume ≥ 1 GB/s from the page cache).
 *
 * 1. journal: the same RecordBatches appended to a fresh Journal with the server's defaults
 *    (segment engine, fsync policy `interval`), one shard per partition, round-robin, with as
 *    many appends in flight as the producer has requests in flight, in a fresh child process
 *    (--journal-in-process: in this one);
 * 2. Kafka produce, for each --acks: a robust-server started here (a separate process; or --port),
 *    one connection sending pre-built Produce v3 frames (ProduceFrame: only the correlation id,
 *    partition, timestamps and CRC are patched per send) with --inflight requests pipelined;
 * 3. Kafka fetch: the acks=1 topic read back from offset 0 (it was just written: page cache) by
 *    one connection with Fetch v4 of --fetch-max-bytes over all partitions. Responses are parsed
 *    as they stream in, into one reused read buffer (`onread`): only frame, partition and batch
 *    headers are looked at, nothing is copied or joined.
 *
 * With --rounds N, steps 1 and 2 run N times interleaved against one server; each row is the
 * median round and every round's ratio is listed (this VM's disk and CPU vary ×3 from minute
 * to minute, so one round proves little).
 *
 * Besides wall-clock rates it reports the server's CPU time per request / per GB (from
 * /proc/<pid>/stat), which stays comparable when other work on the machine skews the rates.
 * Bounded by --timeout; stops only the server it started, by PID.
 */
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync, rmSync } from 'node:fs';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Compression, type Journal } from '@robustmq/journal';
import { openTestJournal } from '@robustmq/journal/testing';
import { startBroker, stopProcess, type Broker } from './compare.js';
import { KafkaConnection, KafkaProducer, type KafkaTarget } from './kafka-client.js';
import {
  ApiKey,
  buildBatch,
  decodeCreateTopicsResponse,
  decodeDeleteTopicsResponse,
  decodeListOffsetsResponse,
  encodeCreateTopicsRequest,
  encodeDeleteTopicsRequest,
  encodeFetchRequest,
  encodeListOffsetsRequest,
  encodeRequest,
  kafkaErrorName,
} from './kafka-wire.js';
import { Pump } from './mqtt-client.js';
import { parseOptions, renderHelp, usageError, type OptionTable, type OptionValues } from './options.js';
import { ErrorCounts, Histogram } from './stats.js';

const options = {
  records: { type: 'number', min: 1, default: 200_000, short: 'n', help: 'records per produce case (and appended to the journal)' },
  'record-bytes': { type: 'number', min: 1, default: 1024, help: 'record value bytes' },
  'batch-bytes': { type: 'number', min: 1, default: 16_384, help: 'record value bytes per RecordBatch (= per produce request)' },
  inflight: { type: 'number', min: 1, default: 16, help: 'produce requests (journal appends) in flight' },
  partitions: { type: 'number', min: 1, default: 4, help: 'partitions of each topic (journal shards), written round-robin' },
  'partitions-per-request': {
    type: 'number',
    min: 1,
    default: 4,
    help: 'batches per Produce request, one per partition (a producer sends one request per broker with a batch for each partition it has ready)',
  },
  acks: { type: 'string', default: '1,all', help: 'comma-separated produce cases: 0, 1, all' },
  'fetch-max-bytes': { type: 'number', min: 1024, default: 50 * 1024 * 1024, help: 'Fetch max_bytes (whole response)' },
  'partition-max-bytes': { type: 'number', min: 1024, default: 16 * 1024 * 1024, help: 'Fetch partition_max_bytes' },
  warmup: {
    type: 'number',
    min: 0,
    default: 50_000,
    help: 'records produced (and appended to the journal) before the timed cases, so the JIT is warm',
  },
  'fetch-passes': { type: 'number', min: 1, default: 3, help: 'times the acks=1 topic is read from the start' },
  rounds: {
    type: 'number',
    min: 1,
    default: 1,
    help: 'journal and produce cases run this many times, interleaved (one server); each row is the median round, and the ratio of every round is listed',
  },
  port: { type: 'number', min: 1, max: 65535, short: 'p', help: 'Kafka port of a running server (default: start one)' },
  'server-pid': { type: 'number', min: 1, help: 'with --port: the server process, for its CPU time' },
  'server-cpu-prof': { type: 'string', help: 'directory for a CPU profile of the started server (node --cpu-prof)' },
  timeout: { type: 'number', min: 1, default: 300, help: 'seconds before the run is abandoned (the server is stopped)' },
  'journal-in-process': {
    type: 'boolean',
    default: false,
    help: 'run the journal case in this process instead of a fresh child process each round',
  },
  floor: {
    type: 'boolean',
    default: false,
    help: 'also produce, each round, into the Kafka floor server (bench/src/kafka-floor-server.ts: receive, CRC check, one write per partition, fdatasync every second, answer; the least any broker on Node.js does)',
  },
  'journal-only': { type: 'boolean', default: false, help: '(internal) run only the journal case and print its row as JSON' },
  json: { type: 'boolean', default: false, help: 'print the rows as JSON' },
  help: { type: 'boolean', default: false, help: 'show this help' },
} as const satisfies OptionTable;

const USAGE = `robust-bench kafka-vs-journal [options]

Journal append (in this process) beside Kafka produce (acks 1 and all) and Kafka fetch from the
page cache against a robust-server it starts, with the same RecordBatches; prints one table with
produce / journal. Example: robust-bench kafka-vs-journal -n 200000 --record-bytes 1024 --batch-bytes 16384`;

export interface Row {
  case: string;
  records: number;
  seconds: number;
  recordsPerS: number;
  /** Record batch bytes per second, 10^6 bytes. */
  MBps: number;
  /** Produce rate / the journal's rate at the same in-flight depth. */
  ratio: number | null;
  /** CPU of the process doing the work (journal: this process; Kafka: the server), ms. */
  cpuMs: number;
  /** Per request (journal: per append) for produce, per GB for fetch. */
  cpuPer: string;
  errors: number;
}

interface Settings {
  records: number;
  recordBytes: number;
  perBatch: number;
  batches: number;
  batchBytes: number;
  inflight: number;
  partitions: number;
  partitionsPerRequest: number;
  acks: number[];
  fetchMaxBytes: number;
  partitionMaxBytes: number;
  fetchPasses: number;
  warmupBatches: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The server this run started, killed by PID if the run times out. */
let started: Broker | undefined;
let startedFloor: Floor | undefined;

/**
 * Writes all dirty pages out (sync(1)) before a timed case, so no case pays for the kernel's
 * writeback of the one before it (on two cores the flusher threads compete for the CPU).
 */
function settleDisk(): void {
  try {
    execFileSync('sync', { timeout: 120_000 });
  } catch {
    // best effort: a case then runs with whatever writeback is pending
  }
}

/** utime + stime of a process in ms (Linux /proc; clock ticks assumed 100/s, as everywhere). */
function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function journalCase(s: Settings, batch: Buffer): Promise<Row> {
  const dir = await mkdtemp(join(tmpdir(), 'robust-bench-kvj-'));
  let j: Journal | undefined;
  try {
    j = await openTestJournal(dir); // the server's defaults: segment engine, fsync interval
    const shards = Array.from({ length: s.partitions }, (_, p) => `kafka/bench/${p}`);
    for (const name of shards) await j.createShard(name);
    const journal = j;
    const warm = Buffer.from(batch);
    for (let i = 0; i < s.warmupBatches; i++) await journal.append(shards[i % shards.length]!, warm);
    let next = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      const own = Buffer.from(batch); // append rewrites the base offset in place
      while (next < s.batches) {
        const i = next++;
        await journal.append(shards[i % shards.length]!, own);
      }
    };
    const inflight = s.inflight * s.partitionsPerRequest; // the batches the producer has in flight
    await Promise.all(Array.from({ length: inflight }, worker));
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    return {
      case: `journal append, ${s.inflight * s.partitionsPerRequest} in flight`,
      records: s.batches * s.perBatch,
      seconds: secs,
      recordsPerS: (s.batches * s.perBatch) / secs,
      MBps: (s.batches * batch.length) / secs / 1e6,
      ratio: null,
      cpuMs,
      cpuPer: `${((cpuMs * 1000) / s.batches).toFixed(1)} µs/batch`,
      errors: 0,
    };
  } finally {
    await j?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The journal case in a fresh process (this program with --journal-only): its rate does not
 * depend on what this process ran before it (the Kafka producer's heap, JIT and buffers).
 */
function journalCaseInChild(v: OptionValues): Promise<Row> {
  const pass = ['records', 'record-bytes', 'batch-bytes', 'inflight', 'partitions', 'partitions-per-request', 'warmup'];
  const args = [fileURLToPath(new URL('./main.js', import.meta.url)), 'kafka-vs-journal', '--journal-only', '--json'];
  for (const k of pass) args.push(`--${k}`, String(v[k]));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { maxBuffer: 1 << 20, timeout: (v.timeout as number) * 1000 }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`journal case: ${stderr.trim() || err.message}`));
      try {
        resolve((JSON.parse(stdout) as { rows: Row[] }).rows[0]!);
      } catch (e) {
        reject(new Error(`journal case printed no row: ${(e as Error).message}`));
      }
    });
  });
}

/** Runs `fn` on a fresh connection to `target`, closed afterwards. */
async function withConnection<T>(target: KafkaTarget, fn: (c: KafkaConnection) => Promise<T>): Promise<T> {
  const c = new KafkaConnection(target, new ErrorCounts());
  try {
    await c.connect();
    return await fn(c);
  } finally {
    await c.close();
  }
}

async function createTopic(target: KafkaTarget, topic: string, partitions: number): Promise<void> {
  await withConnection(target, async (c) => {
    const r = decodeCreateTopicsResponse(await c.request(ApiKey.CreateTopics, encodeCreateTopicsRequest(topic, partitions, 1, 10_000)));
    for (const t of r) if (t.error !== 0) throw new Error(`create topic ${topic}: ${kafkaErrorName(t.error)} ${t.message ?? ''}`);
  });
}

/**
 * Deletes a topic once its case is measured. Every case then writes into the same free memory:
 * kept, the cases' data would pile up in the page cache round after round (≈ 16 GB in a 3-round
 * run of 1.6 M records), and on this kind of VM the later cases then write into memory the host
 * has to fault in. After acks=0 it first waits until the broker has stored every record (the
 * producer is done once its requests are written; an auto-creating broker would otherwise
 * recreate the topic from frames still queued). Returns why the topic was kept, or undefined.
 */
async function deleteTopic(
  target: KafkaTarget,
  topic: string,
  stored?: { partitions: number; records: number },
): Promise<string | undefined> {
  try {
    return await withConnection(target, async (c) => {
      if (stored !== undefined) {
        const parts = Array.from({ length: stored.partitions }, (_, p) => p);
        let last = -1n;
        let same = Date.now();
        for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
          const ends = decodeListOffsetsResponse(await c.request(ApiKey.ListOffsets, encodeListOffsetsRequest(topic, parts, -1n)));
          const total = ends.reduce((n, e) => n + (e.error === 0 ? e.offset : 0n), 0n);
          if (total >= BigInt(stored.records)) break;
          if (total !== last) [last, same] = [total, Date.now()];
          else if (Date.now() - same > 2000) break; // nothing more is coming
          await sleep(50);
        }
      }
      const r = decodeDeleteTopicsResponse(await c.request(ApiKey.DeleteTopics, encodeDeleteTopicsRequest([topic], 10_000)));
      const failed = r.find((t) => t.error !== 0);
      return failed === undefined ? undefined : `${topic}: ${kafkaErrorName(failed.error)}`;
    });
  } catch (err) {
    return `${topic}: ${(err as Error).message}`;
  }
}

async function produceCase(
  s: Settings,
  target: KafkaTarget,
  pid: number | undefined,
  topic: string,
  acks: number,
  batch: Buffer,
): Promise<Row> {
  await createTopic(target, topic, s.partitions);
  const errors = new ErrorCounts();
  const count = s.batches * s.perBatch;
  const producer = new KafkaProducer(target, errors, new Histogram(), {
    topic,
    partitions: Array.from({ length: s.partitions }, (_, p) => p),
    acks,
    timeoutMs: 30_000,
    batchRecords: s.perBatch,
    partitionsPerRequest: s.partitionsPerRequest,
    batch,
    inflight: s.inflight,
    count,
  });
  await producer.connect();
  try {
    const cpu0 = pid === undefined ? 0 : cpuMsOf(pid);
    const t0 = performance.now();
    const pump = new Pump([producer], 0, producer.perRequest);
    pump.begin(Number.POSITIVE_INFINITY);
    await pump.finished;
    let last = -1;
    let lastChange = performance.now();
    while (producer.inflight > 0 && producer.isUp) {
      if (producer.acked !== last) [last, lastChange] = [producer.acked, performance.now()];
      else if (performance.now() - lastChange > 10_000) break;
      await sleep(1);
    }
    const secs = (performance.now() - t0) / 1000;
    const cpuMs = pid === undefined ? Number.NaN : cpuMsOf(pid) - cpu0;
    if (producer.inflight > 0) errors.add('produce never acknowledged', producer.inflight * producer.perRequest);
    return {
      case: `kafka produce acks=${acks === -1 ? 'all' : acks}`,
      records: producer.acked,
      seconds: secs,
      recordsPerS: producer.acked / secs,
      MBps: ((producer.acked / s.perBatch) * batch.length) / secs / 1e6,
      ratio: null,
      cpuMs,
      cpuPer: `${((cpuMs * 1000) / s.batches).toFixed(1)} µs/batch`,
      errors: errors.total,
    };
  } finally {
    await producer.close();
  }
}

/** What one Fetch response held, per partition: records and the offset after the last whole batch. */
interface FetchTally {
  bytes: number;
  records: number;
  next: Map<number, bigint>;
  errors: number;
}

/**
 * Fetch Response (Version: 4) => throttle_time_ms [responses]
 *   responses => topic [partitions]
 *   partitions => partition_index error_code high_watermark last_stable_offset [aborted_transactions] records
 * As a generator over the byte stream: yields n > 0 to get the next n bytes (≤ 61) as a buffer,
 * n < 0 to skip −n bytes; record batches are skipped after their 61-byte header is read.
 */
function* fetchResponseParser(t: FetchTally): Generator<number, void, Buffer> {
  let b = yield 16; // size, correlation id, throttle time, topics
  let topics = b.readInt32BE(12);
  while (topics-- > 0) {
    b = yield 2;
    const nameLength = b.readInt16BE(0);
    if (nameLength > 0) yield -nameLength;
    b = yield 4;
    let partitions = b.readInt32BE(0);
    while (partitions-- > 0) {
      b = yield 26; // partition, error, high watermark, last stable offset, aborted count
      const partition = b.readInt32BE(0);
      const error = b.readInt16BE(4);
      const aborted = b.readInt32BE(22);
      if (error !== 0) t.errors++;
      if (aborted > 0) yield -16 * aborted;
      b = yield 4;
      let left = b.readInt32BE(0);
      if (left > 0) t.bytes += left;
      while (left >= 61) {
        b = yield 61;
        const size = b.readInt32BE(8) + 12;
        if (size > left) {
          yield -(left - 61); // a partial batch at the end (the response size limit)
          left = 0;
          break;
        }
        t.records += b.readInt32BE(57);
        t.next.set(partition, b.readBigInt64BE(0) + BigInt(b.readInt32BE(23) + 1));
        if (size > 61) yield -(size - 61);
        left -= size;
      }
      if (left > 0) yield -left;
    }
  }
}

/** One Fetch connection: responses parsed as they stream into one reused buffer (no joins, no copies). */
class FetchConnection {
  readonly sock: net.Socket;
  readonly #scratch = Buffer.allocUnsafe(64);
  #gen: Generator<number, void, Buffer> | undefined;
  #want = 0;
  #have = 0;
  #skip = 0;
  #tally: FetchTally | undefined;
  #done: ((t: FetchTally) => void) | undefined;
  #fail: ((e: Error) => void) | undefined;

  constructor(target: KafkaTarget) {
    this.sock = net.connect({
      host: target.host,
      port: target.port,
      onread: { buffer: Buffer.allocUnsafe(4 * 1024 * 1024), callback: (n, buf) => this.#feed(buf as Buffer, n) },
    });
    this.sock.setNoDelay(true);
    this.sock.on('error', (err) => this.#fail?.(err));
    this.sock.on('close', () => this.#fail?.(new Error('fetch connection closed')));
  }

  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
  }

  fetch(frame: Buffer): Promise<FetchTally> {
    return new Promise((resolve, reject) => {
      this.#tally = { bytes: 0, records: 0, next: new Map(), errors: 0 };
      this.#gen = fetchResponseParser(this.#tally);
      this.#step(this.#gen.next());
      this.#done = resolve;
      this.#fail = reject;
      this.sock.write(frame);
    });
  }

  #step(r: IteratorResult<number, void>): void {
    if (r.done === true) {
      const t = this.#tally!;
      this.#gen = undefined;
      this.#want = 0;
      this.#skip = 0;
      const done = this.#done;
      this.#done = undefined;
      this.#fail = undefined;
      done?.(t);
    } else if (r.value > 0) {
      this.#want = r.value;
      this.#have = 0;
    } else {
      this.#want = 0;
      this.#skip = -r.value;
    }
  }

  #feed(buf: Buffer, n: number): boolean {
    let pos = 0;
    while (pos < n && this.#gen !== undefined) {
      if (this.#want > 0) {
        const take = Math.min(this.#want - this.#have, n - pos);
        buf.copy(this.#scratch, this.#have, pos, pos + take);
        this.#have += take;
        pos += take;
        if (this.#have === this.#want) this.#step(this.#gen.next(this.#scratch.subarray(0, this.#want)));
      } else {
        const take = Math.min(this.#skip, n - pos);
        this.#skip -= take;
        pos += take;
        if (this.#skip === 0) this.#step(this.#gen.next(this.#scratch));
      }
    }
    return true;
  }

  close(): void {
    this.#fail = undefined;
    this.sock.destroy();
  }
}

async function fetchCase(s: Settings, target: KafkaTarget, pid: number | undefined, topic: string): Promise<Row[]> {
  const control = new KafkaConnection(target, new ErrorCounts());
  await control.connect();
  const parts = Array.from({ length: s.partitions }, (_, p) => p);
  const ends = decodeListOffsetsResponse(await control.request(ApiKey.ListOffsets, encodeListOffsetsRequest(topic, parts, -1n)));
  await control.close();
  const end = new Map(ends.map((p) => [p.partition, p.offset]));
  const c = new FetchConnection(target);
  await c.ready();
  const rows: Row[] = [];
  try {
    let corr = 1;
    for (let pass = 1; pass <= s.fetchPasses; pass++) {
      const offsets = new Map(parts.map((p) => [p, 0n]));
      let bytes = 0;
      let records = 0;
      let errors = 0;
      let fetches = 0;
      const cpu0 = pid === undefined ? 0 : cpuMsOf(pid);
      const t0 = performance.now();
      for (;;) {
        const want = parts.filter((p) => offsets.get(p)! < end.get(p)!);
        if (want.length === 0) break;
        const body = encodeFetchRequest(
          topic,
          want.map((p) => ({ partition: p, offset: offsets.get(p)! })),
          0,
          s.fetchMaxBytes,
          s.partitionMaxBytes,
        );
        const t = await c.fetch(encodeRequest(ApiKey.Fetch, corr++, target.clientId, body));
        fetches++;
        bytes += t.bytes;
        records += t.records;
        errors += t.errors;
        if (t.next.size === 0) throw new Error(`fetch returned no whole batch at offsets ${[...offsets.values()].join(',')}`);
        for (const [p, o] of t.next) offsets.set(p, o);
      }
      const secs = (performance.now() - t0) / 1000;
      const cpuMs = pid === undefined ? Number.NaN : cpuMsOf(pid) - cpu0;
      rows.push({
        case: `kafka fetch pass ${pass} (${fetches} fetches)`,
        records,
        seconds: secs,
        recordsPerS: records / secs,
        MBps: bytes / secs / 1e6,
        ratio: null,
        cpuMs,
        cpuPer: `${((cpuMs / bytes) * 1e9).toFixed(0)} ms/GB`,
        errors,
      });
    }
  } finally {
    c.close();
  }
  return rows;
}

function renderRows(rows: Row[]): string {
  const fmt = (n: number, d = 0): string =>
    Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—';
  const head = ['case', 'records/s', 'MB/s', '× journal', 'seconds', 'CPU (ms)', 'CPU per', 'errors'];
  const body = rows.map((r) => [
    r.case,
    fmt(r.recordsPerS),
    fmt(r.MBps, 1),
    r.ratio === null ? '' : fmt(r.ratio, 2),
    fmt(r.seconds, 2),
    fmt(r.cpuMs),
    r.cpuPer,
    String(r.errors),
  ]);
  const lines = [head, ...body];
  const widths = head.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const row = (l: string[]): string => `| ${l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [row(head), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...body.map(row)].join(
    '\n',
  );
}

export async function runKafkaVsJournal(v: OptionValues): Promise<{ rows: Row[]; notes: string[] }> {
  const recordBytes = v['record-bytes'] as number;
  const perBatch = Math.max(1, Math.floor((v['batch-bytes'] as number) / recordBytes));
  const records = v.records as number;
  const acks = [
    ...new Set(
      // a case given twice would reuse its topic name
      String(v.acks)
        .split(',')
        .map((a) => (a.trim() === 'all' || a.trim() === '-1' ? -1 : Number(a))),
    ),
  ];
  if (acks.some((a) => a !== 0 && a !== 1 && a !== -1)) throw new Error(`--acks: 0, 1 or all, got ${String(v.acks)}`);
  const s: Settings = {
    records,
    recordBytes,
    perBatch,
    batches: Math.ceil(records / perBatch),
    batchBytes: 0,
    inflight: v.inflight as number,
    partitions: v.partitions as number,
    partitionsPerRequest: Math.min(v['partitions-per-request'] as number, v.partitions as number),
    acks,
    fetchMaxBytes: v['fetch-max-bytes'] as number,
    partitionMaxBytes: v['partition-max-bytes'] as number,
    fetchPasses: v['fetch-passes'] as number,
    warmupBatches: Math.ceil((v.warmup as number) / perBatch),
  };
  const batch = buildBatch(perBatch, recordBytes, Compression.None);
  s.batchBytes = batch.length;
  const load0 = loadavg()[0]!;
  const rows: Row[] = [];
  const step = (what: string): void => {
    if (v.json !== true) process.stderr.write(`${what}…\n`);
  };
  if (v['journal-only'] === true) return { rows: [await journalCase(s, batch)], notes: [] };
  const rounds = v.rounds as number;
  const inProcess = v['journal-in-process'] === true;
  /** Rows of the journal and produce cases, per case, one per round. */
  const perCase = new Map<string, Row[]>();
  /** Topics a case left behind because deleting them failed (the run goes on; a note says so). */
  const notDeleted: string[] = [];
  const drop = async (t: KafkaTarget, topic: string, acks: number, batches: number): Promise<void> => {
    const why = await deleteTopic(t, topic, acks === 0 ? { partitions: s.partitions, records: batches * s.perBatch } : undefined);
    if (why === undefined) return;
    notDeleted.push(why);
    process.stderr.write(`robust-bench kafka-vs-journal: topic not deleted, ${why}\n`);
  };
  const keep = (r: Row): void => void (perCase.get(r.case) ?? perCase.set(r.case, []).get(r.case)!).push(r);
  const ratios: string[] = [];

  let broker: Broker | undefined;
  let floor: Floor | undefined;
  const cpuProf = v['server-cpu-prof'] as string | undefined;
  try {
    let port = v.port as number | undefined;
    if (port === undefined) {
      step('starting robust-server');
      broker = await startBroker('robustmq', cpuProf === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`]);
      started = broker;
      port = broker.kafkaPort!;
    }
    const serverPid = broker?.pid ?? (v['server-pid'] as number | undefined);
    if (v.floor === true) {
      step('starting the Kafka floor server');
      floor = await startFloor();
      startedFloor = floor;
    }
    const local = (p: number, clientId: string): KafkaTarget => ({
      host: '127.0.0.1',
      port: p,
      tls: null,
      clientId,
      connectTimeoutMs: 10_000,
    });
    const target = local(port, 'robust-bench-kvj');
    const floorTarget = floor === undefined ? undefined : local(floor.port, 'robust-bench-floor');
    const run = Date.now().toString(36);
    for (const a of s.warmupBatches > 0 ? acks : []) {
      step(`kafka warm-up acks=${a === -1 ? 'all' : a}`);
      const topic = `kvj-${run}-warmup${a === -1 ? 'all' : a}`;
      await produceCase({ ...s, batches: s.warmupBatches }, target, undefined, topic, a, batch);
      await drop(target, topic, a, s.warmupBatches);
    }
    if (floorTarget !== undefined && s.warmupBatches > 0) {
      step('floor warm-up acks=1');
      await produceCase({ ...s, batches: s.warmupBatches }, floorTarget, undefined, `kvj-${run}-floor-warmup`, 1, batch);
      await drop(floorTarget, `kvj-${run}-floor-warmup`, 1, s.warmupBatches);
    }
    let fetchTopic: string | undefined;
    for (let round = 1; round <= rounds; round++) {
      const of = rounds > 1 ? ` (round ${round} of ${rounds})` : '';
      step(`journal append${of}`);
      settleDisk();
      const j = inProcess ? await journalCase(s, batch) : await journalCaseInChild(v);
      keep(j);
      const inRound: string[] = [];
      if (floor !== undefined && floorTarget !== undefined) {
        step(`floor produce acks=1${of}`);
        settleDisk();
        const r = await produceCase(s, floorTarget, floor.pid, `kvj-${run}-r${round}-floor`, 1, batch);
        await drop(floorTarget, `kvj-${run}-r${round}-floor`, 1, s.batches);
        r.case = 'floor produce acks=1 (receive, CRC, write, fsync 1 s, answer)';
        r.ratio = r.recordsPerS / j.recordsPerS;
        keep(r);
        inRound.push(`floor ${r.ratio.toFixed(2)}`);
      }
      for (const a of acks) {
        const topic = `kvj-${run}-r${round}-acks${a === -1 ? 'all' : a}`;
        step(`kafka produce acks=${a === -1 ? 'all' : a}${of}`);
        settleDisk();
        const r = await produceCase(s, target, serverPid, topic, a, batch);
        r.ratio = r.recordsPerS / j.recordsPerS;
        keep(r);
        inRound.push(`${r.case.replace('kafka produce ', '')} ${r.ratio.toFixed(2)}`);
        // the first acks=1 topic (else the first one) is kept for the fetch passes
        if (round === 1 && (a === 1 || fetchTopic === undefined)) {
          if (fetchTopic !== undefined) await drop(target, fetchTopic, 1, 0); // stored long ago: no wait
          fetchTopic = topic;
        } else await drop(target, topic, a, s.batches);
      }
      ratios.push(`round ${round}: journal ${Math.round(j.recordsPerS).toLocaleString('en-US')} records/s, ${inRound.join(', ')}`);
    }
    for (const list of perCase.values()) {
      const sorted = [...list].sort((x, y) => x.recordsPerS - y.recordsPerS);
      const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
      const rowOut = { ...median };
      if (rounds > 1) {
        rowOut.case = `${median.case}, median of ${rounds}`;
        if (median.ratio !== null) {
          const rs = list.map((r) => r.ratio!).sort((x, y) => x - y);
          rowOut.ratio = rs[Math.floor((rs.length - 1) / 2)]!; // the median of the per-round ratios
        }
      }
      rows.push(rowOut);
    }
    if (fetchTopic !== undefined) step('kafka fetch');
    if (fetchTopic !== undefined) {
      rows.push(...(await fetchCase(s, target, serverPid, fetchTopic)));
      await drop(target, fetchTopic, 1, 0);
    }
  } finally {
    if (floor !== undefined) {
      await stopProcess(floor.child);
      rmSync(floor.dir, { recursive: true, force: true });
    }
    startedFloor = undefined;
    if (broker !== undefined) {
      await stopProcess(broker.child);
      rmSync(broker.dir, { recursive: true, force: true });
      started = undefined;
    }
  }
  const load1 = loadavg()[0]!;
  const notes = [
    `${s.batches} RecordBatches of ${perBatch} × ${recordBytes} B (${batch.length} B each) over ${s.partitions} partitions, ${s.partitionsPerRequest} per Produce request, ${s.inflight} requests in flight ` +
      `(${s.inflight * s.partitionsPerRequest} journal appends), ` +
      `after ${s.warmupBatches} warm-up batches (journal; server: per acks case); ` +
      `fetch max_bytes ${s.fetchMaxBytes}, partition_max_bytes ${s.partitionMaxBytes}. MB = 10^6 bytes of record batches.`,
    `× journal = Kafka produce records/s ÷ journal append records/s; every timed case starts after sync(1), and each case's data is deleted once it is measured (the topic read by fetch after the fetch). The journal case runs ${inProcess ? 'in this process' : 'in a fresh child process each round'}. CPU: the journal case's own process; Kafka cases: the server process` +
      `${v.port !== undefined && v['server-pid'] === undefined ? ' (not measured: --port without --server-pid)' : ''}.`,
    ...(notDeleted.length > 0 ? [`Not deleted after their case (later cases ran beside their data): ${notDeleted.join('; ')}.`] : []),
    ...(rounds > 1 ? [`× journal per round (each against the journal case of its own round): ${ratios.join('; ')}.`] : []),
    `${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), Node ${process.version}, 1-min load average ${load0.toFixed(2)} before, ${load1.toFixed(2)} after.`,
  ];
  return { rows, notes };
}

export interface Floor {
  child: ChildProcess;
  pid: number;
  port: number;
  /** Its data directory: one file per partition, `<topic>-<partition>`. */
  dir: string;
}

/** Starts bench/src/kafka-floor-server.ts on a free port with a fresh data directory. */
export async function startFloor(): Promise<Floor> {
  const dir = await mkdtemp(join(tmpdir(), 'robust-bench-kafka-floor-'));
  const script = fileURLToPath(new URL('./kafka-floor-server.js', import.meta.url));
  const child = spawn(process.execPath, [script, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line !== undefined) resolve((JSON.parse(line) as { kafkaPort: number }).kafkaPort);
    });
    child.once('exit', (code) => reject(new Error(`the Kafka floor server exited (${String(code)}): ${err.trim()}`)));
  });
  return { child, pid: child.pid!, port, dir };
}

/** `robust-bench kafka-vs-journal …` */
export async function run(argv: string[]): Promise<number> {
  let values: OptionValues;
  try {
    values = parseOptions(argv, options).values;
  } catch (err) {
    return usageError('kafka-vs-journal', err);
  }
  if (values.help) {
    process.stdout.write(renderHelp(USAGE, options));
    return 0;
  }
  const timeoutS = values.timeout as number;
  const timer = setTimeout(() => {
    process.stderr.write(`robust-bench kafka-vs-journal: not done after ${timeoutS} s; giving up\n`);
    if (startedFloor !== undefined) {
      process.kill(startedFloor.pid, 'SIGKILL');
      rmSync(startedFloor.dir, { recursive: true, force: true });
    }
    const b = started;
    if (b?.child.exitCode === null && b.child.signalCode === null) {
      process.kill(b.pid, 'SIGKILL');
      rmSync(b.dir, { recursive: true, force: true });
    }
    process.exit(1);
  }, timeoutS * 1000);
  timer.unref();
  try {
    const { rows, notes } = await runKafkaVsJournal(values);
    if (values.json) process.stdout.write(`${JSON.stringify({ rows, notes })}\n`);
    else process.stdout.write(`${renderRows(rows)}\n\n${notes.join('\n')}\n`);
    return rows.some((r) => r.errors > 0) ? 1 : 0;
  } catch (err) {
    process.stderr.write(`robust-bench kafka-vs-journal: ${(err as Error).message}\n`);
    return 1;
  } finally {
    clearTimeout(timer);
  }
}
