import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, writeSync, constants } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ErrorCode, RobustError, type Logger } from '@robustmq/common';
import type { MetaClient } from '@robustmq/meta';
import { SecurityAdmin, DENY_KINDS, type AclRule, type BrokerOptions, type DenyKind } from '@robustmq/broker';
import { apiHandler, readJsonObject, sendJson, type AdminHttp } from './admin-http.js';
import type { Config } from './config.js';

/** The broker's security options from the server configuration (ports, tls, auth, limits). */
export function brokerSecurityOptions(c: Config): Partial<BrokerOptions> {
  const a = c.auth;
  const chains: Record<string, readonly string[]> = { mqtt: a.mqttChain, mqtts: a.mqttsChain, ws: a.wsChain, wss: a.wssChain };
  const listenerChains = Object.fromEntries(Object.entries(chains).filter(([, v]) => v.length > 0));
  return {
    mqttsPort: c.mqttsPort,
    wsPort: c.wsPort,
    wssPort: c.wssPort,
    tls: { ...c.tls },
    auth: {
      allowAnonymous: a.allowAnonymous,
      chain: a.chain,
      listenerChains,
      aclDefault: a.aclDefault,
      cacheWaitMs: a.cacheWaitMs,
      jwt: { ...a.jwt },
      webhook: { ...a.webhook, cacheMaxEntries: 10_000 },
    },
    limits: { ...c.limits },
    mqtt: { drainTimeoutMs: c.limits.drainTimeoutMs },
  };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * The admin API's bearer tokens: the lines of `file`. On first start the file does not exist: a
 * random token is written to it, readable by the owner only (0600), and the log says where. The
 * file is read again when it changes, so tokens can be added or rotated without a restart.
 */
export function loadAdminTokens(file: string, log: Logger): (req: IncomingMessage) => boolean {
  try {
    const fd = openSync(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
    writeSync(fd, `${randomBytes(32).toString('base64url')}\n`);
    closeSync(fd);
    log.info({ tokenFile: file }, 'admin api token created');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new RobustError(ErrorCode.DataDirUnusable, `admin token file ${file}: cannot create it (${(err as Error).message})`, {
        cause: err,
      });
    }
    log.info({ tokenFile: file }, 'admin api token file in use');
  }
  let stamp = '';
  let tokens: Buffer[] = [];
  const current = (): Buffer[] => {
    try {
      const st = statSync(file);
      const now = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (now !== stamp) {
        stamp = now;
        tokens = readFileSync(file, 'utf8')
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l.length >= 16 && !l.startsWith('#'))
          .map(digest);
      }
    } catch {
      tokens = [];
    }
    return tokens;
  };
  current();
  return (req) => {
    const h = req.headers.authorization;
    if (h === undefined || !h.startsWith('Bearer ')) return false;
    const got = digest(h.slice(7).trim());
    let ok = false;
    for (const t of current()) if (timingSafeEqual(t, got)) ok = true;
    return ok;
  };
}

function str(v: unknown, name: string): string {
  if (typeof v !== 'string' || v === '') throw new RobustError(ErrorCode.ConfigInvalid, `"${name}" must be a non-empty string`);
  return v;
}

/**
 * The security part of the admin REST API: users, ACL rules and the deny list, stored in meta
 * and picked up by every broker's watch.
 *
 *   GET/POST /api/v1/users · PUT /api/v1/users (new password) · DELETE /api/v1/users?username=
 *   GET/POST /api/v1/acl · DELETE /api/v1/acl?id=
 *   GET/POST /api/v1/denylist · DELETE /api/v1/denylist?kind=&value=
 */
export function registerSecurityRoutes(http: AdminHttp, meta: () => MetaClient): void {
  const admin = (): SecurityAdmin => new SecurityAdmin(meta());
  const handle = apiHandler;
  http.route(
    'GET',
    '/api/v1/users',
    handle(async (_req, res) => sendJson(res, 200, { users: await admin().listUsers() })),
  );
  http.route(
    'POST',
    '/api/v1/users',
    handle(async (req, res) => {
      const b = await readJsonObject(req);
      const username = str(b.username, 'username');
      await admin().putUser(username, str(b.password, 'password'), { superuser: b.superuser === true, mustNotExist: true });
      sendJson(res, 201, { created: username, superuser: b.superuser === true });
    }),
  );
  http.route(
    'PUT',
    '/api/v1/users',
    handle(async (req, res) => {
      const b = await readJsonObject(req);
      const username = str(b.username, 'username');
      await admin().putUser(username, str(b.password, 'password'), {
        mustExist: true,
        ...(typeof b.superuser === 'boolean' ? { superuser: b.superuser } : {}),
      });
      sendJson(res, 200, { updated: username });
    }),
  );
  http.route(
    'DELETE',
    '/api/v1/users',
    handle(async (_req, res, q) => {
      const username = str(q.get('username'), 'username');
      await admin().deleteUser(username);
      sendJson(res, 200, { deleted: username });
    }),
  );
  http.route(
    'GET',
    '/api/v1/acl',
    handle(async (_req, res) => sendJson(res, 200, { rules: await admin().listAcl() })),
  );
  http.route(
    'POST',
    '/api/v1/acl',
    handle(async (req, res) => {
      const b = await readJsonObject(req);
      const rule = await admin().addAcl({
        who: b.who as AclRule['who'],
        action: b.action as AclRule['action'],
        topic: b.topic as string,
        permission: b.permission as AclRule['permission'],
        position: b.position === undefined ? undefined : (b.position as number),
      });
      sendJson(res, 201, rule);
    }),
  );
  http.route(
    'DELETE',
    '/api/v1/acl',
    handle(async (_req, res, q) => {
      const id = str(q.get('id'), 'id');
      await admin().deleteAcl(id);
      sendJson(res, 200, { deleted: id });
    }),
  );
  http.route(
    'GET',
    '/api/v1/denylist',
    handle(async (_req, res) => sendJson(res, 200, { entries: await admin().listDeny() })),
  );
  http.route(
    'POST',
    '/api/v1/denylist',
    handle(async (req, res) => {
      const b = await readJsonObject(req);
      const ttlMs = b.ttlMs === undefined ? undefined : Number(b.ttlMs);
      if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs <= 0))
        throw new RobustError(ErrorCode.ConfigInvalid, '"ttlMs" must be a positive integer');
      const expiresAt = ttlMs !== undefined ? Date.now() + ttlMs : (b.expiresAt as number | undefined);
      const e = await admin().addDeny({
        kind: b.kind as DenyKind,
        value: b.value as string,
        reason: typeof b.reason === 'string' ? b.reason : '',
        ...(expiresAt !== undefined ? { expiresAt } : {}),
      });
      sendJson(res, 201, e);
    }),
  );
  http.route(
    'DELETE',
    '/api/v1/denylist',
    handle(async (_req, res, q) => {
      const kind = str(q.get('kind'), 'kind');
      if (!DENY_KINDS.includes(kind as DenyKind))
        throw new RobustError(ErrorCode.ConfigInvalid, `kind must be one of ${DENY_KINDS.join(', ')}`);
      const value = str(q.get('value'), 'value');
      await admin().deleteDeny(kind as DenyKind, value);
      sendJson(res, 200, { deleted: { kind, value } });
    }),
  );
}
