import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger, Registry } from '@robustmq/common';
import { ErrorCode, RobustError } from '@robustmq/common';
import { Broker, BrokerMembership, openClusterStores, type BrokerRegistration } from '@robustmq/broker';
import { meta as metaProto } from '@robustmq/proto';
import { GrpcMetaClient, GrpcRaftTransport, MetaNode, createMetaService, type MetaClient } from '@robustmq/meta';
import { GrpcJournalClient, Journal, createJournalService, type JournalClient } from '@robustmq/journal';
import { journal as journalProto } from '@robustmq/proto';
import { registerMetaRoutes } from './meta-http.js';
import { registerBindingRoutes } from './bindings-http.js';
import { registerBrokerRoutes } from './brokers-http.js';
import { VERSION } from './cli.js';
import { brokerSecurityOptions, loadAdminTokens, registerSecurityRoutes } from './security-http.js';
import type { Config } from './config.js';
import { DataDir } from './data-dir.js';
import { AdminHttp } from './admin-http.js';
import { GrpcServer, type GrpcService } from './grpc-server.js';

/** Start-up failed; `problems` lists every reason (ports in use, data dir, …). */
export class StartupError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`cannot start:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'StartupError';
    this.problems = problems;
  }
}

/** A role's piece of the process: started after every listener is bound, stopped in reverse. */
interface RoleRuntime {
  name: string;
  /** undefined when ready, otherwise why not */
  readiness(): string | undefined;
  stop(graceMs: number): Promise<void>;
}

/**
 * One robust-server process: the roles it runs, the admin HTTP server and the gRPC server.
 *
 * How start-up works: every check that can fail (data directory, each listener's port) runs
 * before any role starts, all of them, so one message can list every problem; anything already
 * bound is closed again when one of them fails.
 */
export class RobustNode {
  readonly config: Config;
  readonly #log: Logger;
  readonly #registry: Registry;
  #dataDir: DataDir | undefined;
  #http: AdminHttp | undefined;
  #grpc: GrpcServer | undefined;
  #broker: Broker | undefined;
  #meta: MetaNode | undefined;
  #journal: Journal | undefined;
  #raftTransport: GrpcRaftTransport | undefined;
  /** Meta and journal over gRPC, for a node that does not run that role (meta.endpoints, journal.endpoint). */
  #remoteMeta: GrpcMetaClient | undefined;
  #remoteJournal: GrpcJournalClient | undefined;
  /** The broker's registration in meta and its view of the live brokers. */
  #membership: BrokerMembership | undefined;
  readonly #podName: string | undefined;
  readonly #startedAt = new Date().toISOString();
  readonly #roles: RoleRuntime[] = [];
  #stopping = false;
  /** Resolves once every role of this process has started (stores wait for meta and journal). */
  #started: () => void = () => undefined;
  #startFailed: (err: Error) => void = () => undefined;
  readonly #whenStarted = new Promise<void>((resolve, reject) => {
    this.#started = resolve;
    this.#startFailed = reject;
  });
  ports: Record<string, number> = {};

  /** `podName`: the Kubernetes pod name (POD_NAME), the name this broker registers under; default the host name. */
  constructor(config: Config, log: Logger, registry: Registry, opts: { podName?: string | undefined } = {}) {
    this.config = config;
    this.#log = log;
    this.#registry = registry;
    this.#podName = opts.podName;
  }

  /** Per role: undefined when ready, else the reason. */
  readiness(): Record<string, string | undefined> {
    const out: Record<string, string | undefined> = {};
    for (const role of this.config.roles) {
      const rt = this.#roles.find((r) => r.name === role);
      out[role] = this.#stopping ? 'shutting down' : rt === undefined ? 'starting' : rt.readiness();
    }
    return out;
  }

  async start(): Promise<Record<string, number>> {
    const c = this.config;
    const problems: string[] = [];
    try {
      this.#dataDir = DataDir.open(c.dataDir);
    } catch (err) {
      problems.push((err as Error).message);
    }
    const has = (r: string): boolean => (c.roles as readonly string[]).includes(r);
    if (!has('meta') && c.meta.endpoints.trim() !== '') {
      this.#remoteMeta = new GrpcMetaClient(
        c.meta.endpoints
          .split(',')
          .map((e) => e.trim())
          .filter((e) => e !== ''),
      );
    }
    if (has('broker') && !has('journal') && c.journal.endpoint !== '') this.#remoteJournal = new GrpcJournalClient(c.journal.endpoint);
    // The admin API under /api/v1 takes a bearer token, localhost included; the first one is made now.
    const tokens =
      this.#dataDir === undefined
        ? undefined
        : loadAdminTokens(c.auth.adminTokenFile || join(this.#dataDir.path, 'admin-token'), this.#log);
    this.#http = new AdminHttp({
      authorize: tokens ?? (() => false),
      host: c.bindHost,
      port: c.httpPort,
      log: this.#log.child({ component: 'http' }),
      registry: this.#registry,
      readiness: () => this.readiness(),
    });
    const binds: { name: string; bind: () => Promise<number> }[] = [{ name: 'http', bind: () => (this.#http as AdminHttp).listen() }];
    const services: GrpcService[] = [];
    if (has('meta')) {
      const transport = new GrpcRaftTransport({
        nodeId: c.nodeId,
        clusterId: () => this.#meta?.clusterId ?? '',
        log: this.#log.child({ component: 'meta' }),
      });
      this.#raftTransport = transport;
      const client = this.metaClient();
      services.push({
        definition: metaProto.MetaService,
        implementation: createMetaService(client, () => ({ roles: [...c.roles], ready: this.#allReady() }), this.#log),
      });
      services.push({ definition: metaProto.MetaRaftService, implementation: transport.service() });
      registerMetaRoutes(this.#http, () => client);
      registerSecurityRoutes(this.#http, () => client);
      registerBindingRoutes(this.#http, () => client);
    }
    if (has('meta') || this.#remoteMeta !== undefined) registerBrokerRoutes(this.#http, () => this.metaClient());
    if (has('journal'))
      services.push({ definition: journalProto.JournalService, implementation: createJournalService(this.journalClient()) });
    if (has('meta') || has('journal')) {
      const grpc = new GrpcServer({
        host: c.bindHost,
        port: c.grpcPort,
        log: this.#log.child({ component: 'grpc' }),
        services,
        serving: () => {
          const r = this.readiness();
          const all = Object.values(r).every((x) => x === undefined);
          return {
            '': all,
            ...(has('meta') ? { 'robustmq.meta.Meta': r.meta === undefined } : {}),
            ...(has('journal') ? { 'robustmq.journal.Journal': r.journal === undefined } : {}),
          };
        },
      });
      this.#grpc = grpc;
      binds.push({ name: 'grpc', bind: () => grpc.listen() });
    }
    if (has('broker')) {
      // The registration is revoked while the node stops, so it talks to meta past `#stopping`.
      this.#membership = new BrokerMembership({
        meta: this.#remoteMeta ?? this.#local('meta', () => this.#meta, ErrorCode.NotLeader, false),
        log: this.#log.child({ component: 'membership' }),
        ttlMs: c.broker.registrationTtlMs,
        self: () => this.#registration(),
      });
      const broker = new Broker({
        host: c.bindHost,
        mqttPort: c.mqttPort,
        kafkaPort: c.kafkaPort,
        kafkaTlsPort: c.kafkaTlsPort,
        log: this.#log.child({ component: 'broker' }),
        registry: this.#registry,
        // Sessions in meta, inboxes and retained messages in the journal (DESIGN §2). The
        // stores keep writing while the node stops: the broker stops before the journal and
        // meta, and its last writes (wills, sessions, inboxes of closed connections) must land.
        mqttStores: () =>
          this.#whenStarted.then(() =>
            retrying(
              () =>
                openClusterStores(
                  this.#remoteMeta ?? this.#local('meta', () => this.#meta, ErrorCode.NotLeader, false),
                  this.#remoteJournal ?? this.#local('journal', () => this.#journal, ErrorCode.ShuttingDown, false),
                ),
              () => this.#stopping,
            ),
          ),
        ...(has('meta') || this.#remoteMeta !== undefined ? { meta: this.metaClient() } : {}),
        ...(has('journal') || this.#remoteJournal !== undefined ? { journal: this.journalClient() } : {}),
        cluster: this.#membership,
        ...brokerSecurityOptions(c),
        mqtt: { ...c.mqtt, drainTimeoutMs: c.limits.drainTimeoutMs },
        kafka: c.kafka,
        nodeId: c.nodeId,
        advertiseHost: advertiseHost(c),
      });
      this.#broker = broker;
      for (const l of broker.listeners) binds.push({ name: l.name, bind: () => l.listen() });
    }
    const results = await Promise.allSettled(binds.map((b) => b.bind()));
    results.forEach((r, i) => {
      const name = (binds[i] as { name: string }).name;
      if (r.status === 'fulfilled') this.ports[name] = r.value;
      else problems.push(r.reason instanceof RobustError ? r.reason.message : `${name}: ${String(r.reason)}`);
    });
    if (problems.length > 0) {
      await this.#closeListeners(0);
      this.#closeRemoteClients();
      this.#dataDir?.release();
      throw new StartupError(problems);
    }
    const dataDir = this.#dataDir as DataDir;
    // Roles start in dependency order: meta, then journal, then broker.
    if (has('meta')) {
      const address = `${advertiseHost(c)}:${this.ports.grpc}`;
      this.#raftTransport?.setSelfAddress(address);
      const peers = parsePeers(c.meta.peers);
      try {
        this.#meta = await MetaNode.open({
          nodeId: c.nodeId,
          dir: dataDir.sub('meta'),
          log: this.#log.child({ component: 'meta' }),
          registry: this.#registry,
          transport: this.#raftTransport as GrpcRaftTransport,
          address,
          ...(c.meta.join ? { join: true } : { initialMembers: peers.size > 0 ? peers : new Map([[c.nodeId, address]]) }),
          ...(c.meta.clusterId !== '' ? { clusterId: c.meta.clusterId } : {}),
          sessionGroups: c.meta.sessionGroups,
          offsetGroups: c.meta.offsetGroups,
          tickMs: c.meta.tickMs,
          electionTick: c.meta.electionTicks,
          snapshotEntries: c.meta.snapshotEntries,
          proposalTimeoutMs: c.meta.proposalTimeoutMs,
        });
      } catch (err) {
        await this.#closeListeners(0);
        this.#dataDir?.release();
        throw new StartupError([`meta: ${(err as Error).message}`]);
      }
      const metaNode = this.#meta;
      this.#roles.push({ name: 'meta', readiness: () => metaNode.readinessReason(), stop: () => metaNode.close() });
    }
    if (has('journal')) {
      const { endpoint: _endpoint, ...journalConfig } = c.journal;
      const journal = new Journal({
        dataDir: dataDir.sub('journal'),
        logger: this.#log.child({ component: 'journal' }),
        registry: this.#registry,
        config: journalConfig,
      });
      try {
        await journal.open();
      } catch (err) {
        await this.#meta?.close();
        await this.#closeListeners(0);
        this.#dataDir?.release();
        throw new StartupError([`journal: ${(err as Error).message}`]);
      }
      this.#journal = journal;
      this.#roles.push({
        name: 'journal',
        readiness: () => undefined,
        stop: async () => {
          await journal.close();
          this.#log.info('journal stopped');
        },
      });
    }
    if (this.#broker !== undefined) {
      const broker = this.#broker;
      const membership = this.#membership as BrokerMembership;
      let storesOpen = false;
      broker.ready().then(
        () => (storesOpen = true),
        () => undefined,
      );
      this.#roles.push({
        name: 'broker',
        readiness: () =>
          !storesOpen ? 'opening MQTT session and message stores' : membership.isRegistered() ? undefined : 'registering in meta',
        stop: async (graceMs) => {
          // Leave the cluster before the listeners close: other brokers take the groups over and
          // the operator sees the registration go at once (lease revoked, not expired).
          await membership.stop();
          await broker.close(graceMs);
        },
      });
      membership.start();
    }
    this.#started();
    this.#grpc?.notify();
    return this.ports;
  }

  /** The MetaClient of this process: the local MetaNode (calls before it opened fail retriably), or meta over gRPC. */
  metaClient(): MetaClient {
    return this.#remoteMeta ?? this.#local('meta', () => this.#meta, ErrorCode.NotLeader);
  }

  /** The JournalClient of this process: the local Journal (calls before it opened fail retriably), or the journal over gRPC. */
  journalClient(): JournalClient {
    return this.#remoteJournal ?? this.#local('journal', () => this.#journal, ErrorCode.ShuttingDown);
  }

  /** What this broker registers in meta: `ports` holds every bound listener (camelCase names). */
  #registration(): BrokerRegistration {
    const c = this.config;
    const ports: Record<string, number> = {};
    for (const [name, port] of Object.entries(this.ports)) ports[name.replace(/-([a-z])/g, (_m, ch: string) => ch.toUpperCase())] = port;
    return {
      nodeId: c.nodeId,
      name: this.#podName || hostname(),
      host: advertiseHost(c),
      ports,
      version: VERSION,
      startedAt: this.#startedAt,
    };
  }

  #closeRemoteClients(): void {
    this.#remoteMeta?.close();
    this.#remoteJournal?.close();
  }

  /**
   * An interface whose calls go to a role's object once it is open: components are wired
   * before the roles start, and a call made too early or during shutdown fails retriably.
   */
  #local<T extends object>(role: string, target: () => object | undefined, startingCode: ErrorCode, refuseWhenStopping = true): T {
    return new Proxy({} as T, {
      get: (_t, prop: string) => {
        return (...args: unknown[]) => {
          const obj = target();
          if (obj === undefined || (this.#stopping && refuseWhenStopping)) {
            throw new RobustError(
              this.#stopping ? ErrorCode.ShuttingDown : startingCode,
              `${role} is ${this.#stopping ? 'shutting down' : 'starting'}`,
              {
                retriable: true,
              },
            );
          }
          return (obj as Record<string, (...a: unknown[]) => unknown>)[prop]?.apply(obj, args);
        };
      },
    });
  }

  #allReady(): boolean {
    return Object.values(this.readiness()).every((r) => r === undefined);
  }

  async #closeListeners(graceMs: number): Promise<void> {
    // Whatever waited for the start (the MQTT stores) gives up now.
    this.#startFailed(new RobustError(ErrorCode.ShuttingDown, 'start-up failed'));
    await Promise.all([this.#http?.close(), this.#grpc?.close(graceMs), this.#broker?.close(graceMs)]);
  }

  /**
   * Graceful stop: readiness turns false, client listeners stop accepting and connections are
   * asked to end, then roles stop in reverse order (flushing what they hold), then the admin
   * and gRPC servers close. Resolves when everything is closed.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#grpc?.notify();
    for (const role of [...this.#roles].reverse()) {
      try {
        await role.stop(graceMs);
      } catch (err) {
        this.#log.error({ err, role: role.name }, 'role failed to stop cleanly');
      }
    }
    await Promise.all([this.#http?.close(), this.#grpc?.close(graceMs)]);
    this.#closeRemoteClients();
    this.#dataDir?.release();
  }
}

/** "1=host:port,2=host:port" → id → address. */
export function parsePeers(spec: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const part of spec.split(',')) {
    const t = part.trim();
    if (t === '') continue;
    const eq = t.indexOf('=');
    out.set(Number(t.slice(0, eq)), t.slice(eq + 1));
  }
  return out;
}

function advertiseHost(c: Config): string {
  if (c.advertiseHost !== '') return c.advertiseHost;
  return c.bindHost === '0.0.0.0' || c.bindHost === '::' ? hostname() : c.bindHost;
}

/** Retries a start-up call that fails retriably (no meta leader yet) until it succeeds or the node stops. */
async function retrying<T>(fn: () => Promise<T>, stopped: () => boolean): Promise<T> {
  for (let delayMs = 20; ; delayMs = Math.min(delayMs * 2, 500)) {
    try {
      return await fn();
    } catch (err) {
      if (stopped() || !(err instanceof RobustError) || !err.retriable) throw err;
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}
