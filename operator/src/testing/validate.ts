import { Ajv } from 'ajv';
import { Environment } from '@marcbachmann/cel-js';
import { parseQuantity } from '../api/defaults.js';

/**
 * Offline validation (no API server): built-in kinds against the Kubernetes OpenAPI schemas
 * (kubernetes-models), custom resources against a CRD's openAPIV3Schema (ajv, with the CRD's
 * defaults applied) and its x-kubernetes-validations CEL rules (cel-js; integers as BigInt,
 * `quantity()` registered as Kubernetes' CEL library has it).
 */

type Doc = { apiVersion: string; kind: string; [k: string]: unknown };

/** Validates a built-in object; returns the problems (empty = valid); kinds it has no schema for are reported in `unknown`. */
export async function validateBuiltin(doc: Doc): Promise<{ errors: string[]; unknown?: boolean }> {
  const [g, v] = doc.apiVersion.includes('/') ? (doc.apiVersion.split('/') as [string, string]) : ['', doc.apiVersion];
  let Model: (new (d: unknown) => { validate(): void }) | undefined;
  try {
    const mod = (await import(`kubernetes-models/${g ? `${g}/` : ''}${v}/${doc.kind}`)) as Record<string, unknown>;
    Model = mod[doc.kind] as typeof Model;
  } catch {
    return { errors: [], unknown: true };
  }
  if (Model === undefined) return { errors: [], unknown: true };
  try {
    new Model(doc).validate();
    return { errors: [] };
  } catch (err) {
    const e = err as { errors?: { instancePath: string; message: string }[]; message: string };
    return {
      errors: e.errors?.map((x) => `${doc.kind}/${(doc.metadata as { name?: string })?.name}${x.instancePath}: ${x.message}`) ?? [
        e.message,
      ],
    };
  }
}

class Quantity {
  readonly value: number;
  constructor(s: string) {
    this.value = parseQuantity(s);
  }
}

function celEnv(): Environment {
  return new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false })
    .registerType('Quantity', Quantity)
    .registerFunction('quantity(string): Quantity', (s: string) => new Quantity(s))
    .registerFunction('Quantity.compareTo(Quantity): int', (a: Quantity, b: Quantity) => BigInt(Math.sign(a.value - b.value)));
}

function toCel(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(toCel);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)]));
  return v;
}

type Schema = {
  properties?: Record<string, Schema>;
  items?: Schema;
  'x-kubernetes-validations'?: { rule: string; message?: string }[];
  [k: string]: unknown;
};

function celErrors(schema: Schema, value: unknown, old: unknown, path: string, env: Environment, out: string[]): void {
  if (value === undefined) return;
  for (const r of schema['x-kubernetes-validations'] ?? []) {
    const transition = r.rule.includes('oldSelf');
    if (transition && old === undefined) continue;
    let ok: unknown;
    try {
      ok = env.evaluate(r.rule, { self: toCel(value), ...(transition ? { oldSelf: toCel(old) } : {}) });
    } catch (err) {
      out.push(`${path || '/'}: rule ${r.rule} failed to evaluate: ${(err as Error).message}`);
      continue;
    }
    if (ok !== true) out.push(`${path || '/'}: ${r.message ?? r.rule}`);
  }
  if (schema.properties && typeof value === 'object' && value !== null)
    for (const [k, s] of Object.entries(schema.properties))
      celErrors(s, (value as Record<string, unknown>)[k], (old as Record<string, unknown> | undefined)?.[k], `${path}/${k}`, env, out);
  if (schema.items && Array.isArray(value)) value.forEach((x, i) => celErrors(schema.items!, x, undefined, `${path}/${i}`, env, out));
}

/** A validator for the custom resources of one CRD version (structural schema + defaults + CEL). */
export function crdValidator(crd: { spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] } }, version: string) {
  const schema = crd.spec.versions.find((v) => v.name === version)!.schema.openAPIV3Schema;
  const ajv = new Ajv({ strict: false, useDefaults: true, allErrors: true, validateFormats: false });
  for (const k of [
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-int-or-string',
    'x-kubernetes-list-type',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-validations',
    'x-kubernetes-embedded-resource',
  ])
    ajv.addKeyword(k);
  const check = ajv.compile(schema);
  const env = celEnv();
  return (doc: unknown, old?: unknown): string[] => {
    const copy = structuredClone(doc);
    const errors: string[] = [];
    if (!check(copy)) errors.push(...(check.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message}`));
    celErrors(schema, copy, old === undefined ? undefined : structuredClone(old), '', env, errors);
    return errors;
  };
}
