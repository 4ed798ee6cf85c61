/** Test helpers and the engine compliance suite, for this and other workspaces' tests. */
export { runEngineSuite, type EngineSuiteOptions, type OpenClient } from './engine-suite.js';
export { tempDir, removeDir, captureLogger, openTestJournal, batchOf, readAllRecords } from './helpers.js';
export { mulberry32 } from './random.js';
