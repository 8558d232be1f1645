import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { REDIS_URL, serviceAvailable } from '../helpers/services.js';

const redisUp = await serviceAvailable('Redis', REDIS_URL);
/**
 * The same behaviour, whichever store holds the entries: in-process memory, or memory in front of real Redis.
 * Without Redis (outside CI) the tiered variant's tests are reported as skipped, never silently left out.
 */
const STORES = [
  { name: 'memory', yaml: '', available: true },
  {
    name: 'tiered (memory + Redis)',
    yaml: `cache: { store: tiered, redis: { url: "${REDIS_URL}", keyPrefix: "slipstream-test:${randomBytes(6).toString('hex')}:" } }\n`,
    available: redisUp,
  },
];

describe.each(STORES)('caching and coalescing through the gateway, $name store', (store) => {
  let upstream: CliProcess;
  let doomed: CliProcess;
  let gw: RunningGateway;

  beforeAll(async () => {
    if (!store.available) return;
    upstream = await spawnCli(['emulate', 'http', '--latency', '50ms']);
    doomed = await spawnCli(['emulate', 'http']);
    gw = await startGateway(`${store.yaml}
upstreams:
  emu: { url: ${upstream.url} }
  doomed: { url: ${doomed.url}, timeouts: { connect: 500ms } }
routes:
  - name: swr
    match: { prefix: /swr }
    upstream: emu
    cache: { ttl: 300ms, staleWhileRevalidate: 30s, scope: shared }
  - name: sie
    match: { prefix: /sie }
    upstream: doomed
    retry: { attempts: 1 }
    cache: { ttl: 200ms, staleIfError: 30s, scope: shared }
  - name: quotes
    match: { prefix: /quote }
    upstream: emu
    cache: { ttl: 400ms, scope: shared }
  - name: stable
    match: { prefix: /stable }
    upstream: emu
    cache: { ttl: 60s, scope: shared }
  - name: private
    match: { prefix: /me }
    upstream: emu
    cache: { ttl: 10s }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await stopAll();
  });
  beforeEach(async ({ skip }) => {
    if (!store.available) skip();
    await call(`${upstream.url}/__emulator/reset`, { method: 'POST' });
  });

  it('serves repeats from cache until the TTL passes', async () => {
    const first = await call(`${gw.url}/quote/AAPL`);
    expect(first.headers['x-slipstream-cache']).toBe('miss');
    const second = await call(`${gw.url}/quote/AAPL`);
    expect(second.headers['x-slipstream-cache']).toBe('hit');
    expect(second.body.n).toBe(first.body.n);
    expect(second.headers.age).toBe('0');
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect((await call(`${gw.url}/quote/AAPL`)).headers['x-slipstream-cache']).toBe('miss');
    expect((await emulatorStats(upstream.url)).requests).toBe(2);
  });

  // A long TTL: on a loaded machine the 1,000 requests may take longer than a short TTL to arrive.
  it('turns 1,000 concurrent identical misses into exactly one upstream call', async () => {
    const pool = new Pool(gw.url, { connections: 50 });
    const bodies = await Promise.all(
      Array.from({ length: 1000 }, async () => {
        const response = await pool.request({ path: '/stable/MSFT', method: 'GET' });
        return (await response.body.json()) as { n: number };
      }),
    );
    await pool.close();
    expect(new Set(bodies.map((b) => b.n)).size).toBe(1);
    expect((await emulatorStats(upstream.url)).requests).toBe(1);
    const metrics = await call(`${gw.adminUrl}/metrics`);
    expect(metrics.body).toMatch(/slipstream_coalesced_waiters_total\{route="stable"\} \d{2,}/);
  });

  it('serves stale while exactly one background refresh runs, for 100 concurrent readers', async () => {
    const first = await call(`${gw.url}/swr/report`);
    await new Promise((resolve) => setTimeout(resolve, 350)); // past the TTL, inside stale-while-revalidate
    // The refresh takes 1 s upstream, so every reader arrives while it runs, however loaded the machine.
    const slow = { 'x-emulate-latency': '1s' };
    const readers = await Promise.all(
      Array.from({ length: 100 }, () => call(`${gw.url}/swr/report`, { headers: slow })),
    );
    expect(readers.every((r) => r.status === 200 && r.headers['x-slipstream-cache'] === 'stale')).toBe(true);
    expect(readers.every((r) => r.body.n === first.body.n)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1_300)); // the refresh lands
    expect((await emulatorStats(upstream.url)).requests).toBe(2);
    const refreshed = await call(`${gw.url}/swr/report`);
    expect(refreshed.body.n).toBe(2); // the refreshed entry (it may be stale again by now: 300 ms TTL)
    expect((await emulatorStats(upstream.url)).requests).toBeLessThanOrEqual(3);
  });

  it('serves the stale entry when the upstream has died, within stale-if-error', async () => {
    const first = await call(`${gw.url}/sie/orders`);
    expect(first.status).toBe(200);
    await doomed.stop('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 250)); // past the TTL
    const stale = await call(`${gw.url}/sie/orders`);
    expect([stale.status, stale.headers['x-slipstream-cache'], stale.body.n]).toEqual([
      200,
      'stale',
      first.body.n,
    ]);
    const uncached = await call(`${gw.url}/sie/never-cached`);
    expect([uncached.status, uncached.body.error.code]).toEqual([502, 'GW_UPSTREAM_UNAVAILABLE']);
  });

  it("keeps each caller's entries apart on principal-scoped routes", async () => {
    const alice = await call(`${gw.url}/me/orders`, { headers: { authorization: 'Bearer alice' } });
    const bob = await call(`${gw.url}/me/orders`, { headers: { authorization: 'Bearer bob' } });
    expect(bob.headers['x-slipstream-cache']).toBe('miss');
    expect(bob.body.n).not.toBe(alice.body.n);
    const aliceAgain = await call(`${gw.url}/me/orders`, { headers: { authorization: 'Bearer alice' } });
    expect(aliceAgain.headers['x-slipstream-cache']).toBe('hit');
    expect(aliceAgain.body.n).toBe(alice.body.n);
  });

  it('never caches a response that sets a cookie or says no-store', async () => {
    const cases: Array<Record<string, string>> = [
      { 'x-emulate-set-cookie': 'sid=1' },
      { 'x-emulate-cache-control': 'no-store' },
    ];
    for (const headers of cases) {
      await call(`${gw.url}/quote/COOKIE`, { headers });
      const again = await call(`${gw.url}/quote/COOKIE`, { headers });
      expect(again.headers['x-slipstream-cache']).toBe('miss');
    }
  });

  it("purges a route's entries through the admin endpoint, and rejects a malformed purge", async () => {
    await call(`${gw.url}/quote/PURGE`);
    expect((await call(`${gw.url}/quote/PURGE`)).headers['x-slipstream-cache']).toBe('hit');
    const purge = (body: string) =>
      call(`${gw.adminUrl}/admin/cache/purge`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
    const purged = await purge('{"route":"quotes"}');
    expect(purged.status).toBe(200);
    expect(purged.body.purged).toBeGreaterThanOrEqual(1);
    expect((await call(`${gw.url}/quote/PURGE`)).headers['x-slipstream-cache']).toBe('miss');
    const bad = await purge('{"nothing":1}');
    expect([bad.status, bad.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
    const broken = await purge('{not json');
    expect([broken.status, broken.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
  });
});
