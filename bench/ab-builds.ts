// Two builds of Slipstream in one run: the same workloads through each, interleaved, beside the bare proxy.
//
//   npm run build && node --import tsx bench/ab-builds.ts --before ../other-checkout [--duration 4s] [--json FILE]
//     [--parts proxy,llm,mcp] [--workloads proxy] [--after-era 2025-11-25|auto|2026-07-28]
//
// `--before` is another checkout with `npm ci` done (its `bin/slipstream.js` runs its own `dist/`); the
// "after" build is this one. Both gateways get the same config and each its own pinned core in turn (CPU 1,
// upstreams on CPU 0); every path is measured in two interleaved halves and the better half kept, so a
// drift of the machine's speed during the run moves both builds alike. Workloads: a zero-delay GET (the
// proxy path), a 10-token streamed chat completion (the LLM relay), and a REST call of a stdio MCP tool
// (the tool stack over a 4-process pool); latency at concurrency 1, throughput closed-loop. `--parts` narrows
// the config to some of the three (`--workloads`, default the same parts, the workloads run), to find which
// part of the config costs what. The MCP server speaks both eras; a build before the v2 SDK (88e4eae) speaks only
// 2025-11-25, so the after build's pool is pinned to that era too (`--after-era`, default `2025-11-25`) and the
// comparison is of the two gateways, not of the two protocol eras (`bench mcp` shows what the 2026-07-28 era
// costs, against a floor of its own era).
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChild, startGatewayChild } from '../src/bench/child.js';
import type { ChildHandle } from '../src/bench/child.js';
import { httpTask } from '../src/bench/http-task.js';
import type { HttpTaskRequest } from '../src/bench/http-task.js';
import { measureInterleaved, runLoadWithCpu } from '../src/bench/load.js';
import type { LoadMode, LoadResultWithCpu } from '../src/bench/load.js';
import { formatTable } from '../src/bench/scenario.js';
import { parseDurationMs } from '../src/config/units.js';

type Measured = LoadResultWithCpu;

type Part = 'proxy' | 'llm' | 'mcp';

interface Workload {
  name: string;
  part: Part;
  request: HttpTaskRequest;
  concurrency: number;
  /** Gateway path only: the bare proxy forwards plain HTTP and cannot call an MCP tool. */
  bare: boolean;
}

const WORKLOADS: readonly Workload[] = [
  { name: 'proxy GET', part: 'proxy', request: { path: '/bench' }, concurrency: 64, bare: true },
  {
    name: 'chat stream',
    part: 'llm',
    request: {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', 'x-emulate-tokens': '10', 'x-emulate-gap': '0ms' },
      body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    },
    concurrency: 32,
    bare: true,
  },
  {
    name: 'MCP tool (REST)',
    part: 'mcp',
    request: {
      method: 'POST',
      path: '/tools/emu/echo',
      headers: { 'content-type': 'application/json' },
      body: '{"text":"ping"}',
    },
    concurrency: 16,
    bare: false,
  },
];

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at === -1 ? undefined : process.argv[at + 1];
}

async function main(): Promise<void> {
  const beforeDir = argument('--before');
  if (beforeDir === undefined)
    throw new Error('usage: bench/ab-builds.ts --before <checkout> [--duration 4s]');
  const durationMs = parseDurationMs(argument('--duration') ?? '4s') ?? 4_000;
  const parts = new Set((argument('--parts') ?? 'proxy,llm,mcp').split(',') as Part[]);
  const workloads = new Set((argument('--workloads') ?? [...parts].join(',')).split(',') as Part[]);
  const afterEra = argument('--after-era') ?? '2025-11-25';
  const here = fileURLToPath(new URL('..', import.meta.url));
  const clis = {
    before: resolve(beforeDir, 'bin/slipstream.js'),
    after: resolve(here, 'bin/slipstream.js'),
  };
  const children: ChildHandle[] = [];
  const start = async (handle: Promise<ChildHandle>) => {
    const child = await handle;
    children.push(child);
    return child;
  };
  try {
    const http = await start(
      startChild(['emulate', 'http', '--body-bytes', '64'], { cpu: 0, cli: clis.after }),
    );
    const llm = await start(startChild(['emulate', 'llm'], { cpu: 0, cli: clis.after }));
    const mcpServer = resolve(here, 'dist/emulators/mcp-server.js');
    // Keys both builds know (the older one has no `server.limits`; 64 connections stay under the default cap).
    const sections: Record<Part, string> = {
      proxy: `upstreams:
  emu: { url: "${http.url}", pool: { connections: 64 } }
routes:
  - { name: emu, match: { prefix: /bench }, upstream: emu }
`,
      llm: `llm:
  providers:
    emu: { baseUrl: "${llm.url}/v1", models: { m: emu-small }, pool: { connections: 64 } }
`,
      mcp: `mcp:
  servers:
    emu: { type: stdio, command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(mcpServer)}], pool: { min: 4, max: 4 } }
`,
    };
    const config =
      'server: { listen: "127.0.0.1:0" }\n' +
      (parts.has('proxy') ? '' : 'upstreams: {}\n') +
      (['proxy', 'llm', 'mcp'] as Part[])
        .filter((part) => parts.has(part))
        .map((part) => sections[part])
        .join('');
    const gateways = {
      before: await start(startGatewayChild(config, { cpu: 1, cli: clis.before })),
      after: await start(startGatewayChild(withEra(config, afterEra), { cpu: 1, cli: clis.after })),
    };
    const bareFor = {
      'proxy GET': await start(
        startChild(['emulate', 'bare-proxy', '--target', http.url], { cpu: 1, cli: clis.after }),
      ),
      'chat stream': await start(
        startChild(['emulate', 'bare-proxy', '--target', llm.url, '--connections', '64'], {
          cpu: 1,
          cli: clis.after,
        }),
      ),
    } as Record<string, ChildHandle>;

    /** One path's run, with the CPU its process spent per request (steadier than req/s on a busy machine). */
    const measure = async (
      target: ChildHandle,
      request: HttpTaskRequest,
      mode: LoadMode,
      ms: number,
    ): Promise<Measured> => {
      const connections = mode.kind === 'closed' ? mode.concurrency : 1;
      const task = httpTask(target.url, request, { connections });
      try {
        const warmupMs = Math.min(1_000, ms / 4);
        return await runLoadWithCpu({ task: task.task, mode, durationMs: ms, warmupMs }, target.child.pid);
      } finally {
        await task.close();
      }
    };
    const rows: Array<Record<string, unknown>> = [];
    for (const workload of WORKLOADS.filter((w) => workloads.has(w.part))) {
      for (const mode of [
        { kind: 'closed', concurrency: 1 },
        { kind: 'closed', concurrency: workload.concurrency },
      ] as LoadMode[]) {
        const paths: Record<string, (ms: number) => Promise<Measured>> = {
          before: (ms) => measure(gateways.before, workload.request, mode, ms),
          after: (ms) => measure(gateways.after, workload.request, mode, ms),
        };
        const bare = bareFor[workload.name];
        if (workload.bare && bare !== undefined) {
          paths.bare = (ms) => measure(bare, workload.request, mode, ms);
        }
        const result = await measureInterleaved(paths, durationMs);
        rows.push({ workload: workload.name, mode, ...result });
      }
    }
    report(rows);
    const json = argument('--json');
    if (json !== undefined)
      await writeFile(json, JSON.stringify({ durationMs, clis, parts: [...parts], afterEra, rows }, null, 2));
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

/** The config with the MCP server's `era` set (a key the builds before the v2 SDK do not know). */
function withEra(config: string, era: string): string {
  return config.replace('pool: { min: 4, max: 4 } }', `pool: { min: 4, max: 4 }, era: "${era}" }`);
}

function report(rows: ReadonlyArray<Record<string, unknown>>): void {
  const cell = (r: Measured | undefined, pick: (r: Measured) => number | undefined) =>
    r === undefined ? '-' : (pick(r) ?? '-');
  const lines = formatTable(
    ['bare proxy', 'before', 'after', 'after/before', 'before/bare', 'after/bare'],
    rows.flatMap((row) => {
      const [bare, before, after] = ['bare', 'before', 'after'].map((k) => row[k] as Measured | undefined);
      const c = (row.mode as { concurrency: number }).concurrency;
      const figures: Array<[string, (r: Measured) => number | undefined]> =
        c === 1
          ? [
              [`${String(row.workload)} p50 c=1 (us)`, (r) => r.latencyUs.p50],
              [`${String(row.workload)} p99 c=1 (us)`, (r) => r.latencyUs.p99],
            ]
          : [
              [`${String(row.workload)} req/s c=${c}`, (r) => r.throughputPerS],
              [`  CPU per request c=${c} (us)`, (r) => r.cpuUsPerRequest],
            ];
      return figures.map(([label, pick]) => {
        const ratio = (a: Measured | undefined, b: Measured | undefined) => {
          const [x, y] = [a === undefined ? undefined : pick(a), b === undefined ? undefined : pick(b)];
          return x === undefined || y === undefined || y === 0 ? '-' : (x / y).toFixed(2);
        };
        return [
          label,
          cell(bare, pick),
          cell(before, pick),
          cell(after, pick),
          ratio(after, before),
          ratio(before, bare),
          ratio(after, bare),
        ];
      });
    }),
  );
  console.log(lines.join('\n'));
}

await main();
