import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfChangeType } from './conf-change.js';
import { ConfChangeRejectedError, ProposalDroppedError } from './errors.js';
import { ProgressState } from './progress.js';
import { LocalCluster } from './sim/local-cluster.js';
import { MemoryStorage } from './storage.js';
import { EntryType, MessageType, Role, makeMessage, type Message } from './types.js';

const text = (s: string) => new TextEncoder().encode(s);

function roles(c: LocalCluster): Record<number, string> {
  const out: Record<number, string> = {};
  for (const [id, n] of c.nodes) out[id] = `${n.rn.raft.role}@${n.rn.raft.term}`;
  return out;
}

function logTerms(s: MemoryStorage): number[] {
  const out: number[] = [];
  for (let i = s.firstIndex(); i <= s.lastIndex(); i++) out.push(s.term(i));
  return out;
}

/** A bootstrapped storage followed by entries of the given terms (index 2..) and a hard state at `term`. */
function storageWithLog(voters: number[], terms: number[], term: number): MemoryStorage {
  const s = MemoryStorage.bootstrap({ voters, learners: [] });
  s.append(terms.map((t, i) => ({ index: i + 2, term: t, type: EntryType.Normal, data: text(`e${i + 2}`) })));
  s.setHardState({ term, vote: 0, commit: 1 });
  return s;
}

function elect(c: LocalCluster, id = 1): void {
  c.campaign(id);
  assert.equal(c.node(id).rn.raft.role, Role.Leader, `node ${id} should lead: ${JSON.stringify(roles(c))}`);
}

// ---- elections ---------------------------------------------------------------------------------

test('a campaign wins through PreVote and every node follows the new leader', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  assert.deepEqual(roles(c), { 1: 'leader@2', 2: 'follower@2', 3: 'follower@2' });
  for (const n of c.nodes.values()) {
    assert.equal(n.rn.raft.lead, 1);
    assert.equal(n.rn.status().commit, 2, 'the empty entry of the new term is committed');
  }
  const types = new Set(c.sent.map((m) => m.type));
  assert.ok(types.has(MessageType.PreVote) && types.has(MessageType.Vote));
});

test('ticking alone elects exactly one leader', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const c = new LocalCluster({ voters: [1, 2, 3, 4, 5], seed });
    c.tickAll(40);
    const leaders = [...c.nodes.values()].filter((n) => n.rn.raft.role === Role.Leader);
    assert.equal(leaders.length, 1, `seed ${seed}: ${JSON.stringify(roles(c))}`);
    const lead = leaders[0]!.id;
    for (const n of c.nodes.values()) assert.equal(n.rn.raft.lead, lead);
  }
});

test('a single voter elects itself and commits alone', () => {
  const c = new LocalCluster({ voters: [1] });
  elect(c);
  c.propose(1, 'x');
  assert.deepEqual(c.node(1).appliedText(), ['x']);
});

test('PreVote: an isolated node does not inflate its term nor disrupt the leader when it returns', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.isolate(3);
  c.tick(3, 100);
  assert.equal(c.node(3).rn.raft.term, 2);
  assert.notEqual(c.node(3).rn.raft.role, Role.Candidate);
  c.heal();
  c.tickAll(30);
  assert.equal(c.node(1).rn.raft.role, Role.Leader);
  assert.equal(c.node(1).rn.raft.term, 2);
});

test('without PreVote and CheckQuorum a returning isolated node deposes the leader (contrast)', () => {
  const c = new LocalCluster({ voters: [1, 2, 3], config: { preVote: false, checkQuorum: false } });
  elect(c);
  c.isolate(3);
  c.tick(3, 100);
  assert.ok(c.node(3).rn.raft.term > 1);
  c.heal();
  c.tickAll(30); // 3 campaigns at its higher term and forces a new election
  assert.notEqual(c.node(1).rn.raft.term, 2);
});

test('CheckQuorum: a leader cut off from a quorum steps down within two election timeouts', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.isolate(1);
  c.tick(1, 10);
  assert.equal(c.node(1).rn.raft.role, Role.Leader, 'the first check still sees acks from before');
  c.tick(1, 10);
  assert.equal(c.node(1).rn.raft.role, Role.Follower);
  c.tickAll(40);
  const leader = c.leader();
  assert.ok(leader !== undefined && leader.id !== 1);
});

test('leader lease: a follower that hears from its leader ignores higher-term vote requests', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  const before = c.sent.length;
  for (const type of [MessageType.Vote, MessageType.PreVote]) {
    c.deliver(makeMessage({ type, from: 3, to: 2, term: 5, index: 10, logTerm: 5 }));
  }
  assert.equal(c.node(2).rn.raft.term, 2);
  const answers = c.sent
    .slice(before)
    .filter((m) => m.from === 2 && (m.type === MessageType.VoteResp || m.type === MessageType.PreVoteResp));
  assert.deepEqual(answers, []);
  // A transfer campaign is the one exception: it carries a marker that overrides the lease.
  c.deliver(makeMessage({ type: MessageType.Vote, from: 3, to: 2, term: 5, index: 10, logTerm: 5, context: 'CampaignTransfer' }));
  assert.equal(c.node(2).rn.raft.term, 5);
  assert.equal(c.node(2).rn.raft.vote, 3);
});

test('a node votes once per term and only for an up-to-date log', () => {
  const c = new LocalCluster({ voters: [1, 2, 3], config: { checkQuorum: false } });
  c.deliver(makeMessage({ type: MessageType.Vote, from: 3, to: 2, term: 2, index: 1, logTerm: 1 }));
  c.deliver(makeMessage({ type: MessageType.Vote, from: 1, to: 2, term: 2, index: 5, logTerm: 2 }));
  const resps = c.sent.filter((m) => m.from === 2 && m.type === MessageType.VoteResp);
  assert.deepEqual(
    resps.map((m) => [m.to, m.reject]),
    [
      [3, false],
      [1, true],
    ],
  );
  // Stale log: rejected even in a fresh term.
  const s = storageWithLog([1, 2, 3], [1, 1, 2], 2);
  const d = new LocalCluster({ voters: [1, 2, 3] });
  d.nodes.delete(2);
  d.addNode(2, s);
  d.deliver(makeMessage({ type: MessageType.Vote, from: 3, to: 2, term: 3, index: 6, logTerm: 1 }));
  assert.equal(d.sent.filter((m) => m.from === 2 && m.type === MessageType.VoteResp)[0]?.reject, true);
});

// ---- replication -------------------------------------------------------------------------------

test('proposals on the leader and on followers are replicated, committed and applied in one order', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.propose(1, 'a');
  c.propose(2, 'b');
  c.propose(3, 'c');
  for (const n of c.nodes.values()) assert.deepEqual(n.appliedText(), ['a', 'b', 'c']);
});

test('a proposal with no leader is refused with a NotLeader error', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  assert.throws(
    () => c.propose(1, 'x'),
    (err: unknown) => err instanceof ProposalDroppedError && err.code === 'ERR_NOT_LEADER',
  );
});

test('batching: no MsgApp carries more than maxSizePerMsg (but always at least one entry)', () => {
  const c = new LocalCluster({ voters: [1, 2, 3], config: { maxSizePerMsg: 100 } });
  elect(c);
  c.isolate(3);
  for (let i = 0; i < 20; i++) c.propose(1, `entry-${String(i).padStart(30, '0')}`);
  c.heal();
  const mark = c.sent.length;
  c.tickAll(5);
  const apps = c.sent.slice(mark).filter((m) => m.type === MessageType.App && m.to === 3 && m.entries.length > 0);
  assert.ok(apps.length >= 10, `expected many small MsgApps, got ${apps.length}`);
  for (const m of apps) assert.ok(m.entries.length <= 2);
  assert.equal(c.node(3).appliedText().length, 20);
});

test('pipelining stops at maxInflightMsgs unacknowledged MsgApps and resumes on acks', () => {
  const c = new LocalCluster({ voters: [1, 2, 3], config: { maxInflightMsgs: 2 } });
  elect(c);
  c.propose(1, 'warm-up'); // followers are in replicate state now
  assert.equal(c.node(1).rn.status().progress.get(2)?.state, ProgressState.Replicate);
  c.filter = (m) => !(m.from === 2 && m.to === 1);
  const mark = c.sent.length;
  for (let i = 0; i < 5; i++) c.propose(1, `p${i}`);
  const apps = c.sent.slice(mark).filter((m) => m.type === MessageType.App && m.to === 2 && m.entries.length > 0);
  assert.equal(apps.length, 2);
  assert.equal(c.node(1).rn.status().progress.get(2)?.inflight, 2);
  c.filter = undefined;
  c.tickAll(3);
  assert.equal(c.node(2).appliedText().length, 6);
});

test('a follower missing entries and one with a diverging tail are both repaired (Figure 7)', () => {
  const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers = {
    missing: [1, 1, 1, 4, 4, 5, 5, 6, 6],
    short: [1, 1, 1, 4],
    extra: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    extraHigherTerm: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    otherTerm: [1, 1, 1, 4, 4, 4, 4],
    diverged: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
  };
  for (const [name, followerLog] of Object.entries(followers)) {
    const c = new LocalCluster({ voters: [1, 2, 3] });
    c.nodes.clear();
    c.addNode(1, storageWithLog([1, 2, 3], leaderLog, 8));
    c.addNode(2, storageWithLog([1, 2, 3], followerLog, 8));
    c.addNode(3, storageWithLog([1, 2, 3], leaderLog, 8)); // votes for 1
    elect(c);
    c.propose(1, 'after');
    const want = [...leaderLog, 9, 9];
    assert.deepEqual(logTerms(c.node(2).storage), want, name);
    assert.equal(c.node(2).rn.status().commit, want.length + 1, name);
  }
});

test('commit rule: an entry of an older term is not committed by counting replicas (Figure 8)', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  c.nodes.clear();
  c.addNode(1, storageWithLog([1, 2, 3], [1, 2], 2));
  c.addNode(2, storageWithLog([1, 2, 3], [1, 2], 2));
  c.addNode(3, storageWithLog([1, 2, 3], [1], 2));
  for (const id of [1, 2, 3]) c.node(id).storage.setHardState({ term: 2, vote: 0, commit: 2 });
  for (const id of [1, 2, 3]) c.restart(id);
  c.filter = (m) => m.type !== MessageType.App;
  elect(c);
  const leader = c.node(1).rn;
  assert.equal(leader.raft.term, 3);
  c.deliver(makeMessage({ type: MessageType.AppResp, from: 2, to: 1, term: 3, index: 3 }));
  assert.equal(leader.status().commit, 2, 'index 3 (term 2) is on a majority but must not commit');
  c.deliver(makeMessage({ type: MessageType.AppResp, from: 2, to: 1, term: 3, index: 4 }));
  assert.equal(leader.status().commit, 4, 'committing the term-3 entry commits index 3 with it');
});

test('a restarted node keeps its term, vote and log, and catches up', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.propose(1, 'a');
  c.crash(2);
  c.propose(1, 'b');
  c.restart(2);
  assert.equal(c.node(2).rn.raft.term, 2);
  c.tickAll(3);
  assert.deepEqual(c.node(2).appliedText(), ['a', 'b']);
});

// ---- snapshots ---------------------------------------------------------------------------------

test('a follower behind the compaction point gets a snapshot, then the log', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.isolate(3);
  for (let i = 0; i < 10; i++) c.propose(1, `v${i}`);
  const leader = c.node(1);
  const applied = leader.rn.status().applied;
  leader.storage.createSnapshot(applied, leader.rn.confState(), text('state@' + applied));
  leader.storage.compact(applied);
  c.heal();
  c.tickAll(3);
  const follower = c.node(3);
  assert.equal(follower.snapshots.length, 1);
  assert.equal(follower.snapshots[0]!.metadata.index, applied);
  assert.equal(new TextDecoder().decode(follower.snapshots[0]!.data), 'state@' + applied);
  c.propose(1, 'after');
  assert.deepEqual(follower.appliedText(), ['after']);
  assert.equal(follower.storage.lastIndex(), leader.storage.lastIndex());
  assert.equal(leader.rn.status().progress.get(3)?.state, ProgressState.Replicate);
});

test('a failed snapshot send is retried after a heartbeat', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.isolate(3);
  for (let i = 0; i < 5; i++) c.propose(1, `v${i}`);
  const leader = c.node(1);
  const applied = leader.rn.status().applied;
  leader.storage.createSnapshot(applied, leader.rn.confState(), text('s'));
  leader.storage.compact(applied);
  c.heal();
  let dropped = 0;
  c.filter = (m) => {
    if (m.type !== MessageType.Snap || dropped > 0) return true;
    dropped++;
    return false;
  };
  c.tick(1); // heartbeat → response → snapshot (dropped)
  leader.rn.reportSnapshot(3, false);
  assert.equal(leader.rn.status().progress.get(3)?.state, ProgressState.Probe);
  c.tickAll(3);
  assert.equal(c.node(3).snapshots.length, 1);
});

// ---- learners and membership -----------------------------------------------------------------

test('learners receive the log but are not counted in quorums and never campaign', () => {
  const c = new LocalCluster({ voters: [1, 2, 3], learners: [4] });
  elect(c);
  c.propose(1, 'a');
  assert.deepEqual(c.node(4).appliedText(), ['a']);
  c.cutLink(1, 2);
  c.cutLink(1, 3);
  const commit = c.node(1).rn.status().commit;
  c.propose(1, 'b');
  assert.equal(c.node(4).storage.lastIndex(), commit + 1, 'the learner has the entry');
  assert.equal(c.node(1).rn.status().commit, commit, 'but a learner ack does not commit it');
  c.heal();
  c.isolate(4);
  const mark = c.sent.length;
  c.tick(4, 100);
  assert.equal(c.sent.slice(mark).filter((m) => m.from === 4).length, 0);
  assert.equal(c.node(4).rn.raft.role, Role.Follower);
});

test('membership: add a learner, promote it, remove a voter, one change at a time', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.propose(1, 'a');
  c.addNode(4);
  const leader = c.node(1).rn;
  leader.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  assert.throws(
    () => leader.proposeConfChange({ type: ConfChangeType.PromoteLearner, nodeId: 4 }),
    (err: unknown) => err instanceof ConfChangeRejectedError && err.retriable,
  );
  c.flush();
  for (const id of [1, 2, 3, 4]) {
    assert.deepEqual(c.node(id).rn.status().voters, [1, 2, 3], `voters on ${id}`);
    assert.deepEqual(c.node(id).rn.status().learners, [4], `learners on ${id}`);
  }
  assert.deepEqual(c.node(4).appliedText(), ['a']);
  assert.throws(
    () => leader.proposeConfChange({ type: ConfChangeType.PromoteLearner, nodeId: 2 }),
    (err: unknown) => err instanceof ConfChangeRejectedError && !err.retriable,
  );
  leader.proposeConfChange({ type: ConfChangeType.PromoteLearner, nodeId: 4 });
  c.flush();
  assert.deepEqual(leader.status().voters, [1, 2, 3, 4]);
  leader.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 2 });
  c.flush();
  assert.deepEqual(leader.status().voters, [1, 3, 4]);
  c.crash(2);
  c.propose(1, 'b');
  assert.deepEqual(c.node(4).appliedText(), ['a', 'b']);
  // Quorum is now 2 of {1,3,4}: losing 3 still leaves 1 and 4.
  c.crash(3);
  c.propose(1, 'c');
  assert.deepEqual(c.node(1).appliedText(), ['a', 'b', 'c']);
});

test('a leader that removes itself steps down and the rest elect a new leader', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.node(1).rn.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 1 });
  c.flush();
  assert.equal(c.node(1).rn.raft.role, Role.Follower);
  assert.deepEqual(c.node(2).rn.status().voters, [2, 3]);
  c.tickAll(40);
  const leader = c.leader();
  assert.ok(leader !== undefined && leader.id !== 1);
  assert.equal(c.node(1).rn.raft.promotable(), false);
});

test('a restart with `applied` replays the membership changes already applied', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.addNode(4);
  c.node(1).rn.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 4 });
  c.flush();
  const applied = c.node(2).rn.status().applied;
  c.crash(2);
  c.restart(2, { applied });
  assert.deepEqual(c.node(2).rn.status().learners, [4]);
});

// ---- leadership transfer -------------------------------------------------------------------------

test('leadership transfer to an up-to-date follower', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.node(1).rn.transferLeader(2);
  c.flush();
  assert.equal(c.node(2).rn.raft.role, Role.Leader);
  assert.equal(c.node(1).rn.raft.lead, 2);
  assert.ok(c.sent.some((m) => m.type === MessageType.TimeoutNow && m.to === 2));
});

test('leadership transfer to a lagging follower catches it up first; it can be asked on a follower', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.isolate(3);
  for (let i = 0; i < 5; i++) c.propose(1, `v${i}`);
  c.heal();
  c.node(2).rn.transferLeader(3); // forwarded to the leader
  c.flush();
  assert.equal(c.node(3).rn.raft.role, Role.Leader);
  assert.equal(c.node(3).appliedText().length, 5);
});

test('proposals are refused during a transfer, which is abandoned after an election timeout', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.isolate(3);
  c.node(1).rn.transferLeader(3);
  c.flush();
  assert.throws(() => c.propose(1, 'x'), ProposalDroppedError);
  c.tick(1, 10);
  assert.equal(c.node(1).rn.status().leadTransferee, 0);
  c.propose(1, 'x');
  assert.deepEqual(c.node(2).appliedText(), ['x']);
});

// ---- ReadIndex ---------------------------------------------------------------------------------

test('ReadIndex on the leader is answered after a heartbeat round, at the commit index', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.propose(1, 'a');
  const mark = c.sent.length;
  c.node(1).rn.readIndex('r1');
  c.flush();
  assert.deepEqual(c.node(1).readStates, [{ index: c.node(1).rn.status().commit, context: 'r1' }]);
  assert.ok(c.sent.slice(mark).some((m) => m.type === MessageType.Heartbeat && m.context === 'r1'));
});

test('ReadIndex on a follower is forwarded and answered to the follower', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.propose(1, 'a');
  c.node(3).rn.readIndex('r2');
  c.flush();
  assert.deepEqual(c.node(3).readStates, [{ index: 3, context: 'r2' }]);
});

test('ReadIndex: a leader cut off from the quorum cannot confirm a read', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  elect(c);
  c.isolate(1);
  c.node(1).rn.readIndex('r3');
  c.flush();
  c.tick(1, 3);
  assert.deepEqual(c.node(1).readStates, []);
});

test('ReadIndex needs heartbeat acks from a quorum, not from any one follower', () => {
  const c = new LocalCluster({ voters: [1, 2, 3, 4, 5] });
  elect(c);
  for (const id of [3, 4, 5]) c.cutLink(1, id);
  c.node(1).rn.readIndex('r5');
  c.flush();
  c.tick(1, 3);
  assert.deepEqual(c.node(1).readStates, [], 'acks from 1 and 2 are 2 of 5');
  c.heal();
  c.tick(1, 2);
  assert.deepEqual(
    c.node(1).readStates.map((r) => r.context),
    ['r5'],
  );
});

test('ReadIndex waits until the new leader commits an entry of its term', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  c.filter = (m) => !(m.type === MessageType.App && m.from === 1);
  elect(c);
  c.node(1).rn.readIndex('r4');
  c.flush();
  assert.deepEqual(c.node(1).readStates, []);
  c.filter = undefined;
  c.tick(1);
  assert.deepEqual(c.node(1).readStates, [{ index: 2, context: 'r4' }]);
});

test('ReadIndex on a single voter is answered at once', () => {
  const c = new LocalCluster({ voters: [1] });
  elect(c);
  c.node(1).rn.readIndex('solo');
  c.flush();
  assert.deepEqual(c.node(1).readStates, [{ index: 2, context: 'solo' }]);
});

// ---- status and Ready contract -------------------------------------------------------------------

test('status reports membership, roles and per-follower progress on the leader', () => {
  const c = new LocalCluster({ voters: [1, 2, 3], learners: [4] });
  elect(c);
  c.propose(1, 'a');
  const st = c.node(1).rn.status();
  assert.equal(st.role, Role.Leader);
  assert.equal(st.leader, 1);
  assert.deepEqual(st.voters, [1, 2, 3]);
  assert.deepEqual(st.learners, [4]);
  assert.equal(st.commit, 3);
  assert.equal(st.applied, 3);
  for (const id of [2, 3, 4]) {
    const p = st.progress.get(id);
    assert.equal(p?.match, 3);
    assert.equal(p?.next, 4);
    assert.equal(p?.state, ProgressState.Replicate);
  }
  assert.equal(st.progress.get(4)?.isLearner, true);
  assert.equal(c.node(2).rn.status().progress.size, 0);
});

test('ready() twice without advance() is a programming error; local message types are refused from peers', () => {
  const c = new LocalCluster({ voters: [1, 2, 3] });
  const rn = c.node(1).rn;
  rn.campaign();
  rn.ready();
  assert.throws(() => rn.ready(), /before advance/);
  const m: Message = makeMessage({ type: MessageType.Hup, from: 2, to: 1 });
  assert.throws(() => rn.step(m), /local message/);
});

test('a Ready persists before it sends: a vote is in the hard state of the Ready carrying the response', () => {
  const c = new LocalCluster({ voters: [1, 2, 3], config: { preVote: false } });
  const voter = c.node(2).rn;
  voter.step(makeMessage({ type: MessageType.Vote, from: 1, to: 2, term: 2, index: 1, logTerm: 1 }));
  const rd = voter.ready();
  assert.deepEqual(rd.hardState, { term: 2, vote: 1, commit: 1 });
  assert.equal(rd.mustSync, true);
  assert.equal(rd.messages[0]?.type, MessageType.VoteResp);
  voter.advance();
  assert.equal(voter.hasReady(), false);
});
