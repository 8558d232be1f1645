// `slipstream bench`: runs benchmark scenarios (loopback only), prints a summary and writes JSON.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { parseDurationMs } from '../config/units.js';
import { runProxyBench } from '../bench/scenarios/proxy.js';
import type { ProxyBenchResult } from '../bench/scenarios/proxy.js';

const SCENARIOS = { proxy: runProxyBench } as const;
type ScenarioName = keyof typeof SCENARIOS;

/** Registers `bench [scenario...] --duration 5s --json FILE`. */
export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`run benchmark scenarios: ${Object.keys(SCENARIOS).join(', ')} (default: all)`)
    .argument('[scenario...]', 'scenarios to run')
    .option('--duration <duration>', 'length of each measured run', '5s')
    .option('--json <file>', 'write results as JSON', 'bench/results/latest.json')
    .action(async (names: string[], flags: { duration: string; json: string }) => {
      const durationMs = parseDurationMs(flags.duration);
      const unknown = names.filter((name) => !(name in SCENARIOS));
      if (durationMs === undefined || unknown.length > 0) {
        process.stderr.write(
          durationMs === undefined
            ? `--duration: expected a duration like "5s", got "${flags.duration}"\n`
            : `unknown scenario ${unknown.join(', ')} (known: ${Object.keys(SCENARIOS).join(', ')})\n`,
        );
        process.exitCode = 2;
        return;
      }
      const selected = (names.length > 0 ? names : Object.keys(SCENARIOS)) as ScenarioName[];
      const results: ProxyBenchResult[] = [];
      for (const name of selected) {
        process.stderr.write(`running ${name}...\n`);
        const result = await SCENARIOS[name]({ durationMs });
        results.push(result);
        process.stdout.write(formatProxy(result));
      }
      const report = { date: new Date().toISOString(), node: process.version, durationMs, results };
      await mkdir(dirname(flags.json), { recursive: true });
      await writeFile(flags.json, `${JSON.stringify(report, null, 2)}\n`);
      process.stderr.write(`wrote ${flags.json}\n`);
    });
}

function formatProxy(r: ProxyBenchResult): string {
  const { latency: l, throughput: t } = r;
  const row = (label: string, values: number[], unit: string) =>
    `  ${label.padEnd(24)}${values.map((v) => String(v).padStart(11)).join('')}  ${unit}`;
  const lines = [
    '',
    'proxy: zero-delay upstream; bare proxy and gateway each pinned to one core',
    `  ${''.padEnd(24)}${['direct', 'bare proxy', 'slipstream'].map((h) => h.padStart(11)).join('')}`,
    row(
      'p50 at concurrency 1',
      [l.direct, l.bare, l.gateway].map((x) => x.latencyUs.p50),
      'us',
    ),
    row(
      'p99 at concurrency 1',
      [l.direct, l.bare, l.gateway].map((x) => x.latencyUs.p99),
      'us',
    ),
    row(
      `throughput`,
      [t.direct, t.bare, t.gateway].map((x) => x.throughputPerS),
      'req/s',
    ),
    `  slipstream over the bare proxy: p50 +${l.overBareP50Us} us, p99 +${l.overBareP99Us} us`,
    '',
    ...r.targets.map(
      (x) =>
        `  ${x.ok ? 'PASS' : 'MISS'}  ${x.name}: ${x.value} ${x.unit} (target ${x.comparison} ${x.limit})`,
    ),
    '',
  ];
  return `${lines.join('\n')}\n`;
}
