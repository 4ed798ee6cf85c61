import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimulationFailure, runSimulation, type SimulationResult } from './simulation.js';

// Default: RAFT_SIM_SEEDS short runs (2,000, about 15–25 s). Long mode: RAFT_SIM_SEEDS=20000
// (and RAFT_SIM_FIRST_SEED to start elsewhere). One seed, with a trace of its last events on
// failure: RAFT_SIM_SEED=123 RAFT_SIM_TRACE=1.
// (Tests read process.env directly: they are not a service, so config.ts does not apply.)
const env = process.env;
const single = env.RAFT_SIM_SEED === undefined ? undefined : Number(env.RAFT_SIM_SEED);
const count = single !== undefined ? 1 : Number(env.RAFT_SIM_SEEDS ?? 2000);
const first = single ?? Number(env.RAFT_SIM_FIRST_SEED ?? 1);
const trace = env.RAFT_SIM_TRACE === '1';

test(`simulation: ${count} seeded runs (from seed ${first}) keep Raft safety, liveness after healing, and linearizability`, (t) => {
  const started = Date.now();
  const total = {
    events: 0,
    messages: 0,
    dropped: 0,
    duplicated: 0,
    terms: 0,
    committed: 0,
    crashes: 0,
    confChanges: 0,
    snapshots: 0,
    ok: 0,
    unknown: 0,
    reads: 0,
    checks: 0,
    fiveNode: 0,
  };
  for (let seed = first; seed < first + count; seed++) {
    let r: SimulationResult;
    try {
      r = runSimulation({ seed, trace });
    } catch (err) {
      if (err instanceof SimulationFailure) t.diagnostic(`FAILED seed ${err.seed}`);
      throw err;
    }
    total.events += r.events;
    total.messages += r.messages.sent;
    total.dropped += r.messages.dropped;
    total.duplicated += r.messages.duplicated;
    total.terms += r.leaderTerms;
    total.committed += r.committed;
    total.crashes += r.crashes;
    total.confChanges += r.confChanges;
    total.snapshots += r.snapshotsInstalled;
    total.ok += r.operations.ok;
    total.unknown += r.operations.unknown;
    total.reads += r.operations.reads;
    total.checks += r.invariantChecks;
    if (r.voters === 5) total.fiveNode++;
  }
  t.diagnostic(`${count} runs in ${Date.now() - started} ms: ${JSON.stringify(total)}`);
  if (single === undefined && count >= 500) {
    // The runs must actually exercise what they claim to.
    assert.ok(total.fiveNode > count / 4 && total.fiveNode < (3 * count) / 4, 'both 3- and 5-voter groups');
    assert.ok(total.terms > count * 2, 'leader changes');
    assert.ok(total.crashes > count, 'crashes');
    assert.ok(total.confChanges > count, 'membership changes');
    assert.ok(total.snapshots > count / 4, 'snapshot installs');
    assert.ok(total.dropped > 0 && total.duplicated > 0, 'lossy network');
    assert.ok(total.unknown > 0 && total.reads > count, 'reads and unknown outcomes in histories');
  }
});

test('a seed reproduces its run exactly', () => {
  for (const seed of [7, 4242]) {
    const a = runSimulation({ seed });
    const b = runSimulation({ seed });
    assert.equal(a.events, b.events);
    assert.deepEqual(a.history, b.history);
    assert.deepEqual(a.messages, b.messages);
  }
});

test('a long run with 5 voters and many clients', () => {
  const r = runSimulation({ seed: 99, nodes: 5, chaosMs: 8000, clients: 6 });
  assert.ok(r.operations.ok > 200, `only ${r.operations.ok} operations completed`);
});
