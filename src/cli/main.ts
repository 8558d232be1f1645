// The `slipstream` command line: serve, check, emulate, bench, demo, mcp-stdio.
import { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerCheck } from './check.js';
import { registerDemo } from './demo.js';
import { registerEmulate } from './emulate.js';
import { registerMcpStdio } from './mcp-stdio.js';
import { registerServe } from './serve.js';

/** Runs the CLI with `argv` (as in `process.argv`). Sets `process.exitCode`; never calls `process.exit` on success. */
export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('slipstream')
    .description('A latency-first gateway between AI applications and the slow things they call.')
    .showHelpAfterError();
  registerServe(program);
  registerCheck(program);
  registerEmulate(program);
  registerBench(program);
  registerDemo(program);
  registerMcpStdio(program);
  await program.parseAsync(argv);
}
