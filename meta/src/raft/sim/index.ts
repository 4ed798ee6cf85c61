/**
 * Test support for code built on the Raft core (not part of the production surface): an
 * in-memory synchronous cluster for unit tests, the seeded fault-injecting simulation, the
 * safety-invariant checker and a linearizability checker for key-value histories.
 */
export { LocalCluster, LocalNode, type LocalClusterOptions } from './local-cluster.js';
export { Simulation, SimulationFailure, runSimulation, type SimulationOptions, type SimulationResult } from './simulation.js';
export { InvariantChecker, SafetyViolation } from './invariants.js';
export { checkLinearizable, type LinearizabilityResult, type Operation } from './linearizability.js';
export { KvStateMachine, decodeCommand, encodeCommand, entryDigest, type KvCommand } from './kv.js';
export { EventQueue } from './event-queue.js';
