import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../src/index.js';

// There is no Docker engine here: check what can be checked of the image recipe.
const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const lines = dockerfile.split('\n').filter((l) => !l.startsWith('#'));

test('the image is multi-stage on a Node 20 LTS base and runs as a non-root user', () => {
  const froms = lines.filter((l) => l.startsWith('FROM '));
  assert.ok(froms.length >= 2, 'multi-stage');
  for (const f of froms) assert.match(f, /^FROM node:20-/);
  const users = lines.filter((l) => l.startsWith('USER '));
  assert.ok(users.length > 0 && !/root|^USER 0/.test(users.at(-1) as string), 'last USER is not root');
});

test('the entrypoint is robust-server, linked onto PATH from the copied bin/', () => {
  assert.ok(lines.some((l) => l === 'ENTRYPOINT ["robust-server"]'));
  assert.match(dockerfile, /ln -s \/app\/bin\/robust-server \/usr\/local\/bin\/robust-server/);
  assert.ok(existsSync(join(REPO_ROOT, 'bin/robust-server')));
});

test('every path the runtime stage copies from the build stage exists in the build output', () => {
  const copies = lines.filter((l) => l.startsWith('COPY --from=build '));
  assert.ok(copies.length > 5);
  for (const c of copies) {
    const parts = c.replace('COPY --from=build ', '').split(/\s+/);
    for (const src of parts.slice(0, -1)) {
      const rel = src.replace(/^\/src\//, '');
      assert.ok(existsSync(join(REPO_ROOT, rel)), `${rel} exists after make build`);
    }
  }
  // what the operator's chart and pod scripts start
  assert.ok(existsSync(join(REPO_ROOT, 'operator/dist/src/main.js')));
  assert.ok(existsSync(join(REPO_ROOT, 'server/dist/src/main.js')));
});

test('every workspace manifest is copied before npm ci, so the install layer is cached', () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  for (const w of pkg.workspaces) assert.ok(dockerfile.includes(`COPY ${w}/package.json ${w}/`), `${w}/package.json copied`);
});
