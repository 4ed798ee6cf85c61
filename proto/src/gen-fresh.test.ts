import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/src/gen-fresh.test.js → the workspace root
const root = fileURLToPath(new URL('../../', import.meta.url));

test('generated code in src/gen is what ts-proto makes of proto/*.proto', (t) => {
  const out = mkdtempSync(join(tmpdir(), 'robustmq-proto-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const protos = readdirSync(join(root, 'proto')).filter((f) => f.endsWith('.proto'));
  execFileSync(
    'protoc',
    [
      `--plugin=protoc-gen-ts_proto=${join(root, '../node_modules/.bin/protoc-gen-ts_proto')}`,
      `--ts_proto_out=${out}`,
      '--ts_proto_opt=esModuleInterop=true,importSuffix=.js,outputServices=grpc-js,forceLong=bigint,enumsAsLiterals=true',
      '-I',
      join(root, 'proto'),
      ...protos.map((p) => join(root, 'proto', p)),
    ],
    { stdio: 'pipe' },
  );
  const fresh = readdirSync(out).sort();
  const committed = readdirSync(join(root, 'src/gen')).sort();
  assert.deepEqual(committed, fresh, 'src/gen holds other files than protoc generates: run `npm run generate -w proto`');
  for (const f of fresh) {
    assert.equal(
      readFileSync(join(root, 'src/gen', f), 'utf8'),
      readFileSync(join(out, f), 'utf8'),
      `src/gen/${f} is stale: run \`npm run generate -w proto\` and commit the result`,
    );
  }
});
