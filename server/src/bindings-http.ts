import { ErrorCode, RobustError } from '@robustmq/common';
import { prefixEnd, type MetaClient } from '@robustmq/meta';
import { BINDING_NAME, BINDINGS_PREFIX, bindingProblems, type BindingRecord } from '@robustmq/broker';
import { apiHandler, readJsonObject, sendJson, type AdminHttp } from './admin-http.js';

/** Checks a binding from the API; every problem is reported at once. */
function validate(name: string, body: Record<string, unknown>): BindingRecord {
  const problems: string[] = [];
  const direction = body.direction;
  if (direction !== 'in' && direction !== 'out') problems.push('direction: "in" (MQTT → Kafka) or "out" (Kafka → MQTT)');
  if (typeof body.stream !== 'string') problems.push('stream: the Kafka topic name');
  if (direction === 'in') {
    const f = body.filters;
    if (!Array.isArray(f) || f.length === 0 || !f.every((x) => typeof x === 'string'))
      problems.push('filters: a non-empty list of MQTT topic filters');
  }
  if (direction === 'out' && typeof body.topicPrefix !== 'string')
    problems.push('topicPrefix: the MQTT topic prefix the record key is appended to');
  if (problems.length === 0) {
    const b: BindingRecord =
      direction === 'in'
        ? { name, direction, stream: body.stream as string, filters: body.filters as string[] }
        : { name, direction: 'out', stream: body.stream as string, topicPrefix: body.topicPrefix as string };
    problems.push(...bindingProblems(b));
    if (problems.length === 0) return b;
  } else if (!BINDING_NAME.test(name)) problems.unshift('name: 1–128 letters, digits, ".", "_" or "-"');
  throw new RobustError(ErrorCode.ConfigInvalid, `invalid binding: ${problems.join('; ')}`);
}

/**
 * MQTT ↔ Kafka bindings in the admin API. Bindings are records in meta under `/bindings/<name>`;
 * every broker watches them, so a change takes effect cluster-wide without a restart.
 *
 *   GET /api/v1/bindings · PUT /api/v1/bindings?name=N {direction, stream, filters | topicPrefix}
 *   DELETE /api/v1/bindings?name=N
 */
export function registerBindingRoutes(http: AdminHttp, meta: () => MetaClient): void {
  http.route(
    'GET',
    '/api/v1/bindings',
    apiHandler(async (_req, res) => {
      const r = await meta().range(BINDINGS_PREFIX, prefixEnd(BINDINGS_PREFIX));
      sendJson(res, 200, { bindings: r.kvs.map((kv) => JSON.parse(kv.value.toString('utf8')) as BindingRecord) });
    }),
  );
  http.route(
    'PUT',
    '/api/v1/bindings',
    apiHandler(async (req, res, q) => {
      const body = await readJsonObject(req);
      const b = validate(q.get('name') ?? '', body);
      await meta().put(BINDINGS_PREFIX + b.name, Buffer.from(JSON.stringify(b)));
      sendJson(res, 200, b);
    }),
  );
  http.route(
    'DELETE',
    '/api/v1/bindings',
    apiHandler(async (_req, res, q) => {
      const name = q.get('name') ?? '';
      const r = await meta().delete(BINDINGS_PREFIX + name);
      if (r.deleted === 0) throw new RobustError(ErrorCode.NotFound, `no binding named ${name}`);
      sendJson(res, 200, { deleted: name });
    }),
  );
}
