import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';

describe('caching and coalescing through the gateway', () => {
  let upstream: CliProcess;
  let gw: RunningGateway;

  beforeAll(async () => {
    upstream = await spawnCli(['emulate', 'http', '--latency', '50ms']);
    gw = await startGateway(`
upstreams:
  emu: { url: ${upstream.url} }
routes:
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
  beforeEach(() => call(`${upstream.url}/__emulator/reset`, { method: 'POST' }));

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
