// What each MCP era costs: one REST tool call through this build pinned to 2025-11-25 and to 2026-07-28 (and another build).
//
//   npm run build && node --import tsx bench/mcp-eras.ts [--before ../checkout-of-88e4eae] [--rounds 6] [--seconds 3]
//
// Each gateway runs a 4-process stdio pool of the emulator (which speaks both eras) on CPU 1; the REST `echo`
// call runs at concurrency 16, the gateways in alternating order round by round. Per gateway: the median
// calls/s and the CPU per call of the gateway ("gw") and of its four children ("srv"), from /proc, so
// the era's cost shows on both sides of the pipe. `--before` adds another checkout's build with the same
// config and no `era` key (a build before the v2 SDK knows none and speaks 2025-11-25).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGatewayChild } from '../src/bench/child.js';
import type { ChildHandle } from '../src/bench/child.js';
import { cpuTimeMs } from '../src/bench/cpu-time.js';
import { httpTask } from '../src/bench/http-task.js';
import { runLoad } from '../src/bench/load.js';
import { formatTable } from '../src/bench/scenario.js';

const CONCURRENCY = 16;

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

/** The pids of `pid`'s children (Linux `/proc/<pid>/task/<pid>/children`). */
function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

const sum = (values: Array<number | undefined>) => values.reduce<number>((a, b) => a + (b ?? 0), 0);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const here = fileURLToPath(new URL('..', import.meta.url));
  const rounds = Number(argument('--rounds') ?? 6);
  const seconds = Number(argument('--seconds') ?? 3);
  const server = resolve(here, 'dist/emulators/mcp-server.js');
  const config = (era: string | undefined) => `server: { listen: "127.0.0.1:0" }
upstreams: {}
mcp:
  servers:
    emu: { type: stdio, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(server)}], pool: { min: 4, max: 4 }${era === undefined ? '' : `, era: "${era}"`} }
`;
  const builds: Array<{ name: string; cli: string; era: string | undefined }> = [
    { name: 'this build, 2025-11-25', cli: resolve(here, 'bin/slipstream.js'), era: '2025-11-25' },
    { name: 'this build, 2026-07-28', cli: resolve(here, 'bin/slipstream.js'), era: '2026-07-28' },
  ];
  const before = argument('--before');
  if (before !== undefined)
    builds.unshift({ name: 'before', cli: resolve(before, 'bin/slipstream.js'), era: undefined });

  const gateways: ChildHandle[] = [];
  try {
    for (const build of builds) {
      gateways.push(await startGatewayChild(config(build.era), { cpu: 1, cli: build.cli }));
    }
    const samples = builds.map(() => [] as Array<{ rate: number; gatewayUs: number; childrenUs: number }>);
    for (let round = 0; round < rounds; round++) {
      const order = builds.map((_, at) => at);
      if (round % 2 === 1) order.reverse();
      for (const at of order) {
        const gateway = gateways[at]!;
        const pid = gateway.child.pid!;
        const children = childrenOf(pid);
        const task = httpTask(
          gateway.url,
          {
            method: 'POST',
            path: '/tools/emu/echo',
            headers: { 'content-type': 'application/json' },
            body: '{"text":"ping"}',
          },
          { connections: CONCURRENCY },
        );
        try {
          const mode = { kind: 'closed', concurrency: CONCURRENCY } as const;
          await runLoad({ task: task.task, mode, durationMs: 500 });
          const [g0, c0] = [cpuTimeMs(pid), sum(children.map(cpuTimeMs))];
          const result = await runLoad({ task: task.task, mode, durationMs: seconds * 1_000 });
          const [g1, c1] = [cpuTimeMs(pid), sum(children.map(cpuTimeMs))];
          const calls = result.requests;
          samples[at]!.push({
            rate: result.throughputPerS,
            gatewayUs: (((g1 ?? 0) - (g0 ?? 0)) * 1_000) / calls,
            childrenUs: ((c1 - c0) * 1_000) / calls,
          });
        } finally {
          await task.close();
        }
      }
    }
    const lines = formatTable(
      ['calls/s', 'gw us/call', 'srv us/call'],
      builds.map((build, at) => [
        build.name,
        Math.round(median(samples[at]!.map((s) => s.rate))),
        Math.round(median(samples[at]!.map((s) => s.gatewayUs))),
        Math.round(median(samples[at]!.map((s) => s.childrenUs))),
      ]),
    );
    console.log(`REST echo at concurrency ${CONCURRENCY}, medians of ${rounds} rounds of ${seconds} s`);
    console.log(lines.join('\n'));
  } finally {
    await Promise.all(gateways.map((g) => g.stop()));
  }
}

await main();
