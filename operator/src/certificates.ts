// @peculiar/x509 resolves its ASN.1 helpers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, X509Certificate, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * Certificates for the TLS listeners in `generated` mode (Strimzi-style): a cluster CA that signs
 * the brokers' server certificate, a clients CA that client certificates are checked against (mTLS),
 * and the renewal plan as a pure function of what the Secrets hold. node:crypto parses and verifies
 * X.509 but cannot issue it; @peculiar/x509 builds the certificates over Node's WebCrypto. Keys are
 * ECDSA P-256, generated per certificate (never a fixed key), and live only in Secrets.
 */

x509.cryptoProvider.set(webcrypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** notBefore is set this far in the past: nodes with a slightly slow clock accept a fresh certificate. */
const CLOCK_SKEW_MS = 5 * 60_000;

/** A certificate and its private key, PEM (the key PKCS#8). */
export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

const serial = (): string => {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString('hex');
};

const pkcs8Pem = (key: webcrypto.CryptoKey): string => KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();

/** A signing key of any PEM format (PKCS#8, PKCS#1, SEC1) with the WebCrypto algorithm that fits it (user-supplied CAs may be RSA). */
async function signingKey(keyPem: string): Promise<{ key: webcrypto.CryptoKey; alg: webcrypto.Algorithm | webcrypto.EcdsaParams }> {
  const k = createPrivateKey(keyPem);
  const der = k.export({ type: 'pkcs8', format: 'der' });
  if (k.asymmetricKeyType === 'ec') {
    const curve = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }[k.asymmetricKeyDetails?.namedCurve ?? ''];
    if (curve === undefined) throw new Error(`unsupported CA key curve ${k.asymmetricKeyDetails?.namedCurve}`);
    const hash = curve === 'P-256' ? 'SHA-256' : curve === 'P-384' ? 'SHA-384' : 'SHA-512';
    const key = await webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: curve }, false, ['sign']);
    return { key, alg: { name: 'ECDSA', hash } as webcrypto.EcdsaParams };
  }
  if (k.asymmetricKeyType === 'rsa') {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return { key: await webcrypto.subtle.importKey('pkcs8', der, alg, false, ['sign']), alg };
  }
  throw new Error(`unsupported CA key type ${k.asymmetricKeyType}`);
}

const caExtensions = async (publicKey: webcrypto.CryptoKey): Promise<x509.Extension[]> => [
  new x509.BasicConstraintsExtension(true, 0, true),
  new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  await x509.SubjectKeyIdentifierExtension.create(publicKey),
];

/** A new self-signed CA with a fresh key. */
export async function createCa(commonName: string, validityDays: number, now = new Date()): Promise<KeyPairPem> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}, O=io.robustmq`,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    keys: keys,
    signingAlgorithm: EC,
    extensions: await caExtensions(keys.publicKey),
  });
  return { certPem: cert.toString('pem'), keyPem: pkcs8Pem(keys.privateKey) };
}

/**
 * The CA's certificate renewed with the same key and subject (Strimzi's "renewal" as opposed to
 * "key replacement"): certificates it signed before keep verifying against the new one, and clients
 * that still trust the old CA certificate accept certificates signed after the renewal.
 */
export async function renewCa(ca: KeyPairPem, validityDays: number, now = new Date()): Promise<KeyPairPem> {
  const old = new x509.X509Certificate(ca.certPem);
  const { key, alg } = await signingKey(ca.keyPem);
  const publicKey = await old.publicKey.export();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: old.subjectName,
    issuer: old.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    publicKey,
    signingKey: key,
    signingAlgorithm: alg,
    extensions: await caExtensions(publicKey as webcrypto.CryptoKey),
  });
  return { certPem: cert.toString('pem'), keyPem: ca.keyPem };
}

/**
 * A server certificate signed by `ca` for `dnsNames` and `ipAddresses`, with a fresh key. It never
 * outlives its CA: notAfter is capped at the CA's.
 */
export async function issueServerCert(
  ca: KeyPairPem,
  o: { commonName: string; dnsNames: string[]; ipAddresses: string[]; validityDays: number; now?: Date },
): Promise<KeyPairPem> {
  const now = o.now ?? new Date();
  const caCert = new x509.X509Certificate(ca.certPem);
  const { key: caKey, alg } = await signingKey(ca.keyPem);
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notAfter = Math.min(now.getTime() + o.validityDays * DAY_MS, caCert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${o.commonName.slice(0, 64)}, O=io.robustmq`,
    issuer: caCert.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(notAfter),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...o.dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...o.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: pkcs8Pem(keys.privateKey) };
}

/** Validity of a certificate as the planner sees it. */
export interface CertValidity {
  notBefore: Date;
  notAfter: Date;
}

/** The first certificate of a PEM bundle, parsed; undefined when it is not one. */
export function parseCert(pem: string | undefined): X509Certificate | undefined {
  if (pem === undefined || !pem.includes('BEGIN CERTIFICATE')) return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

export const validityOf = (c: X509Certificate): CertValidity => ({ notBefore: new Date(c.validFrom), notAfter: new Date(c.validTo) });

/** SANs of a certificate as `dns:<name>` / `ip:<address>` (the form `wantedSans` returns). */
export function sansOf(c: X509Certificate): string[] {
  return (c.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s !== '')
    .map((s) => (s.startsWith('DNS:') ? `dns:${s.slice(4).toLowerCase()}` : s.startsWith('IP Address:') ? `ip:${s.slice(11)}` : s))
    .sort();
}

/** Names and addresses as SAN entries, sorted and without duplicates; an entry that parses as an IP is an IP SAN. */
export function sanList(names: readonly string[]): string[] {
  return [...new Set(names.filter((n) => n !== '').map((n) => (isIP(n) ? `ip:${n}` : `dns:${n.toLowerCase()}`)))].sort();
}

/** Whether `leaf` was signed by the key of `ca` (the CA's certificate may since have been renewed). */
export function isSignedBy(leaf: X509Certificate, ca: X509Certificate): boolean {
  try {
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}

/** Whether a PEM private key belongs to a certificate. */
export function keyMatches(cert: X509Certificate, keyPem: string | undefined): boolean {
  if (keyPem === undefined) return false;
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

export interface TlsPlanSettings {
  caValidityDays: number;
  caRenewalDays: number;
  clientsCaValidityDays: number;
  clientsCaRenewalDays: number;
  validityDays: number;
  renewalDays: number;
}

/** What the Secrets hold: undefined = missing or unusable (no certificate, no matching key). */
export interface TlsState {
  clusterCa?: CertValidity;
  clientsCa?: CertValidity;
  leaf?: CertValidity & { sans: string[]; signedByClusterCa: boolean };
}

export type CaAction = 'Keep' | 'Create' | 'Renew';
export type LeafReason = 'Missing' | 'NotYetValid' | 'Expiring' | 'SansChanged' | 'IssuerChanged';
export interface TlsPlan {
  clusterCa: CaAction;
  clientsCa: CaAction;
  /** Why the server certificate must be issued again; undefined = keep it. */
  leaf: LeafReason | undefined;
}

const daysLeft = (c: CertValidity, now: Date) => (c.notAfter.getTime() - now.getTime()) / DAY_MS;

/**
 * The renewal plan. A CA is created when missing and renewed (same key) when it has fewer than
 * its renewalDays left — the cluster CA already when it has fewer than the server certificate's
 * renewalDays + 1, because a server certificate is capped at its CA's expiry and would otherwise
 * be "expiring" again right after every issue. The server certificate is issued again when missing,
 * not yet valid, within renewalDays of expiry, for other SANs, or not signed by the current CA key.
 * With validityDays > renewalDays everywhere (the CRD's rules), carrying out a plan leaves nothing
 * to do (a property test checks this).
 */
export function planCertificates(state: TlsState, s: TlsPlanSettings, wantSans: readonly string[], now: Date): TlsPlan {
  const ca = (c: CertValidity | undefined, renewalDays: number): CaAction =>
    c === undefined ? 'Create' : c.notBefore > now || daysLeft(c, now) < renewalDays ? 'Renew' : 'Keep';
  const clusterCa = ca(state.clusterCa, Math.max(s.caRenewalDays, s.renewalDays + 1));
  const clientsCa = ca(state.clientsCa, s.clientsCaRenewalDays);
  const l = state.leaf;
  const want = [...wantSans].sort();
  const leaf: LeafReason | undefined =
    l === undefined
      ? 'Missing'
      : clusterCa === 'Create' || !l.signedByClusterCa
        ? 'IssuerChanged'
        : l.notBefore > now
          ? 'NotYetValid'
          : daysLeft(l, now) < s.renewalDays
            ? 'Expiring'
            : JSON.stringify([...l.sans].sort()) !== JSON.stringify(want)
              ? 'SansChanged'
              : undefined;
  return { clusterCa, clientsCa, leaf };
}
