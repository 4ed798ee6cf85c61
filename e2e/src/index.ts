/** Helpers for whole-system tests: spawn the built robust-server and find its ports. */
export {
  startServer,
  runServer,
  runCtl,
  runProgram,
  type ProgramResult,
  waitReady,
  adminTokenFile,
  adminHeaders,
  REPO_ROOT,
  ROBUST_SERVER,
  type RunningServer,
  ANY_PORTS,
  ANY_PORTS_ANONYMOUS,
  sleep,
  waitUntil,
} from './harness.js';
