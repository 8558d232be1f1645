// Refresh-ahead and warm keys with real processes: two gateways sharing Redis in front of an emulator.
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, spawnGateway, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { REDIS_URL, serviceAvailable } from '../helpers/services.js';

const redisUp = await serviceAvailable('Redis', REDIS_URL);

/** Sends a request every `gapMs` for `durationMs`; resolves with every reply's x-slipstream-cache value. */
async function steady(url: string, durationMs: number, gapMs: number): Promise<string[]> {
  const results: string[] = [];
  const until = performance.now() + durationMs;
  while (performance.now() < until) {
    const response = await request(url);
    await response.body.dump();
    results.push(`${response.statusCode} ${String(response.headers['x-slipstream-cache'])}`);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return results;
}

async function metric(adminUrl: string, line: RegExp): Promise<number> {
  const text = await (await request(`${adminUrl}/metrics`)).body.text();
  return text
    .split('\n')
    .filter((l) => line.test(l))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

describe.skipIf(!redisUp)('refresh-ahead across two gateways sharing Redis', () => {
  let upstream: CliProcess;
  let a: CliProcess;
  let b: CliProcess;

  beforeAll(async () => {
    upstream = await spawnCli(['emulate', 'http', '--latency', '30ms']);
    const prefix = `slipstream-test:${randomBytes(6).toString('hex')}:`;
    const yaml = `
cache:
  store: tiered
  redis: { url: "${REDIS_URL}", keyPrefix: "${prefix}", l1Ttl: 30s }
upstreams:
  emu: { url: "${upstream.url}" }
routes:
  - name: hot
    match: { prefix: /hot }
    upstream: emu
    cache: { ttl: 2s, scope: shared, refreshAhead: 0.5 }
  - name: plain
    match: { prefix: /plain }
    upstream: emu
    cache: { ttl: 2s, scope: shared }
`;
    [a, b] = await Promise.all([spawnGateway(yaml), spawnGateway(yaml)]);
  });
  afterAll(stopAll);

  it('never misses on a request path after the first, and refreshes once per cycle for both instances', async () => {
    await call(`${upstream.url}/__emulator/reset`, { method: 'POST' });
    const first = await call(`${a.url}/hot/key`);
    expect(first.headers['x-slipstream-cache']).toBe('miss');
    const [onA, onB] = await Promise.all([
      steady(`${a.url}/hot/key`, 6_000, 10),
      steady(`${b.url}/hot/key`, 6_000, 10),
    ]);
    const all = [...onA, ...onB];
    expect(all.filter((r) => r !== '200 hit')).toEqual([]);
    // 6 s at one refresh per second or so (every hit after 1 s of the 2 s lifetime); twice that if the two
    // instances refreshed on their own.
    const { requests } = await emulatorStats(upstream.url);
    expect(requests).toBeGreaterThanOrEqual(4);
    expect(requests).toBeLessThanOrEqual(9);
    expect(
      await metric(String(a.listening.adminUrl), /^slipstream_cache_refreshes_total\{.*trigger="ahead"/),
    ).toBeGreaterThan(0);
  });

  it('(without refresh-ahead the same load misses every time the entry expires)', async () => {
    await call(`${a.url}/plain/key`);
    const results = await steady(`${a.url}/plain/key`, 4_500, 10);
    expect(results.filter((r) => r === '200 miss').length).toBeGreaterThanOrEqual(2);
  });
});

describe('warm keys', () => {
  let upstream: CliProcess;
  let gateway: CliProcess;

  beforeAll(async () => {
    upstream = await spawnCli(['emulate', 'http', '--latency', '5ms']);
    gateway = await spawnGateway(`
upstreams:
  emu: { url: "${upstream.url}" }
routes:
  - name: market
    match: { prefix: /market }
    upstream: emu
    retry: false
    cache:
      ttl: 1s
      staleIfError: 1m
      scope: shared
      warm: { every: 150ms, jitter: 0.2, requests: [/market/movers, /market/sectors] }
`);
  });
  afterAll(stopAll);

  it('refreshes its keys on schedule with no client traffic, and clients get them as hits', async () => {
    await expect
      .poll(async () => (await emulatorStats(upstream.url)).requests, { timeout: 10_000 })
      .toBeGreaterThanOrEqual(8);
    const movers = await call(`${gateway.url}/market/movers`);
    expect([movers.status, movers.headers['x-slipstream-cache']]).toEqual([200, 'hit']);
    expect(movers.body.path).toBe('/market/movers');
  });

  it('keeps serving the last good entry while the upstream fails, and counts the failed refreshes', async () => {
    await call(`${upstream.url}/__emulator/config`, {
      method: 'POST',
      body: JSON.stringify({ errorRate: 1 }),
    });
    const admin = String(gateway.listening.adminUrl);
    const failed = /^slipstream_warm_refreshes_total\{.*outcome="failed"/;
    // Until the entry goes stale (every refresh failing for longer than the 1 s ttl), and after: the last
    // good reply, every time.
    const seen: unknown[] = [];
    await expect
      .poll(
        async () => {
          const sectors = await call(`${gateway.url}/market/sectors`);
          seen.push([sectors.status, sectors.body.ok]);
          return sectors.headers['x-slipstream-cache'];
        },
        { timeout: 10_000, interval: 100 },
      )
      .toBe('stale');
    expect(seen.every((s) => JSON.stringify(s) === '[200,true]')).toBe(true);
    expect(await metric(admin, failed)).toBeGreaterThanOrEqual(4);
    await call(`${upstream.url}/__emulator/config`, {
      method: 'POST',
      body: JSON.stringify({ errorRate: 0 }),
    });
    await expect
      .poll(async () => (await call(`${gateway.url}/market/sectors`)).headers['x-slipstream-cache'], {
        timeout: 10_000,
      })
      .toBe('hit');
  });
});
