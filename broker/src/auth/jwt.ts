import { readFileSync } from 'node:fs';
import { createLocalJWKSet, importSPKI, importX509, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type CryptoKey } from 'jose';
import type { Logger } from '@robustmq/common';
import type { JwtConfig } from './config.js';
import { aclRulesFrom, type AclRule } from './records.js';
import { watchFiles, type FileWatch } from '../listeners/file-watch.js';

export interface JwtResult {
  username: string | undefined;
  /** Epoch milliseconds of `exp`, if the token has one. */
  expiresAt: number | undefined;
  rules: AclRule[];
  superuser: boolean;
}

/**
 * Verifies JWTs (HS256 with a shared secret; RS256/ES256 with a PEM public key or a JWKS file).
 * The key files are read at start and again whenever they change.
 */
export class JwtVerifier {
  readonly #c: JwtConfig;
  readonly #log: Logger;
  #secret: Uint8Array | undefined;
  #publicKey: CryptoKey | undefined;
  #jwks: JWTVerifyGetKey | undefined;
  #watch: FileWatch | undefined;
  #loading: Promise<void>;

  constructor(c: JwtConfig, log: Logger, reloadCheckMs: number) {
    this.#c = c;
    this.#log = log;
    this.#loading = this.#load();
    const files = [c.secretFile, c.publicKeyFile, c.jwksFile].filter((f) => f !== '');
    if (files.length > 0) this.#watch = watchFiles(files, reloadCheckMs, () => void (this.#loading = this.#load()));
  }

  get configured(): boolean {
    return this.#c.secretFile !== '' || this.#c.publicKeyFile !== '' || this.#c.jwksFile !== '';
  }

  async #load(): Promise<void> {
    const c = this.#c;
    try {
      if (c.secretFile !== '') this.#secret = new Uint8Array(Buffer.from(readFileSync(c.secretFile, 'utf8').replace(/\r?\n$/, '')));
      if (c.publicKeyFile !== '') {
        const pem = readFileSync(c.publicKeyFile, 'utf8');
        const alg = /EC PRIVATE|BEGIN EC|prime256v1/.test(pem) ? 'ES256' : undefined;
        const load = async (a: string): Promise<CryptoKey> => (pem.includes('BEGIN CERTIFICATE') ? importX509(pem, a) : importSPKI(pem, a));
        // The algorithm is bound to the key at import: try RS256, then ES256.
        this.#publicKey = await load(alg ?? 'RS256').catch(() => load('ES256'));
      }
      if (c.jwksFile !== '') this.#jwks = createLocalJWKSet(JSON.parse(readFileSync(c.jwksFile, 'utf8')) as { keys: [] });
      this.#log.info({ secretFile: c.secretFile, publicKeyFile: c.publicKeyFile, jwksFile: c.jwksFile }, 'jwt keys loaded');
    } catch (err) {
      this.#log.error({ err }, 'jwt keys could not be loaded');
    }
  }

  /** Verifies `token`; throws when it is not valid (bad signature, expired, wrong issuer …). */
  async verify(token: string): Promise<JwtResult> {
    await this.#loading;
    const c = this.#c;
    const opts = {
      ...(c.issuer !== '' ? { issuer: c.issuer } : {}),
      ...(c.audience !== '' ? { audience: c.audience } : {}),
      ...(c.requireExp ? { requiredClaims: ['exp'] } : {}),
    };
    let payload: JWTPayload | undefined;
    let lastErr: unknown = new Error('no JWT key configured');
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8') || '{}') as { alg?: string };
    if (header.alg === 'HS256' && this.#secret !== undefined) {
      payload = (await jwtVerify(token, this.#secret, { ...opts, algorithms: ['HS256'] })).payload;
    } else if (header.alg === 'RS256' || header.alg === 'ES256') {
      for (const key of [this.#publicKey, this.#jwks]) {
        if (key === undefined) continue;
        try {
          payload = (await jwtVerify(token, key as CryptoKey, { ...opts, algorithms: ['RS256', 'ES256'] })).payload;
          break;
        } catch (err) {
          lastErr = err;
        }
      }
    } else lastErr = new Error(`JWT algorithm ${String(header.alg)} not accepted`);
    if (payload === undefined) throw lastErr;
    const name = payload[c.usernameClaim];
    const rules = aclRulesFrom(payload[c.aclClaim], 'jwt');
    return {
      username: typeof name === 'string' && name !== '' ? name : undefined,
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
      rules,
      superuser: payload.superuser === true,
    };
  }

  close(): void {
    this.#watch?.close();
  }
}
