// `slipstream demo`: every seed's system, before and after, on the embedded defaults, in about two minutes.
import type { Command } from 'commander';
import { parseDurationMs } from '../config/units.js';
import { runBench } from './bench.js';

/**
 * Registers `demo`: starts the emulators and gateways itself (no Redis, no PostgreSQL, no network),
 * runs every benchmark scenario briefly, prints the before/after table and writes
 * `slipstream-report.html` and `slipstream-report.json`.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run every scenario briefly against emulated upstreams; print the table, write the HTML report',
    )
    .option('--duration <duration>', 'length of each measured run', '2s')
    .option('--html <file>', 'HTML report', 'slipstream-report.html')
    .option('--json <file>', 'JSON report', 'slipstream-report.json')
    .action(async (flags: { duration: string; html: string; json: string }) => {
      const durationMs = parseDurationMs(flags.duration);
      if (durationMs === undefined) {
        process.stderr.write(`--duration: expected a duration like "2s", got "${flags.duration}"\n`);
        process.exitCode = 2;
        return;
      }
      const report = await runBench({ names: [], durationMs, json: flags.json, html: flags.html });
      if (report !== undefined)
        process.stdout.write(`Open ${flags.html} in a browser for the latency charts.\n`);
    });
}
