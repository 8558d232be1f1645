import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { REDIS_URL, serviceAvailable, startPrivateRedis } from '../helpers/services.js';
import type { PrivateRedis } from '../helpers/services.js';

const redisUp = await serviceAvailable('Redis', REDIS_URL);

/**
 * Starts `slipstream serve` on a config naming `redisUrl` as a cache in front of `upstreamUrl`: tiered
 * with a 60 s `/stable` route unless `cache` says otherwise.
 */
async function startGatewayProcess(
  dir: string,
  name: string,
  redisUrl: string,
  keyPrefix: string,
  upstreamUrl: string,
  cache: { store?: string; redis?: string; ttl?: string } = {},
) {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    `server: { listen: "127.0.0.1:0" }
admin: { listen: "127.0.0.1:0" }
telemetry: { log: { level: warn } }
cache:
  store: ${cache.store ?? 'tiered'}
  redis: { url: "${redisUrl}", keyPrefix: "${keyPrefix}", ${cache.redis ?? 'l1Ttl: 30s'} }
upstreams:
  emu: { url: "${upstreamUrl}" }
routes:
  - name: stable
    match: { prefix: /stable }
    upstream: emu
    cache: { ttl: ${cache.ttl ?? '60s'}, scope: shared }
`,
  );
  const gateway = await spawnCli(['serve', '-c', file]);
  return { process: gateway, url: gateway.url, adminUrl: String(gateway.listening.adminUrl) };
}

describe.skipIf(!redisUp)('many gateway instances sharing Redis', () => {
  let dir: string;
  let upstream: CliProcess;
  let a: Awaited<ReturnType<typeof startGatewayProcess>>;
  let b: Awaited<ReturnType<typeof startGatewayProcess>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-redis-'));
    upstream = await spawnCli(['emulate', 'http', '--latency', '100ms']);
    const keyPrefix = `slipstream-test:${randomBytes(6).toString('hex')}:`;
    [a, b] = await Promise.all([
      startGatewayProcess(dir, 'a', REDIS_URL, keyPrefix, upstream.url),
      startGatewayProcess(dir, 'b', REDIS_URL, keyPrefix, upstream.url),
    ]);
  });
  afterAll(async () => {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('turns 1,000 concurrent identical misses spread over two instances into at most 2 upstream calls', async () => {
    await call(`${upstream.url}/__emulator/reset`, { method: 'POST' });
    const pools = [new Pool(a.url, { connections: 25 }), new Pool(b.url, { connections: 25 })];
    const bodies = await Promise.all(
      Array.from({ length: 1000 }, async (_, i) => {
        const response = await pools[i % 2]!.request({ path: '/stable/shared-miss', method: 'GET' });
        return { status: response.statusCode, body: (await response.body.json()) as { n: number } };
      }),
    );
    await Promise.all(pools.map((p) => p.close()));
    expect(bodies.every((r) => r.status === 200)).toBe(true);
    expect((await emulatorStats(upstream.url)).requests).toBeLessThanOrEqual(2);
    expect(new Set(bodies.map((r) => r.body.n)).size).toBeLessThanOrEqual(2);
  });

  it("purges every instance's memory tier when one instance is asked to purge", async () => {
    const first = await call(`${a.url}/stable/purge-me`);
    expect((await call(`${b.url}/stable/purge-me`)).body.n).toBe(first.body.n); // b read it from Redis into memory
    const purged = await call(`${a.adminUrl}/admin/cache/purge`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"route":"stable"}',
    });
    expect(purged.status).toBe(200);
    // Pub/sub delivery takes a moment: b keeps its memory copy (a hit) until the purge reaches it.
    let after: Awaited<ReturnType<typeof call>> | undefined;
    await expect
      .poll(async () => (after = await call(`${b.url}/stable/purge-me`)).headers['x-slipstream-cache'])
      .toBe('miss');
    expect(after!.body.n).not.toBe(first.body.n);
  });

  it("drops every instance's memory copy of a URI after a write through one instance", async () => {
    const first = await call(`${a.url}/stable/written`);
    expect((await call(`${b.url}/stable/written`)).body.n).toBe(first.body.n); // b holds it in memory now
    const write = await call(`${a.url}/stable/written`, { method: 'PUT', body: '{}' });
    expect(write.status).toBe(200);
    // Pub/sub delivery is asynchronous: b answers from its memory copy until the message arrives.
    await expect
      .poll(async () => (await call(`${b.url}/stable/written`)).headers['x-slipstream-cache'], {
        timeout: 5_000,
      })
      .toBe('miss');
    expect((await call(`${a.url}/stable/written`)).body.n).not.toBe(first.body.n);
  });
});

describe.skipIf(!redisUp)('a gateway whose Redis dies and comes back', () => {
  let dir: string;
  let redis: PrivateRedis;
  let upstream: CliProcess;
  let gw: Awaited<ReturnType<typeof startGatewayProcess>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-redis-'));
    redis = await startPrivateRedis();
    upstream = await spawnCli(['emulate', 'http', '--latency', '5ms']);
    gw = await startGatewayProcess(dir, 'solo', redis.url, 'slipstream:', upstream.url);
  });
  afterAll(async () => {
    await stopAll();
    await redis?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  const metric = async (name: string) => {
    const text = (await call(`${gw.adminUrl}/metrics`)).body as string;
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };

  it('answers every request while Redis is killed mid-run, then uses Redis again once it is back', async () => {
    const statuses: number[] = [];
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const response = await call(`${gw.url}/stable/item-${i % 20}`);
        statuses.push(response.status);
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.kill();
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(await metric('slipstream_cache_tier_up{tier="redis"}')).toBe(0);
    await redis.restart();
    for (let i = 0; i < 100 && (await metric('slipstream_cache_tier_up{tier="redis"}')) !== 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    stop = true;
    await load;
    expect(statuses.length).toBeGreaterThan(50);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(await metric('slipstream_cache_tier_up{tier="redis"}')).toBe(1);
    // Entries written after the restart are in Redis again.
    const fresh = await call(`${gw.url}/stable/after-restart`);
    expect(fresh.status).toBe(200);
    const keys = await redisKeys(redis.port, 'slipstream:cache:stable*');
    expect(keys.some((k) => k.includes('/stable/after-restart'))).toBe(true);
  });
});

/** Lists keys with redis-cli (a real client of its own, so the test does not trust the gateway's view). */
async function redisKeys(port: number, pattern: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)('redis-cli', [
    '-p',
    String(port),
    '--scan',
    '--pattern',
    pattern,
  ]);
  return stdout.split('\n').filter((l) => l !== '');
}

describe.skipIf(!redisUp)('gateways whose Redis freezes under load (SIGSTOP, then SIGCONT)', () => {
  const COMMAND_TIMEOUT_MS = 250;
  const UPSTREAM_MS = 50;
  let dir: string;
  let redis: PrivateRedis;
  let upstream: CliProcess;
  let gateways: Array<Awaited<ReturnType<typeof startGatewayProcess>>>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-redis-'));
    redis = await startPrivateRedis();
    upstream = await spawnCli(['emulate', 'http', '--latency', `${UPSTREAM_MS}ms`]);
    // Redis alone (no memory tier) and short-lived entries: misses all the time, each behind a peer lock.
    const cache = {
      store: 'redis',
      redis: `commandTimeout: ${COMMAND_TIMEOUT_MS}ms, lockTtl: 5s`,
      ttl: '300ms',
    };
    gateways = await Promise.all(
      ['f1', 'f2'].map((name) =>
        startGatewayProcess(dir, name, redis.url, 'slipstream:', upstream.url, cache),
      ),
    );
  });
  afterAll(async () => {
    redis?.thaw();
    await stopAll();
    await redis?.kill();
    await rm(dir, { recursive: true, force: true });
  });

  it('never makes a request for any key wait more than the command timeout plus the upstream time', async () => {
    const samples: Array<{ key: string; startedAt: number; ms: number; status: number }> = [];
    let stop = false;
    const loops = Array.from({ length: 24 }, async (_, loop) => {
      const gateway = gateways[loop % 2]!;
      for (let i = 0; !stop; i++) {
        const key = `k${(loop + i) % 8}`;
        const startedAt = performance.now();
        const response = await call(`${gateway.url}/stable/${key}`);
        samples.push({ key, startedAt, ms: performance.now() - startedAt, status: response.status });
      }
    });
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await pause(500);
    const frozenAt = performance.now();
    redis.freeze();
    await pause(1_500);
    redis.thaw();
    const thawedAt = performance.now();
    // Longer than the lock TTL: a lock left behind by the freeze would show as a wait of up to 5 s.
    await pause(6_000);
    stop = true;
    await Promise.all(loops);

    expect(samples.filter((s) => s.status !== 200)).toEqual([]);
    // The freeze did happen under load: requests ran while Redis answered nothing, and after.
    expect(
      samples.filter((s) => s.startedAt > frozenAt && s.startedAt < thawedAt - 300).length,
    ).toBeGreaterThan(20);
    expect(samples.filter((s) => s.startedAt > thawedAt + 1_000).length).toBeGreaterThan(100);
    // Scheduling slack for a loaded 2-core machine: 1 s, far below the 5 s a left-behind lock costs.
    const bound = COMMAND_TIMEOUT_MS + UPSTREAM_MS + 1_000;
    const slowest = samples.reduce((a, b) => (b.ms > a.ms ? b : a));
    const where = `key ${slowest.key}, started ${Math.round(slowest.startedAt - frozenAt)} ms after the freeze`;
    expect(slowest.ms, where).toBeLessThan(bound);
  });
});
