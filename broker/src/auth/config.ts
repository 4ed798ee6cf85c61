/** The authenticators a listener's chain can name, tried in order. */
export const AuthMethod = {
  /** Built-in users stored in meta (`/users/<name>`), scrypt-hashed passwords. */
  Users: 'users',
  /** A JWT in the password field (HS256, RS256, ES256). */
  Jwt: 'jwt',
  /** An HTTP webhook answering allow / deny / ignore. */
  Webhook: 'webhook',
  /** The verified TLS client certificate (its CN or a SAN becomes the username). */
  Cert: 'cert',
  /** MQTT 5 enhanced authentication SCRAM-SHA-256 over AUTH (users from meta). */
  Scram: 'scram',
} as const;
export type AuthMethod = (typeof AuthMethod)[keyof typeof AuthMethod];
export const AUTH_METHODS: readonly AuthMethod[] = Object.values(AuthMethod);

/** The MQTT listeners, by name (also their label in metrics and logs). */
export const MqttListenerName = { Mqtt: 'mqtt', Mqtts: 'mqtts', Ws: 'ws', Wss: 'wss' } as const;
export type MqttListenerName = (typeof MqttListenerName)[keyof typeof MqttListenerName];

export interface JwtConfig {
  /** File holding the HS256 shared secret (raw bytes, trailing newline trimmed); empty = none. */
  secretFile: string;
  /** PEM public key (SPKI or certificate) for RS256/ES256; empty = none. */
  publicKeyFile: string;
  /** JWKS document (`{"keys":[…]}`) for RS256/ES256, keys chosen by `kid`; empty = none. */
  jwksFile: string;
  /** Claim that becomes the username (the CONNECT username is replaced). */
  usernameClaim: string;
  /** Claim holding ACL rules (`[{action, topic, permission}]`) applied before the stored rules. */
  aclClaim: string;
  /** Tokens without `exp` are refused. */
  requireExp: boolean;
  /** Expected `iss` / `aud`; empty = not checked. */
  issuer: string;
  audience: string;
}

export interface WebhookConfig {
  /** URL the webhook POSTs to; empty = off. */
  url: string;
  timeoutMs: number;
  /** How long an answer is reused for the same (client id, username, password, address). */
  cacheTtlMs: number;
  /** Entries of the answer cache at most. */
  cacheMaxEntries: number;
}

export interface AuthConfig {
  /** Clients presenting neither username nor password nor a usable certificate may connect. */
  allowAnonymous: boolean;
  /** Default chain of every listener. */
  chain: readonly AuthMethod[];
  /** Per-listener chains; a listener missing here uses `chain`. */
  listenerChains: Partial<Record<MqttListenerName, readonly AuthMethod[]>>;
  /** What happens when no ACL rule matches. */
  aclDefault: 'allow' | 'deny';
  jwt: JwtConfig;
  webhook: WebhookConfig;
  /** How long CONNECT waits for the user/ACL cache to load from meta before refusing (0x88). */
  cacheWaitMs: number;
}

export interface LimitsConfig {
  /** Open connections per listener; 0 = no limit. */
  maxConnectionsPerListener: number;
  /** New connections per second from one IP address (burst = the same); 0 = no limit. */
  connectRatePerIp: number;
  /** PUBLISH packets per second per client (burst = the same); 0 = no limit. */
  publishRatePerClient: number;
  /** PUBLISH payload bytes per second per client (burst = the same); 0 = no limit. */
  publishBytesPerSecPerClient: number;
  /** Flapping: this many CONNECTs by one client id within `flapWindowMs` bans it; 0 = off. */
  flapMaxConnects: number;
  flapWindowMs: number;
  /** How long a flapping client id is banned (a deny-list entry with expiry). */
  flapBanMs: number;
}

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  caFile: string;
  /** Clients without a certificate signed by `caFile` are refused during the handshake. */
  requireClientCert: boolean;
  /** Where the `cert` authenticator takes the username from: `cn` or `san` (first DNS/email/URI). */
  certUsernameFrom: 'cn' | 'san';
  minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** Poll interval of the certificate files; a change is loaded without a restart. */
  reloadCheckMs: number;
  /** Time allowed for the TLS handshake. */
  handshakeTimeoutMs: number;
}

export const AUTH_DEFAULTS: Readonly<AuthConfig> = Object.freeze({
  allowAnonymous: false,
  chain: [AuthMethod.Users, AuthMethod.Jwt, AuthMethod.Webhook, AuthMethod.Scram],
  listenerChains: {},
  aclDefault: 'allow',
  jwt: {
    secretFile: '',
    publicKeyFile: '',
    jwksFile: '',
    usernameClaim: 'sub',
    aclClaim: 'acl',
    requireExp: true,
    issuer: '',
    audience: '',
  },
  webhook: { url: '', timeoutMs: 2000, cacheTtlMs: 60_000, cacheMaxEntries: 10_000 },
  cacheWaitMs: 5000,
});

export const LIMITS_DEFAULTS: Readonly<LimitsConfig> = Object.freeze({
  maxConnectionsPerListener: 0,
  connectRatePerIp: 0,
  publishRatePerClient: 0,
  publishBytesPerSecPerClient: 0,
  flapMaxConnects: 0,
  flapWindowMs: 60_000,
  flapBanMs: 300_000,
});

export const TLS_DEFAULTS: Readonly<TlsConfig> = Object.freeze({
  certFile: '',
  keyFile: '',
  caFile: '',
  requireClientCert: false,
  certUsernameFrom: 'cn',
  minVersion: 'TLSv1.2',
  reloadCheckMs: 2000,
  handshakeTimeoutMs: 10_000,
});

/** Defaults overlaid with `opts` (nested sections merged). */
export function resolveAuthConfig(opts: Partial<AuthConfig> = {}): Readonly<AuthConfig> {
  return Object.freeze({
    ...AUTH_DEFAULTS,
    ...opts,
    jwt: { ...AUTH_DEFAULTS.jwt, ...opts.jwt },
    webhook: { ...AUTH_DEFAULTS.webhook, ...opts.webhook },
  });
}

export function chainOf(c: AuthConfig, listener: string): readonly AuthMethod[] {
  return c.listenerChains[listener as MqttListenerName] ?? c.chain;
}
