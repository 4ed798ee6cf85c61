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

/** The hash functions SCRAM runs on: SCRAM-SHA-256 (RFC 7677) and SCRAM-SHA-512. */
export type ScramHash = 'sha256' | 'sha512';
/** Digest length in bytes of each SCRAM hash. */
export const SCRAM_DIGEST_BYTES: Readonly<Record<ScramHash, number>> = { sha256: 32, sha512: 64 };

const hmac = (key: Buffer, data: string | Buffer, hash: ScramHash = 'sha256'): Buffer => createHmac(hash, key).update(data).digest();
const digest = (data: Buffer, hash: ScramHash = 'sha256'): Buffer => createHash(hash).update(data).digest();
const sha256 = (data: Buffer): Buffer => digest(data, 'sha256');

/** SCRAM StoredKey and ServerKey of `password` (RFC 5802 §3) for SHA-256 (default) or SHA-512. */
export async function scramCredentials(
  password: string,
  iterations = SCRAM_ITERATIONS,
  hash: ScramHash = 'sha256',
): Promise<ScramCredentials> {
  const salt = randomBytes(16);
  const salted = await pbkdf2Async(password.normalize('NFKC'), salt, iterations, SCRAM_DIGEST_BYTES[hash], hash);
  const clientKey = hmac(salted, 'Client Key', hash);
  return {
    iterations,
    salt: salt.toString('base64'),
    storedKey: digest(clientKey, hash).toString('base64'),
    serverKey: hmac(salted, 'Server Key', hash).toString('base64'),
  };
}

export { hmac, digest, sha256 };
