/**
 * The floor of Kafka produce for any broker on Node.js, for `robust-bench kafka-vs-journal
 * --floor`: the least a broker must do per Produce request, and nothing else. It reads
 * size-prefixed requests over the server's own transport (the native framed listener of
 * common/native/uvtcp.c), checks each RecordBatch's CRC-32C, appends the batch bytes to one file
 * per partition with a synchronous write (as the journal's inline writes do) and answers with
 * error 0. Like the journal's default `interval` fsync policy, files written to are fdatasync'ed
 * on the thread pool every `--fsync-ms` (1000; 0 = never). No topics, offsets, index, metrics or
 * acknowledgement bookkeeping. DeleteTopics (v0–3) closes and removes a topic's files, so the bench
 * can give each case the same free memory; any other request (the bench's CreateTopics) gets an
 * empty v2 response.
 *
 * `node bench/dist/src/kafka-floor-server.js DATA_DIR [--port N] [--host H] [--fsync-ms N]`;
 * prints one JSON `listening` line with the port; SIGTERM/SIGINT stop it and remove DATA_DIR.
 */
import { closeSync, fdatasync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crc32c, UvTcpServer, uvTcpAvailable, uvTcpLoadError, type UvSocket } from '@robustmq/common';

const USAGE = 'usage: kafka-floor-server DATA_DIR [--port N] [--host H] [--fsync-ms N]\n';
let args: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'fsync-ms': { type: 'string', default: '1000' },
    },
  });
}
try {
  args = parse();
} catch (err) {
  process.stderr.write(`kafka-floor-server: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
const dataDir = args.positionals[0];
const fsyncMs = Number(args.values['fsync-ms']);
if (dataDir === undefined || !Number.isInteger(fsyncMs) || fsyncMs < 0) {
  process.stderr.write(USAGE);
  process.exit(2);
}
if (!uvTcpAvailable()) {
  process.stderr.write(`kafka-floor-server: the native transport is not available: ${uvTcpLoadError()?.message ?? 'unknown'}\n`);
  process.exit(1);
}
mkdirSync(dataDir, { recursive: true });

const MAX_FRAME = 64 * 1024 * 1024;
const CORRUPT_MESSAGE = 2;
interface PartitionFile {
  fd: number;
  pos: number;
  /** Written since its last fdatasync. */
  dirty: boolean;
  /** An fdatasync of it is on the thread pool: a delete leaves closing the fd to its callback. */
  syncing: boolean;
}
const files = new Map<string, PartitionFile>();
function fileOf(topic: string, partition: number): PartitionFile {
  const key = `${topic}-${partition}`;
  let f = files.get(key);
  if (f === undefined) files.set(key, (f = { fd: openSync(join(dataDir!, key), 'w'), pos: 0, dirty: false, syncing: false }));
  return f;
}

/** Appends every batch of `records` (one partition's bytes) and says whether all CRCs matched. */
function appendRecords(f: PartitionFile, buf: Buffer, start: number, end: number): boolean {
  for (let p = start; p + 61 <= end;) {
    const size = buf.readInt32BE(p + 8) + 12;
    if (size < 61 || p + size > end) return false;
    if (buf.readUInt32BE(p + 17) !== crc32c(buf.subarray(p + 21, p + size))) return false;
    p += size;
  }
  f.pos += writeSync(f.fd, buf, start, end - start, f.pos);
  f.dirty = true;
  return true;
}

/**
 * Produce Request (v3–8) => transactional_id acks timeout_ms [topic_data]
 *   topic_data => name [partition_data]   partition_data => index records
 * Produce Response (v3–7) => [responses] throttle_time_ms
 *   responses => name [partition_responses]
 *   partition_responses => index error_code base_offset log_append_time_ms (v5+: log_start_offset)
 */
function produce(req: Buffer, pos: number, version: number, correlationId: number): Buffer | undefined {
  const tx = req.readInt16BE(pos);
  pos += 2 + Math.max(tx, 0);
  const acks = req.readInt16BE(pos);
  pos += 2 + 4; // acks, timeout
  const topics: { name: string; partitions: { index: number; error: number }[] }[] = [];
  const topicCount = req.readInt32BE(pos);
  pos += 4;
  for (let i = 0; i < topicCount; i++) {
    const nameLength = req.readInt16BE(pos);
    const name = req.toString('utf8', pos + 2, pos + 2 + nameLength);
    const partitionCount = req.readInt32BE(pos + 2 + nameLength);
    pos += 2 + nameLength + 4;
    const partitions: { index: number; error: number }[] = [];
    for (let k = 0; k < partitionCount; k++) {
      const index = req.readInt32BE(pos);
      const length = req.readInt32BE(pos + 4);
      pos += 8;
      const ok = length <= 0 || appendRecords(fileOf(name, index), req, pos, pos + length);
      partitions.push({ index, error: ok ? 0 : CORRUPT_MESSAGE });
      pos += Math.max(length, 0);
    }
    topics.push({ name, partitions });
  }
  if (acks === 0) return undefined;
  const perPartition = version >= 5 ? 30 : 22;
  let size = 4 + 4 + 4;
  for (const t of topics) size += 2 + Buffer.byteLength(t.name) + 4 + t.partitions.length * perPartition;
  const out = Buffer.alloc(4 + size);
  let o = out.writeInt32BE(size, 0);
  o = out.writeInt32BE(correlationId, o);
  o = out.writeInt32BE(topics.length, o);
  for (const t of topics) {
    o = out.writeInt16BE(Buffer.byteLength(t.name), o);
    o += out.write(t.name, o);
    o = out.writeInt32BE(t.partitions.length, o);
    for (const p of t.partitions) {
      o = out.writeInt32BE(p.index, o);
      o = out.writeInt16BE(p.error, o);
      o += perPartition - 6; // base offset, append time (and log start offset) 0
    }
  }
  return out; // throttle time 0 is already there
}

/**
 * DeleteTopics Request (v0–3) => [topic_names] timeout_ms; closes and removes the files of each
 * named topic. Response => (v1+: throttle_time_ms) [responses]   responses => name error_code (0)
 */
function deleteTopics(req: Buffer, pos: number, version: number, correlationId: number): Buffer {
  const names: string[] = [];
  const count = req.readInt32BE(pos);
  pos += 4;
  for (let i = 0; i < count; i++) {
    const length = req.readInt16BE(pos);
    names.push(req.toString('utf8', pos + 2, pos + 2 + length));
    pos += 2 + length;
  }
  for (const name of names) {
    for (const [key, f] of files) {
      if (key.slice(0, key.lastIndexOf('-')) !== name) continue;
      // an fd closed under a queued fdatasync could be reused by the next open before it runs
      if (!f.syncing) closeSync(f.fd);
      rmSync(join(dataDir!, key), { force: true });
      files.delete(key);
    }
  }
  const throttle = version >= 1 ? 4 : 0;
  let size = 4 + throttle + 4;
  for (const n of names) size += 2 + Buffer.byteLength(n) + 2;
  const out = Buffer.alloc(4 + size);
  let o = out.writeInt32BE(size, 0);
  o = out.writeInt32BE(correlationId, o);
  o += throttle;
  o = out.writeInt32BE(names.length, o);
  for (const n of names) {
    o = out.writeInt16BE(Buffer.byteLength(n), o);
    o += out.write(n, o);
    o = out.writeInt16BE(0, o);
  }
  return out;
}

/** A request too short for what it says it holds closes its connection only (a RangeError on read). */
function onFrame(this: UvSocket, req: Buffer): void {
  try {
    serve(this, req);
  } catch (err) {
    process.stderr.write(`kafka-floor-server: malformed request, closing the connection: ${(err as Error).message}\n`);
    this.destroy();
  }
}

function serve(sock: UvSocket, req: Buffer): void {
  const apiKey = req.readInt16BE(0);
  const version = req.readInt16BE(2);
  const correlationId = req.readInt32BE(4);
  const clientId = req.readInt16BE(8);
  const body = 10 + Math.max(clientId, 0);
  if (apiKey === 0 && version >= 3 && version <= 8) {
    const out = produce(req, body, version, correlationId);
    if (out !== undefined) sock.write(out);
    return;
  }
  if (apiKey === 20 && version <= 3) {
    sock.write(deleteTopics(req, body, version, correlationId));
    return;
  }
  const out = Buffer.alloc(16); // size, correlation id, throttle time, 0 topics
  out.writeInt32BE(12, 0);
  out.writeInt32BE(correlationId, 4);
  sock.write(out);
}

const fsyncTimer =
  fsyncMs > 0
    ? setInterval(() => {
        for (const [key, f] of files) {
          if (!f.dirty || f.syncing) continue;
          f.dirty = false;
          f.syncing = true;
          fdatasync(f.fd, () => {
            f.syncing = false;
            if (files.get(key) !== f) closeSync(f.fd); // deleted meanwhile
          });
        }
      }, fsyncMs)
    : undefined;
const server = UvTcpServer.listen(
  args.values.host!,
  Number(args.values.port),
  (sock) => {
    sock.on('frame', onFrame);
    sock.on('frameError', () => sock.destroy());
    sock.on('error', () => sock.destroy());
  },
  511,
  MAX_FRAME,
);
process.stdout.write(`${JSON.stringify({ msg: 'listening', kafkaPort: server.port, pid: process.pid })}\n`);
const stop = (): void => {
  server.close();
  clearInterval(fsyncTimer);
  for (const f of files.values()) closeSync(f.fd);
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
