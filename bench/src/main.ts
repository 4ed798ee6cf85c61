#!/usr/bin/env node
import { readFileSync } from 'node:fs';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Benchmarks by name: each module exports `run(argv)` and prints its own table. */
const benches: Record<string, { about: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> }> = {
  mqtt: { about: 'MQTT load generator: conn | pub | sub | pubsub (any broker)', load: () => import('./mqtt-bench.js') },
  kafka: { about: 'Kafka load generator: produce | consume (any broker)', load: () => import('./kafka-bench.js') },
  compare: { about: 'RobustMQ beside Mosquitto and Aedes: standard scenarios, table of medians', load: () => import('./compare.js') },
  sink: { about: 'MQTT server that discards everything: measures the generator alone', load: () => import('./sink.js') },
  'kafka-vs-journal': {
    about: 'Kafka produce (acks 1, all) and fetch against a started server beside journal append, one table',
    load: () => import('./kafka-vs-journal.js'),
  },
  journal: { about: 'journal storage engine: append, read, multiplexed shards ([dir])', load: () => import('./journal-bench.js') },
  meta: { about: 'meta: committed writes/s and latency on 1 and 3 nodes, watch fan-out', load: () => import('./meta-bench.js') },
};

const HELP = `robust-bench ${VERSION} — load generator and benchmarks for RobustMQ

Usage:
  robust-bench <benchmark> [options]   run one benchmark (each has --help)
  robust-bench --help | --version

Benchmarks:
${Object.entries(benches)
  .map(([name, b]) => `  ${name.padEnd(12)} ${b.about}`)
  .join('\n')}

Each prints a human summary, or JSON with --json, and exits 1 when messages were lost or errors
occurred. \`make bench\` runs \`robust-bench compare\`. Method and latest results: docs/benchmarks.md.
`;

const [name, ...rest] = process.argv.slice(2);
if (name === undefined || name === '--help' || name === '-h') {
  process.stdout.write(HELP);
  process.exit(name === undefined ? 2 : 0);
}
if (name === '--version' || name === '-V') {
  process.stdout.write(`robust-bench ${VERSION}\n`);
  process.exit(0);
}
const bench = benches[name];
if (bench === undefined) {
  process.stderr.write(`robust-bench: unknown benchmark: ${name}\nRun robust-bench --help for the list.\n`);
  process.exit(2);
}
const mod = await bench.load();
process.exit(await mod.run(rest));
