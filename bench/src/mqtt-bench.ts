/**
 * `robust-bench mqtt conn|pub|sub|pubsub`: the MQTT load generator. Works against any MQTT 3.1,
 * 3.1.1 or 5.0 broker. See bench/README.md for the options and the meaning of every number.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCounts, Histogram, Progress, cpuSince, formatSummary, summarizeLatency, type Summary } from './stats.js';
import { parseOptions, renderHelp, targetOptions, tlsFrom, usageError, type OptionTable, type OptionValues } from './options.js';
import { BenchConnection, Publisher, Pump, Subscriber, Totals, forEachLimited, type Target } from './mqtt-client.js';
import type { ProtocolLevel } from './mqtt-packets.js';

export const MqttModes = ['conn', 'pub', 'sub', 'pubsub'] as const;
export type MqttMode = (typeof MqttModes)[number];

const mqttOptions = {
  ...targetOptions,
  'mqtt-version': { type: 'string', default: '3.1.1', choices: ['3.1', '3.1.1', '5', '5.0'], help: 'protocol version', short: 'V' },
  clients: { type: 'number', min: 1, short: 'c', help: 'publishers (pub, pubsub), subscribers (sub) or connections (conn)' },
  subscribers: { type: 'number', min: 0, default: 1, help: 'subscribers in pubsub' },
  concurrency: { type: 'number', min: 1, default: 200, help: 'connection attempts in progress at once' },
  count: { type: 'number', min: 0, short: 'n', help: 'messages per publisher (sub: per subscriber); default 100000 unless --duration' },
  duration: { type: 'number', min: 0, short: 'd', help: 'seconds to publish (instead of --count)' },
  rate: { type: 'number', min: 0, default: 0, help: 'total PUBLISH per second over all publishers, 0 = as fast as possible' },
  size: {
    type: 'number',
    min: 16,
    max: 256 * 1024 * 1024,
    default: 64,
    short: 's',
    help: 'payload bytes (≥ 16: send time, publisher, sequence)',
  },
  qos: { type: 'number', min: 0, max: 2, default: 0, short: 'q', help: 'QoS of PUBLISH and SUBSCRIBE' },
  topic: { type: 'string', default: 'bench/%i', short: 't', help: 'topic of each publisher; %i = client index' },
  filter: { type: 'string', help: 'subscription filter, %i = subscriber index (default: --topic with a %i level as +)' },
  retain: { type: 'boolean', default: false, help: 'publish with the retain flag' },
  inflight: { type: 'number', min: 1, max: 65535, default: 1000, help: 'unacknowledged QoS 1/2 PUBLISH per publisher' },
  batch: {
    type: 'number',
    min: 1,
    help: 'PUBLISH per socket write (default 64, fewer with over 100 publishers: buffers are per publisher)',
  },
  keepalive: { type: 'number', min: 0, max: 65535, default: 60, help: 'keep-alive seconds' },
  'client-id': { type: 'string', default: 'bench-%r-%i', help: 'client id pattern; %i = index, %r = random run id' },
  'drain-timeout': { type: 'number', min: 0, default: 5, help: 'seconds without progress before waiting for acks/deliveries gives up' },
  'connect-timeout': { type: 'number', min: 0.1, default: 10, help: 'seconds a connection may take to CONNACK' },
  hold: { type: 'number', min: 0, default: 0, help: 'conn: seconds to keep the connections open once all are up' },
  transport: {
    type: 'string',
    choices: ['native', 'node'],
    help: 'TCP transport of the generator: native (our libuv addon, far less CPU per connection; default for conn) or node (net.Socket; default otherwise). TLS and host names always use node',
  },
  'no-progress': { type: 'boolean', default: false, help: 'no live progress line' },
} as const satisfies OptionTable;

export interface MqttBenchOptions {
  mode: MqttMode;
  target: Target;
  clients: number;
  subscribers: number;
  concurrency: number;
  /** Per publisher (sub: per subscriber); Infinity with a duration. */
  count: number;
  durationS: number;
  rate: number;
  size: number;
  qos: number;
  topic: string;
  filter: string;
  retain: boolean;
  inflight: number;
  batch: number;
  clientId: string;
  drainTimeoutS: number;
  holdS: number;
  progress: boolean;
}

/** The default filter for a topic pattern: a level that is exactly `%i` becomes `+`. */
export function defaultFilter(topic: string): string {
  return topic
    .split('/')
    .map((l) => (l === '%i' ? '+' : l))
    .join('/')
    .replaceAll('%i', '0');
}

/** Whether `topic` matches the MQTT filter (`+`, `#`). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return !(i === 0 && t[0]!.startsWith('$'));
    if (i >= t.length) return false;
    if (f[i] === '+') {
      if (i === 0 && t[0]!.startsWith('$')) return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

export function optionsFrom(mode: MqttMode, v: OptionValues): MqttBenchOptions {
  const level: ProtocolLevel = v['mqtt-version'] === '3.1' ? 3 : v['mqtt-version'] === '3.1.1' ? 4 : 5;
  const tls = tlsFrom(v);
  const durationS = (v.duration as number | undefined) ?? 0;
  const count = v.count !== undefined ? (v.count as number) : durationS > 0 ? Number.POSITIVE_INFINITY : 100_000;
  const topic = v.topic as string;
  return {
    mode,
    target: {
      host: v.host as string,
      port: (v.port as number | undefined) ?? (tls ? 8883 : 1883),
      tls,
      username: v.username as string | undefined,
      password: v.password as string | undefined,
      level,
      keepaliveS: v.keepalive as number,
      connectTimeoutMs: (v['connect-timeout'] as number) * 1000,
      transport: (v.transport as 'native' | 'node' | undefined) ?? (mode === 'conn' ? 'native' : 'node'),
    },
    clients: (v.clients as number | undefined) ?? (mode === 'conn' ? 1000 : 1),
    subscribers: mode === 'sub' ? ((v.clients as number | undefined) ?? 1) : mode === 'pubsub' ? (v.subscribers as number) : 0,
    concurrency: v.concurrency as number,
    count: count === 0 && durationS > 0 ? Number.POSITIVE_INFINITY : count,
    durationS,
    rate: v.rate as number,
    size: v.size as number,
    qos: v.qos as number,
    topic,
    filter: (v.filter as string | undefined) ?? defaultFilter(topic),
    retain: v.retain as boolean,
    inflight: v.inflight as number,
    batch: (v.batch as number | undefined) ?? Math.min(64, Math.max(4, Math.floor(6400 / ((v.clients as number | undefined) ?? 1)))),
    clientId: (v['client-id'] as string).replaceAll('%r', randomBytes(3).toString('hex')),
    drainTimeoutS: v['drain-timeout'] as number,
    holdS: v.hold as number,
    progress: !v.json && !v['no-progress'],
  };
}

/** Waits until `done()` or until `value()` has not moved for `idleMs`. */
async function waitForProgress(done: () => boolean, value: () => number, idleMs: number): Promise<void> {
  let last = value();
  let lastChange = performance.now();
  while (!done()) {
    await new Promise((r) => setTimeout(r, 10));
    const v = value();
    if (v !== last) {
      last = v;
      lastChange = performance.now();
    } else if (performance.now() - lastChange >= idleMs) return;
  }
}

/** Hooks for scripts that drive the generator in-process (the comparison scripts). */
export interface MqttBenchHooks {
  /** conn: called once every connection is up; the connections stay open until it resolves. */
  onConnected?: (count: number) => Promise<void>;
}

export async function runMqttBench(o: MqttBenchOptions, hooks: MqttBenchHooks = {}): Promise<Summary> {
  const errors = new ErrorCounts();
  const totals = new Totals(errors, new Histogram(), new Histogram());
  const connectLatency = new Histogram();
  const all: BenchConnection[] = [];
  const id = (i: number, role: string): string => o.clientId.replaceAll('%i', `${role}${i}`);
  const connectAll = async (conns: BenchConnection[], after?: (c: BenchConnection) => Promise<void>): Promise<void> => {
    all.push(...conns);
    await forEachLimited(conns, o.concurrency, async (c) => {
      try {
        await c.connect();
        connectLatency.record((performance.now() - c.connectStartedMs) * 1000);
        if (after) await after(c);
      } catch (err) {
        errors.add((err as Error).message);
      }
    });
  };
  const progress = new Progress(o.progress, () => ({ sent: totals.sent, received: totals.received, errors: errors.total }));
  const pingTimer = o.target.keepaliveS > 0 ? setInterval(() => all.forEach((c) => c.ping()), (o.target.keepaliveS * 1000) / 2) : undefined;
  pingTimer?.unref();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let tMeasure = t0;
  let sendEnd = t0;
  let connections: Summary['connections'];
  let expected = 0;
  let lost = 0;
  try {
    if (o.mode === 'conn') {
      const conns = Array.from({ length: o.clients }, (_, i) => new BenchConnection(o.target, totals, id(i, 'c')));
      await connectAll(conns);
      const secs = (performance.now() - t0) / 1000;
      const up = conns.filter((c) => c.isUp).length;
      connections = { count: up, rate: Math.round(up / secs), latency: summarizeLatency(connectLatency) };
      if (hooks.onConnected) await hooks.onConnected(up);
      else if (o.holdS > 0) await new Promise((r) => setTimeout(r, o.holdS * 1000));
    } else {
      const subs = Array.from(
        { length: o.subscribers },
        (_, i) => new Subscriber(o.target, totals, id(i, 's'), o.filter.replaceAll('%i', String(i)), o.qos),
      );
      await connectAll(subs, (c) => (c as Subscriber).subscribe());
      const pubCount = o.mode === 'sub' ? 0 : o.clients;
      const pubs = Array.from(
        { length: pubCount },
        (_, i) =>
          new Publisher(o.target, totals, id(i, 'p'), {
            index: i,
            topic: o.topic.replaceAll('%i', String(i)),
            qos: o.qos,
            payloadBytes: o.size,
            count: o.count,
            inflight: o.inflight,
            batch: o.batch,
            retain: o.retain,
          }),
      );
      await connectAll(pubs);
      const upPubs = pubs.filter((p) => p.isUp);
      const upSubs = subs.filter((s) => s.isUp);
      // deliveries each publisher's messages should produce
      const fanout = upPubs.map((p) => upSubs.filter((s) => topicMatches(s.filter, p.o.topic)).length);
      tMeasure = performance.now();
      if (o.mode === 'sub') {
        const target = o.count * upSubs.length;
        const deadline = o.durationS > 0 ? tMeasure + o.durationS * 1000 : Number.POSITIVE_INFINITY;
        while (totals.received < target && performance.now() < deadline && upSubs.some((s) => s.isUp))
          await new Promise((r) => setTimeout(r, 20));
        sendEnd = performance.now();
        lost = upSubs.reduce((a, s) => a + s.gaps(), 0);
        expected = totals.received + lost;
      } else {
        const pump = new Pump(upPubs, o.rate);
        pump.begin(o.durationS > 0 ? o.durationS * 1000 : Number.POSITIVE_INFINITY);
        await pump.finished;
        sendEnd = performance.now();
        const idleMs = o.drainTimeoutS * 1000;
        if (o.qos > 0)
          await waitForProgress(
            () => totals.acked >= totals.sent,
            () => totals.acked,
            idleMs,
          );
        expected = upPubs.reduce((a, p, i) => a + p.seq * fanout[i]!, 0);
        if (o.mode === 'pubsub')
          await waitForProgress(
            () => totals.received >= expected,
            () => totals.received,
            idleMs,
          );
        lost = Math.max(0, expected - totals.received);
        if (o.qos > 0) {
          const unacked = totals.sent - totals.acked;
          if (unacked > 0) errors.add('PUBLISH never acknowledged', unacked);
        }
      }
    }
  } finally {
    progress.stop();
    if (pingTimer) clearInterval(pingTimer);
  }
  const tEnd = performance.now();
  const cpu = cpuSince(cpu0, (tEnd - t0) / 1000);
  await Promise.all(all.map((c) => c.close()));
  const sendSecs = Math.max(1e-9, (sendEnd - tMeasure) / 1000);
  const lastReceive = totals.lastReceiveMs > 0 ? totals.lastReceiveMs - (performance.timeOrigin + tMeasure) : 0;
  const receiveSecs = Math.max(1e-9, Math.max(lastReceive, sendEnd - tMeasure) / 1000);
  const options = { ...o, target: undefined, host: o.target.host, port: o.target.port, tls: o.target.tls !== null, level: o.target.level };
  delete options.target;
  return {
    bench: `mqtt ${o.mode}`,
    target: `${o.target.host}:${o.target.port}`,
    options: Object.fromEntries(Object.entries(options).map(([k, v]) => [k, v === Number.POSITIVE_INFINITY ? null : v])),
    elapsedS: Math.round((tEnd - t0) / 10) / 100,
    sent: totals.sent,
    acked: totals.acked,
    received: totals.received,
    expected,
    lost,
    duplicates: totals.duplicates,
    sendRate: Math.round(totals.sent / sendSecs),
    receiveRate: Math.round(totals.received / receiveSecs),
    receiveMBps: Math.round(((totals.received * o.size) / receiveSecs / 1e6) * 10) / 10,
    latency: totals.latency.count > 0 ? summarizeLatency(totals.latency) : null,
    ackLatency: totals.ackLatency.count > 0 ? summarizeLatency(totals.ackLatency) : null,
    connections,
    errors: errors.toJSON(),
    errorCount: errors.total,
    cpu,
  };
}

const USAGE = `robust-bench mqtt conn|pub|sub|pubsub [options]

  conn     open --clients connections (--concurrency at a time): setup rate, CONNACK latency
  pub      --clients publishers send --count messages each (or for --duration seconds)
  sub      --clients subscribers receive from publishers elsewhere (another robust-bench pub)
  pubsub   --subscribers subscribe, --clients publishers publish: throughput, end-to-end latency, loss

Exit status: 0 ok, 1 messages lost or errors occurred, 2 bad options.
Examples:
  robust-bench mqtt pubsub -c 4 --subscribers 1 -t 'bench/%i' --filter 'bench/+' -q 1 -n 100000
  robust-bench mqtt pubsub -c 1 --subscribers 16 -t bench/x --filter bench/x -d 10
  robust-bench mqtt conn -c 10000 --concurrency 500 --hold 30`;

/** `robust-bench mqtt …` */
export async function run(argv: string[]): Promise<number> {
  const [mode, ...rest] = argv;
  if (mode === undefined || mode === '--help' || mode === '-h' || !(MqttModes as readonly string[]).includes(mode)) {
    const out = renderHelp(USAGE, mqttOptions);
    if (mode === undefined || mode.startsWith('-')) {
      process.stdout.write(out);
      return mode === undefined ? 2 : 0;
    }
    process.stderr.write(`robust-bench mqtt: unknown mode ${mode}; one of ${MqttModes.join(', ')}\n`);
    return 2;
  }
  let values: OptionValues;
  try {
    values = parseOptions(rest, mqttOptions).values;
  } catch (err) {
    return usageError(`mqtt ${mode}`, err);
  }
  if (values.help) {
    process.stdout.write(renderHelp(USAGE, mqttOptions));
    return 0;
  }
  const o = optionsFrom(mode as MqttMode, values);
  let hooks: MqttBenchHooks = {};
  if (o.mode === 'conn' && process.send) {
    // driven by a parent over IPC (the comparison scripts): report, then hold until released
    hooks = {
      onConnected: (count) =>
        new Promise<void>((resolve) => {
          process.once('message', () => resolve());
          process.send!({ type: 'connected', count });
        }),
    };
  }
  const s = await runMqttBench(o, hooks);
  process.stdout.write(values.json ? `${JSON.stringify(s)}\n` : formatSummary(s));
  return s.lost > 0 || s.errorCount > 0 ? 1 : 0;
}
