// Benchmark `fanout` (seed 004): one message to 18 specialists, the seed's sequential fresh-connection client vs Slipstream.
import { Client, Pool } from 'undici';
import { startChild, startGatewayChild } from '../child.js';
import type { ChildHandle } from '../child.js';
import { latencyHistogram } from '../histogram.js';
import type { LatencyHistogram, LatencySummary } from '../histogram.js';
import { assertLoopback } from '../http-task.js';
import { runLoad } from '../load.js';
import type { LoadResult, Task } from '../load.js';
import { formatTable, formatTargets, target } from '../scenario.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../scenario.js';

export interface FanoutBenchResult extends ScenarioResult {
  scenario: 'fanout';
  members: number;
  /** Each specialist's latency spec: every member answers within [fastest, slowest] ms. */
  memberLatency: string;
  seedTimeoutMs: number;
  memberTimeoutMs: number;
  healthy: {
    /** Seed 004's client: discovery, then each specialist in turn, each on a new connection, 10 s timeouts. */
    before: LoadResult;
    /** `POST /fanout/team` through Slipstream (JSON aggregate). */
    after: LoadResult;
    /** When the user sees a first answer: the seed's whole reply (no streaming) vs Slipstream's first NDJSON line. */
    firstResultBefore: LatencySummary;
    firstResultAfter: LatencySummary & { p95: number };
    /**
     * The fastest member as this machine delivers it: the first answer when the bench itself calls every
     * member in parallel over warm connections, interleaved with the gateway requests above.
     */
    fastestMember: LatencySummary & { p95: number };
    /** The slowest member as this machine delivers it: the last answer of the same direct parallel calls. */
    slowestMember: LatencySummary & { p95: number };
  };
  hung: {
    /** The seed's client with 2 hung specialists: two full 10 s timeouts per message. */
    before: LoadResult;
    /** Slipstream's first message after 2 members hung: it pays one member deadline. */
    firstMs: number;
    /** Later messages: the hung members are skipped (breaker open). */
    after: LoadResult;
  };
}

const MEMBERS = 18;
const FASTEST_MS = 90;
const SLOWEST_MS = 100;
const LATENCY = `uniform:${FASTEST_MS}ms-${SLOWEST_MS}ms`;
const SEED_TIMEOUT_MS = 10_000;
const MEMBER_TIMEOUT_MS = 2_000;
const HUNG = ['specialist-17', 'specialist-18'];
const MESSAGE = JSON.stringify({ message: 'Quick test', timeout: 2.0 });

/** One request on a brand-new TCP connection, closed afterwards (the seed's pattern). */
async function fresh(
  url: string,
  method: 'GET' | 'POST',
  body: string | undefined,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  const target = new URL(url);
  const client = new Client(target.origin, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  try {
    const response = await client.request({
      path: target.pathname,
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: response.statusCode, text: await response.body.text() };
  } finally {
    await client.destroy();
  }
}

/**
 * Seed 004's team chat: list the specialists (new connection), then ask each in turn (new connection each,
 * 10 s timeout, no retries). A specialist that times out is reported and skipped, as the seed's fast-fail does.
 * The seed does not stream, so the user sees the first answer when the whole reply is in: `firstSeen` records that.
 */
function seedTask(emulator: string, firstSeen: LatencyHistogram): Task {
  return async () => {
    const started = performance.now();
    const listed = await fresh(`${emulator}/agents`, 'GET', undefined, SEED_TIMEOUT_MS);
    const { members } = JSON.parse(listed.text) as { members: Array<{ name: string; url: string }> };
    for (const member of members) {
      try {
        await fresh(member.url, 'POST', MESSAGE, SEED_TIMEOUT_MS);
      } catch {
        // a timed-out specialist: the seed reports it and moves on
      }
    }
    firstSeen.record((performance.now() - started) * 1000);
  };
}

/**
 * The floor for "first answer": every member called straight from this process, in parallel, over warm
 * pooled connections; records when the first answer is in (no gateway can stream a result sooner) and when
 * the last one is (no gateway can aggregate sooner).
 */
function directParallelTask(
  members: ReadonlyArray<{ url: string }>,
  pools: ReadonlyMap<string, Pool>,
  firstAnswer: LatencyHistogram,
  allAnswers: LatencyHistogram,
): Task {
  return async () => {
    const started = performance.now();
    let first = true;
    await Promise.all(
      members.map(async (member) => {
        const url = new URL(member.url);
        const response = await pools.get(url.origin)!.request({
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: MESSAGE,
        });
        await response.body.text();
        if (first) firstAnswer.record((performance.now() - started) * 1000);
        first = false;
      }),
    );
    allAnswers.record((performance.now() - started) * 1000);
    return { ok: true };
  };
}

/** One fan-out through the gateway; with `firstResult`, asks for NDJSON and records the first line's arrival. */
function gatewayTask(pool: Pool, firstResult?: LatencyHistogram): Task {
  return async (signal) => {
    const started = performance.now();
    const response = await pool.request({
      path: '/fanout/team',
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(firstResult === undefined ? {} : { accept: 'application/x-ndjson' }),
      },
      body: MESSAGE,
      signal,
    });
    let first = true;
    for await (const _chunk of response.body) {
      if (first && firstResult !== undefined) firstResult.record((performance.now() - started) * 1000);
      first = false;
    }
    return response.statusCode === 200 ? { ok: true } : { ok: false, code: `HTTP_${response.statusCode}` };
  };
}

const p95 = (r: LoadResult) => r.curve.find((p) => p.percentile === 95)?.us ?? r.latencyUs.p99;

/**
 * Runs 18 specialists (CPU 0) and a gateway with a discovered `team` group (CPU 1), then measures in one
 * run: all healthy, the seed's client vs Slipstream (aggregate and time to the first streamed result);
 * then with 2 specialists hung, Slipstream's first message, its later ones, and one seed-client message.
 * The seed's client is slow by design (18 calls in a row; 20 s of timeouts with hung members), so it runs
 * only a few messages.
 */
export async function runFanoutBench(options: ScenarioOptions): Promise<FanoutBenchResult> {
  const children: ChildHandle[] = [];
  let pool: Pool | undefined;
  let memberPools: Map<string, Pool> | undefined;
  try {
    const emulator = await startChild(
      ['emulate', 'specialists', '--members', String(MEMBERS), '--latency', LATENCY],
      { cpu: 0 },
    );
    children.push(emulator);
    assertLoopback(emulator.url);
    const gateway = await startGatewayChild(
      `upstreams: {}
groups:
  team:
    discovery: { url: "${emulator.url}/agents", ttl: 60s }
    memberTimeout: ${MEMBER_TIMEOUT_MS}ms
    timeout: 5s
    breaker: { threshold: 1, halfOpenAfter: 1m }
    pool: { connections: 8, warm: 1 }
`,
      { cpu: 1, adminPort: options.adminPort },
    );
    children.push(gateway);
    assertLoopback(gateway.url);
    pool = new Pool(gateway.url, { connections: 1 });

    const firstResultBefore = latencyHistogram();
    const firstResultAfter = latencyHistogram();
    const healthyBefore = await runLoad({
      task: seedTask(emulator.url, firstResultBefore),
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: Math.max(1_000, options.durationMs),
      maxRequests: 3,
    });
    const healthyAfter = await runLoad({
      task: gatewayTask(pool),
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: options.durationMs,
      warmupMs: 200,
    });
    // First answers: the gateway's first NDJSON line against the fastest member called directly,
    // alternating so that both see the same machine.
    const listed = await fresh(`${emulator.url}/agents`, 'GET', undefined, 5_000);
    const { members } = JSON.parse(listed.text) as { members: Array<{ url: string }> };
    const origins = [...new Set(members.map((m) => new URL(m.url).origin))];
    memberPools = new Map(origins.map((origin) => [origin, new Pool(origin, { connections: 4 })]));
    const fastest = latencyHistogram();
    const slowest = latencyHistogram();
    const direct = directParallelTask(members, memberPools, fastest, slowest);
    const streamed = gatewayTask(pool, firstResultAfter);
    const never = new AbortController().signal;
    await direct(never); // warm-up: opens the member connections
    const firstUntil = performance.now() + options.durationMs;
    for (let i = 0; i < 40 || performance.now() < firstUntil; i++) {
      await direct(never);
      await streamed(never);
    }

    const hang = JSON.stringify({
      members: Object.fromEntries(HUNG.map((name) => [name, { mode: 'hung' }])),
    });
    const patched = await fresh(`${emulator.url}/__emulator/config`, 'POST', hang, 5_000);
    if (patched.status !== 200) throw new Error(`could not hang members: ${patched.text}`);

    const firstStarted = performance.now();
    await gatewayTask(pool)(new AbortController().signal);
    const firstMs = performance.now() - firstStarted;
    const hungAfter = await runLoad({
      task: gatewayTask(pool),
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: options.durationMs,
    });
    const hungBefore = await runLoad({
      task: seedTask(emulator.url, latencyHistogram()),
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: 1,
      maxRequests: 1,
      timeoutMs: 60_000,
    });

    const firstAfter = { ...firstResultAfter.summary(), p95: firstResultAfter.hdr.getValueAtPercentile(95) };
    const fastestMember = { ...fastest.summary(), p95: fastest.hdr.getValueAtPercentile(95) };
    const slowestMember = { ...slowest.summary(), p95: slowest.hdr.getValueAtPercentile(95) };
    const floorMs = (us: number) => Math.round(us / 100) / 10;
    return {
      scenario: 'fanout',
      durationMs: options.durationMs,
      members: MEMBERS,
      memberLatency: LATENCY,
      seedTimeoutMs: SEED_TIMEOUT_MS,
      memberTimeoutMs: MEMBER_TIMEOUT_MS,
      seed: {
        seed: '004',
        before: 'slow (18 new connections, 10 s timeouts)',
        after: 'first request 2-3 s; later 0.1-0.5 s',
        note: 'expected team-chat latency after pooling, 2 s timeouts and cached discovery (by hand)',
      },
      comparisons: [
        {
          metric: 'message to 18 specialists p95, all healthy',
          unit: 'ms',
          before: p95(healthyBefore) / 1000,
          after: p95(healthyAfter) / 1000,
          better: 'lower',
        },
        {
          metric: 'message p95 with 2 hung specialists',
          unit: 'ms',
          before: p95(hungBefore) / 1000,
          after: p95(hungAfter) / 1000,
          better: 'lower',
        },
        {
          metric: 'first specialist answer seen by the user, median',
          unit: 'ms',
          before: firstResultBefore.summary().p50 / 1000,
          after: firstAfter.p50 / 1000,
          better: 'lower',
        },
      ],
      charts: [
        {
          title: 'message to 18 specialists, all healthy',
          series: [
            { label: 'before: seed client', curve: healthyBefore.curve },
            { label: 'after: slipstream fan-out', curve: healthyAfter.curve },
          ],
        },
      ],
      healthy: {
        before: healthyBefore,
        after: healthyAfter,
        firstResultBefore: firstResultBefore.summary(),
        firstResultAfter: firstAfter,
        fastestMember,
        slowestMember,
      },
      hung: { before: hungBefore, firstMs: Math.round(firstMs * 10) / 10, after: hungAfter },
      targets: [
        target(
          `all healthy: p95 <= slowest member (p95 ${floorMs(slowestMember.p95)} ms, called directly) + 10 ms`,
          p95(healthyAfter) / 1000,
          '<=',
          floorMs(slowestMember.p95) + 10,
          'ms',
        ),
        target(
          `2 hung: first request <= member deadline (${MEMBER_TIMEOUT_MS} ms) + 5 ms`,
          firstMs,
          '<=',
          MEMBER_TIMEOUT_MS + 5,
          'ms',
        ),
        target(
          `2 hung: later requests p95 <= slowest healthy member (p95 ${floorMs(slowestMember.p95)} ms, called directly) + 10 ms`,
          p95(hungAfter) / 1000,
          '<=',
          floorMs(slowestMember.p95) + 10,
          'ms',
        ),
        target(
          `first partial result streamed (p95) <= fastest member (p95 ${floorMs(fastestMember.p95)} ms, called directly) + 5 ms`,
          firstAfter.p95 / 1000,
          '<=',
          floorMs(fastestMember.p95) + 5,
          'ms',
        ),
      ],
    };
  } finally {
    await pool?.close();
    await Promise.all([...(memberPools?.values() ?? [])].map((p) => p.close()));
    await Promise.all(children.map((c) => c.stop()));
  }
}

/** `slipstream bench fanout`. */
export const fanoutScenario: Scenario<FanoutBenchResult> = {
  name: 'fanout',
  description: 'seed 004: one message to 18 specialists, sequential fresh connections vs parallel fan-out',
  run: runFanoutBench,
  format(r) {
    const ms = (us: number) => (us / 1000).toFixed(1);
    const rows = (x: LoadResult) => [
      ms(x.latencyUs.p50),
      ms(p95(x)),
      x.requests,
      Object.keys(x.errors).length,
    ];
    return [
      `fanout (seed 004): ${r.members} specialists at ${r.memberLatency}; seed timeouts ${r.seedTimeoutMs} ms, Slipstream member deadline ${r.memberTimeoutMs} ms`,
      ...formatTable(
        ['p50 ms', 'p95 ms', 'requests', 'error kinds'],
        [
          ['healthy, before: seed client', ...rows(r.healthy.before)],
          ['healthy, after: fan-out', ...rows(r.healthy.after)],
          ['2 hung, before: seed client', ...rows(r.hung.before)],
          ['2 hung, after: later requests', ...rows(r.hung.after)],
        ],
      ),
      `  2 hung, Slipstream's first request: ${r.hung.firstMs} ms`,
      `  first answer seen by the user (p50): before ${ms(r.healthy.firstResultBefore.p50)} ms (whole reply, no streaming), after ${ms(r.healthy.firstResultAfter.p50)} ms (first NDJSON line)`,
      `  all ${r.members} members called directly in parallel (the floor; members are configured at ${FASTEST_MS}-${SLOWEST_MS} ms):`,
      `    first answer p50 ${ms(r.healthy.fastestMember.p50)} ms, p95 ${ms(r.healthy.fastestMember.p95)} ms; last answer p50 ${ms(r.healthy.slowestMember.p50)} ms, p95 ${ms(r.healthy.slowestMember.p95)} ms`,
      ...formatTargets(r.targets),
    ].join('\n');
  },
};
