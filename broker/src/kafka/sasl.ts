import { ErrorCode, RobustError } from '@robustmq/common';
import { verifyPassword } from '../auth/password.js';
import { ScramError, ScramServer } from '../auth/scram.js';
import type { DenyEntry, UserRecord } from '../auth/records.js';

/**
 * Mechanisms the broker can serve: users in meta carry a scrypt hash (PLAIN), SCRAM-SHA-256 and
 * SCRAM-SHA-512 credentials (the latter only once their password was set by a broker that
 * stores them: older users must have their password set again to use SCRAM-SHA-512).
 */
export const SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

/** `kafka.saslMechanisms` as a list (upper-cased, no repeats); an unknown name throws. */
export function parseSaslMechanisms(list: string): SaslMechanism[] {
  const out: SaslMechanism[] = [];
  for (const raw of list.split(',')) {
    const m = raw.trim().toUpperCase();
    if (m === '') continue;
    if (!(SASL_MECHANISMS as readonly string[]).includes(m))
      throw new RobustError(
        ErrorCode.ConfigInvalid,
        `kafka.saslMechanisms: ${m} is not supported (supported: ${SASL_MECHANISMS.join(', ')})`,
      );
    if (!out.includes(m as SaslMechanism)) out.push(m as SaslMechanism);
  }
  return out;
}

/** Where SASL looks users up: the broker's security cache (the MQTT users). */
export interface SaslUserSource {
  readonly ready: Promise<void>;
  readonly users: ReadonlyMap<string, UserRecord>;
  denied(q: { username?: string; ip?: string }): DenyEntry | undefined;
}

/** The exchange failed: SASL_AUTHENTICATION_FAILED with this message, then the connection closes. */
export class SaslAuthError extends Error {
  constructor(message: string, opts: ErrorOptions = {}) {
    super(message, opts);
    this.name = 'SaslAuthError';
  }
}

/**
 * The SASL state of one Kafka connection (KIP-43, KIP-152): `mechanism` is chosen by
 * SaslHandshake; `step` takes each client token (from SaslAuthenticate, or a raw frame after
 * SaslHandshake v0) and returns the server token until `authenticated`.
 */
export class SaslConnection {
  readonly enabled: readonly SaslMechanism[];
  mechanism: SaslMechanism | undefined;
  /** SaslHandshake v0 was used: tokens arrive as raw size-prefixed frames without a request header. */
  raw = false;
  authenticated = false;
  /** An exchange failed: the connection is closed once the response is written. */
  failed = false;
  username: string | undefined;
  readonly #users: SaslUserSource;
  readonly #ip: string;
  #scram: ScramServer | undefined;
  #noSha512Credentials = false;

  constructor(enabled: readonly SaslMechanism[], users: SaslUserSource, ip: string) {
    this.enabled = enabled;
    this.#users = users;
    this.#ip = ip;
  }

  /** SASL is off on this listener: every API is open, as without authentication. */
  get required(): boolean {
    return this.enabled.length > 0;
  }

  /** One client token in, the server's answer out; throws SaslAuthError when authentication fails. */
  async step(token: Buffer): Promise<Buffer> {
    await this.#users.ready;
    if (this.mechanism === 'PLAIN') return this.#plain(token);
    const mechanism = this.mechanism ?? 'SCRAM-SHA-256';
    const sha512 = mechanism === 'SCRAM-SHA-512';
    const scram = this.#scram;
    try {
      if (scram === undefined) {
        const s = new ScramServer({ acceptPrefixedNonce: true, hash: sha512 ? 'sha512' : 'sha256' });
        const name = s.parseFirst(token);
        this.#scram = s;
        const user = this.#user(name);
        // a user whose password predates SCRAM-SHA-512 credentials: the exchange runs on a decoy
        // (as for an unknown user) and fails with a message that says what to do
        this.#noSha512Credentials = sha512 && user !== undefined && user.scram512 === undefined;
        return s.serverFirst(sha512 ? user?.scram512 : user?.scram);
      }
      const reply = scram.final(token);
      this.#succeed(scram.username);
      return reply;
    } catch (err) {
      if (err instanceof ScramError) {
        if (this.#noSha512Credentials)
          throw new SaslAuthError(
            'Authentication failed: no SCRAM-SHA-512 credentials are stored for this user (its password was set before ' +
              'SCRAM-SHA-512 support); set the password again, or use SCRAM-SHA-256 or PLAIN',
            { cause: err },
          );
        throw new SaslAuthError(`Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /** `authzid \0 username \0 password` (RFC 4616). */
  async #plain(token: Buffer): Promise<Buffer> {
    const parts = token.toString('utf8').split('\0');
    if (parts.length !== 3) throw new SaslAuthError('Invalid SASL/PLAIN token: expected authzid, username and password');
    const [authzid, username, password] = parts as [string, string, string];
    if (authzid !== '' && authzid !== username)
      throw new SaslAuthError('Authentication failed: client requested an authorization id that is different from username');
    const user = this.#user(username);
    if (user === undefined || !(await verifyPassword(password, user.password)))
      throw new SaslAuthError('Authentication failed: Invalid username or password');
    this.#succeed(username);
    return Buffer.alloc(0);
  }

  /** The user, unless it is unknown or on the deny list. */
  #user(name: string): UserRecord | undefined {
    if (this.#users.denied({ username: name, ip: this.#ip }) !== undefined) return undefined;
    return this.#users.users.get(name);
  }

  #succeed(username: string): void {
    this.username = username;
    this.authenticated = true;
    this.raw = false;
  }
}
