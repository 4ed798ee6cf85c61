#!/usr/bin/env node
import { readFileSync } from 'node:fs';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Benchmarks by name: each module exports `run(argv)` and prints its own table. */
const benches: Record<string, { about: string; load: () => Promise<{ run: (argv: string[]) => Promise<number> }> }> = {};

const HELP = `robust-bench ${VERSION} — load generator and benchmarks for RobustMQ

Usage:
  robust-bench <benchmark> [options]   run one benchmark (each has --help)
  robust-bench --help | --version

Benchmarks:
${Object.entries(benches)
  .map(([name, b]) => `  ${name.padEnd(12)} ${b.about}`)
  .join('\n')}

The MQTT and Kafka load generators (mqtt conn|pub|sub|pubsub, kafka produce|consume) arrive with
their issue; the rest of bench/ holds the scripts that compare RobustMQ with other brokers.
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
