import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, Registry, type Logger } from '@robustmq/common';
import type { ShardConfig } from '../config.js';
import { Journal } from '../journal.js';
import { encodeRecordBatch, iterateRecords, type JournalRecord } from '../record-batch.js';
import type { JournalClient } from '../journal.js';

/** A fresh temporary directory; remove it with `rm(dir, { recursive: true })` in `t.after`. */
export function tempDir(prefix = 'journal-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** A logger that keeps every line (parsed) so tests can assert on warnings. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    service: 'test',
    dest: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  });
  return { logger, lines };
}

/** Opens a Journal on `dataDir` with a silent (or given) logger and a private metrics registry. */
export async function openTestJournal(
  dataDir: string,
  opts: { config?: ShardConfig; logger?: Logger; registry?: Registry } = {},
): Promise<Journal> {
  const j = new Journal({
    dataDir,
    logger: opts.logger ?? createLogger({ level: 'silent', service: 'test' }),
    registry: opts.registry ?? new Registry(),
    config: opts.config,
  });
  await j.open();
  return j;
}

/** One batch with a keyed record per value (key `k<i>` unless given). */
export function batchOf(values: (string | null)[], opts: { keys?: string[]; timestamp?: number } = {}): Buffer {
  return encodeRecordBatch(
    values.map((v, i) => ({
      key: Buffer.from(opts.keys?.[i] ?? `k-${v ?? 'null'}-${i}`),
      value: v === null ? null : Buffer.from(v),
      headers: [{ key: 'h', value: Buffer.from(String(i)) }],
      timestamp: opts.timestamp,
    })),
    { timestamp: opts.timestamp },
  );
}

/** Reads from `from` to the high watermark, following nextOffset; returns records at or after `from`. */
export async function readAllRecords(client: JournalClient, shard: string, from: bigint, maxBytes = 1 << 20): Promise<JournalRecord[]> {
  const out: JournalRecord[] = [];
  let next = from;
  for (let guard = 0; guard < 1_000_000; guard++) {
    const r = await client.read(shard, next, { maxBytes });
    for (const rec of iterateRecords(r.data, { fromOffset: next })) out.push(rec);
    if (r.nextOffset <= next) break;
    next = r.nextOffset;
    if (next >= r.latestOffset) break;
  }
  return out;
}
