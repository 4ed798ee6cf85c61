import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { EngineKind } from '../src/config.js';
import { mulberry32, openTestJournal, readAllRecords, removeDir, tempDir } from '../src/testing/index.js';

const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));

interface Ack {
  base: bigint;
  last: bigint;
  tag: string;
}

/** Runs the child until a random moment after its first ack, SIGKILLs it, returns what it acknowledged. */
async function runAndKill(dir: string, engine: string, run: number, delayMs: number): Promise<Ack[]> {
  const child = spawn(process.execPath, [CHILD, dir, engine, String(run)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const acks: Ack[] = [];
  const exited = once(child, 'exit');
  let killTimer: NodeJS.Timeout | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const [kind, base, last, tag] = line.split(' ');
    if (kind === 'ack') {
      acks.push({ base: BigInt(base!), last: BigInt(last!), tag: tag! });
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), delayMs);
    }
  });
  const safety = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(safety);
  clearTimeout(killTimer);
  lines.close();
  return acks;
}

const plans: [string, number][] = [
  [EngineKind.Segment, 10],
  [EngineKind.Multiplexed, 4],
  [EngineKind.Compacted, 4],
];

for (const [engine, iterations] of plans) {
  test(`kill -9 loses no acknowledged append (${engine}, ${iterations} kills)`, async () => {
    const dir = await tempDir();
    const rand = mulberry32(engine.length * 1000 + iterations);
    const acked: Ack[] = [];
    try {
      for (let run = 0; run < iterations; run++) {
        acked.push(...(await runAndKill(dir, engine, run, 5 + Math.floor(rand() * 250))));
        const j = await openTestJournal(dir);
        try {
          const byOffset = new Map<bigint, string>();
          for (const r of await readAllRecords(j, 'c', 0n)) byOffset.set(r.offset, r.value!.toString());
          for (const a of acked) {
            for (let o = a.base, k = 0; o <= a.last; o++, k++) {
              const v = byOffset.get(o);
              assert.ok(v !== undefined, `acknowledged offset ${o} (${a.tag}) missing after kill ${run}`);
              assert.ok(v.startsWith(`${a.tag}:${k}:`), `offset ${o} holds ${v.slice(0, 20)}, expected ${a.tag}:${k}`);
            }
          }
        } finally {
          await j.close();
        }
      }
      assert.ok(acked.length > iterations, `children acknowledged ${acked.length} appends`);
    } finally {
      await removeDir(dir);
    }
  });
}
