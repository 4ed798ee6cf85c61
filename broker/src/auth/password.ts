import { createHash, createHmac, pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { ScramCredentials, ScryptHash } from './records.js';

const scryptAsync = promisify(scrypt) as (pw: Buffer | string, salt: Buffer, len: number, opts: object) => Promise<Buffer>;
const pbkdf2Async = promisify(pbkdf2);

/** scrypt cost (N = 2^14, r = 8, p = 1: ~16 MiB and ~50 ms per hash) and output length. */
const SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const KEY_LEN = 32;
/** RFC 7677 recommends at least 4096 iterations of PBKDF2-HMAC-SHA-256. */
export const SCRAM_ITERATIONS = 4096;

/** A fresh per-user salt and the scrypt hash of `password`. */
export async function hashPassword(password: string): Promise<ScryptHash> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, KEY_LEN, { ...SCRYPT, maxmem: 64 * 1024 * 1024 });
  return { algo: 'scrypt', ...SCRYPT, salt: salt.toString('base64'), hash: hash.toString('base64') };
}

/** Constant-time check of `password` against a stored scrypt hash. */
export async function verifyPassword(password: Buffer | string, h: ScryptHash): Promise<boolean> {
  const expected = Buffer.from(h.hash, 'base64');
  const got = await scryptAsync(password, Buffer.from(h.salt, 'base64'), expected.length, {
    N: h.N,
    r: h.r,
    p: h.p,
    maxmem: 256 * h.N * h.r + 1024 * 1024,
  });
  return got.length === expected.length && timingSafeEqual(got, expected);
}

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** SCRAM-SHA-256 StoredKey and ServerKey of `password` (RFC 5802 §3). */
export async function scramCredentials(password: string, iterations = SCRAM_ITERATIONS): Promise<ScramCredentials> {
  const salt = randomBytes(16);
  const salted = await pbkdf2Async(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  return {
    iterations,
    salt: salt.toString('base64'),
    storedKey: sha256(clientKey).toString('base64'),
    serverKey: hmac(salted, 'Server Key').toString('base64'),
  };
}

export { hmac, sha256 };
