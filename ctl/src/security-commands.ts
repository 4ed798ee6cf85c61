import { readFileSync } from 'node:fs';
import { AdminApi, CtlError } from './admin-api.js';
import { printTable } from './table.js';

export const SECURITY_HELP = `  robust-ctl user create NAME (--password P | --password-stdin) [--superuser]
  robust-ctl user list | delete NAME | passwd NAME (--password P | --password-stdin)
  robust-ctl acl add allow|deny publish|subscribe|all TOPIC [--username U | --clientid C | --ip CIDR] [--position N]
                                             TOPIC may use %u (username) and %c (client id); no who = everyone
  robust-ctl acl list | delete ID
  robust-ctl denylist add username|clientid|ip VALUE [--reason TEXT] [--ttl-ms N]
  robust-ctl denylist list | delete KIND VALUE`;

export interface SecurityOpts {
  json?: boolean | undefined;
  password?: string | undefined;
  'password-stdin'?: boolean | undefined;
  superuser?: boolean | undefined;
  username?: string | undefined;
  clientid?: string | undefined;
  ip?: string | undefined;
  position?: string | undefined;
  reason?: string | undefined;
  'ttl-ms'?: string | undefined;
}

function usage(msg: string): never {
  throw new CtlError(`${msg}\nUsage:\n${SECURITY_HELP}`, 2);
}

function password(o: SecurityOpts): string {
  if (o['password-stdin'] === true) return readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  if (o.password !== undefined) return o.password;
  return usage('a password is needed: --password P or --password-stdin');
}

const out = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
const when = (ms: number | undefined): string => (ms === undefined ? 'never' : new Date(ms).toISOString());

/** robust-ctl user …: returns the exit code. */
export async function runUser(api: AdminApi, args: string[], o: SecurityOpts): Promise<number> {
  const [sub, name, ...extra] = args;
  if (extra.length > 0) usage(`unexpected argument: ${extra.join(' ')}`);
  switch (sub) {
    case 'create': {
      if (name === undefined) usage('user create needs a NAME');
      const { body } = await api.request('POST', '/api/v1/users', {
        body: JSON.stringify({ username: name, password: password(o), superuser: o.superuser === true }),
      });
      if (o.json === true) out(body);
      else process.stdout.write(`user ${name} created${o.superuser === true ? ' (superuser)' : ''}\n`);
      return 0;
    }
    case 'passwd': {
      if (name === undefined) usage('user passwd needs a NAME');
      const { body } = await api.request('PUT', '/api/v1/users', { body: JSON.stringify({ username: name, password: password(o) }) });
      if (o.json === true) out(body);
      else process.stdout.write(`password of ${name} changed\n`);
      return 0;
    }
    case 'delete': {
      if (name === undefined) usage('user delete needs a NAME');
      const { body } = await api.request('DELETE', `/api/v1/users?username=${encodeURIComponent(name)}`);
      if (o.json === true) out(body);
      else process.stdout.write(`user ${name} deleted\n`);
      return 0;
    }
    case 'list': {
      const { body } = await api.request('GET', '/api/v1/users');
      const users = (body as { users: { username: string; superuser: boolean; createdAt: number }[] }).users;
      if (o.json === true) return (out(body), 0);
      printTable(
        ['USERNAME', 'SUPERUSER', 'CREATED'],
        users.map((u) => [u.username, u.superuser ? 'yes' : 'no', when(u.createdAt)]),
      );
      return 0;
    }
    default:
      return usage(sub === undefined ? 'missing user command' : `unknown user command: ${sub}`);
  }
}

interface RuleJson {
  id: string;
  position: number;
  who: Record<string, string | boolean>;
  action: string;
  topic: string;
  permission: string;
}

/** robust-ctl acl …: returns the exit code. */
export async function runAcl(api: AdminApi, args: string[], o: SecurityOpts): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const [permission, action, topic, ...extra] = rest;
      if (permission === undefined || action === undefined || topic === undefined) usage('acl add needs PERMISSION ACTION TOPIC');
      if (extra.length > 0) usage(`unexpected argument: ${extra.join(' ')}`);
      const whos = [
        o.username !== undefined ? { username: o.username } : undefined,
        o.clientid !== undefined ? { clientId: o.clientid } : undefined,
        o.ip !== undefined ? { ip: o.ip } : undefined,
      ].filter((w) => w !== undefined);
      if (whos.length > 1) usage('at most one of --username, --clientid, --ip');
      const position = o.position === undefined ? undefined : Number(o.position);
      const { body } = await api.request('POST', '/api/v1/acl', {
        body: JSON.stringify({ permission, action, topic, who: whos[0] ?? { all: true }, ...(position !== undefined ? { position } : {}) }),
      });
      if (o.json === true) out(body);
      else process.stdout.write(`rule ${(body as RuleJson).id} added at position ${(body as RuleJson).position}\n`);
      return 0;
    }
    case 'list': {
      const { body } = await api.request('GET', '/api/v1/acl');
      if (o.json === true) return (out(body), 0);
      printTable(
        ['ID', 'POSITION', 'WHO', 'ACTION', 'TOPIC', 'PERMISSION'],
        (body as { rules: RuleJson[] }).rules.map((r) => [
          r.id,
          r.position,
          Object.entries(r.who)
            .map(([k, v]) => (k === 'all' ? 'all' : `${k}=${String(v)}`))
            .join(','),
          r.action,
          r.topic,
          r.permission,
        ]),
      );
      return 0;
    }
    case 'delete': {
      const [id] = rest;
      if (id === undefined) usage('acl delete needs an ID');
      const { body } = await api.request('DELETE', `/api/v1/acl?id=${encodeURIComponent(id)}`);
      if (o.json === true) out(body);
      else process.stdout.write(`rule ${id} deleted\n`);
      return 0;
    }
    default:
      return usage(sub === undefined ? 'missing acl command' : `unknown acl command: ${sub}`);
  }
}

/** robust-ctl denylist …: returns the exit code. */
export async function runDenylist(api: AdminApi, args: string[], o: SecurityOpts): Promise<number> {
  const [sub, kind, value, ...extra] = args;
  if (extra.length > 0) usage(`unexpected argument: ${extra.join(' ')}`);
  switch (sub) {
    case 'add': {
      if (kind === undefined || value === undefined) usage('denylist add needs KIND and VALUE');
      const ttlMs = o['ttl-ms'] === undefined ? undefined : Number(o['ttl-ms']);
      const { body } = await api.request('POST', '/api/v1/denylist', {
        body: JSON.stringify({ kind, value, reason: o.reason ?? '', ...(ttlMs !== undefined ? { ttlMs } : {}) }),
      });
      if (o.json === true) out(body);
      else process.stdout.write(`${kind} ${value} denied until ${when((body as { expiresAt?: number }).expiresAt)}\n`);
      return 0;
    }
    case 'list': {
      const { body } = await api.request('GET', '/api/v1/denylist');
      if (o.json === true) return (out(body), 0);
      printTable(
        ['KIND', 'VALUE', 'REASON', 'EXPIRES'],
        (body as { entries: { kind: string; value: string; reason: string; expiresAt?: number }[] }).entries.map((e) => [
          e.kind,
          e.value,
          e.reason || '-',
          when(e.expiresAt),
        ]),
      );
      return 0;
    }
    case 'delete': {
      if (kind === undefined || value === undefined) usage('denylist delete needs KIND and VALUE');
      const { body } = await api.request('DELETE', `/api/v1/denylist?kind=${encodeURIComponent(kind)}&value=${encodeURIComponent(value)}`);
      if (o.json === true) out(body);
      else process.stdout.write(`${kind} ${value} removed from the deny list\n`);
      return 0;
    }
    default:
      return usage(sub === undefined ? 'missing denylist command' : `unknown denylist command: ${sub}`);
  }
}
