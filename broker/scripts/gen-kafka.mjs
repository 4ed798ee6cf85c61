#!/usr/bin/env node
/**
 * Generates the Kafka message codecs of broker/src/kafka/messages/ from Kafka's JSON message specs
 * (../shared/kafka-protocol/, Kafka 3.8.0). Run from anywhere: `node broker/scripts/gen-kafka.mjs`
 * (`--check` compares instead of writing and exits 1 when a generated file is stale; the codec
 * test runs that). The output is committed and never edited by hand.
 *
 * For each API in APIS and each version in its range it writes `<api>/v<N>.ts` with
 * `decodeRequest`, `encodeRequest`, `decodeResponse`, `encodeResponse` and one decoder/encoder
 * pair per nested struct. A struct (or a whole message) whose code is the same as in the previous
 * version is imported from the version that defined it, so a version that only adds a field
 * shows exactly that. `<api>/types.ts` holds one superset type per struct over the generated
 * versions: fields that some generated version lacks are optional, decoders fill the default.
 */
import { readFileSync, writeFileSync, mkdirSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const SPEC_DIR = process.env.KAFKA_SPEC_DIR ?? join(here, '../../../shared/kafka-protocol');
const OUT_DIR = join(here, '../src/kafka/messages');

/** The APIs the broker implements and the versions it generates (and advertises). */
export const APIS = [
  { name: 'Produce', min: 3, max: 11 },
  { name: 'Fetch', min: 4, max: 13 },
  { name: 'ListOffsets', min: 0, max: 8 },
  { name: 'Metadata', min: 0, max: 12 },
  { name: 'OffsetCommit', min: 0, max: 9 },
  { name: 'OffsetFetch', min: 0, max: 9 },
  { name: 'FindCoordinator', min: 0, max: 5 },
  { name: 'JoinGroup', min: 0, max: 9 },
  { name: 'Heartbeat', min: 0, max: 4 },
  { name: 'LeaveGroup', min: 0, max: 5 },
  { name: 'SyncGroup', min: 0, max: 5 },
  { name: 'DescribeGroups', min: 0, max: 5 },
  { name: 'ListGroups', min: 0, max: 5 },
  { name: 'ApiVersions', min: 0, max: 3 },
  { name: 'CreateTopics', min: 0, max: 7 },
  { name: 'DeleteTopics', min: 0, max: 6 },
  { name: 'InitProducerId', min: 0, max: 5 },
  { name: 'DescribeConfigs', min: 0, max: 4 },
  { name: 'DescribeCluster', min: 0, max: 1 },
  { name: 'SaslHandshake', min: 0, max: 1 },
  { name: 'SaslAuthenticate', min: 0, max: 2 },
  { name: 'DeleteRecords', min: 0, max: 2 },
  { name: 'AlterConfigs', min: 0, max: 2 },
  { name: 'CreatePartitions', min: 0, max: 3 },
  { name: 'DeleteGroups', min: 0, max: 2 },
  { name: 'IncrementalAlterConfigs', min: 0, max: 1 },
  { name: 'OffsetDelete', min: 0, max: 0 },
];
/** Headers are generated like messages (request header v0–2, response header v0–1). */
const HEADERS = [
  { name: 'RequestHeader', min: 0, max: 2 },
  { name: 'ResponseHeader', min: 0, max: 1 },
];

// ---------------------------------------------------------------------------------------------
// spec loading

/** Removes `//` comments outside string literals (the spec files are JSON with comments). */
function stripComments(text) {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i];
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      out += c;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else out += c;
  }
  return out;
}

function loadSpec(file) {
  return JSON.parse(stripComments(readFileSync(join(SPEC_DIR, file), 'utf8')));
}

/** "0+", "3-5", "7", "none" → predicate on a version. */
function range(spec) {
  if (spec === undefined || spec === 'none') return () => false;
  const m = /^(\d+)(\+|-(\d+))?$/.exec(spec);
  if (!m) throw new Error(`bad version range ${spec}`);
  const lo = Number(m[1]);
  if (m[2] === '+') return (v) => v >= lo;
  if (m[3] !== undefined) return (v) => v >= lo && v <= Number(m[3]);
  return (v) => v === lo;
}

// ---------------------------------------------------------------------------------------------
// naming

const camel = (s) => s[0].toLowerCase() + s.slice(1);
const snake = (s) =>
  s
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
const kebab = (s) => snake(s).replace(/_/g, '-');

const PRIMS = new Set(['int8', 'int16', 'uint16', 'int32', 'int64', 'float64', 'bool', 'string', 'bytes', 'records', 'uuid']);

function tsPrim(t) {
  switch (t) {
    case 'int8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'float64':
      return 'number';
    case 'int64':
      return 'bigint';
    case 'bool':
      return 'boolean';
    case 'string':
    case 'uuid':
      return 'string';
    case 'bytes':
    case 'records':
      return 'Buffer';
  }
  throw new Error(`unknown type ${t}`);
}

// ---------------------------------------------------------------------------------------------
// model: a struct tree with resolved nested struct names

/**
 * Field: { name, prop, type, elem (for arrays), struct (name of a nested struct), versions,
 * nullable, tagged, tag, flexibleNone, def }
 */
function buildStructs(spec, rootName) {
  const structs = new Map(); // name → { name, fields }
  const common = new Map();
  for (const cs of spec.commonStructs ?? []) common.set(cs.name, cs);
  function visit(name, fields) {
    if (structs.has(name)) return;
    const out = { name, fields: [] };
    structs.set(name, out);
    for (const f of fields) {
      const isArray = f.type.startsWith('[]');
      const base = isArray ? f.type.slice(2) : f.type;
      const field = {
        name: f.name,
        prop: camel(f.name),
        isArray,
        base,
        isStruct: !PRIMS.has(base),
        versions: range(f.versions),
        nullable: range(f.nullableVersions),
        tagged: range(f.taggedVersions),
        tag: f.tag,
        flexibleNone: f.flexibleVersions === 'none',
        default: f.default,
        taggedAny: f.taggedVersions !== undefined && f.taggedVersions !== 'none',
      };
      if (field.isStruct) {
        const sub = f.fields ?? common.get(base)?.fields;
        if (!sub) throw new Error(`struct ${base} of ${name}.${f.name} has no fields`);
        visit(base, sub);
      }
      out.fields.push(field);
    }
  }
  visit(rootName, spec.fields);
  return structs;
}

// ---------------------------------------------------------------------------------------------
// code generation

function defaultExpr(f) {
  if (f.isArray) return f.default === 'null' ? 'null' : '[]';
  // A tagged struct that was not sent stays undefined (and is not written back).
  if (f.isStruct) return f.default === 'null' ? 'null' : f.taggedAny ? 'undefined' : `${'default' + f.base}()`;
  const d = f.default;
  if (d === 'null') return 'null';
  switch (f.base) {
    case 'int8':
    case 'int16':
    case 'uint16':
    case 'int32':
    case 'float64':
      return d === undefined || d === '' ? '0' : String(Number(d));
    case 'int64':
      return d === undefined || d === '' ? '0n' : `${BigInt(d)}n`;
    case 'bool':
      return d === 'true' ? 'true' : 'false';
    case 'string':
      return JSON.stringify(d ?? '');
    case 'uuid':
      return 'ZERO_UUID';
    case 'bytes':
    case 'records':
      return 'EMPTY';
  }
  throw new Error(`no default for ${f.base}`);
}

/** Reader/Writer method of a primitive in a version. */
function primMethod(base, compact, nullable) {
  switch (base) {
    case 'string':
      return (compact ? 'compact' : '') + (nullable ? (compact ? 'NullableString' : 'nullableString') : compact ? 'String' : 'string');
    case 'bytes':
    case 'records':
      return (compact ? 'compact' : '') + (nullable ? (compact ? 'NullableBytes' : 'nullableBytes') : compact ? 'Bytes' : 'bytes');
    default:
      return base;
  }
}

/** Decode expression of a field (not tagged-wrapped) at version v. */
function decodeExpr(f, v, flexible) {
  const compact = flexible && !f.flexibleNone;
  const nullable = f.nullable(v);
  if (f.isArray) {
    const elem = f.isStruct ? `decode${f.base}` : `(r) => r.${primMethod(f.base, compact, false)}()`;
    const m = (compact ? 'compact' : '') + (nullable ? (compact ? 'NullableArray' : 'nullableArray') : compact ? 'Array' : 'array');
    return `r.${m}(${elem})`;
  }
  if (f.isStruct) return nullable ? `r.nullableStruct(decode${f.base})` : `decode${f.base}(r)`;
  return `r.${primMethod(f.base, compact, nullable)}()`;
}

function encodeStmt(f, v, flexible, value) {
  const compact = flexible && !f.flexibleNone;
  const nullable = f.nullable(v);
  if (f.isArray) {
    const elem = f.isStruct ? `encode${f.base}` : `(w, x) => w.${primMethod(f.base, compact, false)}(x)`;
    const m = (compact ? 'compact' : '') + (nullable ? (compact ? 'NullableArray' : 'nullableArray') : compact ? 'Array' : 'array');
    return `w.${m}(${value}, ${elem});`;
  }
  if (f.isStruct) return nullable ? `w.nullableStruct(${value}, encode${f.base});` : `encode${f.base}(w, ${value});`;
  return `w.${primMethod(f.base, compact, nullable)}(${value});`;
}

/** Grammar line of a struct at version v, Kafka-docs style. */
function grammarLine(s, v, flexible) {
  const parts = [];
  for (const f of s.fields) {
    if (!f.versions(v) || (flexible && f.tagged(v))) continue;
    const n = snake(f.name);
    parts.push(f.isArray ? `[${n}]` : n);
  }
  if (flexible) parts.push('TAG_BUFFER');
  return parts.join(' ');
}

function grammar(title, structs, rootName, v, flexible) {
  const lines = [];
  const root = structs.get(rootName);
  lines.push(`${title} (Version: ${v}) => ${grammarLine(root, v, flexible)}`);
  const seen = new Set();
  const walk = (s) => {
    for (const f of s.fields) {
      if (!f.versions(v) || !f.isStruct || seen.has(f.base)) continue;
      seen.add(f.base);
      const sub = structs.get(f.base);
      const tag = flexible && f.tagged(v) ? ` (tagged field ${f.tag})` : '';
      lines.push(`  ${snake(f.name)}${tag} => ${grammarLine(sub, v, flexible)}`);
      walk(sub);
    }
  };
  walk(root);
  return lines;
}

/** decode + encode functions of one struct at version v (the struct's code identity). */
function structCode(s, v, flexible, fnName, typeName) {
  const present = s.fields.filter((f) => f.versions(v));
  const regular = present.filter((f) => !(flexible && f.tagged(v)));
  const tagged = present.filter((f) => flexible && f.tagged(v)).sort((a, b) => a.tag - b.tag);
  const absent = s.fields.filter((f) => !f.versions(v) && f.inRange);
  const d = [];
  const readsNothing = regular.length === 0 && tagged.length === 0 && !flexible;
  d.push(`export function decode${fnName}(${readsNothing ? '_r' : 'r'}: Reader): ${typeName} {`);
  if (readsNothing) {
    d.push(`  return { ${absent.map((f) => `${f.prop}: ${defaultExpr(f)}`).join(', ')} };`);
  } else {
    d.push(`  const m: ${typeName} = {`);
    for (const f of regular) d.push(`    ${f.prop}: ${decodeExpr(f, v, flexible)},`);
    for (const f of [...tagged, ...absent]) d.push(`    ${f.prop}: ${defaultExpr(f)},`);
    d.push('  };');
    if (flexible) {
      if (tagged.length === 0) d.push('  r.taggedFields(() => false);');
      else {
        d.push('  r.taggedFields((tag, r) => {');
        d.push('    switch (tag) {');
        for (const f of tagged) {
          d.push(`      case ${f.tag}:`);
          d.push(`        m.${f.prop} = ${decodeExpr(f, v, flexible)};`);
          d.push('        return true;');
        }
        d.push('    }');
        d.push('    return false;');
        d.push('  });');
      }
    }
    d.push('  return m;');
  }
  d.push('}');
  const e = [];
  const usesM = regular.length > 0 || tagged.length > 0;
  e.push(`export function encode${fnName}(${readsNothing ? '_w' : 'w'}: Writer, ${usesM ? 'm' : '_m'}: ${typeName}): void {`);
  for (const f of regular) {
    // null is a value where the version allows it; undefined always means "the default"
    const value = f.nullable(v) ? `m.${f.prop} === undefined ? ${defaultExpr(f)} : m.${f.prop}` : `m.${f.prop} ?? ${defaultExpr(f)}`;
    e.push(`  ${encodeStmt(f, v, flexible, value)}`);
  }
  if (flexible) {
    if (tagged.length === 0) e.push('  w.uvarint(0);');
    else {
      e.push('  w.taggedFields([');
      for (const f of tagged) {
        e.push(
          `    [${f.tag}, m.${f.prop}, (w, x) => { ${encodeStmt(f, v, flexible, 'x')} }, ${isDefaultFn(f)}],`.replace(
            /\(w, x\) => \{ (.*) \}/,
            (_, body) => `(w, x) => {\n      ${body}\n    }`,
          ),
        );
      }
      e.push('  ]);');
    }
  }
  e.push('}');
  return [...d, '', ...e].join('\n');
}

/** A predicate telling whether a tagged field's value is its default (then it is not written). */
function isDefaultFn(f) {
  if (f.isArray) return f.default === 'null' ? '(x) => x === null' : '(x) => x === null || x.length === 0';
  if (f.isStruct) return '(x) => x === undefined';
  const d = defaultExpr(f);
  if (d === 'EMPTY') return '(x) => x === null || x.length === 0';
  if (d === 'ZERO_UUID') return '(x) => x === ZERO_UUID';
  return `(x) => x === ${d}`;
}

function fieldType(f, optional) {
  let t;
  if (f.isStruct) t = f.base;
  else t = tsPrim(f.base);
  if (f.isArray) t = `${t.includes(' ') ? `(${t})` : t}[]`;
  const nullable = f.default === 'null' || f.nullableAny;
  if (nullable) t = `${t} | null`;
  return `${f.prop}${optional ? '?' : ''}: ${t};`;
}

function header(files) {
  return [`// Generated by broker/scripts/gen-kafka.mjs from ${files.join(', ')} (Kafka 3.8.0). Do not edit.`];
}

function generateMessage(def) {
  const files = new Map();
  const isHeader = def.name.endsWith('Header');
  const reqSpec = isHeader ? (def.name === 'RequestHeader' ? loadSpec('RequestHeader.json') : null) : loadSpec(`${def.name}Request.json`);
  const respSpec = isHeader
    ? def.name === 'ResponseHeader'
      ? loadSpec('ResponseHeader.json')
      : null
    : loadSpec(`${def.name}Response.json`);
  const parts = [];
  if (reqSpec) parts.push({ kind: 'Request', spec: reqSpec, root: isHeader ? def.name : `${def.name}Request` });
  if (respSpec) parts.push({ kind: 'Response', spec: respSpec, root: isHeader ? def.name : `${def.name}Response` });
  const versions = [];
  for (let v = def.min; v <= def.max; v++) versions.push(v);

  // Structs of request and response live in one types.ts: rename response structs that collide.
  const allStructs = [];
  const names = new Set();
  for (const p of parts) {
    p.structs = buildStructs(p.spec, p.root);
    p.flexible = range(p.spec.flexibleVersions);
    for (const s of p.structs.values()) {
      if (names.has(s.name)) {
        const renamed = `${p.kind}${s.name}`;
        for (const other of p.structs.values()) for (const f of other.fields) if (f.isStruct && f.base === s.name) f.base = renamed;
        s.name = renamed;
      }
      names.add(s.name);
      allStructs.push({ s, part: p });
    }
    // re-key after renames
    p.structs = new Map([...p.structs.values()].map((s) => [s.name, s]));
  }

  // types.ts: superset types; a field missing from some generated version (or tagged) is optional.
  const t = [...header(parts.map((p) => `${p.root}.json`))];
  t.push('');
  for (const { s, part } of allStructs) {
    const used = versions;
    // a struct none of whose fields exists in the generated versions is never reached
    if (!s.fields.some((f) => used.some((v) => f.versions(v)))) continue;
    t.push(
      `/** ${s.name === part.root ? `${def.name} ${part.kind.toLowerCase()}` : `${s.name} (in ${part.root})`}, versions ${def.min}–${def.max}. */`,
    );
    t.push(`export interface ${s.name} {`);
    for (const f of s.fields) {
      const inAll = used.every((v) => f.versions(v) && !(part.flexible(v) && f.tagged(v)));
      f.inRange = used.some((v) => f.versions(v));
      if (!f.inRange) continue;
      f.nullableAny = used.some((v) => f.versions(v) && f.nullable(v));
      t.push(`  ${fieldType(f, !inAll)}`);
    }
    t.push('}');
    t.push('');
  }
  // default constructors of structs (used by tagged / absent struct fields)
  const needDefault = new Set();
  for (const { s } of allStructs)
    for (const f of s.fields) if (f.inRange && f.isStruct && !f.isArray && f.default !== 'null') needDefault.add(f.base);
  const ctorStart = t.length;
  for (const { s } of allStructs) {
    if (!needDefault.has(s.name)) continue;
    t.push(`export function default${s.name}(): ${s.name} {`);
    t.push(`  return { ${s.fields.map((f) => `${f.prop}: ${defaultExpr(f)}`).join(', ')} };`);
    t.push('}');
    t.push('');
  }
  const ctors = t.slice(ctorStart).join('\n');
  const tImports = ['ZERO_UUID', 'EMPTY'].filter((n) => new RegExp(`\\b${n}\\b`).test(ctors));
  if (tImports.length > 0) t.splice(2, 0, `import { ${tImports.join(', ')} } from '../../wire/constants.js';`);
  files.set('types.ts', t.join('\n').trimEnd() + '\n');

  // v<N>.ts
  const defined = new Map(); // code identity key → version that defines it
  for (const v of versions) {
    const body = [];
    const imports = new Map(); // from-version → names
    const typeNames = new Set();
    const defaults = new Set();
    const grammarLines = [];
    const exportsTop = [];
    for (const p of parts) {
      const flexible = p.flexible(v);
      const title = isHeader ? `${def.name}` : `${def.name} ${p.kind}`;
      grammarLines.push(...grammar(title, p.structs, p.root, v, flexible));
      // nested structs first (dependency order does not matter for function declarations)
      // Structs reachable through fields present in v; reversed pre-order puts children first.
      const reachable = new Set();
      const reach = (s) => {
        reachable.add(s.name);
        for (const f of s.fields) if (f.isStruct && f.versions(v) && !reachable.has(f.base)) reach(p.structs.get(f.base));
      };
      reach(p.structs.get(p.root));
      const order = [...p.structs.values()].reverse().filter((s) => reachable.has(s.name));
      const definedIn = new Map(); // struct → version whose file defines its code for v
      for (const s of order) {
        const isRoot = s.name === p.root;
        const fnName = isRoot ? p.kind : s.name;
        const code = structCode(s, v, flexible, fnName, s.name);
        // same text is the same code only if the nested structs it calls are the same code too
        const deps = s.fields.filter((f) => f.isStruct && f.versions(v)).map((f) => `${f.base}@${definedIn.get(f.base)}`);
        const key = `${s.name}\n${code}\n${deps.join(',')}`;
        typeNames.add(s.name);
        for (const f of s.fields) if (f.isStruct && !f.isArray && f.default !== 'null') defaults.add(f.base);
        const from = defined.get(key);
        definedIn.set(s.name, from ?? v);
        if (from !== undefined) {
          if (!imports.has(from)) imports.set(from, []);
          imports.get(from).push(`decode${fnName}`, `encode${fnName}`);
          if (isRoot) exportsTop.push(from);
        } else {
          defined.set(key, v);
          body.push(code);
        }
      }
    }
    const out = [...header(parts.map((p) => `${p.root}.json`))];
    out.push('/**');
    for (const l of grammarLines) out.push(` * ${l}`);
    out.push(' */');
    const src = body.join('\n\n');
    const wireImports = ['Reader', 'Writer'].filter((n) => src.includes(`: ${n}`));
    for (const n of wireImports) out.push(`import type { ${n} } from '../../wire/${n.toLowerCase()}.js';`);
    const consts = ['ZERO_UUID', 'EMPTY'].filter((n) => new RegExp(`\\b${n}\\b`).test(src));
    if (consts.length > 0) out.push(`import { ${consts.join(', ')} } from '../../wire/constants.js';`);
    const usedTypes = [...typeNames].filter((n) => new RegExp(`: ${n}\\b`).test(src));
    const usedDefaults = [...defaults].filter((n) => src.includes(`default${n}()`)).map((n) => `default${n}`);
    if (usedTypes.length > 0) out.push(`import type { ${usedTypes.join(', ')} } from './types.js';`);
    if (usedDefaults.length > 0) out.push(`import { ${usedDefaults.join(', ')} } from './types.js';`);
    for (const [from, names] of [...imports].sort((a, b) => a[0] - b[0])) {
      const list = names.join(', ');
      // used locally only if referenced by this file's code
      const local = names.filter((n) => new RegExp(`\\b${n}\\b`).test(src));
      if (local.length > 0) out.push(`import { ${local.join(', ')} } from './v${from}.js';`);
      out.push(`export { ${list} } from './v${from}.js';`);
    }
    if (src.length > 0) {
      out.push('');
      out.push(src);
    }
    files.set(`v${v}.ts`, out.join('\n').trimEnd() + '\n');
  }

  // index.ts
  const i = [...header(parts.map((p) => `${p.root}.json`))];
  for (const v of versions) i.push(`import * as v${v} from './v${v}.js';`);
  i.push(`export type * from './types.js';`);
  i.push('');
  const flexFrom = versions.find((v) => parts[0].flexible(v));
  if (isHeader) {
    i.push(`/** ${def.name} v${def.min}–${def.max}. */`);
    i.push(`export const ${camel(def.name)} = {`);
    i.push(`  name: '${def.name}',`);
  } else {
    i.push(
      `/** ${def.name} (key ${reqSpec.apiKey}) v${def.min}–${def.max}${flexFrom !== undefined ? `, flexible from v${flexFrom}` : ''}. */`,
    );
    i.push(`export const ${camel(def.name)} = {`);
    i.push(`  key: ${reqSpec.apiKey},`);
    i.push(`  name: '${def.name}',`);
  }
  i.push(`  minVersion: ${def.min},`);
  i.push(`  maxVersion: ${def.max},`);
  i.push(`  /** First flexible version (compact encodings, tagged fields, request header v2); -1 = none. */`);
  i.push(`  flexibleFrom: ${flexFrom ?? -1},`);
  i.push(`  codecs: { ${versions.map((v) => `${v}: v${v}`).join(', ')} },`);
  i.push('} as const;');
  files.set('index.ts', i.join('\n') + '\n');
  return files;
}

/** Formats with the repository's Prettier settings, so the output is lint-clean and stable. */
async function formatAll(files) {
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(join(OUT_DIR, 'index.ts'))) ?? {};
  const out = new Map();
  for (const [rel, text] of files) out.set(rel, await prettier.format(text, { ...options, parser: 'typescript' }));
  return out;
}

function generateAll() {
  const out = new Map();
  const entries = [];
  for (const def of [...HEADERS, ...APIS]) {
    const dir = kebab(def.name);
    for (const [file, text] of generateMessage(def)) out.set(`${dir}/${file}`, text);
    entries.push({ def, dir });
  }
  const idx = ['// Generated by broker/scripts/gen-kafka.mjs (Kafka 3.8.0). Do not edit.'];
  for (const { def, dir } of entries) idx.push(`import { ${camel(def.name)} } from './${dir}/index.js';`);
  for (const { def, dir } of entries) idx.push(`export * as ${camel(def.name)}Types from './${dir}/types.js';`);
  idx.push(`export { ${entries.map((e) => camel(e.def.name)).join(', ')} };`);
  idx.push('');
  idx.push('/** Every generated API by key (what ApiVersions advertises). */');
  idx.push('export const API_BY_KEY = {');
  for (const { def } of entries) if (!def.name.endsWith('Header')) idx.push(`  [${camel(def.name)}.key]: ${camel(def.name)},`);
  idx.push('} as const;');
  out.set('index.ts', idx.join('\n') + '\n');
  return out;
}

const check = process.argv.includes('--check');
const generated = await formatAll(generateAll());
let stale = [];
const known = new Set(generated.keys());
if (existsSync(OUT_DIR)) {
  for (const dir of readdirSync(OUT_DIR, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue;
    for (const f of readdirSync(join(OUT_DIR, dir.name))) {
      const rel = `${dir.name}/${f}`;
      if (f.endsWith('.ts') && !f.endsWith('.test.ts') && !known.has(rel)) {
        stale.push(`${rel} (not generated any more)`);
        if (!check) rmSync(join(OUT_DIR, rel));
      }
    }
  }
}
for (const [rel, text] of generated) {
  const path = join(OUT_DIR, rel);
  const old = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (old === text) continue;
  stale.push(rel);
  if (!check) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
  }
}
if (check) {
  if (stale.length > 0) {
    console.error(`stale generated Kafka codecs (run node broker/scripts/gen-kafka.mjs):\n  ${stale.join('\n  ')}`);
    process.exit(1);
  }
} else console.log(`gen-kafka: ${generated.size} files, ${stale.length} changed`);
