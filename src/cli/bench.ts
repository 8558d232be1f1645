// `slipstream bench` and `slipstream demo`: run benchmark scenarios (loopback only), print, write JSON and HTML.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { parseDurationMs } from '../config/units.js';
import type { BenchReport } from '../bench/report.js';
import type { Scenario, ScenarioResult } from '../bench/scenario.js';

/**
 * Every scenario by name, in the order a run with no names takes them. Each module (emulators, SDK clients)
 * is loaded only to run it, so no other command pays for the benches.
 */
// Scenario methods are bivariant in their result type, so each scenario's own result type fits here.
const SCENARIOS: Record<string, () => Promise<Scenario>> = {
  quotes: async () => (await import('../bench/scenarios/quotes.js')).quotesScenario,
  traces: async () => (await import('../bench/scenarios/traces.js')).tracesScenario,
  proxy: async () => (await import('../bench/scenarios/proxy.js')).proxyScenario,
  fanout: async () => (await import('../bench/scenarios/fanout.js')).fanoutScenario,
  chat: async () => (await import('../bench/scenarios/chat.js')).chatScenario,
  mcp: async () => (await import('../bench/scenarios/mcp.js')).mcpScenario,
};

export interface BenchRunOptions {
  /** Scenario names; empty runs them all. */
  names: readonly string[];
  durationMs: number;
  json: string;
  html?: string;
  /** Every scenario's gateway serves its admin listener (and dashboard) on this port. Default any free port. */
  adminPort?: number;
}

/** Registers `bench [scenario...] --duration 5s --json FILE --html FILE`. */
export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`run benchmark scenarios: ${Object.keys(SCENARIOS).join(', ')} (default: all)`)
    .argument('[scenario...]', 'scenarios to run')
    .option('--duration <duration>', 'length of each measured run', '5s')
    .option('--json <file>', 'write results as JSON', 'bench/results/latest.json')
    .option('--html <file>', 'also write the HTML report (self-contained, opens offline)')
    .action(async (names: string[], flags: { duration: string; json: string; html?: string }) => {
      const durationMs = parseDurationMs(flags.duration);
      if (durationMs === undefined) {
        process.stderr.write(`--duration: expected a duration like "5s", got "${flags.duration}"\n`);
        process.exitCode = 2;
        return;
      }
      await runBench({ names, durationMs, json: flags.json, html: flags.html });
    });
}

/**
 * Runs the named scenarios one after another (each starts and stops its own emulators and gateway),
 * prints each one's table, then the before/after summary, and writes the JSON (and HTML) report.
 * Sets exit code 2 for an unknown scenario name.
 */
export async function runBench(options: BenchRunOptions): Promise<BenchReport | undefined> {
  const known = Object.keys(SCENARIOS);
  const unknown = options.names.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    process.stderr.write(`unknown scenario ${unknown.join(', ')} (known: ${known.join(', ')})\n`);
    process.exitCode = 2;
    return undefined;
  }
  const { formatSummary, renderHtmlReport } = await import('../bench/report.js');
  const results: ScenarioResult[] = [];
  for (const [name, load] of Object.entries(SCENARIOS)) {
    if (options.names.length > 0 && !options.names.includes(name)) continue;
    const scenario = await load();
    process.stderr.write(`running ${scenario.name}: ${scenario.description}...\n`);
    const result = await scenario.run({ durationMs: options.durationMs, adminPort: options.adminPort });
    results.push(result);
    process.stdout.write(`\n${scenario.format(result)}\n`);
  }
  const report: BenchReport = {
    date: new Date().toISOString(),
    node: process.version,
    commit: gitCommit(),
    durationMs: options.durationMs,
    results,
  };
  process.stdout.write(`\nBefore and after, measured in this run:\n${formatSummary(results)}\n\n`);
  await write(options.json, `${JSON.stringify(report, null, 2)}\n`);
  if (options.html !== undefined) await write(options.html, renderHtmlReport(report));
  return report;
}

async function write(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text);
  process.stderr.write(`wrote ${file}\n`);
}

/** The checkout's short commit, or undefined outside a git work tree. */
function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return undefined;
  }
}
