// Benchmark `proxy`: the gateway's own cost against a zero-delay upstream, direct vs through Slipstream.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startChild } from '../child.js';
import type { ChildHandle } from '../child.js';
import { startBenchAuth } from '../auth-fixture.js';
import { cpuTimeMs } from '../cpu-time.js';
import { openDashboardFeed } from '../dashboard-feed.js';
import { httpTask } from '../http-task.js';
import { measureInterleaved, runLoadWithCpu } from '../load.js';
import { formatTable, formatTargets, target } from '../scenario.js';
import type { Scenario, ScenarioOptions, ScenarioResult, Target } from '../scenario.js';

// Kept for scenarios written against this file; new code imports them from ../scenario.js.
export { target };
export type { Target };
import type { LoadMode, LoadResult, LoadResultWithCpu } from '../load.js';

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

/**
 * The same gateway with the dashboard enabled but no page open (`gateway` above), with one feed open, and a
 * second gateway with the dashboard disabled in its config: what an open page costs, and that a closed one
 * costs nothing.
 */
export interface DashboardPaths<T> {
  off: T;
  closed: T;
  open: T;
}

/** A measurement, with the CPU time the measured process spent per request where /proc tells it. */
export type Measured = LoadResultWithCpu;

/**
 * The same gateway taking an API key, and one verifying a JWT, each with a per-principal rate limit checked
 * on every request (never reached): what authentication and rate limiting cost, beside `gateway` (none).
 */
export interface AuthPaths<T> {
  apiKey: T;
  jwt: T;
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
  dashboard: {
    latency: DashboardPaths<Measured>;
    throughput: DashboardPaths<Measured>;
    /** Feed frames the open page received while its paths were measured (one a second). */
    frames: number;
  };
  auth: { latency: AuthPaths<Measured>; throughput: AuthPaths<Measured> };
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
 * latency at concurrency 1 and closed-loop throughput, on all three paths, interleaved; interleaved with
 * them, the same gateway while a dashboard feed is open, a gateway with `admin.dashboard.enabled: false`,
 * and gateways that take an API key or verify a JWT (all on CPU 1); then the same gateway config as
 * `serve --workers 1` and `--workers 2`, unpinned.
 */
export async function runProxyBench(options: ProxyBenchOptions = {}): Promise<ProxyBenchResult> {
  const durationMs = options.durationMs ?? 5_000;
  const concurrency = options.concurrency ?? 64;
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-bench-'));
  const children: ChildHandle[] = [];
  const auth = await startBenchAuth();
  try {
    const upstream = await startChild(['emulate', 'http', '--body-bytes', '64'], { cpu: 0 });
    children.push(upstream);
    const serve = async (file: string, dashboard: boolean, extra = '') => {
      const config = join(dir, file);
      await writeFile(
        config,
        `server: { listen: "127.0.0.1:0", limits: { maxConnectionsPerIp: 1000000 } }
admin: { listen: "127.0.0.1:0", dashboard: { enabled: ${dashboard} } }
telemetry: { log: { level: warn } }
upstreams:
  emu: { url: "${upstream.url}", pool: { connections: ${concurrency} } }
routes:
  - { name: emu, match: { prefix: / }, upstream: emu }
${extra}`,
      );
      const child = await startChild(['serve', '-c', config], { cpu: 1 });
      children.push(child);
      return { child, config };
    };
    const { child: gateway, config } = await serve('slipstream.yaml', true);
    const { child: withoutDashboard } = await serve('no-dashboard.yaml', false);
    const { child: withApiKey } = await serve('api-key.yaml', true, auth.apiKeyConfig);
    const { child: withJwt } = await serve('jwt.yaml', true, auth.jwtConfig);
    const bare = await startChild(['emulate', 'bare-proxy', '--target', upstream.url], { cpu: 1 });
    children.push(bare);
    const urls: Paths<string> = { direct: upstream.url, bare: bare.url, gateway: gateway.url };

    /**
     * Measures `target` after a warm-up; with `pid`, also the CPU time that process spent per measured
     * request (from /proc: it barely moves when neighbours compete for the cores).
     */
    const measure = async (
      target: string,
      mode: LoadMode,
      ms: number,
      options: { fresh?: boolean; warm?: boolean; pid?: number; headers?: Record<string, string> } = {},
    ): Promise<Measured> => {
      const connections = mode.kind === 'closed' ? mode.concurrency : 1;
      const http = httpTask(
        target,
        { path: '/bench', headers: options.headers },
        { connections, fresh: options.fresh ?? false },
      );
      const warmupMs = (options.warm ?? true) ? Math.min(1_000, ms / 4) : 0;
      try {
        return await runLoadWithCpu({ task: http.task, mode, durationMs: ms, warmupMs }, options.pid);
      } finally {
        await http.close();
      }
    };
    let frames = 0;
    /** Measures the gateway while a dashboard page's feed is open on it. */
    const watched = async (mode: LoadMode, ms: number) => {
      const feed = await openDashboardFeed(String(gateway.listening.adminUrl));
      try {
        return await measure(urls.gateway, mode, ms, { pid: gateway.child.pid });
      } finally {
        frames += feed.frames();
        feed.close();
      }
    };
    const measureAll = (mode: LoadMode) =>
      measureInterleaved(
        {
          direct: (ms) => measure(urls.direct, mode, ms),
          bare: (ms) => measure(urls.bare, mode, ms),
          gateway: (ms) => measure(urls.gateway, mode, ms, { pid: gateway.child.pid }),
          open: (ms) => watched(mode, ms),
          off: (ms) => measure(withoutDashboard.url, mode, ms, { pid: withoutDashboard.child.pid }),
          apiKey: (ms) =>
            measure(withApiKey.url, mode, ms, { pid: withApiKey.child.pid, headers: auth.apiKeyHeaders }),
          jwt: (ms) => measure(withJwt.url, mode, ms, { pid: withJwt.child.pid, headers: auth.jwtHeaders }),
        },
        durationMs,
      );

    const {
      open: openLatency,
      off: offLatency,
      apiKey: apiKeyLatency,
      jwt: jwtLatency,
      ...latency
    } = await measureAll({ kind: 'closed', concurrency: 1 });
    const {
      open: openThroughput,
      off: offThroughput,
      apiKey: apiKeyThroughput,
      jwt: jwtThroughput,
      ...throughput
    } = await measureAll({
      kind: 'closed',
      concurrency,
    });

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
      await measure(url, mode, Math.min(1_000, ms / 4), { fresh, warm: false });
      const cpu = () => ({
        workers: workers.reduce((sum, pid) => sum + (cpuTimeMs(pid) ?? 0), 0),
        supervisor: supervisor === undefined ? 0 : (cpuTimeMs(supervisor) ?? 0),
      });
      const before = cpu();
      const result = await measure(url, mode, ms, { fresh, warm: false });
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
      dashboard: {
        latency: { off: offLatency, closed: latency.gateway, open: openLatency },
        throughput: { off: offThroughput, closed: throughput.gateway, open: openThroughput },
        frames,
      },
      auth: {
        latency: { apiKey: apiKeyLatency, jwt: jwtLatency },
        throughput: { apiKey: apiKeyThroughput, jwt: jwtThroughput },
      },
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
        {
          metric: 'throughput on one core, dashboard disabled vs enabled with no page open',
          unit: 'req/s',
          before: offThroughput.throughputPerS,
          after: throughput.gateway.throughputPerS,
          better: 'higher',
          cost: true,
        },
        {
          metric: 'throughput on one core, bare Node proxy vs Slipstream with an API key and a rate limit',
          unit: 'req/s',
          before: throughput.bare.throughputPerS,
          after: apiKeyThroughput.throughputPerS,
          better: 'higher',
          cost: true,
        },
        {
          metric: 'throughput on one core, bare Node proxy vs Slipstream verifying a JWT, with a rate limit',
          unit: 'req/s',
          before: throughput.bare.throughputPerS,
          after: jwtThroughput.throughputPerS,
          better: 'higher',
          cost: true,
        },
        {
          metric: 'throughput on one core, no dashboard page open vs one open',
          unit: 'req/s',
          before: throughput.gateway.throughputPerS,
          after: openThroughput.throughputPerS,
          better: 'higher',
          cost: true,
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
    await auth.close();
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
  // Never on the demo's dashboard port: a page open there would be measured as "no page open".
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
      '',
      `  the dashboard (same runs, interleaved; the open page got ${r.dashboard.frames} frames):`,
      ...formatTable(
        ['disabled', 'no page open', 'page open'],
        [
          ['p50 at concurrency 1 (us)', ...dashboardPaths(r.dashboard.latency).map((x) => x.latencyUs.p50)],
          ['p99 at concurrency 1 (us)', ...dashboardPaths(r.dashboard.latency).map((x) => x.latencyUs.p99)],
          ['throughput (req/s)', ...dashboardPaths(r.dashboard.throughput).map((x) => x.throughputPerS)],
          [
            'gateway CPU per request (us)',
            ...dashboardPaths(r.dashboard.throughput).map((x) => x.cpuUsPerRequest ?? 'n/a'),
          ],
        ],
      ),
      ...(['open', 'closed'] as const).map((paths) => {
        const [a, b] = paths === 'open' ? (['open', 'closed'] as const) : (['closed', 'off'] as const);
        const { latency: l, throughput: t } = r.dashboard;
        return (
          `  ${paths === 'open' ? 'page open / no page open' : 'no page open / disabled'}: ` +
          `throughput ${ratio(t[a].throughputPerS, t[b].throughputPerS)}, ` +
          `CPU per request ${ratio(t[a].cpuUsPerRequest, t[b].cpuUsPerRequest)}, ` +
          `p50 ${ratio(l[a].latencyUs.p50, l[b].latencyUs.p50)}`
        );
      }),
      '',
      '  authentication, each with a per-principal rate limit checked on every request (same runs):',
      ...formatTable(
        ['bare proxy', 'no auth', 'API key', 'JWT (ES256)'],
        [
          [
            'p50 at concurrency 1 (us)',
            ...[l.bare, l.gateway, r.auth.latency.apiKey, r.auth.latency.jwt].map((x) => x.latencyUs.p50),
          ],
          [
            'throughput (req/s)',
            ...[t.bare, t.gateway, r.auth.throughput.apiKey, r.auth.throughput.jwt].map(
              (x) => x.throughputPerS,
            ),
          ],
          [
            'gateway CPU per request (us)',
            'n/a',
            ...[r.dashboard.throughput.closed, r.auth.throughput.apiKey, r.auth.throughput.jwt].map(
              (x) => x.cpuUsPerRequest ?? 'n/a',
            ),
          ],
        ],
      ),
      ...(['apiKey', 'jwt'] as const).map(
        (kind) =>
          `  ${kind === 'apiKey' ? 'API key' : 'JWT'} / bare proxy: ` +
          `throughput ${ratio(r.auth.throughput[kind].throughputPerS, t.bare.throughputPerS)}, ` +
          `p50 ${ratio(r.auth.latency[kind].latencyUs.p50, l.bare.latencyUs.p50)}; ` +
          `/ no auth: throughput ${ratio(r.auth.throughput[kind].throughputPerS, t.gateway.throughputPerS)}, ` +
          `CPU per request ${ratio(r.auth.throughput[kind].cpuUsPerRequest, r.dashboard.throughput.closed.cpuUsPerRequest)}`,
      ),
      '',
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

function dashboardPaths<T>(paths: DashboardPaths<T>): T[] {
  return [paths.off, paths.closed, paths.open];
}

/** `a / b` to three places, for ratios measured in the same run. */
function ratio(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || b === 0 ? 'n/a' : (a / b).toFixed(3);
}
