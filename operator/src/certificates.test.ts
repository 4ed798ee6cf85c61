import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fc from 'fast-check';
import {
  createCa,
  isSignedBy,
  issueServerCert,
  keyMatches,
  planCertificates,
  renewCa,
  sanList,
  sansOf,
  type TlsPlanSettings,
  type TlsState,
} from './certificates.js';

const DAY = 86_400_000;

test('a generated server certificate verifies against its CA, carries the SANs and a bounded validity', async () => {
  const now = new Date();
  const ca = await createCa('prod-cluster-ca', 365, now);
  const caCert = new X509Certificate(ca.certPem);
  assert.equal(caCert.ca, true);
  assert.ok(caCert.verify(caCert.publicKey), 'self-signed');
  assert.ok(keyMatches(caCert, ca.keyPem));
  assert.match(ca.keyPem, /^-----BEGIN PRIVATE KEY-----/);

  const names = ['prod-broker', 'prod-broker.ns', 'prod-broker.ns.svc', 'prod-broker.ns.svc.cluster.local', '203.0.113.7'];
  const leaf = await issueServerCert(ca, {
    commonName: 'prod-broker',
    dnsNames: names.slice(0, 4),
    ipAddresses: ['203.0.113.7'],
    validityDays: 90,
    now,
  });
  const cert = new X509Certificate(leaf.certPem);
  assert.equal(cert.ca, false);
  assert.ok(cert.checkIssued(caCert), 'issuer is the CA');
  assert.ok(cert.verify(caCert.publicKey), 'signed by the CA key');
  assert.ok(isSignedBy(cert, caCert));
  assert.ok(keyMatches(cert, leaf.keyPem));
  assert.ok(!keyMatches(cert, ca.keyPem), 'a fresh key, not the CA key');
  assert.deepEqual(sansOf(cert), sanList(names));
  assert.ok(cert.checkHost('prod-broker.ns.svc.cluster.local'));
  assert.ok(cert.checkIP('203.0.113.7'));
  assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extended key usage: server auth');
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  assert.ok(from <= now.getTime() && from > now.getTime() - 10 * 60_000, 'valid from now (minus clock skew)');
  assert.ok(Math.abs(to - (now.getTime() + 90 * DAY)) < 2000, 'valid for validityDays');
  assert.equal(createPrivateKey(leaf.keyPem).asymmetricKeyType, 'ec');

  // Capped at the CA's expiry.
  const shortCa = await createCa('short', 10, now);
  const capped = new X509Certificate(
    (await issueServerCert(shortCa, { commonName: 'x', dnsNames: ['x'], ipAddresses: [], validityDays: 90, now })).certPem,
  );
  assert.ok(new Date(capped.validTo).getTime() <= new Date(new X509Certificate(shortCa.certPem).validTo).getTime());

  // Another CA does not verify it; two CAs never share a key.
  const other = await createCa('prod-cluster-ca', 365, now);
  assert.ok(!isSignedBy(cert, new X509Certificate(other.certPem)));
  assert.notEqual(other.keyPem, ca.keyPem);
});

test('a renewed CA keeps its key: old server certificates verify against it, new ones against the old CA', async () => {
  const t0 = new Date();
  const ca = await createCa('prod-cluster-ca', 365, t0);
  const before = new X509Certificate(
    (await issueServerCert(ca, { commonName: 'b', dnsNames: ['b'], ipAddresses: [], validityDays: 90 })).certPem,
  );
  const renewed = await renewCa(ca, 365, new Date(t0.getTime() + 340 * DAY));
  assert.equal(renewed.keyPem, ca.keyPem);
  const oldCert = new X509Certificate(ca.certPem);
  const newCert = new X509Certificate(renewed.certPem);
  assert.equal(newCert.subject, oldCert.subject);
  assert.ok(new Date(newCert.validTo) > new Date(oldCert.validTo));
  assert.ok(newCert.ca);
  assert.ok(isSignedBy(before, newCert));
  const after = new X509Certificate(
    (await issueServerCert(renewed, { commonName: 'a', dnsNames: ['a'], ipAddresses: [], validityDays: 90 })).certPem,
  );
  assert.ok(isSignedBy(after, oldCert));
});

const settings: TlsPlanSettings = {
  caValidityDays: 365,
  caRenewalDays: 30,
  clientsCaValidityDays: 365,
  clientsCaRenewalDays: 30,
  validityDays: 90,
  renewalDays: 30,
};
const at = (now: Date, fromDays: number, toDays: number) => ({
  notBefore: new Date(now.getTime() + fromDays * DAY),
  notAfter: new Date(now.getTime() + toDays * DAY),
});

test('renewal plan: create what is missing, renew near expiry, reissue on SAN or CA-key change, otherwise keep', () => {
  const now = new Date('2030-01-01T00:00:00Z');
  const sans = sanList(['a', 'b']);
  const good: TlsState = {
    clusterCa: at(now, -10, 300),
    clientsCa: at(now, -10, 300),
    leaf: { ...at(now, -1, 80), sans, signedByClusterCa: true },
  };
  assert.deepEqual(planCertificates(good, settings, sans, now), { clusterCa: 'Keep', clientsCa: 'Keep', leaf: undefined });
  assert.deepEqual(planCertificates({}, settings, sans, now), { clusterCa: 'Create', clientsCa: 'Create', leaf: 'Missing' });
  const plan = (s: Partial<TlsState>, want = sans) => planCertificates({ ...good, ...s }, settings, want, now);
  assert.equal(plan({ leaf: { ...good.leaf!, ...at(now, -60, 29) } }).leaf, 'Expiring');
  assert.equal(plan({ leaf: { ...good.leaf!, ...at(now, -60, 31) } }).leaf, undefined);
  assert.equal(plan({}, sanList(['a', 'b', '10.0.0.9'])).leaf, 'SansChanged');
  assert.equal(plan({ leaf: { ...good.leaf!, signedByClusterCa: false } }).leaf, 'IssuerChanged');
  assert.equal(plan({ leaf: { ...good.leaf!, ...at(now, 1, 90) } }).leaf, 'NotYetValid');
  assert.deepEqual(plan({ clusterCa: undefined }), { clusterCa: 'Create', clientsCa: 'Keep', leaf: 'IssuerChanged' });
  // The cluster CA is renewed (same key, so the leaf stays) once it has fewer than max(its renewalDays, leaf renewalDays + 1) days left.
  assert.deepEqual(plan({ clusterCa: at(now, -340, 25) }), { clusterCa: 'Renew', clientsCa: 'Keep', leaf: undefined });
  assert.equal(
    planCertificates({ ...good, clusterCa: at(now, -340, 30.5) }, { ...settings, caRenewalDays: 7 }, sans, now).clusterCa,
    'Renew',
  );
  assert.equal(plan({ clientsCa: at(now, -340, 29) }).clientsCa, 'Renew');
});

test('property: carrying out a renewal plan leaves nothing to do (no reissue loop), at any time', () => {
  const days = (min: number, max: number) => fc.integer({ min, max });
  const cert = fc.option(fc.record({ from: days(-4000, 5), to: days(-100, 4000) }), { nil: undefined });
  fc.assert(
    fc.property(
      fc
        .record({
          caValidityDays: days(2, 4000),
          caRenewalDays: days(1, 4000),
          clientsCaValidityDays: days(2, 4000),
          clientsCaRenewalDays: days(1, 4000),
          validityDays: days(2, 4000),
          renewalDays: days(1, 4000),
        })
        // What the CRD's CEL rules (and validateSpec) guarantee.
        .filter(
          (s) =>
            s.caRenewalDays < s.caValidityDays &&
            s.clientsCaRenewalDays < s.clientsCaValidityDays &&
            s.renewalDays < s.validityDays &&
            s.caValidityDays > s.renewalDays + 1,
        ),
      cert,
      cert,
      cert,
      fc.boolean(),
      fc.boolean(),
      (s, ca, clients, leaf, signed, sameSans) => {
        const now = new Date('2031-06-01T00:00:00Z');
        const want = sanList(['x', 'y']);
        const state: TlsState = {
          ...(ca ? { clusterCa: at(now, ca.from, ca.to) } : {}),
          ...(clients ? { clientsCa: at(now, clients.from, clients.to) } : {}),
          ...(leaf ? { leaf: { ...at(now, leaf.from, leaf.to), sans: sameSans ? want : sanList(['x']), signedByClusterCa: signed } } : {}),
        };
        const p = planCertificates(state, s, want, now);
        // Carry it out the way the reconciler does.
        const next: TlsState = { ...state };
        if (p.clusterCa !== 'Keep') next.clusterCa = at(now, -1 / 288, s.caValidityDays);
        if (p.clientsCa !== 'Keep') next.clientsCa = at(now, -1 / 288, s.clientsCaValidityDays);
        if (p.leaf !== undefined) {
          const caEnd = next.clusterCa!.notAfter.getTime();
          next.leaf = {
            notBefore: new Date(now.getTime() - 300_000),
            notAfter: new Date(Math.min(now.getTime() + s.validityDays * DAY, caEnd)),
            sans: want,
            signedByClusterCa: true,
          };
        }
        assert.deepEqual(planCertificates(next, s, want, now), { clusterCa: 'Keep', clientsCa: 'Keep', leaf: undefined });
        // A CA renewal keeps the key, so it never forces a new server certificate by itself.
        if (p.clusterCa === 'Renew' && state.leaf && signed && sameSans && p.leaf !== undefined) assert.notEqual(p.leaf, 'IssuerChanged');
      },
    ),
    { numRuns: 500 },
  );
});
