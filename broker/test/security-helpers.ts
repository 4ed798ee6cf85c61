import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { MqttClient } from 'mqtt';
import { createLogger, createMetricsRegistry } from '@robustmq/common';
import { Broker, MemoryMeta, SecurityAdmin, type BrokerOptions } from '../src/index.js';

export interface Pki {
  dir: string;
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

const openssl = (args: string[], cwd: string): void => void execFileSync('openssl', args, { cwd, stdio: 'ignore' });

/** Issues a certificate signed by the test CA (EC P-256: fast to make). */
export function issue(dir: string, name: string, subject: string, san: string, days = 2): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${san}\n`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key], dir);
  openssl(['req', '-new', '-key', key, '-subj', subject, '-out', csr], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      String(days),
      '-out',
      cert,
      '-extfile',
      ext,
    ],
    dir,
  );
  return { cert, key };
}

/** A CA, a server certificate for localhost/127.0.0.1 and a client certificate (CN device-1). */
export function makePki(dir: string): Pki {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=RobustMQ Test CA', '-days', '2', '-out', 'ca.crt'], dir);
  const server = issue(dir, 'server', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1');
  const client = issue(dir, 'client', '/CN=device-1', 'DNS:device-1.example');
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
  };
}

export interface SecureBroker {
  broker: Broker;
  admin: SecurityAdmin;
  meta: MemoryMeta;
  ports: Record<string, number>;
  /** Log lines (parsed JSON) written so far. */
  logs: Record<string, unknown>[];
}

/** A broker with security on (anonymous off unless `opts.auth` says so), every listener on port 0. */
export async function startSecureBroker(t: TestContext, opts: Partial<BrokerOptions> = {}): Promise<SecureBroker> {
  const logs: Record<string, unknown>[] = [];
  const log = createLogger({
    level: 'debug',
    service: 'security-test',
    dest: {
      write: (line: string) => {
        logs.push(JSON.parse(line) as Record<string, unknown>);
        if (process.env.TEST_LOG_LEVEL !== undefined) process.stderr.write(line);
      },
    },
  });
  const meta = new MemoryMeta();
  const broker = new Broker({
    host: '127.0.0.1',
    mqttPort: 0,
    kafkaPort: 0,
    log,
    registry: createMetricsRegistry(),
    meta: meta as unknown as BrokerOptions['meta'] & object,
    mqtt: { sysIntervalMs: 0 },
    ...opts,
    tls: { reloadCheckMs: 100, ...opts.tls },
  });
  const ports: Record<string, number> = {};
  for (const l of broker.listeners) ports[l.name] = await l.listen();
  await broker.ready();
  await broker.security.store.ready;
  t.after(() => broker.close(200));
  return { broker, admin: new SecurityAdmin(meta), meta, ports, logs };
}

/** Resolves once the broker's cache has caught up with meta (watches deliver asynchronously). */
export async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 20));
}

/** The SUBACK codes for `filter` (mqtt.js rejects on a failure code; the codes are on the packet). */
export async function granted(c: MqttClient, filter: string, opts: { qos?: 0 | 1 | 2 } = {}): Promise<number[]> {
  try {
    return (await c.subscribeAsync(filter, { qos: opts.qos ?? 0 })).map((g) => g.qos);
  } catch (err) {
    const p = (err as { packet?: { granted?: number[]; reasonCode?: number } }).packet;
    if (p?.granted !== undefined) return p.granted;
    throw err;
  }
}
