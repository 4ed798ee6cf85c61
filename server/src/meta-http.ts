import { ErrorCode, RobustError } from '@robustmq/common';
import { prefixEnd, type KeyValue, type MetaClient } from '@robustmq/meta';
import { apiHandler, readBody, readJsonObject, sendJson, type AdminHttp } from './admin-http.js';

function kvJson(kv: KeyValue): Record<string, unknown> {
  const text = kv.value.toString('utf8');
  const printable = Buffer.from(text, 'utf8').equals(kv.value);
  return {
    key: kv.key,
    ...(printable ? { value: text } : { valueBase64: kv.value.toString('base64') }),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

function need(params: URLSearchParams, name: string): string {
  const v = params.get(name);
  if (v === null || v === '') throw new RobustError(ErrorCode.ConfigInvalid, `missing query parameter "${name}"`);
  return v;
}

function positiveInt(v: unknown, name: string): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0)
    throw new RobustError(ErrorCode.ConfigInvalid, `"${name}" must be a positive integer`);
  return n;
}

/** [key, rangeEnd] from ?key=…&prefix=true (prefix "" = every key). */
function rangeOf(params: URLSearchParams): [string, string | undefined] {
  const key = params.get('key') ?? '';
  if (params.get('prefix') === 'true') return [key, prefixEnd(key) ?? '\0'];
  if (key === '') throw new RobustError(ErrorCode.ConfigInvalid, 'missing query parameter "key" (or use prefix=true)');
  return [key, undefined];
}

/**
 * The meta part of the admin REST API (robust-ctl meta …): status, key-value reads and writes,
 * watches as an NDJSON stream, leases and membership.
 */
export function registerMetaRoutes(http: AdminHttp, meta: () => MetaClient): void {
  const handle = apiHandler;

  http.route(
    'GET',
    '/api/v1/meta/status',
    handle(async (_req, res) => sendJson(res, 200, await meta().status())),
  );
  http.route(
    'GET',
    '/api/v1/meta/kv',
    handle(async (_req, res, p) => {
      const [key, end] = rangeOf(p);
      const limit = p.get('limit') === null ? 0 : positiveInt(p.get('limit'), 'limit');
      const r = await meta().range(key, end, { limit, serializable: p.get('serializable') === 'true' });
      sendJson(res, 200, { revision: r.revision, count: r.count, more: r.more, kvs: r.kvs.map(kvJson) });
    }),
  );
  http.route(
    'PUT',
    '/api/v1/meta/kv',
    handle(async (req, res, p) => {
      const key = need(p, 'key');
      const lease = p.get('lease') === null ? undefined : positiveInt(p.get('lease'), 'lease');
      const r = await meta().put(key, await readBody(req, 16 * 1024 * 1024), lease === undefined ? {} : { lease });
      sendJson(res, 200, { revision: r.revision });
    }),
  );
  http.route(
    'DELETE',
    '/api/v1/meta/kv',
    handle(async (_req, res, p) => {
      const [key, end] = rangeOf(p);
      const r = await meta().delete(key, end);
      sendJson(res, 200, { deleted: r.deleted, revision: r.revision });
    }),
  );
  http.route(
    'GET',
    '/api/v1/meta/watch',
    handle(async (req, res, p) => {
      const [key, end] = rangeOf(p);
      const startRevision = p.get('startRevision') === null ? 0 : positiveInt(p.get('startRevision'), 'startRevision');
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
      res.write(`${JSON.stringify({ watching: key, prefix: end !== undefined, startRevision })}\n`);
      const cancel = meta().watch(
        key,
        end,
        { startRevision },
        (b) =>
          res.write(
            `${JSON.stringify({ group: b.group, revision: b.revision, events: b.events.map((e) => ({ type: e.type, ...kvJson(e.kv) })) })}\n`,
          ),
        (err) => {
          res.end(`${JSON.stringify({ error: err.message, code: (err as RobustError).code })}\n`);
        },
      );
      req.socket.on('close', cancel);
    }),
  );
  http.route(
    'POST',
    '/api/v1/meta/leases',
    handle(async (req, res) => {
      const b = await readJsonObject(req);
      sendJson(res, 200, await meta().leaseGrant(positiveInt(b.ttlMs, 'ttlMs')));
    }),
  );
  http.route(
    'POST',
    '/api/v1/meta/members',
    handle(async (req, res) => {
      const b = await readJsonObject(req);
      const id = positiveInt(b.id, 'id');
      if (typeof b.address !== 'string' || !/^[^\s:]+:\d+$/.test(b.address))
        throw new RobustError(ErrorCode.ConfigInvalid, '"address" must be host:port');
      await meta().addLearner(id, b.address);
      sendJson(res, 200, { added: id, as: 'learner' });
    }),
  );
  http.route(
    'POST',
    '/api/v1/meta/members/promote',
    handle(async (req, res) => {
      const id = positiveInt((await readJsonObject(req)).id, 'id');
      await meta().promote(id);
      sendJson(res, 200, { promoted: id });
    }),
  );
  http.route(
    'DELETE',
    '/api/v1/meta/members',
    handle(async (_req, res, p) => {
      const id = positiveInt(need(p, 'id'), 'id');
      await meta().removeMember(id);
      sendJson(res, 200, { removed: id });
    }),
  );
  http.route(
    'POST',
    '/api/v1/meta/transfer-leader',
    handle(async (req, res) => {
      const b = await readJsonObject(req);
      const group = typeof b.group === 'number' && Number.isInteger(b.group) && b.group >= 0 ? b.group : -1;
      if (group < 0) throw new RobustError(ErrorCode.ConfigInvalid, '"group" must be a group number');
      await meta().transferLeader(group, positiveInt(b.to, 'to'));
      sendJson(res, 200, { group, leader: b.to });
    }),
  );
}
