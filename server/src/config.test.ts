import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@robustmq/common';
import { configKeys, loadConfig, renderConfigReference } from './config.js';

test('defaults are the embedded all-in-one settings', () => {
  const { config, origin } = loadConfig();
  assert.deepEqual(config.roles, ['meta', 'journal', 'broker']);
  assert.equal(config.dataDir, './data');
  assert.equal(config.mqttPort, 1883);
  assert.equal(config.kafkaPort, 9092);
  assert.equal(config.httpPort, 58080);
  assert.equal(origin.mqttPort, 'default');
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.tls), 'configuration is frozen');
});

test('precedence is flag > environment > file > default, for nested keys too', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-cfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'mqttPort: 1000\nkafkaPort: 1001\nhttpPort: 1002\ntls:\n  caFile: /from/file\n');
  const { config, origin } = loadConfig({
    file,
    env: {
      ROBUSTMQ_KAFKA_PORT: '2001',
      ROBUSTMQ_HTTP_PORT: '2002',
      ROBUSTMQ_TLS_CERT_FILE: '/from/env',
      ROBUSTMQ_ROLES: 'meta, journal',
      PATH: '/bin',
    },
    flags: { httpPort: '3002' },
  });
  assert.equal(config.mqttPort, 1000);
  assert.equal(config.kafkaPort, 2001);
  assert.equal(config.httpPort, 3002);
  assert.equal(config.tls.caFile, '/from/file');
  assert.equal(config.tls.certFile, '/from/env');
  assert.deepEqual(config.roles, ['meta', 'journal']);
  assert.deepEqual([origin.mqttPort, origin.kafkaPort, origin.httpPort], ['file', 'env', 'flag']);
});

test('every problem is reported, with where it came from', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-cfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'mqttPort: 70000\ntls:\n  certFlie: x\nroles: [broker, broker]\nlogLevel: loud\n');
  try {
    loadConfig({ file, env: { ROBUSTMQ_NODE_ID: '0' }, flags: { kafkaPort: 'abc' } });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join('\n');
    assert.match(text, /tls\.certFlie: unknown configuration key/);
    assert.match(text, /mqttPort \(in the config file\): a port is 0–65535; got 70000/);
    assert.match(text, /roles \(in the config file\): roles must not repeat/);
    assert.match(text, /logLevel \(in the config file\): .*got "loud"/);
    assert.match(text, /nodeId \(from ROBUSTMQ_NODE_ID\): node ids start at 1/);
    assert.match(text, /kafkaPort \(from --kafka-port\): expected a number; got "abc"/);
    assert.equal(err.problems.length, 6);
    assert.equal(err.partial.httpPort, 58080, 'valid keys are kept for further checks');
  }
});

test('a file that is not YAML or not a mapping is a clear problem', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-cfg-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'mqttPort: [1\n');
  assert.throws(() => loadConfig({ file: bad }), /not valid YAML/);
  writeFileSync(bad, '- a\n- b\n');
  assert.throws(() => loadConfig({ file: bad }), /expected a mapping of keys/);
  assert.throws(() => loadConfig({ file: join(dir, 'missing.yaml') }), /cannot read it/);
});

test('every key has an environment variable, a description and a default', () => {
  for (const k of configKeys) {
    assert.match(k.env, /^ROBUSTMQ_[A-Z0-9_]+$/);
    assert.ok(k.description.length > 10, `${k.key} is described`);
    assert.notEqual(k.defaultValue, undefined, `${k.key} has a default`);
  }
  assert.ok(configKeys.some((k) => k.key === 'tls.certFile' && k.env === 'ROBUSTMQ_TLS_CERT_FILE' && k.flag === '--tls-cert-file'));
});

test('docs/configuration.md is the reference generated from the schema', () => {
  const doc = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');
  assert.equal(
    doc,
    renderConfigReference(),
    'docs/configuration.md is stale: run `bin/robust-server config-reference > docs/configuration.md`',
  );
});

test('kafka.bindings is checked at load: syntax, names, Kafka topic names, MQTT filters and prefixes, all at once', () => {
  const spec = 'ok:in:a/+,b/#=>s1; dup:in:x/+y=>s2; dup:out:bad topic=>p/#; junk; n!:in:c=>s3';
  try {
    loadConfig({ env: { ROBUSTMQ_KAFKA_BINDINGS: spec } });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join('\n');
    assert.equal(err.problems.length, 1, 'one key, one problem line');
    assert.match(text, /^kafka\.bindings \(from ROBUSTMQ_KAFKA_BINDINGS\): invalid bindings: /);
    assert.match(text, /"dup:in:x\/\+y=>s2": filter "x\/\+y": "\+" must fill a whole level/);
    assert.match(text, /binding name dup is used twice/);
    assert.match(text, /stream "bad topic": topic name contains characters other than/);
    assert.match(text, /topicPrefix "p\/#": an MQTT topic prefix has no wildcards/);
    assert.match(text, /"junk": expected name:in:filter/);
    assert.match(text, /name "n!": 1–128 letters/);
    assert.doesNotMatch(text.split('; got ')[0]!, /"ok:/, 'the valid binding is not reported');
  }
  const { config } = loadConfig({ env: { ROBUSTMQ_KAFKA_BINDINGS: 'in1:in:sensors/#=>sensors;out1:out:cmds=>devices/' } });
  assert.equal(config.kafka.bindings, 'in1:in:sensors/#=>sensors;out1:out:cmds=>devices/');
});
