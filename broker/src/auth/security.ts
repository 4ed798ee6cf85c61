import type { Registry } from 'prom-client';
import { hotCounterFamily, type HotCounter, type Logger } from '@robustmq/common';
import { ReasonCode } from '../mqtt/reason-codes.js';
import { AuthMethod, chainOf, resolveAuthConfig, LIMITS_DEFAULTS, type AuthConfig, type LimitsConfig } from './config.js';
import { matchRules, type Principal } from './acl.js';
import { verifyPassword } from './password.js';
import { SecurityStore } from './security-store.js';
import { MemoryMeta, type SecurityMeta } from './memory-meta.js';
import { JwtVerifier } from './jwt.js';
import { AuthWebhook } from './webhook.js';
import { ScramError, ScramServer, SCRAM_METHOD } from './scram.js';
import { createSecurityMetrics, type SecurityMetrics } from './metrics.js';
import { denyKey, type DenyEntry } from './records.js';
import { normalizeIp } from './ip.js';

/** What the broker knows about a connection before CONNECT: where it came in and from whom. */
export interface ConnectionInfo {
  listener: string;
  remoteAddress: string;
  /** TLS listeners: the client certificate, when one was presented and verified against the CA. */
  peerCert?: { authorized: boolean; cn: string | undefined; sans: string[] } | undefined;
}

export interface ConnectAttempt {
  info: ConnectionInfo;
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
}

export type ConnectDecision =
  | { ok: true; principal: Principal; method: string; expiresAt: number | undefined }
  | { ok: false; reasonCode: number; why: string; reason: string };

export interface SecurityOptions {
  log: Logger;
  registry: Registry;
  /** Users, ACLs and deny list; without it an in-memory store (nothing shared, nothing kept). */
  meta?: SecurityMeta | undefined;
  auth?: Partial<AuthConfig> | undefined;
  limits?: Partial<LimitsConfig> | undefined;
  /** `cn` or `san`: where the `cert` authenticator takes the username from. */
  certUsernameFrom?: 'cn' | 'san';
  /** Poll interval for JWT key files. */
  reloadCheckMs?: number;
}

/** A token bucket: `rate` per second, burst `rate`. */
class Bucket {
  tokens: number;
  last: number;
  constructor(rate: number, now: number) {
    this.tokens = rate;
    this.last = now;
  }
  /** Takes `n`; returns how many ms until the balance is back at 0 (0 = within the budget). */
  take(rate: number, n: number, now: number): number {
    this.tokens = Math.min(rate, this.tokens + ((now - this.last) * rate) / 1000);
    this.last = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / rate);
  }
}

/** Per-connection security state: who it is, its ACL decision cache and its rate buckets. */
export class ConnectionSecurity {
  principal: Principal | undefined;
  /** Pending MQTT 5 enhanced authentication (SCRAM) between CONNECT and CONNACK. */
  scram: ScramServer | undefined;
  /** Continues the pending CONNECT with the client's next AUTH data. */
  pendingConnect: ((data: Buffer | undefined) => void) | undefined;
  /** Made on the first ACL decision: an idle connection should not pay for an empty map. */
  #acl: Map<string, boolean> | undefined;
  #aclGeneration = -1;
  #msgBucket: Bucket | undefined;
  #byteBucket: Bucket | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;

  cachedDecision(key: string, generation: number): boolean | undefined {
    if (generation !== this.#aclGeneration) {
      this.#acl?.clear();
      this.#aclGeneration = generation;
      return undefined;
    }
    return this.#acl?.get(key);
  }

  remember(key: string, allowed: boolean): void {
    const acl = (this.#acl ??= new Map());
    if (acl.size >= 1024) acl.clear();
    acl.set(key, allowed);
  }

  /** Ms the reader should pause after a PUBLISH of `bytes` (0 = none). */
  throttle(limits: LimitsConfig, bytes: number, now: number): { waitMs: number; limit: string | undefined } {
    let waitMs = 0;
    let limit: string | undefined;
    if (limits.publishRatePerClient > 0) {
      this.#msgBucket ??= new Bucket(limits.publishRatePerClient, now);
      const w = this.#msgBucket.take(limits.publishRatePerClient, 1, now);
      if (w > waitMs) [waitMs, limit] = [w, 'publish_rate'];
    }
    if (limits.publishBytesPerSecPerClient > 0) {
      this.#byteBucket ??= new Bucket(limits.publishBytesPerSecPerClient, now);
      const w = this.#byteBucket.take(limits.publishBytesPerSecPerClient, bytes, now);
      if (w > waitMs) [waitMs, limit] = [w, 'publish_bytes'];
    }
    return { waitMs, limit };
  }

  /** Runs `onExpire` at `atMs` (epoch); long delays are chained under setTimeout's limit. */
  expireAt(atMs: number, onExpire: () => void): void {
    clearTimeout(this.#expiryTimer);
    const arm = (): void => {
      const left = atMs - Date.now();
      if (left <= 0) return onExpire();
      this.#expiryTimer = setTimeout(arm, Math.min(left, 2 ** 31 - 1)).unref();
    };
    arm();
  }

  dispose(): void {
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.scram = undefined;
    this.pendingConnect = undefined;
  }
}

const REFUSE_ANON = 'anonymous access is off (auth.allowAnonymous) and the client sent no credentials';

/**
 * Authentication, authorization and abuse protection of the MQTT listeners.
 *
 * How this works: CONNECT runs the listener's chain of authenticators in order; each answers
 * allow, deny or ignore, and the first allow or deny decides. When all ignore, a client without
 * credentials is anonymous (allowed only with `auth.allowAnonymous`), anyone else is refused.
 * Before the chain: the deny list (client id, address; username after it) and flapping
 * detection. PUBLISH and SUBSCRIBE are checked against the principal's own rules (JWT claims,
 * webhook answer), then the stored rules, first match wins, then `auth.aclDefault`; superusers
 * skip the rules. Decisions are cached per connection until the rules change.
 */
export class BrokerSecurity {
  readonly auth: Readonly<AuthConfig>;
  readonly limits: Readonly<LimitsConfig>;
  readonly store: SecurityStore;
  readonly metrics: SecurityMetrics;
  /** `metrics.authAttempts` by listener, method and outcome, counted per CONNECT without hashing labels. */
  readonly #authAttempts: (listener: string, method: string, outcome: string) => HotCounter;
  readonly meta: SecurityMeta;
  readonly #log: Logger;
  readonly #certFrom: 'cn' | 'san';
  readonly #jwt: JwtVerifier | undefined;
  readonly #webhook: AuthWebhook | undefined;
  readonly #flaps = new Map<string, { start: number; count: number }>();
  readonly #ipBuckets = new Map<string, Bucket>();
  readonly #logged = new Map<string, number>();
  readonly #sweep: NodeJS.Timeout;

  constructor(opts: SecurityOptions) {
    this.auth = resolveAuthConfig(opts.auth);
    this.limits = Object.freeze({ ...LIMITS_DEFAULTS, ...opts.limits });
    this.#log = opts.log;
    this.#certFrom = opts.certUsernameFrom ?? 'cn';
    this.meta = opts.meta ?? new MemoryMeta();
    this.metrics = createSecurityMetrics(opts.registry);
    this.#authAttempts = hotCounterFamily(this.metrics.authAttempts, ['listener', 'method', 'outcome']);
    this.store = new SecurityStore(this.meta, opts.log);
    this.store.start();
    const j = this.auth.jwt;
    if (j.secretFile !== '' || j.publicKeyFile !== '' || j.jwksFile !== '')
      this.#jwt = new JwtVerifier(j, opts.log, opts.reloadCheckMs ?? 2000);
    if (this.auth.webhook.url !== '') this.#webhook = new AuthWebhook(this.auth.webhook, opts.log);
    this.#sweep = setInterval(() => this.#clean(), 10_000).unref();
    const anon = this.auth.allowAnonymous;
    opts.log.info({ allowAnonymous: anon, chain: this.auth.chain, aclDefault: this.auth.aclDefault }, 'mqtt security configured');
    if (anon) opts.log.warn('anonymous mqtt access is on (auth.allowAnonymous): clients without credentials can connect');
  }

  /** Warns at most once a minute per key (a flood must not become a log flood). */
  #warnOnce(key: string, obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const last = this.#logged.get(key);
    if (last !== undefined && now - last < 60_000) return;
    if (this.#logged.size > 10_000) this.#logged.clear();
    this.#logged.set(key, now);
    this.#log.warn(obj, msg);
  }

  #clean(): void {
    const now = Date.now();
    for (const [k, f] of this.#flaps) if (now - f.start > this.limits.flapWindowMs) this.#flaps.delete(k);
    for (const [k, b] of this.#ipBuckets) if (now - b.last > 10_000) this.#ipBuckets.delete(k);
    let live = 0;
    for (const [k, e] of this.store.denyEntries) {
      if (e.expiresAt !== undefined && e.expiresAt <= now && e.reason === 'flapping') this.store.denyEntries.delete(k);
      else live++;
    }
    this.metrics.denyEntries.set(live);
  }

  /**
   * At accept, before any byte is read: a denied address or an address opening connections
   * faster than `limits.connectRatePerIp` is refused. Returns the reason, or undefined.
   */
  admit(listener: string, address: string | undefined): string | undefined {
    const ip = normalizeIp(address);
    const rate = this.limits.connectRatePerIp;
    if (rate > 0) {
      const now = Date.now();
      let b = this.#ipBuckets.get(ip);
      if (b === undefined) {
        if (this.#ipBuckets.size > 100_000) this.#ipBuckets.clear();
        b = new Bucket(rate, now);
        this.#ipBuckets.set(ip, b);
      }
      if (b.take(rate, 1, now) > 0) {
        b.tokens = Math.max(b.tokens, -rate); // a flood does not dig an endless hole
        this.metrics.rateLimited.inc({ limit: 'connect_rate' });
        this.metrics.connectRefused.inc({ listener, reason: 'connect_rate' });
        this.#warnOnce(`rate\0${ip}`, { ip, listener, connectRatePerIp: rate }, 'connection rate limit reached');
        return 'connect_rate';
      }
    }
    if (this.store.isReady) {
      const e = this.store.denied({ ip });
      if (e !== undefined) {
        this.metrics.connectRefused.inc({ listener, reason: 'denylist' });
        this.#warnOnce(`deny\0${ip}`, { ip, listener, reason: e.reason }, 'connection from denied address refused');
        return 'denylist';
      }
    }
    return undefined;
  }

  /** A listener at its connection limit refused a socket: metric, and a warning once a minute. */
  listenerFull(listener: string, address: string | undefined, max: number): string {
    this.metrics.connectRefused.inc({ listener, reason: 'max_connections' });
    this.#warnOnce(`full\0${listener}`, { listener, ip: normalizeIp(address), maxConnections: max }, 'listener connection limit reached');
    return 'max_connections';
  }

  #refuse(info: ConnectionInfo, reason: string, reasonCode: number, why: string): ConnectDecision {
    this.metrics.connectRefused.inc({ listener: info.listener, reason });
    return { ok: false, reasonCode, why, reason };
  }

  async #cacheReady(): Promise<boolean> {
    if (this.store.isReady) return true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.store.ready, new Promise((r) => (timer = setTimeout(r, this.auth.cacheWaitMs)))]);
    clearTimeout(timer);
    return this.store.isReady;
  }

  /** Deny list and flapping, before any credential is checked. */
  #precheck(a: { info: ConnectionInfo; clientId: string; username: string | undefined }): ConnectDecision | undefined {
    const ip = normalizeIp(a.info.remoteAddress);
    const e = this.store.denied({ clientId: a.clientId, username: a.username, ip });
    if (e !== undefined)
      return this.#refuse(
        a.info,
        'denylist',
        ReasonCode.NotAuthorized,
        `on the deny list (${e.kind} ${e.value}${e.reason ? `: ${e.reason}` : ''})`,
      );
    const L = this.limits;
    if (L.flapMaxConnects > 0) {
      const now = Date.now();
      let f = this.#flaps.get(a.clientId);
      if (f === undefined || now - f.start > L.flapWindowMs) {
        if (this.#flaps.size > 100_000) this.#flaps.clear();
        f = { start: now, count: 0 };
        this.#flaps.set(a.clientId, f);
      }
      f.count++;
      if (f.count >= L.flapMaxConnects) {
        this.#flaps.delete(a.clientId);
        this.#ban(a.clientId, f.count, ip);
        return this.#refuse(
          a.info,
          'flapping',
          ReasonCode.NotAuthorized,
          `flapping: ${f.count} connects within ${L.flapWindowMs} ms; banned for ${L.flapBanMs} ms`,
        );
      }
    }
    return undefined;
  }

  #ban(clientId: string, connects: number, ip: string): void {
    const L = this.limits;
    const entry: DenyEntry = {
      kind: 'clientid',
      value: clientId,
      reason: 'flapping',
      createdAt: Date.now(),
      expiresAt: Date.now() + L.flapBanMs,
    };
    const key = denyKey('clientid', clientId);
    this.store.addLocalDeny(key.slice('/denylist/'.length), entry);
    this.metrics.flappingBans.inc();
    this.#log.warn({ clientId, ip, connects, windowMs: L.flapWindowMs, banMs: L.flapBanMs }, 'flapping client banned');
    void this.meta
      .put(key, Buffer.from(JSON.stringify(entry)))
      .catch((err: unknown) => this.#log.warn({ err, clientId }, 'flapping ban not stored in meta'));
  }

  /** Runs the listener's chain for a CONNECT with username/password (and certificate). */
  async authenticate(a: ConnectAttempt): Promise<ConnectDecision> {
    if (!(await this.#cacheReady()))
      return this.#refuse(a.info, 'not_ready', ReasonCode.ServerUnavailable, 'security data not loaded from meta yet');
    const pre = this.#precheck(a);
    if (pre !== undefined) return pre;
    const ip = normalizeIp(a.info.remoteAddress);
    const chain = chainOf(this.auth, a.info.listener);
    const count = (method: string, outcome: string): void => this.#authAttempts(a.info.listener, method, outcome).inc();
    const principal = (username: string | undefined, superuser = false, rules: Principal['rules'] = []): Principal => ({
      clientId: a.clientId,
      username,
      ip,
      superuser,
      rules,
    });
    const allow = (method: string, p: Principal, expiresAt?: number): ConnectDecision => {
      count(method, 'allow');
      if (p.username !== undefined && p.username !== a.username) {
        const e = this.store.denied({ username: p.username });
        if (e !== undefined) return this.#refuse(a.info, 'denylist', ReasonCode.NotAuthorized, `on the deny list (username ${e.value})`);
      }
      return { ok: true, principal: p, method, expiresAt };
    };
    const deny = (method: string, why: string, code: number = ReasonCode.BadUserNameOrPassword): ConnectDecision => {
      count(method, 'deny');
      return this.#refuse(a.info, 'bad_credentials', code, why);
    };
    for (const method of chain) {
      switch (method) {
        case AuthMethod.Users: {
          if (a.username === undefined) break;
          const u = this.store.users.get(a.username);
          if (u === undefined) break;
          if (a.password === undefined) return deny(method, 'user needs a password');
          if (!(await verifyPassword(a.password, u.password))) return deny(method, 'bad user name or password');
          return allow(method, principal(a.username, u.superuser));
        }
        case AuthMethod.Jwt: {
          if (this.#jwt === undefined || a.password === undefined) break;
          const token = a.password.toString('utf8');
          if (!/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) break;
          try {
            const r = await this.#jwt.verify(token);
            if (r.expiresAt !== undefined && r.expiresAt <= Date.now()) return deny(method, 'token expired');
            return allow(method, principal(r.username ?? a.username, r.superuser, r.rules), r.expiresAt);
          } catch (err) {
            return deny(method, `token refused: ${(err as Error).message}`);
          }
        }
        case AuthMethod.Webhook: {
          if (this.#webhook === undefined) break;
          const r = await this.#webhook.check({
            clientId: a.clientId,
            username: a.username,
            password: a.password,
            peerAddress: ip,
            listener: a.info.listener,
          });
          if (r.result === 'ignore') {
            count(method, 'ignore');
            break;
          }
          if (r.result === 'deny')
            return deny(
              method,
              r.failure !== undefined ? `auth webhook failed: ${r.failure}` : 'denied by the auth webhook',
              r.failure !== undefined ? ReasonCode.NotAuthorized : ReasonCode.BadUserNameOrPassword,
            );
          return allow(method, principal(a.username, r.superuser, r.rules));
        }
        case AuthMethod.Cert: {
          const pc = a.info.peerCert;
          if (pc === undefined || !pc.authorized) break;
          const name = this.#certFrom === 'san' ? pc.sans[0] : pc.cn;
          if (name === undefined || name === '') break;
          return allow(method, principal(name));
        }
        default:
          break;
      }
    }
    if (a.username === undefined && a.password === undefined) {
      if (this.auth.allowAnonymous) {
        count('anonymous', 'allow');
        return { ok: true, principal: principal(undefined), method: 'anonymous', expiresAt: undefined };
      }
      const hint = this.store.users.size === 0 ? '; no users exist yet (create one with robust-ctl user create)' : '';
      return this.#refuse(a.info, 'anonymous_off', ReasonCode.NotAuthorized, REFUSE_ANON + hint);
    }
    return this.#refuse(
      a.info,
      'bad_credentials',
      ReasonCode.BadUserNameOrPassword,
      `no authenticator of the chain (${chain.join(', ')}) accepted the credentials${this.store.users.size === 0 ? '; no users exist yet' : ''}`,
    );
  }

  /** Whether a listener's chain offers SCRAM-SHA-256 enhanced authentication. */
  offersScram(listener: string, method: string): boolean {
    return method === SCRAM_METHOD && chainOf(this.auth, listener).includes(AuthMethod.Scram);
  }

  /** SCRAM step 1: client-first → server-first (or a refusal). */
  async scramStart(
    a: ConnectAttempt,
    data: Buffer | undefined,
    cs: ConnectionSecurity,
  ): Promise<{ ok: true; data: Buffer } | Extract<ConnectDecision, { ok: false }>> {
    if (!(await this.#cacheReady()))
      return this.#refuse(a.info, 'not_ready', ReasonCode.ServerUnavailable, 'security data not loaded from meta yet') as Extract<
        ConnectDecision,
        { ok: false }
      >;
    const s = new ScramServer();
    let username: string;
    try {
      username = s.parseFirst(data ?? Buffer.alloc(0));
    } catch (err) {
      return this.#refuse(a.info, 'bad_credentials', ReasonCode.BadAuthenticationMethod, (err as Error).message) as Extract<
        ConnectDecision,
        { ok: false }
      >;
    }
    const pre = this.#precheck({ ...a, username });
    if (pre !== undefined) return pre as Extract<ConnectDecision, { ok: false }>;
    cs.scram = s;
    return { ok: true, data: s.serverFirst(this.store.users.get(username)?.scram) };
  }

  /** SCRAM step 2: client-final → the decision and server-final. */
  scramFinish(a: ConnectAttempt, data: Buffer | undefined, cs: ConnectionSecurity): ConnectDecision & { data?: Buffer } {
    const s = cs.scram;
    cs.scram = undefined;
    const count = (outcome: string): void =>
      this.metrics.authAttempts.inc({ listener: a.info.listener, method: AuthMethod.Scram, outcome });
    if (s === undefined) return this.#refuse(a.info, 'bad_credentials', ReasonCode.ProtocolError, 'AUTH without a pending exchange');
    try {
      const out = s.final(data ?? Buffer.alloc(0));
      const u = this.store.users.get(s.username);
      count('allow');
      return {
        ok: true,
        method: AuthMethod.Scram,
        expiresAt: undefined,
        data: out,
        principal: {
          clientId: a.clientId,
          username: s.username,
          ip: normalizeIp(a.info.remoteAddress),
          superuser: u?.superuser ?? false,
          rules: [],
        },
      };
    } catch (err) {
      count('deny');
      const malformed = err instanceof ScramError && err.kind === 'malformed';
      return this.#refuse(
        a.info,
        'bad_credentials',
        malformed ? ReasonCode.BadAuthenticationMethod : ReasonCode.BadUserNameOrPassword,
        (err as Error).message,
      );
    }
  }

  /** ACL check for one PUBLISH topic or SUBSCRIBE filter. */
  authorize(cs: ConnectionSecurity, action: 'publish' | 'subscribe', topic: string): boolean {
    const p = cs.principal;
    if (p === undefined) return false;
    if (p.superuser) return true;
    const key = action === 'publish' ? `p${topic}` : `s${topic}`;
    const gen = this.store.aclGeneration;
    const cached = cs.cachedDecision(key, gen);
    if (cached !== undefined) return cached;
    const perm = matchRules(p.rules, p, action, topic) ?? matchRules(this.store.rules, p, action, topic) ?? this.auth.aclDefault;
    const allowed = perm === 'allow';
    cs.remember(key, allowed);
    return allowed;
  }

  /** A denied request: metric every time, a warning once a minute per (client, action, topic). */
  noteDenied(clientId: string, action: 'publish' | 'subscribe', topic: string): void {
    this.metrics.aclDenied.inc({ action });
    this.#warnOnce(`acl\0${clientId}\0${action}\0${topic}`, { clientId, action, topic }, 'mqtt request denied by acl');
  }

  noteTokenExpired(clientId: string): void {
    this.metrics.tokenExpired.inc();
    this.#log.info({ clientId }, 'token expired; connection closed');
  }

  close(): void {
    clearInterval(this.#sweep);
    this.store.close();
    this.#jwt?.close();
  }
}
