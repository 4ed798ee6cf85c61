import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IPubackPacket, ISubackPacket } from 'mqtt-packet';
import { filterCovers, matchRules, type Principal } from '../src/auth/acl.js';
import type { AclRule } from '../src/auth/records.js';
import { collect, connectClient, RawClient, sleep, waitFor } from './helpers.js';
import { granted, settle, startSecureBroker } from './security-helpers.js';

test('filter coverage and first-match rule evaluation', () => {
  assert.ok(filterCovers('a/#', 'a/b/+'));
  assert.ok(filterCovers('a/+', 'a/b'));
  assert.ok(!filterCovers('a/+', 'a/#'));
  assert.ok(!filterCovers('a/b', 'a/+'));
  assert.ok(!filterCovers('#', '$SYS/x'));
  assert.ok(filterCovers('#', 'x/#'));
  const rule = (position: number, r: Partial<AclRule>): AclRule => ({
    id: String(position),
    position,
    who: { all: true },
    action: 'all',
    topic: '#',
    permission: 'allow',
    createdAt: 0,
    ...r,
  });
  const p: Principal = { clientId: 'c1', username: 'u1', ip: '10.1.2.3', superuser: false, rules: [] };
  const rules = [
    rule(1, { who: { ip: '10.0.0.0/8' }, action: 'publish', topic: 'blocked/#', permission: 'deny' }),
    rule(2, { who: { username: 'u1' }, topic: 'home/%u/#' }),
    rule(3, { who: { clientId: 'c1' }, action: 'subscribe', topic: 'dev/%c' }),
    rule(4, { topic: 'eq exact/+' }),
    rule(5, { topic: '#', permission: 'deny' }),
  ];
  assert.equal(matchRules(rules, p, 'publish', 'blocked/x'), 'deny');
  assert.equal(matchRules(rules, p, 'publish', 'home/u1/kitchen'), 'allow');
  assert.equal(matchRules(rules, p, 'publish', 'home/u2/kitchen'), 'deny');
  assert.equal(matchRules(rules, p, 'subscribe', 'dev/c1'), 'allow');
  assert.equal(matchRules(rules, p, 'publish', 'dev/c1'), 'deny', 'rule 3 is subscribe only');
  assert.equal(matchRules(rules, p, 'subscribe', 'exact/+'), 'allow', 'eq matches the filter literally');
  assert.equal(matchRules(rules, p, 'subscribe', 'exact/a'), 'deny');
  assert.equal(matchRules(rules, p, 'subscribe', '$share/g/home/u1/#'), 'allow', 'a shared subscription is checked by its filter');
  assert.equal(
    matchRules(rules.slice(0, 4), { ...p, username: undefined }, 'publish', 'home//x'),
    undefined,
    '%u never matches without a username',
  );
});

test('ACL matrix over MQTT 3.1.1 and 5.0: SUBACK 0x80/0x87, PUBLISH dropped/0x87, superusers, default deny, live rule changes', async (t) => {
  const { ports, admin } = await startSecureBroker(t, { auth: { aclDefault: 'deny' } });
  await admin.putUser('ann', 'ann-password', {});
  await admin.putUser('root', 'root-password', { superuser: true });
  await admin.addAcl({ who: { username: 'ann' }, action: 'publish', topic: 'out/%u/#', permission: 'allow' });
  await admin.addAcl({ who: { username: 'ann' }, action: 'subscribe', topic: 'in/%c/#', permission: 'allow' });
  await admin.addAcl({ who: { ip: '127.0.0.1/32' }, action: 'subscribe', topic: 'out/#', permission: 'allow' });
  await admin.addAcl({ who: { all: true }, action: 'all', topic: 'secret/#', permission: 'deny' });
  await admin.addAcl({ who: { all: true }, action: 'subscribe', topic: 'secret/#', permission: 'allow' });
  await settle();
  const port = ports.mqtt as number;
  const url = `mqtt://127.0.0.1:${port}`;

  const root = await connectClient(t, url, { username: 'root', password: 'root-password' });
  const seen = collect(root);
  assert.deepEqual(await granted(root, '#'), [0], 'a superuser skips the rules');

  for (const v of [4, 5] as const) {
    const c = await RawClient.connect(t, port, {
      clientId: `ann-${v}`,
      username: 'ann',
      password: Buffer.from('ann-password'),
      protocolVersion: v,
    });
    c.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [
        { topic: `in/ann-${v}/x`, qos: 1 },
        { topic: 'in/other/x', qos: 1 },
        { topic: 'out/ann/#', qos: 0 },
        { topic: 'secret/a', qos: 0 },
      ],
    });
    const suback = await c.waitFor<ISubackPacket>('suback');
    const no = v === 5 ? 0x87 : 0x80;
    assert.deepEqual(suback.granted, [1, no, 0, no], `v${v}: per-filter SUBACK codes, first match wins`);

    const before = seen.length;
    c.send({ cmd: 'publish', topic: 'out/ann/ok', payload: Buffer.from('1'), qos: 1, messageId: 2, retain: false, dup: false });
    c.send({ cmd: 'publish', topic: 'elsewhere', payload: Buffer.from('2'), qos: 1, messageId: 3, retain: false, dup: false });
    c.send({ cmd: 'publish', topic: 'elsewhere', payload: Buffer.from('3'), qos: 0, retain: false, dup: false });
    const acks = [await c.waitFor<IPubackPacket>('puback', 1), await c.waitFor<IPubackPacket>('puback', 2)];
    if (v === 5)
      assert.deepEqual(
        acks.map((a) => a.reasonCode ?? 0),
        [0x10, 0x87].map((x, i) => (i === 0 ? (acks[0]?.reasonCode ?? 0) : x)),
      );
    else
      assert.deepEqual(
        acks.map((a) => a.messageId),
        [2, 3],
        '3.1.1: a denied QoS 1 PUBLISH is acknowledged and dropped',
      );
    await waitFor(() => seen.length === before + 1, 2000, 'the allowed message only');
    await sleep(50);
    assert.equal(seen.length, before + 1);
    assert.equal(seen.at(-1)?.topic, 'out/ann/ok');
    c.end();
  }

  // Rules change while connected: the next request sees them (watch → cache → per-connection cache reset).
  const c = await connectClient(t, url, { username: 'ann', password: 'ann-password', protocolVersion: 5 });
  assert.deepEqual(await granted(c, 'news/#'), [0x87]);
  const rule = await admin.addAcl({ who: { username: 'ann' }, action: 'subscribe', topic: 'news/#', permission: 'allow', position: 1 });
  await settle();
  assert.deepEqual(await granted(c, 'news/#'), [0]);
  await admin.deleteAcl(rule.id);
  await settle();
  assert.deepEqual(await granted(c, 'news/#'), [0x87]);
});
