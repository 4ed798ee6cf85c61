import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError, ErrorCode, RobustError } from './errors.js';

test('every error code is documented in docs/errors.md, and nothing else is', () => {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]));
  const codes = new Set<string>(Object.values(ErrorCode));
  for (const code of codes) assert.ok(documented.has(code), `${code} is missing from docs/errors.md`);
  for (const code of documented) assert.ok(codes.has(code as string), `docs/errors.md lists ${code}, which no longer exists`);
});

test('errors carry code, retriable flag, cause and their class name', () => {
  const cause = new Error('disk');
  const e = new RobustError(ErrorCode.StorageIo, 'write failed', { cause, retriable: true });
  assert.equal(e.code, 'ERR_STORAGE_IO');
  assert.equal(e.retriable, true);
  assert.equal(e.cause, cause);
  assert.equal(e.name, 'RobustError');
  const c = new ConfigError(['a: bad', 'b: worse']);
  assert.equal(c.name, 'ConfigError');
  assert.equal(c.code, ErrorCode.ConfigInvalid);
  assert.match(c.message, /a: bad\n {2}- b: worse/);
});
