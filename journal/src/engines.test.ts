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
