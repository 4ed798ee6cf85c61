import { EngineKind, FsyncPolicy } from './config.js';
import { openTestJournal, runEngineSuite } from './testing/index.js';

// The same compliance suite against every engine, through the in-process Journal.
for (const engine of Object.values(EngineKind)) {
  runEngineSuite({
    engine,
    // Small segments and index intervals so rolling and index lookups are exercised.
    config: engine === EngineKind.Segment ? { segmentBytes: 2048, indexIntervalBytes: 256, fsyncPolicy: FsyncPolicy.Always } : {},
    open: (dir) => openTestJournal(dir),
    persistent: engine !== EngineKind.Memory,
    storesBatchesAsGiven: engine !== EngineKind.Compacted,
  });
}

// The segment engine's other write paths: synchronous page-cache writes completing the append at
// once (policy never, the default inlineWrites), and every write through the thread pool.
for (const [label, config] of [
  ['fsync never, inline writes', { fsyncPolicy: FsyncPolicy.Never }],
  ['fsync interval, thread-pool writes', { fsyncPolicy: FsyncPolicy.Interval, inlineWrites: false }],
] as const) {
  runEngineSuite({
    engine: EngineKind.Segment,
    label,
    config: { segmentBytes: 2048, indexIntervalBytes: 256, ...config },
    open: (dir) => openTestJournal(dir),
    persistent: true,
    storesBatchesAsGiven: true,
  });
}
