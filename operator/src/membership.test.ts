import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { planMembership, safeToRemove, type Action, type PlanInput } from './membership.js';

/** Applies an action to a simulated Raft configuration as meta would. */
function apply(inp: PlanInput, a: Action): PlanInput {
  const raft = structuredClone(inp.raft!);
  const next = { ...inp, raft, pods: new Map(inp.pods), incarnations: new Map(inp.incarnations) };
  switch (a.op) {
    case 'AddLearner':
      raft.learners.push(a.nodeId);
      raft.lag.set(a.nodeId, 0); // catches up at once in this model
      next.incarnations.set(a.nodeId, inp.pods.get(a.nodeId)?.claimUid ?? '');
      break;
    case 'Promote':
      raft.learners = raft.learners.filter((x) => x !== a.nodeId);
      raft.voters.push(a.nodeId);
      break;
    case 'RemoveVoter':
    case 'RemoveLearner':
      raft.voters = raft.voters.filter((x) => x !== a.nodeId);
      raft.learners = raft.learners.filter((x) => x !== a.nodeId);
      next.incarnations.delete(a.nodeId);
      break;
    case 'TransferLeader':
      raft.leader = a.to;
      break;
    default:
      break;
  }
  return next;
}

const state = fc
  .record({
    voters: fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 7 }),
    learners: fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { maxLength: 2 }),
    desired: fc.constantFrom(1, 3, 5, 7),
    down: fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { maxLength: 3 }),
    lagging: fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { maxLength: 2 }),
    leaderIdx: fc.nat(),
  })
  .map((s): PlanInput => {
    const learners = s.learners.filter((l) => !s.voters.includes(l));
    const pods = new Map<number, { containersReady: boolean; claimUid: string }>();
    for (let id = 1; id <= 7; id++) pods.set(id, { containersReady: !s.down.includes(id), claimUid: `pvc-${id}` });
    const lag = new Map<number, number>();
    for (const id of [...s.voters, ...learners]) lag.set(id, s.down.includes(id) ? 10_000 : s.lagging.includes(id) ? 5000 : 0);
    const leader = s.voters[s.leaderIdx % s.voters.length]!;
    return { desired: s.desired, raft: { leader, voters: s.voters, learners, lag }, pods, incarnations: new Map(), maxLagEntries: 100 };
  });

test('planner: never removes a voter unless the rest is a caught-up majority', () => {
  fc.assert(
    fc.property(state, (inp) => {
      const a = planMembership(inp);
      if (a.op === 'RemoveVoter') assert.ok(safeToRemove(a.nodeId, inp), JSON.stringify(a));
      if (a.op === 'RemoveVoter') assert.notEqual(a.nodeId, inp.raft!.leader, 'leader is moved off first');
    }),
    { numRuns: 2000 },
  );
});

test('planner: one change per step, and healthy clusters converge within |diff| + leader moves', () => {
  fc.assert(
    fc.property(state, (start) => {
      // Heal everything: then the plan must converge to voters 1..desired.
      const healthy: PlanInput = {
        ...start,
        pods: new Map([...start.pods].map(([k, v]) => [k, { ...v, containersReady: true }])),
        raft: { ...start.raft!, lag: new Map([...start.raft!.lag].map(([k]) => [k, 0])) },
      };
      let s = healthy;
      const budget = 3 * 7 + 2;
      for (let i = 0; i < budget; i++) {
        const a = planMembership(s);
        if (a.op === 'None') {
          assert.deepEqual(
            [...s.raft!.voters].sort((x, y) => x - y),
            Array.from({ length: s.desired }, (_, k) => k + 1),
          );
          assert.deepEqual(s.raft!.learners, []);
          return;
        }
        assert.ok(['AddLearner', 'Promote', 'RemoveVoter', 'RemoveLearner', 'TransferLeader'].includes(a.op), JSON.stringify(a));
        const before = s.raft!.voters.length + s.raft!.learners.length;
        s = apply(s, a);
        const after = s.raft!.voters.length + s.raft!.learners.length;
        assert.ok(Math.abs(after - before) <= 1, 'one membership change at a time');
      }
      assert.fail('did not converge');
    }),
    { numRuns: 1000 },
  );
});

test('planner: refuses an unsafe scale-down, waits without a leader, replaces a changed disk', () => {
  const pods = new Map([1, 2, 3, 4, 5].map((id) => [id, { containersReady: id > 2, claimUid: `p${id}` }]));
  const lag = new Map([1, 2, 3, 4, 5].map((id) => [id, id > 2 ? 0 : 9999]));
  const inp: PlanInput = {
    desired: 3,
    raft: { leader: 3, voters: [1, 2, 3, 4, 5], learners: [], lag },
    pods,
    incarnations: new Map(),
    maxLagEntries: 100,
  };
  assert.equal(planMembership(inp).op, 'Refuse');
  assert.equal(planMembership({ ...inp, raft: undefined }).op, 'Wait');
  const ok = new Map([1, 2, 3].map((id) => [id, { containersReady: true, claimUid: `new${id}` }]));
  const replaced: PlanInput = {
    desired: 3,
    raft: {
      leader: 1,
      voters: [1, 2, 3],
      learners: [],
      lag: new Map([
        [1, 0],
        [2, 0],
        [3, 0],
      ]),
    },
    pods: ok,
    incarnations: new Map([
      [1, 'new1'],
      [2, 'new2'],
      [3, 'old3'],
    ]),
    maxLagEntries: 100,
  };
  assert.deepEqual(planMembership(replaced), { op: 'RemoveVoter', nodeId: 3, replaced: true });
});
