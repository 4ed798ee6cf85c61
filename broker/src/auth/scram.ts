import { randomBytes, timingSafeEqual } from 'node:crypto';
import { digest, hmac, SCRAM_DIGEST_BYTES, SCRAM_ITERATIONS, type ScramHash } from './password.js';
import type { ScramCredentials } from './records.js';

export const SCRAM_METHOD = 'SCRAM-SHA-256';

/** Why an exchange failed (the CONNACK / DISCONNECT reason follows from it). */
export class ScramError extends Error {
  readonly kind: 'malformed' | 'bad_credentials';
  constructor(kind: 'malformed' | 'bad_credentials', message: string) {
    super(message);
    this.name = 'ScramError';
    this.kind = kind;
  }
}

function attrs(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1) throw new ScramError('malformed', `bad SCRAM attribute ${JSON.stringify(part.slice(0, 16))}`);
    out.set(part[0] as string, part.slice(2));
  }
  return out;
}

/** saslname unescaping (RFC 5802 §5.1): `=2C` → `,`, `=3D` → `=`. */
function saslName(s: string): string {
  if (/=(?!2C|3D)/.test(s)) throw new ScramError('malformed', 'bad SCRAM username escape');
  return s.replaceAll('=2C', ',').replaceAll('=3D', '=');
}

/**
 * The server side of one SCRAM-SHA-256 or SCRAM-SHA-512 exchange (RFC 5802, RFC 7677) without channel binding:
 * `first(clientFirst)` names the user and returns server-first; after the credentials are
 * looked up, `final(clientFinal)` checks the proof and returns server-final.
 */
export class ScramServer {
  username = '';
  #clientFirstBare = '';
  #serverFirst = '';
  #nonce = '';
  #clientNonce = '';
  readonly #acceptPrefixedNonce: boolean;
  readonly #hash: ScramHash;
  #creds: ScramCredentials | undefined;

  /**
   * `acceptPrefixedNonce`: also accept client-final `r=` as client nonce + server nonce (some
   * librdkafka builds prefix the client nonce again); the proof still covers what was sent.
   */
  constructor(opts: { acceptPrefixedNonce?: boolean; hash?: ScramHash } = {}) {
    this.#acceptPrefixedNonce = opts.acceptPrefixedNonce ?? false;
    this.#hash = opts.hash ?? 'sha256';
  }

  /** Parses client-first-message; returns the username it names. */
  parseFirst(data: Buffer): string {
    const text = data.toString('utf8');
    // gs2-header: "n,," (no channel binding) or "y,,"; "p=" asks for binding we do not offer.
    const m = /^([ny]),(a=[^,]*)?,(.*)$/s.exec(text);
    if (m === null) throw new ScramError('malformed', 'client-first-message without a supported gs2 header');
    this.#clientFirstBare = m[3] as string;
    const a = attrs(this.#clientFirstBare);
    const n = a.get('n');
    const r = a.get('r');
    if (n === undefined || r === undefined || r === '' || a.has('m'))
      throw new ScramError('malformed', 'client-first-message needs n= and r=');
    this.username = saslName(n);
    this.#clientNonce = r;
    this.#nonce = r + randomBytes(18).toString('base64');
    return this.username;
  }

  /** server-first-message for the user's credentials (or a decoy when the user does not exist). */
  serverFirst(creds: ScramCredentials | undefined): Buffer {
    this.#creds = creds;
    const salt = creds?.salt ?? randomBytes(16).toString('base64');
    const it = creds?.iterations ?? SCRAM_ITERATIONS;
    this.#serverFirst = `r=${this.#nonce},s=${salt},i=${it}`;
    return Buffer.from(this.#serverFirst);
  }

  /** Checks client-final-message; returns server-final-message or throws ScramError. */
  final(data: Buffer): Buffer {
    const text = data.toString('utf8');
    const pIdx = text.lastIndexOf(',p=');
    if (pIdx < 0) throw new ScramError('malformed', 'client-final-message without a proof');
    const withoutProof = text.slice(0, pIdx);
    const a = attrs(text);
    const nonce = a.get('r');
    const prefixed = this.#acceptPrefixedNonce && nonce === this.#clientNonce + this.#nonce;
    if (nonce !== this.#nonce && !prefixed) throw new ScramError('bad_credentials', 'SCRAM nonce mismatch');
    const c = a.get('c');
    if (c !== 'biws' && c !== 'eSws') throw new ScramError('malformed', 'unsupported SCRAM channel binding');
    const proof = Buffer.from(a.get('p') ?? '', 'base64');
    const creds = this.#creds;
    const n = SCRAM_DIGEST_BYTES[this.#hash];
    if (creds === undefined || proof.length !== n) throw new ScramError('bad_credentials', 'bad user name or password');
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const storedKey = Buffer.from(creds.storedKey, 'base64');
    if (storedKey.length !== n) throw new ScramError('bad_credentials', 'bad user name or password');
    const signature = hmac(storedKey, authMessage, this.#hash);
    const clientKey = Buffer.alloc(n);
    for (let i = 0; i < n; i++) clientKey[i] = (proof[i] as number) ^ (signature[i] as number);
    if (!timingSafeEqual(digest(clientKey, this.#hash), storedKey)) throw new ScramError('bad_credentials', 'bad user name or password');
    const serverSignature = hmac(Buffer.from(creds.serverKey, 'base64'), authMessage, this.#hash);
    return Buffer.from(`v=${serverSignature.toString('base64')}`);
  }
}
