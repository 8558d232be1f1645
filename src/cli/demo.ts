// `slipstream demo`: every seed's system, before and after, on the embedded defaults, in about two minutes.
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { parseDurationMs } from '../config/units.js';
import { runBench } from './bench.js';

/**
 * Registers `demo`: starts the emulators and gateways itself (no Redis, no PostgreSQL, no network),
 * runs every benchmark scenario briefly, prints the before/after table and writes
 * `slipstream-report.html` and `slipstream-report.json`. First it prints the live dashboard's URL: every
 * scenario's gateway (but the proxy overhead one, which must not be watched) serves its admin listener
 * on that one port in turn, and an open page reconnects to each.
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
      const adminPort = await freeLoopbackPort();
      process.stdout.write(
        `Live dashboard while the demo runs: http://127.0.0.1:${adminPort}/dashboard ` +
          '(each scenario in turn; the page reconnects by itself)\n',
      );
      const report = await runBench({ names: [], durationMs, json: flags.json, html: flags.html, adminPort });
      if (report !== undefined)
        process.stdout.write(`Open ${flags.html} in a browser for the latency charts.\n`);
    });
}

/** A loopback port free right now (the OS picks it; it stays free unless another program takes it). */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
