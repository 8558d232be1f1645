// Instructions per proxied request under valgrind: a cost figure that does not move with the VM's speed.
//
//   npm run build && node --import tsx bench/instructions.ts [--cli ../other-checkout] [--from 1500] [--to 6000]
//
// Starts an HTTP emulator and a gateway (one proxy route) whose Node runs under `valgrind --tool=cachegrind
// --cache-sim=no` (single-threaded, so GC and compilation are counted on the one thread), sends `--from`
// GETs at concurrency 16, stops it and reads the instruction total; then the same with `--to` requests. The
// difference over `to - from` requests is the steady-state cost of one request: start-up and JIT warm-up
// cancel out. Two runs of one build agree within about 7%. `--cli` measures another checkout's build.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { startChild, startGatewayChild } from '../src/bench/child.js';

const CONCURRENCY = 16;

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

/** The gateway's instruction total for start-up plus `requests` GETs. */
async function instructions(cli: string, upstream: string, requests: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-instructions-'));
  try {
    const out = join(dir, 'cachegrind.out');
    const node = join(dir, 'node.sh');
    await writeFile(
      node,
      `#!/bin/sh\nexec valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=${out} ` +
        `--smc-check=all-non-file ${process.execPath} --single-threaded "$@"\n`,
    );
    await chmod(node, 0o755);
    const config = `server: { listen: "127.0.0.1:0" }
upstreams:
  emu: { url: "${upstream}", pool: { connections: 64 } }
routes:
  - { name: emu, match: { prefix: /bench }, upstream: emu }
`;
    const gateway = await startGatewayChild(config, { cli, node, startTimeoutMs: 600_000 });
    const pool = new Pool(gateway.url, { connections: CONCURRENCY });
    let left = requests;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (left-- > 0) {
          const response = await pool.request({ path: '/bench', method: 'GET' });
          await response.body.dump();
        }
      }),
    );
    await pool.close();
    await gateway.stop();
    // valgrind writes its file as the process exits, after the child handle saw the exit.
    for (let waited = 0; waited < 30_000; waited += 200) {
      const text = await readFile(out, 'utf8').catch(() => '');
      const summary = text.split('\n').find((line) => line.startsWith('summary:'));
      if (summary !== undefined) return Number(summary.split(/\s+/)[1]);
      await new Promise((done) => setTimeout(done, 200));
    }
    throw new Error('valgrind wrote no summary');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  execFileSync('valgrind', ['--version']); // fails loudly where valgrind is missing
  const here = fileURLToPath(new URL('..', import.meta.url));
  const cli = resolve(argument('--cli') ?? here, 'bin/slipstream.js');
  const from = Number(argument('--from') ?? 1_500);
  const to = Number(argument('--to') ?? 6_000);
  const emulator = await startChild(['emulate', 'http', '--body-bytes', '64']);
  try {
    const low = await instructions(cli, emulator.url, from);
    const high = await instructions(cli, emulator.url, to);
    const perRequest = Math.round((high - low) / (to - from));
    console.log(JSON.stringify({ cli, from, to, instructions: { [from]: low, [to]: high }, perRequest }));
  } finally {
    await emulator.stop();
  }
}

await main();
