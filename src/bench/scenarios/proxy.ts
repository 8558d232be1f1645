// Benchmark `proxy`: the gateway's own cost against a zero-delay upstream, direct vs through Slipstream.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startChild } from '../child.js';
import type { ChildHandle } from '../child.js';
import { cpuTimeMs } from '../cpu-time.js';
import { httpTask } from '../http-task.js';
import { measureInterleaved, runLoad } from '../load.js';
import { formatTable, formatTargets, target } from '../scenario.js';
import type { Scenario, ScenarioOptions, ScenarioResult, Target } from '../scenario.js';

// Kept for scenarios written against this file; new code imports them from ../scenario.js.
export { target };
export type { Target };
import type { LoadMode, LoadResult } from '../load.js';

export interface ProxyBenchOptions {
  /** Duration of each measured run, in ms. Default 5,000. */
  durationMs?: number;
  /** Concurrency for the throughput runs. Default 64. */
  concurrency?: number;
}

/** The three paths measured: straight to the upstream, through a featureless Node proxy, through Slipstream. */
export interface Paths<T> {
  direct: T;
  bare: T;
  gateway: T;
}

export interface ProxyBenchResult extends ScenarioResult {
  scenario: 'proxy';
  latency: Paths<LoadResult> & {
    /** Gateway minus direct: what a client sees added. */
    addedP50Us: number;
    addedP99Us: number;
    /** Gateway minus bare proxy: Slipstream's own cost beyond the extra hop. */
    overBareP50Us: number;
    overBareP99Us: number;
  };
  throughput: Paths<LoadResult>;
  /**
   * Closed-loop throughput through `serve --workers 1` and `--workers 2`, neither pinned (the load
   * generator and the upstream share the same two cores): on kept-alive connections, and with a new
   * connection per request (under Node 20's round-robin the supervisor accepts each one and hands it over).
   */
  workers: Record<'keepAlive' | 'fresh', { one: WorkersRun; two: WorkersRun }>;
}

/** One run through `serve --workers N`, with the CPU the gateway's processes spent on it. */
export interface WorkersRun extends LoadResult {
  /** CPU time of every worker per request served, in us (10 ms resolution over the run). */
  workerCpuUsPerRequest: number;
  /** CPU time of the supervisor per request (0 with one worker, which is a plain process). */
  supervisorCpuUsPerRequest: number;
}

/** Concurrency of the new-connection-per-request runs (each request pays a TCP handshake). */
const FRESH_CONCURRENCY = 16;

const round2 = (x: number) => Math.round(x * 100) / 100;

/** Issue targets: added p50 <= 150 us and p99 <= 1.5 ms at concurrency 1; >= 10,000 req/s on one core. */
const TARGETS = { addedP50Us: 150, addedP99Us: 1_500, gatewayPerS: 10_000 };

/**
 * Runs an emulator (zero delay, pinned to CPU 0), a gateway with the default policy stack and a bare
 * reference proxy (both pinned to CPU 1, so each has exactly one core), then measures in one run:
 * latency at concurrency 1 and closed-loop throughput, on all three paths, interleaved; then the same
 * gateway config as `serve --workers 1` and `--workers 2`, unpinned, side by side.
 */
export async function runProxyBench(options: ProxyBenchOptions = {}): Promise<ProxyBenchResult> {
  const durationMs = options.durationMs ?? 5_000;
  const concurrency = options.concurrency ?? 64;
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-bench-'));
  const children: ChildHandle[] = [];
  try {
    const upstream = await startChild(['emulate', 'http', '--body-bytes', '64'], { cpu: 0 });
    children.push(upstream);
    const config = join(dir, 'slipstream.yaml');
    await writeFile(
      config,
      `server: { listen: "127.0.0.1:0", limits: { maxConnectionsPerIp: 1000000 } }
admin: { listen: "127.0.0.1:0" }
telemetry: { log: { level: warn } }
upstreams:
  emu: { url: "${upstream.url}", pool: { connections: ${concurrency} } }
routes:
  - { name: emu, match: { prefix: / }, upstream: emu }
`,
    );
    const gateway = await startChild(['serve', '-c', config], { cpu: 1 });
    children.push(gateway);
    const bare = await startChild(['emulate', 'bare-proxy', '--target', upstream.url], { cpu: 1 });
    children.push(bare);
    const urls: Paths<string> = { direct: upstream.url, bare: bare.url, gateway: gateway.url };

    const measure = async (target: string, mode: LoadMode, ms: number, fresh = false, warm = true) => {
      const connections = mode.kind === 'closed' ? mode.concurrency : 1;
      const http = httpTask(target, { path: '/bench' }, { connections, fresh });
      const warmupMs = warm ? Math.min(1_000, ms / 4) : 0;
      try {
        return await runLoad({ task: http.task, mode, durationMs: ms, warmupMs });
      } finally {
        await http.close();
      }
    };
    const measureAll = (mode: LoadMode): Promise<Paths<LoadResult>> =>
      measureInterleaved(
        {
          direct: (ms) => measure(urls.direct, mode, ms),
          bare: (ms) => measure(urls.bare, mode, ms),
          gateway: (ms) => measure(urls.gateway, mode, ms),
        },
        durationMs,
      );

    const latency = await measureAll({ kind: 'closed', concurrency: 1 });
    const throughput = await measureAll({ kind: 'closed', concurrency });

    const one = await startChild(['serve', '-c', config, '--workers', '1']);
    children.push(one);
    const two = await startChild(['serve', '-c', config, '--workers', '2'], { startTimeoutMs: 60_000 });
    children.push(two);
    const processes = {
      one: { supervisor: undefined, workers: [one.child.pid!] },
      two: { supervisor: two.child.pid!, workers: await workerPids(String(two.listening.adminUrl)) },
    };
    /** A warm-up, then a measured run with the CPU each of the gateway's processes spent during it. */
    const measureCpu = async (name: 'one' | 'two', mode: LoadMode, ms: number, fresh: boolean) => {
      const url = name === 'one' ? one.url : two.url;
      const { supervisor, workers } = processes[name];
      await measure(url, mode, Math.min(1_000, ms / 4), fresh, false);
      const cpu = () => ({
        workers: workers.reduce((sum, pid) => sum + (cpuTimeMs(pid) ?? 0), 0),
        supervisor: supervisor === undefined ? 0 : (cpuTimeMs(supervisor) ?? 0),
      });
      const before = cpu();
      const result = await measure(url, mode, ms, fresh, false);
      const after = cpu();
      const perRequest = (ms: number) => Math.round((ms * 1_000) / Math.max(1, result.ok));
      return {
        ...result,
        workerCpuUsPerRequest: perRequest(after.workers - before.workers),
        supervisorCpuUsPerRequest: perRequest(after.supervisor - before.supervisor),
      };
    };
    const measureWorkers = (fresh: boolean) => {
      const mode: LoadMode = { kind: 'closed', concurrency: fresh ? FRESH_CONCURRENCY : concurrency };
      return measureInterleaved(
        {
          one: (ms) => measureCpu('one', mode, ms, fresh),
          two: (ms) => measureCpu('two', mode, ms, fresh),
        },
        durationMs,
      );
    };
    const workers = { keepAlive: await measureWorkers(false), fresh: await measureWorkers(true) };
    const p = (r: LoadResult) => r.latencyUs;
    const addedP50Us = p(latency.gateway).p50 - p(latency.direct).p50;
    const addedP99Us = p(latency.gateway).p99 - p(latency.direct).p99;
    return {
      scenario: 'proxy',
      durationMs,
      comparisons: [
        {
          metric: 'p50 at concurrency 1, direct vs through Slipstream',
          unit: 'us',
          before: p(latency.direct).p50,
          after: p(latency.gateway).p50,
          better: 'lower',
          cost: true,
        },
        {
          metric: 'throughput on one core, bare Node proxy vs Slipstream',
          unit: 'req/s',
          before: throughput.bare.throughputPerS,
          after: throughput.gateway.throughputPerS,
          better: 'higher',
          cost: true,
        },
        {
          metric: 'throughput on kept-alive connections, serve --workers 1 vs --workers 2',
          unit: 'req/s',
          before: workers.keepAlive.one.throughputPerS,
          after: workers.keepAlive.two.throughputPerS,
          better: 'higher',
        },
      ],
      charts: [
        {
          title: 'latency at concurrency 1, zero-delay upstream',
          series: [
            { label: 'direct', curve: latency.direct.curve },
            { label: 'bare Node proxy', curve: latency.bare.curve },
            { label: 'Slipstream', curve: latency.gateway.curve },
          ],
        },
      ],
      latency: {
        ...latency,
        addedP50Us,
        addedP99Us,
        overBareP50Us: p(latency.gateway).p50 - p(latency.bare).p50,
        overBareP99Us: p(latency.gateway).p99 - p(latency.bare).p99,
      },
      throughput,
      workers,
      targets: [
        target('added p50 at concurrency 1', addedP50Us, '<=', TARGETS.addedP50Us, 'us'),
        target('added p99 at concurrency 1', addedP99Us, '<=', TARGETS.addedP99Us, 'us'),
        target(
          'throughput through the gateway on one core',
          throughput.gateway.throughputPerS,
          '>=',
          TARGETS.gatewayPerS,
          'req/s',
        ),
      ],
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await rm(dir, { recursive: true, force: true });
  }
}

/** The pids of a `serve --workers N` gateway's workers, from its supervisor's `/admin/workers`. */
async function workerPids(adminUrl: string): Promise<number[]> {
  const response = await request(`${adminUrl}/admin/workers`);
  const { workers } = (await response.body.json()) as { workers: Array<{ pid: number | null }> };
  return workers.flatMap((w) => (w.pid === null ? [] : [w.pid]));
}

/** `slipstream bench proxy`. */
export const proxyScenario: Scenario<ProxyBenchResult> = {
  name: 'proxy',
  description:
    "the gateway's own cost: zero-delay upstream direct, through a bare Node proxy, through Slipstream (1 and 2 workers)",
  run: (options: ScenarioOptions) => runProxyBench({ durationMs: options.durationMs }),
  format(r) {
    const { latency: l, throughput: t } = r;
    const paths = [l.direct, l.bare, l.gateway];
    return [
      'proxy: zero-delay upstream; bare proxy and gateway each pinned to one core',
      ...formatTable(
        ['direct', 'bare proxy', 'slipstream'],
        [
          ['p50 at concurrency 1 (us)', ...paths.map((x) => x.latencyUs.p50)],
          ['p99 at concurrency 1 (us)', ...paths.map((x) => x.latencyUs.p99)],
          ['throughput (req/s)', ...[t.direct, t.bare, t.gateway].map((x) => x.throughputPerS)],
        ],
      ),
      `  slipstream over the bare proxy: p50 +${l.overBareP50Us} us, p99 +${l.overBareP99Us} us`,
      'serve --workers 1 vs 2, unpinned (the load generator and the upstream share the two cores):',
      ...formatTable(
        ['1 worker', '2 workers', 'ratio'],
        (['keepAlive', 'fresh'] as const).flatMap((kind) => {
          const { one, two } = r.workers[kind];
          const how = kind === 'keepAlive' ? 'kept-alive, c=64' : `new conn. each, c=${FRESH_CONCURRENCY}`;
          return [
            [
              `${how} (req/s)`,
              one.throughputPerS,
              two.throughputPerS,
              round2(two.throughputPerS / one.throughputPerS),
            ],
            [
              `  worker CPU per request (us)`,
              one.workerCpuUsPerRequest,
              two.workerCpuUsPerRequest,
              round2(two.workerCpuUsPerRequest / Math.max(1, one.workerCpuUsPerRequest)),
            ],
            ['  supervisor CPU per request (us)', '-', two.supervisorCpuUsPerRequest, ''],
          ];
        }),
      ),
      ...formatTargets(r.targets),
    ].join('\n');
  },
};
