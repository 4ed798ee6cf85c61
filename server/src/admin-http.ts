import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { ErrorCode, RobustError, listen, closeServer, type Logger, type Registry } from '@robustmq/common';

/** Readiness of one role: `undefined` when ready, otherwise why not. */
export type ReadinessProbe = () => string | undefined;

export interface AdminHttpOptions {
  host: string;
  port: number;
  log: Logger;
  registry: Registry;
  /** Role name → probe. Ready only when every probe is. */
  readiness: () => Record<string, string | undefined>;
  /** Bearer-token check of every request under /api/ (health and /metrics stay open for probes). */
  authorize?: (req: IncomingMessage) => boolean;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/**
 * The admin HTTP server (default port 58080): health endpoints, Prometheus metrics, and the
 * REST API under /api/v1 that later components register routes on.
 */
export class AdminHttp {
  readonly #opts: AdminHttpOptions;
  readonly #server: Server;
  readonly #routes = new Map<string, Handler>();
  #port = -1;

  constructor(opts: AdminHttpOptions) {
    this.#opts = opts;
    this.route('GET', '/health/live', (_req, res) => sendJson(res, 200, { status: 'live' }));
    this.route('GET', '/health/ready', (_req, res) => {
      const roles = opts.readiness();
      const reasons = Object.entries(roles)
        .filter(([, r]) => r !== undefined)
        .map(([role, r]) => `${role}: ${r}`);
      const status = Object.fromEntries(Object.entries(roles).map(([role, r]) => [role, r ?? 'ready']));
      if (reasons.length === 0) sendJson(res, 200, { status: 'ready', roles: status });
      else sendJson(res, 503, { status: 'not ready', reasons, roles: status });
    });
    this.route('GET', '/metrics', async (_req, res) => {
      const body = await opts.registry.metrics();
      res.writeHead(200, { 'content-type': opts.registry.contentType }).end(body);
    });
    this.#server = createServer((req, res) => void this.#dispatch(req, res));
    this.#server.keepAliveTimeout = 5_000;
  }

  /** Registers a handler for an exact method and path. */
  route(method: string, path: string, handler: Handler): void {
    this.#routes.set(`${method} ${path}`, handler);
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const handler = this.#routes.get(`${req.method ?? 'GET'} ${path}`);
    if (path.startsWith('/api/') && this.#opts.authorize !== undefined && !this.#opts.authorize(req)) {
      sendJson(
        res,
        401,
        { error: 'missing or invalid bearer token (robust-ctl --token-file; see <dataDir>/admin-token)', code: 'ERR_UNAUTHENTICATED' },
        { 'www-authenticate': 'Bearer realm="robustmq"' },
      );
      return;
    }
    try {
      if (handler !== undefined) return await handler(req, res);
      const allowed = [...this.#routes.keys()].filter((k) => k.endsWith(` ${path}`)).map((k) => k.split(' ')[0]);
      if (allowed.length > 0)
        sendJson(res, 405, { error: `method ${req.method} not allowed on ${path}`, allowed }, { allow: allowed.join(', ') });
      else sendJson(res, 404, { error: `no such endpoint: ${path}` });
    } catch (err) {
      this.#opts.log.error({ err, path }, 'admin request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error', message: (err as Error).message });
      else res.destroy();
    }
  }

  async listen(): Promise<number> {
    this.#port = await listen(this.#server as never, 'http', this.#opts.host, this.#opts.port);
    return this.#port;
  }

  async close(): Promise<void> {
    this.#server.closeIdleConnections();
    const closing = closeServer(this.#server as never);
    this.#server.closeAllConnections();
    await closing;
  }
}

/** HTTP status for a RobustMQ error code: the admin API's one table (STYLE §5). */
const httpStatus: Record<string, number> = {
  ERR_NOT_LEADER: 503,
  ERR_SHUTTING_DOWN: 503,
  ERR_TIMEOUT: 504,
  ERR_CROSS_GROUP: 400,
  ERR_CONFIG_INVALID: 400,
  ERR_LEASE_NOT_FOUND: 404,
  ERR_COMPACTED: 410,
  ERR_MEMBERSHIP_REFUSED: 409,
  ERR_NOT_FOUND: 404,
  ERR_ALREADY_EXISTS: 409,
  ERR_UNAUTHENTICATED: 401,
};

/** Answers an error as JSON: its message, code, retriable flag and (for not-leader) the leader. */
export function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof RobustError) {
    const leader = (err as { leaderHint?: number }).leaderHint;
    sendJson(res, httpStatus[err.code] ?? 500, {
      error: err.message,
      code: err.code,
      retriable: err.retriable,
      ...(leader !== undefined ? { leader } : {}),
    });
  } else sendJson(res, 500, { error: (err as Error).message ?? String(err) });
}

/** Reads a request body, refusing one larger than `limitBytes` (ERR_CONFIG_INVALID → 400). */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limitBytes) throw new RobustError(ErrorCode.ConfigInvalid, `request body larger than ${limitBytes} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Reads a JSON object body (at most 64 KiB); anything else is ERR_CONFIG_INVALID (→ 400). */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const b = await readBody(req, 64 * 1024);
  try {
    const v = JSON.parse(b.toString('utf8')) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new RobustError(ErrorCode.ConfigInvalid, 'request body must be a JSON object');
}

/** A REST handler: errors it throws are answered by sendError (or end a response already started). */
export type ApiHandler = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => Promise<void>;

export function apiHandler(fn: ApiHandler): Handler {
  return async (req, res) => {
    try {
      await fn(req, res, new URL(req.url ?? '/', 'http://localhost').searchParams);
    } catch (err) {
      if (!res.headersSent) sendError(res, err);
      else res.destroy();
    }
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers }).end(text);
}
