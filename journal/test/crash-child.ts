/**
 * Crash-test child: appends to shard "c" under fsync policy `always` until killed, printing
 * `ack <baseOffset> <lastOffset> <tag>` after each acknowledged append. Args: dataDir engine run.
 */
import { createLogger, Registry } from '@robustmq/common';
import { Journal, encodeRecordBatch, type EngineKind } from '../src/index.js';

const [dataDir, engine, run] = process.argv.slice(2) as [string, EngineKind, string];
const journal = new Journal({
  dataDir,
  logger: createLogger({ level: 'silent', service: 'crash-child' }),
  registry: new Registry(),
  config: { fsyncPolicy: 'always', segmentBytes: 64 * 1024, indexIntervalBytes: 1024 },
});
await journal.open();
if (!(await journal.listShards()).some((s) => s.name === 'c')) await journal.createShard('c', { engine });
process.stdout.write('ready\n');

let seq = 0;
async function writer(): Promise<void> {
  for (;;) {
    const tag = `${run}:${seq++}`;
    const n = 1 + (seq % 5);
    const batch = encodeRecordBatch(
      Array.from({ length: n }, (_, k) => ({
        key: Buffer.from(`${tag}:${k}`),
        value: Buffer.from(`${tag}:${k}:${'p'.repeat(seq % 300)}`),
      })),
    );
    const r = await journal.append('c', batch);
    process.stdout.write(`ack ${r.baseOffset} ${r.lastOffset} ${tag}\n`);
  }
}
await Promise.all([writer(), writer(), writer(), writer()]);
