import { createCa, issueServerCert, type KeyPairPem } from '../certificates.js';
import type { ApiServer, KObj, WatchEvent } from './api-server.js';

/**
 * A stand-in for cert-manager in the emulator: the Certificate CRD (cert-manager.io/v1, the part
 * of its schema the operator writes) and a controller that issues the Secret a Certificate names,
 * signed by its own CA, with the secretTemplate labels, and issues it again when the requested
 * names change. `hold` keeps it from issuing (cert-manager waiting for an ACME challenge).
 */

const str = { type: 'string' };
const strList = { type: 'array', items: str };
const strMap = { type: 'object', additionalProperties: str };

/** The openAPIV3Schema of cert-manager.io/v1 Certificate, reduced to the fields the operator may set. */
export const certificateSchema = {
  type: 'object',
  required: ['spec'],
  properties: {
    apiVersion: str,
    kind: str,
    metadata: { type: 'object' },
    spec: {
      type: 'object',
      required: ['issuerRef', 'secretName'],
      properties: {
        secretName: str,
        secretTemplate: { type: 'object', properties: { annotations: strMap, labels: strMap } },
        commonName: str,
        dnsNames: strList,
        ipAddresses: strList,
        uris: strList,
        emailAddresses: strList,
        duration: { type: 'string', pattern: '^([0-9]+(\\.[0-9]+)?(h|m|s|ms))+$' },
        renewBefore: { type: 'string', pattern: '^([0-9]+(\\.[0-9]+)?(h|m|s|ms))+$' },
        isCA: { type: 'boolean' },
        privateKey: {
          type: 'object',
          properties: {
            algorithm: { type: 'string', enum: ['RSA', 'ECDSA', 'Ed25519'] },
            encoding: { type: 'string', enum: ['PKCS1', 'PKCS8'] },
            rotationPolicy: { type: 'string', enum: ['Never', 'Always'] },
            size: { type: 'integer' },
          },
        },
        usages: {
          type: 'array',
          items: {
            type: 'string',
            enum: [
              'signing',
              'digital signature',
              'content commitment',
              'key encipherment',
              'key agreement',
              'data encipherment',
              'cert sign',
              'crl sign',
              'encipher only',
              'decipher only',
              'any',
              'server auth',
              'client auth',
              'code signing',
              'email protection',
              's/mime',
              'ipsec end system',
              'ipsec tunnel',
              'ipsec user',
              'timestamping',
              'ocsp signing',
              'microsoft sgc',
              'netscape sgc',
            ],
          },
        },
        issuerRef: { type: 'object', required: ['name'], properties: { name: str, kind: str, group: str } },
      },
    },
    status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
  },
};

/** The Certificate CRD, as cert-manager installs it (reduced schema). */
export function certificateCrd(): KObj {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'certificates.cert-manager.io' },
    spec: {
      group: 'cert-manager.io',
      names: { plural: 'certificates', singular: 'certificate', kind: 'Certificate', listKind: 'CertificateList', shortNames: ['cert'] },
      scope: 'Namespaced',
      versions: [{ name: 'v1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: certificateSchema } }],
    },
  };
}

type CertificateSpec = {
  secretName: string;
  secretTemplate?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  dnsNames?: string[];
  ipAddresses?: string[];
  duration?: string;
};

export class FakeCertManager {
  readonly #api: ApiServer;
  readonly #listener: (ev: WatchEvent) => void;
  #ca: Promise<KeyPairPem> | undefined;
  /** While true, nothing is issued. */
  hold = false;
  /** Secrets written, in order (namespace/name). */
  readonly issued: string[] = [];
  #chain: Promise<void> = Promise.resolve();

  constructor(api: ApiServer) {
    this.#api = api;
    this.#listener = (ev) => {
      if (ev.object.kind === 'Certificate' && ev.type !== 'DELETED') this.#enqueue(ev.object);
    };
    api.on('event', this.#listener);
  }

  stop(): void {
    this.#api.off('event', this.#listener);
  }

  /** Lets issuing resume and issues what is pending. */
  release(): void {
    this.hold = false;
    for (const c of this.#api.list('cert-manager.io/v1', 'Certificate')) this.#enqueue(c);
  }

  #enqueue(cert: KObj): void {
    this.#chain = this.#chain.then(() => this.#issue(cert)).catch(() => undefined);
  }

  async #issue(cert: KObj): Promise<void> {
    if (this.hold) return;
    const ns = cert.metadata.namespace!;
    const spec = cert.spec as CertificateSpec;
    const want = JSON.stringify([spec.dnsNames ?? [], spec.ipAddresses ?? []]);
    const existing = this.#api.get('v1', 'Secret', ns, spec.secretName);
    if ((existing?.metadata.annotations as Record<string, string> | undefined)?.['cert-manager.io/alt-names'] === want) return;
    this.#ca ??= createCa('fake-cert-manager-ca', 3650);
    const ca = await this.#ca;
    const hours = Number(/^(\d+)h$/.exec(spec.duration ?? '')?.[1] ?? 2160);
    const leaf = await issueServerCert(ca, {
      commonName: spec.dnsNames?.[0] ?? cert.metadata.name,
      dnsNames: spec.dnsNames ?? [],
      ipAddresses: spec.ipAddresses ?? [],
      validityDays: hours / 24,
    });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    this.#api.put(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: spec.secretName,
          namespace: ns,
          labels: { ...(spec.secretTemplate?.labels ?? {}) },
          annotations: {
            ...(spec.secretTemplate?.annotations ?? {}),
            'cert-manager.io/certificate-name': cert.metadata.name,
            'cert-manager.io/alt-names': want,
          },
        },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': b64(leaf.certPem), 'tls.key': b64(leaf.keyPem), 'ca.crt': b64(ca.certPem) },
      },
      'cert-manager-certificates-issuing',
    );
    this.issued.push(`${ns}/${spec.secretName}`);
  }
}
