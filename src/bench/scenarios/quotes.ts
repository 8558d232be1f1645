// Benchmark `quotes` (seed 003): 3-symbol quote requests, per-ticker calls in sequence vs batching + cache.
import { Pool } from 'undici';
import { startChild, startGatewayChild } from '../child.js';
import type { ChildHandle } from '../child.js';
import { latencyHistogram } from '../histogram.js';
import type { LatencyHistogram, LatencySummary } from '../histogram.js';
import { assertLoopback, httpTask } from '../http-task.js';
import { runLoad } from '../load.js';
import type { LoadResult, Task } from '../load.js';
import { formatTable, formatTargets, target } from '../scenario.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../scenario.js';

export interface QuotesBenchResult extends ScenarioResult {
  scenario: 'quotes';
  /** The emulated upstream's latency per call (the seed's 300-600 ms, scaled down 10x). */
  upstreamLatency: string;
  seedClaim: string;
  /** Seed's pattern: the three symbols one after another, straight at the upstream. */
  before: LoadResult;
  /** Through Slipstream, symbols never seen before: the three calls go upstream as one bulk call. */
  afterCold: LoadResult;
  /** Through Slipstream, the same three symbols again: served from the cache. */
  afterWarm: LoadResult;
  /** The cache-hit path alone: one request at a time, and max throughput with the gateway on one core. */
  hitPath: { direct: LoadResult; gateway: LoadResult; throughput: LoadResult; addedP50Us: number };
  /**
   * One hot symbol under steady load, 1 s freshness, on two routes loaded at once: expiring on the request
   * path vs refreshed ahead. `rate` is each route's.
   */
  refreshAhead: { without: HotKeyResult; with: HotKeyResult; rate: number; ttl: string };
}

export interface HotKeyResult {
  load: LoadResult;
  /** Replies by `x-slipstream-cache` (hit, miss...). */
  results: Record<string, number>;
  /** Latency of the replies that missed (from the request's send), when any did: the periodic spike. */
  missLatencyUs: LatencySummary | undefined;
}

const LATENCY = 'uniform:30ms-60ms';
const MAX_LATENCY_MS = 60;
const SYMBOLS = ['AAPL', 'MSFT', 'NVDA'];
/** The hot keys' steady load, requests per second in all, open loop (latency counted from each scheduled arrival). */
const HOT_RATE = 600;

/** One GET of the hot symbol, counting what the cache said and timing the misses. */
function hotTask(pool: Pool, path: string, results: Record<string, number>, misses?: LatencyHistogram): Task {
  return async (signal) => {
    const started = performance.now();
    const response = await pool.request({ path, method: 'GET', signal });
    await response.body.dump({ limit: Infinity });
    const result = String(response.headers['x-slipstream-cache']);
    results[result] = (results[result] ?? 0) + 1;
    if (result === 'miss') misses?.record((performance.now() - started) * 1000);
    return response.statusCode === 200 ? { ok: true } : { ok: false, code: `HTTP_${response.statusCode}` };
  };
}

/** A 3-symbol request as one task: the symbols one after another, or all at once. */
function quoteTask(pool: Pool, symbols: (i: number) => string[], sequential: boolean): Task {
  let i = 0;
  const get = async (symbol: string, signal: AbortSignal) => {
    const response = await pool.request({ path: `/quote/${symbol}`, method: 'GET', signal });
    await response.body.dump({ limit: Infinity });
    if (response.statusCode !== 200)
      throw Object.assign(new Error('bad status'), { code: `HTTP_${response.statusCode}` });
  };
  return async (signal) => {
    const batch = symbols(i++);
    if (sequential) for (const symbol of batch) await get(symbol, signal);
    else await Promise.all(batch.map((symbol) => get(symbol, signal)));
  };
}

/**
 * Runs the quotes emulator (CPU 0), a zero-delay reference upstream (CPU 0) and a gateway (CPU 1) whose
 * quote route batches and caches, then measures in one run: the seed's sequential client straight at the
 * emulator; the same request through Slipstream cold (new symbols each time) and warm; and the cache-hit
 * path's added latency and throughput on one core.
 */
export async function runQuotesBench(options: ScenarioOptions): Promise<QuotesBenchResult> {
  const children: ChildHandle[] = [];
  const pools: Pool[] = [];
  const pool = (url: string, connections: number) => {
    assertLoopback(url);
    const p = new Pool(url, { connections });
    pools.push(p);
    return p;
  };
  try {
    const quotes = await startChild(['emulate', 'quotes', '--latency', LATENCY], { cpu: 0 });
    children.push(quotes);
    const zero = await startChild(['emulate', 'http', '--body-bytes', '80'], { cpu: 0 });
    children.push(zero);
    const gateway = await startGatewayChild(
      `upstreams:
  quotes: { url: "${quotes.url}", pool: { connections: 64 } }
  zero: { url: "${zero.url}", pool: { connections: 64 } }
routes:
  - name: quote
    match: { prefix: /quote }
    upstream: quotes
    cache: { ttl: 5s, staleWhileRevalidate: 30s, scope: shared }
    batch:
      item: /quote/:symbol
      bulk: { path: "/quotes?symbols={ids}" }
      items: quotes
      key: symbol
  - name: hit
    match: { prefix: /hit }
    upstream: zero
    cache: { ttl: 1h, scope: shared }
  - name: hot
    match: { prefix: /hot }
    upstream: quotes
    rewrite: /quote
    cache: { ttl: 1s, scope: shared }
  - name: hot-ahead
    match: { prefix: /hot-ahead }
    upstream: quotes
    rewrite: /quote
    cache: { ttl: 1s, scope: shared, refreshAhead: 0.8 }
`,
      { cpu: 1, adminPort: options.adminPort },
    );
    children.push(gateway);

    // The slow paths are bounded by count: a few dozen 3-symbol requests show the shape.
    const slowMs = Math.max(1_000, options.durationMs);
    const before = await runLoad({
      task: quoteTask(pool(quotes.url, 1), () => SYMBOLS, true),
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: slowMs,
      maxRequests: 30,
    });
    const gw = pool(gateway.url, 64);
    const afterCold = await runLoad({
      task: quoteTask(gw, (i) => ['A', 'B', 'C'].map((s) => `${s}${i}X`), false),
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: slowMs,
      maxRequests: 30,
    });
    await quoteTask(gw, () => SYMBOLS, false)(new AbortController().signal); // fill the cache
    const afterWarm = await runLoad({
      task: quoteTask(gw, () => SYMBOLS, false),
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: options.durationMs / 2,
      warmupMs: 200,
    });

    const measure = async (url: string, path: string, concurrency: number) => {
      const http = httpTask(url, { path }, { connections: concurrency });
      try {
        return await runLoad({
          task: http.task,
          mode: { kind: 'closed', concurrency },
          durationMs: options.durationMs / 2,
          warmupMs: Math.min(500, options.durationMs / 4),
        });
      } finally {
        await http.close();
      }
    };
    const direct = await measure(zero.url, '/hit/x', 1);
    const hit = await measure(gateway.url, '/hit/x', 1);
    const throughput = await measure(gateway.url, '/hit/x', 64);
    const addedP50Us = hit.latencyUs.p50 - direct.latencyUs.p50;

    // A hot key with a 1 s lifetime under steady load: without refresh-ahead, every expiry makes the
    // requests arriving during the upstream call (30-60 ms) wait for it; with it, none does.
    // Both routes at once, each its own open-loop generator at half the rate: they share every stall of
    // this shared machine, so what differs between them is the expiry waits alone.
    const hot = async (path: string): Promise<HotKeyResult> => {
      const results: Record<string, number> = {};
      const misses = latencyHistogram();
      const hotPool = pool(gateway.url, 32);
      await hotTask(hotPool, path, {})(new AbortController().signal); // the one miss a key must have
      const load = await runLoad({
        task: hotTask(hotPool, path, results, misses),
        mode: { kind: 'open', ratePerS: HOT_RATE / 2 },
        durationMs: Math.max(6_000, options.durationMs * 1.2),
      });
      return { load, results, missLatencyUs: (results.miss ?? 0) > 0 ? misses.summary() : undefined };
    };
    const [without, withAhead] = await Promise.all([hot('/hot/AAPL'), hot('/hot-ahead/AAPL')]);
    const refreshAhead = { without, with: withAhead, rate: HOT_RATE / 2, ttl: '1s' };

    const p95 = (r: LoadResult) => r.curve.find((p) => p.percentile === 95)?.us ?? r.latencyUs.p99;
    return {
      scenario: 'quotes',
      durationMs: options.durationMs,
      upstreamLatency: LATENCY,
      seedClaim:
        'p95 for 3 symbols: ~1,831 ms sequential -> ~31 ms with batching, threads and a cache (by hand)',
      seed: {
        seed: '003',
        before: '1,831 ms',
        after: '31 ms',
        note: 'p95 of a 3-symbol quote request, sequential calls vs batching + threads + cache by hand',
      },
      comparisons: [
        {
          metric: '3-symbol request p95, warm',
          unit: 'ms',
          before: p95(before) / 1000,
          after: p95(afterWarm) / 1000,
          better: 'lower',
        },
        {
          metric: 'hot key p99.9 under steady load, refresh-ahead off vs on',
          unit: 'ms',
          before: refreshAhead.without.load.latencyUs.p999 / 1000,
          after: refreshAhead.with.load.latencyUs.p999 / 1000,
          better: 'lower',
        },
        {
          metric: '3-symbol request p95, cold',
          unit: 'ms',
          before: p95(before) / 1000,
          after: p95(afterCold) / 1000,
          better: 'lower',
        },
      ],
      charts: [
        {
          title: '3-symbol quote request latency',
          series: [
            { label: 'before: sequential, direct', curve: before.curve },
            { label: 'after: cold, batched', curve: afterCold.curve },
            { label: 'after: warm, cached', curve: afterWarm.curve },
          ],
        },
        {
          title: 'hot key, 1 s freshness, steady load',
          series: [
            { label: 'expiring on the request path', curve: refreshAhead.without.load.curve },
            { label: 'refresh-ahead 0.8', curve: refreshAhead.with.load.curve },
          ],
        },
      ],
      before,
      afterCold,
      afterWarm,
      hitPath: { direct, gateway: hit, throughput, addedP50Us },
      refreshAhead,
      targets: [
        target(
          'hot key misses on the request path with refresh-ahead',
          refreshAhead.with.results.miss ?? 0,
          '<=',
          0,
          'misses',
        ),
        target('3-symbol request p95, warm', p95(afterWarm) / 1000, '<=', 5, 'ms'),
        target(
          '3-symbol request p95, cold (one round trip <= 60 ms, +15 ms)',
          p95(afterCold) / 1000,
          '<=',
          MAX_LATENCY_MS + 15,
          'ms',
        ),
        target('cache-hit throughput on one core', throughput.throughputPerS, '>=', 20_000, 'req/s'),
        target('cache hit added p50 over a direct zero-delay call', addedP50Us, '<=', 60, 'us'),
      ],
    };
  } finally {
    await Promise.all(pools.map((p) => p.close()));
    await Promise.all(children.map((c) => c.stop()));
  }
}

/** `slipstream bench quotes`. */
export const quotesScenario: Scenario<QuotesBenchResult> = {
  name: 'quotes',
  description: 'seed 003: 3-symbol quotes, sequential per-ticker calls vs batching + cache',
  run: runQuotesBench,
  format(r) {
    const ms = (us: number) => (us / 1000).toFixed(1);
    const p95 = (x: LoadResult) => x.curve.find((p) => p.percentile === 95)?.us ?? x.latencyUs.p99;
    const rows = (x: LoadResult) => [
      ms(x.latencyUs.p50),
      ms(p95(x)),
      x.requests,
      Object.keys(x.errors).length,
    ];
    return [
      `quotes (seed 003): upstream ${r.upstreamLatency} per call; seed: ${r.seedClaim}`,
      ...formatTable(
        ['p50 ms', 'p95 ms', 'requests', 'error kinds'],
        [
          ['before: sequential, direct', ...rows(r.before)],
          ['after: cold (batched)', ...rows(r.afterCold)],
          ['after: warm (cached)', ...rows(r.afterWarm)],
        ],
      ),
      `  cache hit: p50 ${r.hitPath.gateway.latencyUs.p50} us vs direct ${r.hitPath.direct.latencyUs.p50} us (+${r.hitPath.addedP50Us} us); ${Math.round(r.hitPath.throughput.throughputPerS)} req/s on one core`,
      `  before/after p95: cold ${(p95(r.before) / p95(r.afterCold)).toFixed(1)}x, warm ${(p95(r.before) / p95(r.afterWarm)).toFixed(0)}x`,
      `  hot key, ${r.refreshAhead.ttl} freshness, ${r.refreshAhead.rate} req/s open loop:`,
      ...formatTable(
        ['p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'misses', 'miss p50 ms', 'requests'],
        (['without', 'with'] as const).map((k) => {
          const x = r.refreshAhead[k];
          return [
            k === 'without' ? 'expiring on the request path' : 'refresh-ahead 0.8',
            ms(x.load.latencyUs.p50),
            ms(x.load.latencyUs.p99),
            ms(x.load.latencyUs.p999),
            ms(x.load.latencyUs.max),
            x.results.miss ?? 0,
            x.missLatencyUs === undefined ? '-' : ms(x.missLatencyUs.p50),
            x.load.requests,
          ];
        }),
      ),
      ...formatTargets(r.targets),
    ].join('\n');
  },
};
