import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTopicFilter, checkTopicName, parseFilter, topicMatches } from '../src/mqtt/topic.js';
import { MQTT_DEFAULTS } from '../src/mqtt/config.js';
import { SubscriptionTrie } from '../src/mqtt/subscription-trie.js';
import { collect, connectClient, randomId, RawClient, sleep, startBroker, waitFor } from './helpers.js';

test('topic filter validation and matching', () => {
  for (const f of ['a', 'a/b', '+', '#', 'a/+/c', 'a/#', '+/+', '/', '$SYS/#'])
    assert.equal(checkTopicFilter(f, MQTT_DEFAULTS), undefined, f);
  for (const f of ['', 'a#', 'a/#/b', 'a+', 'a/b+/c', '##']) assert.notEqual(checkTopicFilter(f, MQTT_DEFAULTS), undefined, f);
  for (const n of ['a/+', 'a/#', '']) assert.notEqual(checkTopicName(n, MQTT_DEFAULTS), undefined, n);
  assert.equal(checkTopicName('a/b/c/d', { maxTopicLengthBytes: 100, maxTopicLevels: 3 }), 'too_many_levels');
  assert.equal(checkTopicName('abcdef', { maxTopicLengthBytes: 5, maxTopicLevels: 3 }), 'too_long');
  const cases: Array<[string, string, boolean]> = [
    ['sport/tennis/#', 'sport/tennis', true],
    ['sport/tennis/#', 'sport/tennis/player1/ranking', true],
    ['sport/#', 'sport', true],
    ['sport/+', 'sport/', true],
    ['sport/+', 'sport', false],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['#', '$SYS/x', false],
    ['+/monitor', '$SYS/monitor', false],
    ['$SYS/#', '$SYS/monitor', true],
    ['$SYS/+', '$SYS/monitor', true],
  ];
  const trie = new SubscriptionTrie<string>();
  for (const [f, topic, want] of cases) {
    assert.equal(topicMatches(f, topic), want, `${f} ~ ${topic}`);
    trie.add({
      session: f,
      filter: f,
      topicFilter: f,
      group: undefined,
      qos: 0,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    });
  }
  for (const [f, topic, want] of cases) {
    const hits: string[] = [];
    trie.match(
      topic,
      (s) => hits.push(s.session),
      () => undefined,
    );
    assert.equal(hits.includes(f), want, `trie ${f} ~ ${topic}`);
  }
  assert.deepEqual(parseFilter('$share/g/a/+'), { filter: 'a/+', group: 'g' });
  assert.deepEqual(parseFilter('$queue/a'), { filter: 'a', group: '$queue' });
  assert.equal(parseFilter('$share/g'), undefined);
  assert.equal(parseFilter('$share/g+/a'), undefined);
});

test('wildcards, $ topics and $SYS over the wire', async (t) => {
  const { url } = await startBroker(t, { mqtt: { sysIntervalMs: 200 } });
  const s = await connectClient(t, url);
  const got = collect(s);
  await s.subscribeAsync({ '#': { qos: 0 }, 'w/+/c': { qos: 0 } });
  const pub = await connectClient(t, url);
  await pub.publishAsync('w/b/c', 'x');
  await pub.publishAsync('$internal/x', 'hidden');
  await waitFor(() => got.length >= 1);
  await sleep(300);
  assert.deepEqual(
    got.map((m) => m.topic),
    ['w/b/c'],
  );

  const sys = await connectClient(t, url);
  const sysGot = collect(sys);
  await sys.subscribeAsync('$SYS/#');
  await waitFor(() => sysGot.some((m) => m.topic === '$SYS/broker/uptime'));
  const topics = new Set(sysGot.map((m) => m.topic));
  for (const k of [
    'version',
    'uptime',
    'clients/connected',
    'messages/received',
    'messages/sent',
    'bytes/received',
    'bytes/sent',
    'subscriptions/count',
    'retained messages/count',
  ]) {
    assert.ok(topics.has(`$SYS/broker/${k}`), k);
  }
  const before = sysGot.length;
  await waitFor(() => sysGot.length > before, 1000, 'periodic $SYS');
  // Invalid filter → SUBACK failure 0x80
  const granted = await s.subscribeAsync('bad/#/x').catch(() => [{ qos: 128 }]);
  assert.equal(granted[0]?.qos, 128);
});

test('$SYS: statistics do not count as dropped messages; a client QoS 2 PUBLISH there completes', async (t) => {
  const { url, port } = await startBroker(t, { mqtt: { sysIntervalMs: 100 } });
  const sys = await connectClient(t, url);
  const sysGot = collect(sys);
  await sys.subscribeAsync('$SYS/broker/messages/dropped');
  await waitFor(() => sysGot.length >= 1);
  await sleep(500); // five more intervals of ~16 retained statistics each, nobody subscribed to most
  await waitFor(() => sysGot.length >= 3);
  assert.equal(String(sysGot.at(-1)!.payload), '0');

  // $SYS is written by the server only: a client's QoS 2 PUBLISH there is accepted and dropped,
  // and its PUBREL gets PUBCOMP 0x00 (the id was recorded with the PUBREC)
  const c = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
  c.send({ cmd: 'publish', topic: '$SYS/x', payload: Buffer.from('no'), qos: 2, messageId: 7, retain: false, dup: false });
  const rec = await c.waitFor<{ cmd: 'pubrec'; reasonCode?: number }>('pubrec');
  assert.equal(rec.reasonCode ?? 0, 0);
  c.send({ cmd: 'pubrel', messageId: 7 });
  const comp = await c.waitFor<{ cmd: 'pubcomp'; reasonCode?: number }>('pubcomp');
  assert.equal(comp.reasonCode ?? 0, 0);
});
