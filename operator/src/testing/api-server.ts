import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { matchesFields, matchesLabels, matchesSelector, parseLabelSelector } from './selectors.js';

/**
 * An in-process Kubernetes API server for tests (the envtest substitute: no kube-apiserver can be
 * had on this machine). It speaks enough of the real protocol that the real @kubernetes/client-node
 * and the real kubectl work against it:
 * - discovery (/api, /apis, /api/v1, /apis/<g>/<v>) built from a resource table, CRDs added live;
 * - LIST and WATCH with resourceVersions, label and field selectors, `timeoutSeconds`, resuming
 *   from a resourceVersion, and `ERROR 410 Expired` when it is older than the retained history;
 * - create (409 AlreadyExists, generateName), update (409 Conflict on a stale resourceVersion),
 *   `metadata.generation` bumped on changes outside metadata and status;
 * - patch: JSON merge, strategic merge (list keys for the lists operators touch), and
 *   server-side apply with per-manager field ownership, conflicts (409 unless force) and removal
 *   of fields a manager stops applying (then the kind's defaults apply again, e.g. replicas = 1);
 * - status and scale subresources; finalizers and deletionTimestamp; owner-reference garbage
 *   collection; pods/eviction honouring PodDisruptionBudgets (429); Lease MicroTime validation.
 * Lists inside objects are atomic for field ownership (real SSA merges some by key).
 */

export interface ResourceDef {
  group: string;
  version: string;
  resource: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  status?: boolean;
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
}

export type KObj = {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  [k: string]: unknown;
};

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KObj;
  rv: number;
  def: ResourceDef;
}

const BUILTINS: ResourceDef[] = [
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, shortNames: ['po'], status: true },
  { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true, shortNames: ['svc'], status: true },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'] },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  {
    group: '',
    version: 'v1',
    resource: 'persistentvolumeclaims',
    kind: 'PersistentVolumeClaim',
    namespaced: true,
    shortNames: ['pvc'],
    status: true,
  },
  { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true, shortNames: ['ev'] },
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, shortNames: ['ns'], status: true },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, shortNames: ['sa'] },
  {
    group: 'apps',
    version: 'v1',
    resource: 'statefulsets',
    kind: 'StatefulSet',
    namespaced: true,
    shortNames: ['sts'],
    status: true,
    scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas' },
  },
  {
    group: 'apps',
    version: 'v1',
    resource: 'deployments',
    kind: 'Deployment',
    namespaced: true,
    shortNames: ['deploy'],
    status: true,
    scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas' },
  },
  {
    group: 'policy',
    version: 'v1',
    resource: 'poddisruptionbudgets',
    kind: 'PodDisruptionBudget',
    namespaced: true,
    shortNames: ['pdb'],
    status: true,
  },
  {
    group: 'autoscaling',
    version: 'v2',
    resource: 'horizontalpodautoscalers',
    kind: 'HorizontalPodAutoscaler',
    namespaced: true,
    shortNames: ['hpa'],
    status: true,
  },
  { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true },
  {
    group: 'apiextensions.k8s.io',
    version: 'v1',
    resource: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    shortNames: ['crd'],
    status: true,
  },
  { group: 'rbac.authorization.k8s.io', version: 'v1', resource: 'clusterroles', kind: 'ClusterRole', namespaced: false },
];

const gv = (d: ResourceDef) => (d.group ? `${d.group}/${d.version}` : d.version);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

class HttpError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.status = status;
    this.reason = reason;
  }
}

/** Leaf paths of an object, arrays atomic: ["spec","replicas"] … as JSON strings. */
export function fieldPaths(v: unknown, prefix: string[] = []): string[] {
  if (!isObj(v) || (Object.keys(v).length === 0 && prefix.length > 0)) return [JSON.stringify(prefix)];
  return Object.entries(v).flatMap(([k, child]) => fieldPaths(child, [...prefix, k]));
}
function getPath(o: unknown, path: string[]): unknown {
  let cur = o;
  for (const p of path) cur = isObj(cur) ? cur[p] : undefined;
  return cur;
}
function deletePath(o: Record<string, unknown>, path: string[]): void {
  const parents: Record<string, unknown>[] = [];
  let cur: unknown = o;
  for (const p of path.slice(0, -1)) {
    if (!isObj(cur)) return;
    parents.push(cur);
    cur = cur[p];
  }
  if (!isObj(cur)) return;
  Reflect.deleteProperty(cur, path[path.length - 1]!);
  // prune emptied parents
  for (let i = path.length - 2; i >= 0; i--) {
    const parent = parents[i]!;
    const child = parent[path[i]!];
    if (isObj(child) && Object.keys(child).length === 0) Reflect.deleteProperty(parent, path[i]!);
    else break;
  }
}
function deepMerge(target: Record<string, unknown>, src: Record<string, unknown>): Record<string, unknown> {
  for (const [k, v] of Object.entries(src)) {
    if (isObj(v) && isObj(target[k])) deepMerge(target[k] as Record<string, unknown>, v);
    else target[k] = clone(v);
  }
  return target;
}
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return clone(patch);
  const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) Reflect.deleteProperty(out, k);
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
const LIST_KEYS: Record<string, string> = {
  conditions: 'type',
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  ports: 'name',
  readinessGates: 'conditionType',
  ownerReferences: 'uid',
  imagePullSecrets: 'name',
};
function strategicMerge(target: unknown, patch: unknown, field = ''): unknown {
  if (Array.isArray(patch) && Array.isArray(target) && LIST_KEYS[field] !== undefined) {
    const key = LIST_KEYS[field];
    const out = clone(target) as Record<string, unknown>[];
    for (const item of patch as Record<string, unknown>[]) {
      const i = out.findIndex((x) => isObj(x) && x[key] === item[key]);
      if (i >= 0) out[i] = strategicMerge(out[i], item) as Record<string, unknown>;
      else out.push(clone(item));
    }
    return out;
  }
  if (!isObj(patch)) return clone(patch);
  const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) Reflect.deleteProperty(out, k);
    else out[k] = strategicMerge(out[k], v, k);
  }
  return out;
}
/** managedFields' fieldsV1 from a path set. */
function fieldsV1(paths: Set<string>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const p of paths) {
    let cur = root;
    for (const seg of JSON.parse(p) as string[]) cur = (cur[`f:${seg}`] ??= {}) as Record<string, unknown>;
  }
  return root;
}

interface Ownership {
  manager: string;
  operation: 'Apply' | 'Update';
  subresource: string;
  paths: Set<string>;
  time: string;
}

interface Stored {
  obj: KObj;
  owners: Ownership[];
}

interface WatchClient {
  def: ResourceDef;
  namespace: string | undefined;
  labels: ReturnType<typeof parseLabelSelector>;
  fields: string | null;
  res: ServerResponse;
}

export interface ApiServerOptions {
  /** Watch history kept for resuming; older resourceVersions get 410 Gone. */
  historyLimit?: number;
}

export class ApiServer extends EventEmitter<{ event: [WatchEvent] }> {
  readonly #defs: ResourceDef[] = [...BUILTINS];
  readonly #store = new Map<string, Stored>();
  #history: WatchEvent[] = [];
  #compactedRv = 0;
  #rv = 1;
  readonly #watches = new Set<WatchClient>();
  readonly #server: Server;
  readonly #historyLimit: number;
  #url = '';
  /** Requests seen, for tests ("METHOD path?query"). */
  readonly requests: string[] = [];
  /** Fault injection: the next N requests matching answer with this status. */
  #faults: { match: RegExp; status: number; remaining: number }[] = [];

  constructor(o: ApiServerOptions = {}) {
    super();
    this.setMaxListeners(100);
    this.#historyLimit = o.historyLimit ?? 10_000;
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  get url(): string {
    return this.#url;
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.#url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this.#url;
  }

  async stop(): Promise<void> {
    for (const w of this.#watches) w.res.end();
    this.#watches.clear();
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }

  /** A kubeconfig (YAML) pointing at this server, for client-node and kubectl. */
  kubeconfig(namespace = 'default'): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: emu, cluster: {server: "' + this.#url + '", insecure-skip-tls-verify: true}}]',
      'users: [{name: emu, user: {token: test}}]',
      `contexts: [{name: emu, context: {cluster: emu, user: emu, namespace: ${namespace}}}]`,
      'current-context: emu',
    ].join('\n');
  }

  // ——— fault injection ———
  /** Ends every open watch (clients resume from their resourceVersion). */
  dropWatches(): void {
    for (const w of this.#watches) w.res.end();
    this.#watches.clear();
  }
  /** Forgets the watch history: resuming from any earlier resourceVersion now gets 410 Gone. */
  compact(): void {
    this.#compactedRv = this.#rv;
    this.#history = [];
  }
  /** The next `count` requests whose "METHOD path" matches answer `status`. */
  failNext(match: RegExp, status: number, count = 1): void {
    this.#faults.push({ match, status, remaining: count });
  }

  // ——— in-process access for mock controllers and assertions ———
  defOf(apiVersion: string, kind: string): ResourceDef {
    const d = this.#defs.find((x) => gv(x) === apiVersion && x.kind === kind);
    if (!d) throw new Error(`no resource for ${apiVersion} ${kind}`);
    return d;
  }
  #key(d: ResourceDef, ns: string | undefined, name: string): string {
    return `${d.group}/${d.resource}/${d.namespaced ? (ns ?? 'default') : ''}/${name}`;
  }
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KObj | undefined {
    const d = this.defOf(apiVersion, kind);
    const s = this.#store.get(this.#key(d, namespace, name));
    return s ? this.#render(s) : undefined;
  }
  list(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): KObj[] {
    const d = this.defOf(apiVersion, kind);
    return this.#list(d, namespace, labelSelector ?? null, null).map((s) => this.#render(s));
  }
  /** Create or replace as a controller would (manager = its name); emits watch events. */
  put(obj: KObj, manager = 'test'): KObj {
    const d = this.defOf(obj.apiVersion, obj.kind);
    const existing = this.#store.get(this.#key(d, obj.metadata.namespace, obj.metadata.name));
    if (existing)
      return this.#render(this.#update(d, existing, clone(obj), manager, 'Update', existing.obj.metadata.resourceVersion as string, true));
    return this.#render(this.#create(d, clone(obj), manager));
  }
  /** Sets replicas through the scale subresource, as the HPA controller does. */
  scale(apiVersion: string, kind: string, namespace: string, name: string, replicas: number, manager: string): void {
    const d = this.defOf(apiVersion, kind);
    const s = this.#store.get(this.#key(d, namespace, name));
    if (s) this.#setScale(d, s, replicas, manager);
  }
  /** Deletes as the API would (finalizers respected, owners cascade). */
  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): void {
    const d = this.defOf(apiVersion, kind);
    const s = this.#store.get(this.#key(d, namespace, name));
    if (s) this.#delete(d, s);
  }

  // ——— HTTP ———
  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (this.requests.length > 5000) this.requests.splice(0, 1000);
    try {
      const fault = this.#faults.find((f) => f.remaining > 0 && f.match.test(`${req.method} ${url.pathname}`));
      if (fault) {
        fault.remaining--;
        throw new HttpError(fault.status, fault.status === 409 ? 'Conflict' : 'InternalError', 'injected fault');
      }
      const body = req.method === 'GET' || req.method === 'DELETE' ? await this.#body(req, true) : await this.#body(req, false);
      const r = await this.#route(req.method ?? 'GET', url, req.headers['content-type'] ?? '', body, res);
      if (r === undefined) return; // streaming
      res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body));
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, 'InternalError', (err as Error).message);
      if (!res.headersSent)
        res.writeHead(e.status, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Failure',
            message: e.message,
            reason: e.reason,
            code: e.status,
          }),
        );
      else res.end();
    }
  }

  async #body(req: IncomingMessage, optional: boolean): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return optional ? undefined : {};
    const ct = req.headers['content-type'] ?? '';
    try {
      return ct.includes('yaml') ? parseYaml(text) : JSON.parse(text);
    } catch {
      throw new HttpError(400, 'BadRequest', 'request body is not valid JSON/YAML');
    }
  }

  #discovery(path: string): unknown {
    if (path === '/api')
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }],
      };
    if (path === '/apis') {
      const groups = new Map<string, string[]>();
      for (const d of this.#defs) if (d.group) groups.set(d.group, [...new Set([...(groups.get(d.group) ?? []), d.version])]);
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [...groups].map(([name, versions]) => ({
          name,
          versions: versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v })),
          preferredVersion: { groupVersion: `${name}/${versions[0]}`, version: versions[0] },
        })),
      };
    }
    if (path === '/version') return { major: '1', minor: '33', gitVersion: 'v1.33.0-robustmq-emulator', platform: 'linux/amd64' };
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(path);
    if (!m) return undefined;
    const group = m[1] ? '' : m[2]!;
    const version = m[1] ?? m[3]!;
    const defs = this.#defs.filter((d) => d.group === group && d.version === version);
    if (defs.length === 0) return undefined;
    const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources: defs.flatMap((d) => [
        {
          name: d.resource,
          singularName: d.kind.toLowerCase(),
          namespaced: d.namespaced,
          kind: d.kind,
          verbs,
          ...(d.shortNames ? { shortNames: d.shortNames } : {}),
        },
        ...(d.status
          ? [{ name: `${d.resource}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: ['get', 'patch', 'update'] }]
          : []),
        ...(d.scale
          ? [
              {
                name: `${d.resource}/scale`,
                singularName: '',
                namespaced: d.namespaced,
                group: 'autoscaling',
                version: 'v1',
                kind: 'Scale',
                verbs: ['get', 'patch', 'update'],
              },
            ]
          : []),
        ...(d.resource === 'pods'
          ? [
              {
                name: 'pods/eviction',
                singularName: '',
                namespaced: true,
                group: 'policy',
                version: 'v1',
                kind: 'Eviction',
                verbs: ['create'],
              },
            ]
          : []),
      ]),
    };
  }

  async #route(
    method: string,
    url: URL,
    contentType: string,
    body: unknown,
    res: ServerResponse,
  ): Promise<{ status: number; body: unknown } | undefined> {
    const path = url.pathname.replace(/\/$/, '');
    if (method === 'GET') {
      const disc = this.#discovery(path);
      if (disc !== undefined) return { status: 200, body: disc };
      if (path.startsWith('/openapi')) throw new HttpError(404, 'NotFound', 'no OpenAPI document in the emulator (use --validate=false)');
    }
    const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
    if (!m) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    const group = m[1] ? '' : m[2]!;
    const version = m[1] ?? m[3]!;
    let ns = m[4];
    let resource = m[5]!;
    let name = m[6];
    let sub = m[7];
    // /api/v1/namespaces/<name> (a namespace itself)
    if (resource === undefined || (ns !== undefined && resource === undefined)) throw new HttpError(404, 'NotFound', path);
    if (group === '' && m[4] === undefined && resource === 'namespaces' && name !== undefined) {
      ns = undefined;
    }
    if (group === '' && m[4] !== undefined && resource === undefined) {
      resource = 'namespaces';
      name = m[4];
      sub = undefined;
    }
    const d = this.#defs.find((x) => x.group === group && x.version === version && x.resource === resource);
    if (!d) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${group}/${version} ${resource})`);
    const q = url.searchParams;
    const manager = q.get('fieldManager') ?? undefined;

    if (name === undefined) {
      if (method === 'GET' && q.get('watch') === 'true') return this.#watch(d, ns, q, res);
      if (method === 'GET') {
        const items = this.#list(d, ns, q.get('labelSelector'), q.get('fieldSelector')).map((s) => this.#render(s));
        return { status: 200, body: { kind: `${d.kind}List`, apiVersion: gv(d), metadata: { resourceVersion: String(this.#rv) }, items } };
      }
      if (method === 'POST') {
        const obj = body as KObj;
        if (!isObj(obj) || !isObj(obj.metadata)) throw new HttpError(400, 'BadRequest', 'object has no metadata');
        obj.metadata.namespace = d.namespaced ? (ns ?? obj.metadata.namespace ?? 'default') : undefined;
        return { status: 201, body: this.#render(this.#create(d, obj, manager ?? 'unknown')) };
      }
      throw new HttpError(405, 'MethodNotAllowed', `${method} on a collection`);
    }

    const key = this.#key(d, ns, name);
    const stored = this.#store.get(key);
    if (sub === 'eviction' && method === 'POST') return this.#evict(d, stored, name);
    if (sub !== undefined && sub !== 'status' && !(sub === 'scale' && d.scale))
      throw new HttpError(404, 'NotFound', `no subresource ${sub}`);

    if (method === 'GET') {
      if (!stored) throw new HttpError(404, 'NotFound', `${d.resource} "${name}" not found`);
      return { status: 200, body: sub === 'scale' ? this.#scaleOf(d, stored.obj) : this.#render(stored) };
    }
    if (method === 'DELETE') {
      if (!stored) throw new HttpError(404, 'NotFound', `${d.resource} "${name}" not found`);
      const after = this.#delete(d, stored);
      return {
        status: 200,
        body: after ? this.#render(after) : { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: d.resource } },
      };
    }
    if (method === 'PUT') {
      if (!stored) throw new HttpError(404, 'NotFound', `${d.resource} "${name}" not found`);
      const obj = body as KObj;
      if (sub === 'scale')
        return {
          status: 200,
          body: this.#scaleOf(
            d,
            this.#setScale(d, stored, (obj as { spec?: { replicas?: number } }).spec?.replicas ?? 0, manager ?? 'unknown'),
          ),
        };
      const rv = obj.metadata?.resourceVersion;
      return { status: 200, body: this.#render(this.#update(d, stored, obj, manager ?? 'unknown', 'Update', rv, false, sub)) };
    }
    if (method === 'PATCH') {
      if (contentType.startsWith('application/apply-patch')) {
        if (!manager) throw new HttpError(400, 'BadRequest', 'fieldManager is required for apply requests');
        return {
          status: stored ? 200 : 201,
          body: this.#render(this.#apply(d, ns, name, stored, body as KObj, manager, q.get('force') === 'true', sub)),
        };
      }
      if (!stored) throw new HttpError(404, 'NotFound', `${d.resource} "${name}" not found`);
      let next: unknown;
      const base = sub === 'scale' ? this.#scaleOf(d, stored.obj) : clone(stored.obj);
      if (contentType.startsWith('application/merge-patch+json')) next = mergePatch(base, body);
      else if (contentType.startsWith('application/strategic-merge-patch+json')) next = strategicMerge(base, body);
      else if (contentType.startsWith('application/json-patch+json')) next = jsonPatch(base, body as JsonOp[]);
      else throw new HttpError(415, 'UnsupportedMediaType', `unsupported patch type ${contentType}`);
      if (sub === 'scale')
        return {
          status: 200,
          body: this.#scaleOf(d, this.#setScale(d, stored, (next as { spec: { replicas: number } }).spec.replicas, manager ?? 'unknown')),
        };
      const rv = (body as KObj)?.metadata?.resourceVersion;
      return { status: 200, body: this.#render(this.#update(d, stored, next as KObj, manager ?? 'unknown', 'Update', rv, false, sub)) };
    }
    throw new HttpError(405, 'MethodNotAllowed', method);
  }

  #list(d: ResourceDef, ns: string | undefined, labels: string | null, fields: string | null): Stored[] {
    const reqs = parseLabelSelector(labels);
    const prefix = `${d.group}/${d.resource}/`;
    return [...this.#store.entries()]
      .filter(
        ([k, s]) =>
          k.startsWith(prefix) &&
          (ns === undefined || s.obj.metadata.namespace === ns) &&
          matchesLabels(s.obj.metadata.labels, reqs) &&
          matchesFields(s.obj, fields),
      )
      .map(([, s]) => s)
      .sort((a, b) => (a.obj.metadata.name < b.obj.metadata.name ? -1 : 1));
  }

  #render(s: Stored): KObj {
    const o = clone(s.obj);
    o.metadata.managedFields = s.owners.map((w) => ({
      manager: w.manager,
      operation: w.operation,
      apiVersion: o.apiVersion,
      time: w.time,
      fieldsType: 'FieldsV1',
      fieldsV1: fieldsV1(w.paths),
      ...(w.subresource ? { subresource: w.subresource } : {}),
    }));
    return o;
  }

  #emit(type: WatchEvent['type'], d: ResourceDef, obj: KObj, rv: number): void {
    const ev: WatchEvent = { type, object: clone(obj), rv, def: d };
    this.#history.push(ev);
    if (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.splice(0, this.#history.length - this.#historyLimit);
      this.#compactedRv = dropped[dropped.length - 1]!.rv;
    }
    for (const w of this.#watches) if (this.#watchMatches(w, ev)) this.#send(w, ev);
    this.emit('event', ev);
  }

  #watchMatches(w: WatchClient, ev: WatchEvent): boolean {
    return (
      ev.def === w.def &&
      (w.namespace === undefined || ev.object.metadata.namespace === w.namespace) &&
      matchesLabels(ev.object.metadata.labels, w.labels) &&
      matchesFields(ev.object, w.fields)
    );
  }

  #send(w: WatchClient, ev: WatchEvent): void {
    const s = this.#store.get(this.#key(ev.def, ev.object.metadata.namespace, ev.object.metadata.name));
    const object = s && ev.type !== 'DELETED' && s.obj.metadata.resourceVersion === String(ev.rv) ? this.#render(s) : ev.object;
    w.res.write(`${JSON.stringify({ type: ev.type, object })}\n`);
  }

  #watch(d: ResourceDef, ns: string | undefined, q: URLSearchParams, res: ServerResponse): undefined {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: WatchClient = {
      def: d,
      namespace: ns,
      labels: parseLabelSelector(q.get('labelSelector')),
      fields: q.get('fieldSelector'),
      res,
    };
    const from = Number(q.get('resourceVersion') || '0');
    if (from > 0 && from < this.#compactedRv) {
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${this.#compactedRv})`, reason: 'Expired', code: 410 } })}\n`,
      );
      return undefined;
    }
    if (from > 0) for (const ev of this.#history) if (ev.rv > from && this.#watchMatches(w, ev)) this.#send(w, ev);
    if (from === 0)
      for (const s of this.#list(d, ns, q.get('labelSelector'), q.get('fieldSelector')))
        w.res.write(`${JSON.stringify({ type: 'ADDED', object: this.#render(s) })}\n`);
    this.#watches.add(w);
    const timeout = Number(q.get('timeoutSeconds') || '0');
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      clearTimeout(timer);
      this.#watches.delete(w);
    });
    return undefined;
  }

  #defaults(d: ResourceDef, o: KObj): void {
    const spec = (o.spec ??= {}) as Record<string, unknown>;
    if (d.kind === 'Deployment' || d.kind === 'StatefulSet') spec.replicas ??= 1;
    if (d.kind === 'StatefulSet') spec.podManagementPolicy ??= 'OrderedReady';
    if (d.kind === 'Service') {
      spec.type ??= 'ClusterIP';
      if (spec.clusterIP === undefined) spec.clusterIP = `10.96.${Math.floor(this.#rv / 250) % 250}.${(this.#rv % 250) + 1}`;
    }
    if (
      ![
        'Deployment',
        'StatefulSet',
        'Service',
        'Pod',
        'PersistentVolumeClaim',
        'PodDisruptionBudget',
        'HorizontalPodAutoscaler',
        'Lease',
        'CustomResourceDefinition',
      ].includes(d.kind) &&
      !isObj(o.spec)
    )
      delete o.spec;
    if (
      isObj(o.spec) &&
      Object.keys(o.spec).length === 0 &&
      ['ConfigMap', 'Secret', 'Event', 'ServiceAccount', 'ClusterRole'].includes(d.kind)
    )
      delete o.spec;
    if (d.kind === 'Secret' && isObj(o.stringData)) {
      const data = (o.data ?? {}) as Record<string, string>;
      for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
      o.data = data;
      delete o.stringData;
    }
    if (d.kind === 'Lease' && isObj(o.spec)) {
      for (const f of ['acquireTime', 'renewTime'])
        if (o.spec[f] !== undefined && o.spec[f] !== null && !MICRO_TIME.test(String(o.spec[f])))
          throw new HttpError(
            400,
            'BadRequest',
            `Lease.spec.${f}: ${String(o.spec[f])} is not a MicroTime (RFC 3339 with 6 fractional digits)`,
          );
    }
  }

  #create(d: ResourceDef, obj: KObj, manager: string): Stored {
    const md = obj.metadata;
    if (!md.name && typeof md.generateName === 'string') md.name = `${md.generateName}${randomUUID().slice(0, 5)}`;
    if (!md.name) throw new HttpError(422, 'Invalid', 'metadata.name is required');
    if (d.namespaced) md.namespace ??= 'default';
    else delete md.namespace;
    const key = this.#key(d, md.namespace, md.name);
    if (this.#store.has(key)) throw new HttpError(409, 'AlreadyExists', `${d.resource} "${md.name}" already exists`);
    this.#defaults(d, obj);
    const rv = ++this.#rv;
    md.uid = randomUUID();
    md.resourceVersion = String(rv);
    md.creationTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    md.generation = 1;
    delete md.managedFields;
    delete md.deletionTimestamp;
    obj.apiVersion = gv(d);
    obj.kind = d.kind;
    const s: Stored = {
      obj,
      owners: [
        {
          manager,
          operation: 'Update',
          subresource: '',
          paths: new Set(fieldPaths(stripForOwnership(obj))),
          time: md.creationTimestamp as string,
        },
      ],
    };
    this.#store.set(key, s);
    if (d.kind === 'CustomResourceDefinition') this.#registerCrd(obj);
    this.#emit('ADDED', d, obj, rv);
    return s;
  }

  #registerCrd(crd: KObj): void {
    const spec = crd.spec as {
      group: string;
      names: { plural: string; kind: string; shortNames?: string[] };
      scope: string;
      versions: { name: string; subresources?: { status?: object; scale?: ResourceDef['scale'] } }[];
    };
    for (const v of spec.versions) {
      if (this.#defs.some((x) => x.group === spec.group && x.version === v.name && x.resource === spec.names.plural)) continue;
      this.#defs.push({
        group: spec.group,
        version: v.name,
        resource: spec.names.plural,
        kind: spec.names.kind,
        namespaced: spec.scope === 'Namespaced',
        ...(spec.names.shortNames ? { shortNames: spec.names.shortNames } : {}),
        status: v.subresources?.status !== undefined,
        ...(v.subresources?.scale ? { scale: v.subresources.scale } : {}),
      });
    }
  }

  /**
   * A write of a whole object by `manager`. For kinds with a status subresource, a write to
   * the main resource keeps the stored status and a write to /status keeps everything else.
   */
  #update(
    d: ResourceDef,
    s: Stored,
    next: KObj,
    manager: string,
    operation: 'Update' | 'Apply',
    rv: string | undefined,
    internal: boolean,
    sub?: string,
  ): Stored {
    const cur = s.obj;
    if (rv !== undefined && rv !== '' && rv !== cur.metadata.resourceVersion)
      throw new HttpError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${d.resource} "${cur.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    const n = clone(next);
    n.apiVersion = gv(d);
    n.kind = d.kind;
    const keepMeta = ['uid', 'creationTimestamp', 'generation', 'deletionTimestamp', 'namespace', 'name'];
    n.metadata = { ...(n.metadata ?? {}), name: cur.metadata.name } as KObj['metadata'];
    for (const k of keepMeta) if (cur.metadata[k] !== undefined) n.metadata[k] = cur.metadata[k];
    if (!d.namespaced) delete n.metadata.namespace;
    delete n.metadata.managedFields;
    if (d.status && !internal) {
      if (sub === 'status') {
        const status = n.status;
        Object.assign(n, clone(cur), { status });
        n.metadata = clone(cur.metadata);
      } else if (cur.status !== undefined) n.status = clone(cur.status);
      else delete n.status;
    }
    this.#defaults(d, n);
    // Deletion in progress: once the last finalizer goes, the object goes.
    if (cur.metadata.deletionTimestamp !== undefined && ((n.metadata.finalizers as string[] | undefined) ?? []).length === 0) {
      s.obj = n;
      this.#finalDelete(d, s);
      return s;
    }
    const changedPaths = diffPaths(stripForOwnership(cur), stripForOwnership(n));
    if (
      changedPaths.length === 0 &&
      JSON.stringify(cur) === JSON.stringify({ ...n, metadata: { ...n.metadata, resourceVersion: cur.metadata.resourceVersion } })
    )
      return s;
    const specChanged = JSON.stringify(withoutMetaStatus(cur)) !== JSON.stringify(withoutMetaStatus(n));
    n.metadata.generation = (cur.metadata.generation as number) + (specChanged ? 1 : 0);
    const newRv = ++this.#rv;
    n.metadata.resourceVersion = String(newRv);
    s.obj = n;
    if (operation === 'Update') {
      const mine = changedPaths.filter((p) => getPath(stripForOwnership(n), JSON.parse(p) as string[]) !== undefined);
      for (const w of s.owners) for (const p of changedPaths) w.paths.delete(p);
      let w = s.owners.find((x) => x.manager === manager && x.operation === 'Update' && x.subresource === (sub ?? ''));
      if (!w && mine.length > 0) s.owners.push((w = { manager, operation: 'Update', subresource: sub ?? '', paths: new Set(), time: '' }));
      if (w) {
        for (const p of mine) w.paths.add(p);
        w.time = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      }
      s.owners = s.owners.filter((x) => x.paths.size > 0);
    }
    this.#emit('MODIFIED', d, n, newRv);
    return s;
  }

  /** Server-side apply: field ownership per manager, conflicts, removal of fields no longer applied. */
  #apply(
    d: ResourceDef,
    ns: string | undefined,
    name: string,
    s: Stored | undefined,
    applied: KObj,
    manager: string,
    force: boolean,
    sub?: string,
  ): Stored {
    if (!isObj(applied) || !isObj(applied.metadata)) throw new HttpError(400, 'BadRequest', 'apply body has no metadata');
    if (applied.metadata.name !== undefined && applied.metadata.name !== name)
      throw new HttpError(400, 'BadRequest', 'name in body and URL differ');
    const body = clone(applied);
    if (d.status) {
      if (sub === 'status')
        for (const k of Object.keys(body)) if (!['apiVersion', 'kind', 'metadata', 'status'].includes(k)) Reflect.deleteProperty(body, k);
      if (sub !== 'status') delete body.status;
    }
    if (d.kind === 'Secret' && isObj(body.stringData)) {
      body.data = {
        ...((body.data as object) ?? {}),
        ...Object.fromEntries(Object.entries(body.stringData).map(([k, v]) => [k, Buffer.from(String(v)).toString('base64')])),
      };
      delete body.stringData;
    }
    const paths = new Set(fieldPaths(stripForOwnership(body)));
    if (s === undefined) {
      if (sub) throw new HttpError(404, 'NotFound', `${d.resource} "${name}" not found`);
      body.metadata.name = name;
      if (d.namespaced) body.metadata.namespace = ns ?? 'default';
      const created = this.#create(d, body, manager);
      created.owners = [{ manager, operation: 'Apply', subresource: '', paths, time: created.obj.metadata.creationTimestamp as string }];
      return created;
    }
    const cur = stripForOwnership(s.obj);
    const conflicts: string[] = [];
    for (const w of s.owners) {
      if (w.manager === manager && w.operation === 'Apply') continue;
      for (const p of paths) {
        if (!w.paths.has(p)) continue;
        const path = JSON.parse(p) as string[];
        if (JSON.stringify(getPath(cur, path)) !== JSON.stringify(getPath(body, path))) {
          if (force) w.paths.delete(p);
          else conflicts.push(`conflict with "${w.manager}" using ${s.obj.apiVersion}: .${path.join('.')}`);
        } else if (force) {
          // shared ownership stays
        }
      }
    }
    if (conflicts.length > 0)
      throw new HttpError(409, 'Conflict', `Apply failed with ${conflicts.length} conflict(s): ${conflicts.join('; ')}`);
    const next = clone(s.obj);
    let me = s.owners.find((w) => w.manager === manager && w.operation === 'Apply' && w.subresource === (sub ?? ''));
    for (const p of me?.paths ?? []) {
      if (paths.has(p)) continue;
      if (s.owners.some((w) => w !== me && w.paths.has(p))) continue;
      deletePath(next, JSON.parse(p) as string[]);
    }
    deepMerge(next as Record<string, unknown>, body as Record<string, unknown>);
    if (!me) s.owners.push((me = { manager, operation: 'Apply', subresource: sub ?? '', paths, time: '' }));
    me.paths = paths;
    me.time = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    s.owners = s.owners.filter((w) => w.paths.size > 0);
    return this.#update(d, s, next, manager, 'Apply', undefined, true, sub);
  }

  #scaleOf(d: ResourceDef, o: KObj): KObj {
    const sc = d.scale!;
    const at = (p: string | undefined) => (p ? getPath(o, p.replace(/^\./, '').split('.')) : undefined);
    return {
      apiVersion: 'autoscaling/v1',
      kind: 'Scale',
      metadata: {
        name: o.metadata.name,
        namespace: o.metadata.namespace,
        resourceVersion: o.metadata.resourceVersion,
        uid: o.metadata.uid,
      },
      spec: { replicas: (at(sc.specReplicasPath) as number) ?? 0 },
      status: { replicas: (at(sc.statusReplicasPath) as number) ?? 0, selector: (at(sc.labelSelectorPath) as string) ?? selectorString(o) },
    };
  }

  #setScale(d: ResourceDef, s: Stored, replicas: number, manager: string): KObj {
    const next = clone(s.obj);
    const path = d.scale!.specReplicasPath.replace(/^\./, '').split('.');
    let cur = next as Record<string, unknown>;
    for (const p of path.slice(0, -1)) cur = (cur[p] ??= {}) as Record<string, unknown>;
    cur[path[path.length - 1]!] = replicas;
    return this.#update(d, s, next, manager, 'Update', undefined, true, 'scale').obj;
  }

  /** Returns the object if it lingers (finalizers), undefined when gone. */
  #delete(d: ResourceDef, s: Stored): Stored | undefined {
    const fin = (s.obj.metadata.finalizers as string[] | undefined) ?? [];
    if (fin.length > 0) {
      if (s.obj.metadata.deletionTimestamp === undefined) {
        const n = clone(s.obj);
        n.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        n.metadata.deletionGracePeriodSeconds = 0;
        const rv = ++this.#rv;
        n.metadata.resourceVersion = String(rv);
        s.obj = n;
        this.#emit('MODIFIED', d, n, rv);
      }
      return s;
    }
    this.#finalDelete(d, s);
    return undefined;
  }

  #finalDelete(d: ResourceDef, s: Stored): void {
    this.#store.delete(this.#key(d, s.obj.metadata.namespace, s.obj.metadata.name));
    const rv = ++this.#rv;
    s.obj.metadata.resourceVersion = String(rv);
    this.#emit('DELETED', d, s.obj, rv);
    // Background garbage collection: dependents of the deleted owner go too.
    const uid = s.obj.metadata.uid;
    for (const [, dep] of [...this.#store]) {
      const refs = (dep.obj.metadata.ownerReferences as { uid: string }[] | undefined) ?? [];
      if (refs.some((r) => r.uid === uid)) {
        const dd = this.defOf(dep.obj.apiVersion, dep.obj.kind);
        if (this.#store.has(this.#key(dd, dep.obj.metadata.namespace, dep.obj.metadata.name))) this.#delete(dd, dep);
      }
    }
  }

  /** pods/eviction: allowed only while every PDB selecting the pod has a disruption to spare. */
  #evict(d: ResourceDef, s: Stored | undefined, name: string): { status: number; body: unknown } {
    if (!s) throw new HttpError(404, 'NotFound', `pods "${name}" not found`);
    const pod = s.obj;
    const podReady = isReady(pod);
    const pdbs = this.list('policy/v1', 'PodDisruptionBudget', pod.metadata.namespace).filter((p) =>
      matchesSelector(pod.metadata.labels, (p.spec as { selector?: never }).selector),
    );
    for (const pdb of pdbs) {
      const spec = pdb.spec as {
        maxUnavailable?: number | string;
        minAvailable?: number | string;
        selector: never;
        unhealthyPodEvictionPolicy?: string;
      };
      if (!podReady && spec.unhealthyPodEvictionPolicy === 'AlwaysAllow') continue;
      const pods = this.list('v1', 'Pod', pod.metadata.namespace).filter((p) => matchesSelector(p.metadata.labels, spec.selector));
      const expected = pods.length;
      const healthy = pods.filter(isReady).length;
      const abs = (v: number | string) => (typeof v === 'number' ? v : Math.ceil((Number(v.replace('%', '')) * expected) / 100));
      const desiredHealthy = spec.minAvailable !== undefined ? abs(spec.minAvailable) : expected - abs(spec.maxUnavailable ?? 0);
      const allowed = healthy - desiredHealthy - (podReady ? 0 : 0);
      if (allowed <= 0 && (podReady || spec.unhealthyPodEvictionPolicy !== 'AlwaysAllow'))
        throw new HttpError(
          429,
          'TooManyRequests',
          `Cannot evict pod as it would violate the pod's disruption budget ${pdb.metadata.name}`,
        );
    }
    this.#delete(d, s);
    return { status: 201, body: { kind: 'Status', apiVersion: 'v1', status: 'Success', code: 201 } };
  }
}

type JsonOp = { op: string; path: string; value?: unknown };
function jsonPatch(doc: unknown, ops: JsonOp[]): unknown {
  const out = clone(doc) as Record<string, unknown>;
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let cur: Record<string, unknown> | unknown[] = out;
    for (const p of parts) cur = (Array.isArray(cur) ? cur[Number(p)] : cur[p]) as Record<string, unknown>;
    if (op.op === 'remove') {
      if (Array.isArray(cur)) cur.splice(Number(last), 1);
      else Reflect.deleteProperty(cur, last);
    } else if (op.op === 'add' || op.op === 'replace') {
      if (Array.isArray(cur)) {
        if (last === '-') cur.push(op.value);
        else if (op.op === 'add') cur.splice(Number(last), 0, op.value);
        else cur[Number(last)] = op.value;
      } else cur[last] = op.value;
    } else if (op.op === 'test') {
      const v = Array.isArray(cur) ? cur[Number(last)] : cur[last];
      if (JSON.stringify(v) !== JSON.stringify(op.value)) throw new HttpError(422, 'Invalid', `test failed at ${op.path}`);
    }
  }
  return out;
}

function stripForOwnership(o: KObj): Record<string, unknown> {
  const c = clone(o) as Record<string, unknown>;
  delete c.apiVersion;
  delete c.kind;
  const md = { ...(c.metadata as Record<string, unknown>) };
  for (const k of [
    'name',
    'namespace',
    'uid',
    'resourceVersion',
    'creationTimestamp',
    'generation',
    'managedFields',
    'deletionTimestamp',
    'deletionGracePeriodSeconds',
    'generateName',
  ])
    Reflect.deleteProperty(md, k);
  c.metadata = md;
  if (Object.keys(md).length === 0) delete c.metadata;
  return c;
}
function withoutMetaStatus(o: KObj): Record<string, unknown> {
  const { metadata: _m, status: _s, ...rest } = o;
  return rest;
}
function diffPaths(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const all = new Set([...fieldPaths(a), ...fieldPaths(b)]);
  return [...all].filter((p) => {
    const path = JSON.parse(p) as string[];
    return JSON.stringify(getPath(a, path)) !== JSON.stringify(getPath(b, path));
  });
}
function selectorString(o: KObj): string {
  const ml = ((o.spec as { selector?: { matchLabels?: Record<string, string> } })?.selector?.matchLabels ?? {}) as Record<string, string>;
  return Object.entries(ml)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
export function isReady(pod: KObj): boolean {
  return ((pod.status as { conditions?: { type: string; status: string }[] })?.conditions ?? []).some(
    (c) => c.type === 'Ready' && c.status === 'True',
  );
}
