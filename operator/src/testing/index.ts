/** Test doubles for the operator: the Kubernetes API-server emulator, mock controllers, a fake meta admin API. */
export { ApiServer, type KObj, type ResourceDef, type WatchEvent, fieldPaths, isReady } from './api-server.js';
export { MockControllers, type MockClusterOptions } from './controllers.js';
export { FakeMeta, type FakeMetaOptions } from './fake-meta.js';
export { parseLabelSelector, matchesLabels, matchesSelector } from './selectors.js';
export { FakeCertManager, certificateCrd, certificateSchema } from './cert-manager.js';
