import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';

afterAll(() => stopAll());

/** Runs `total` GETs with `concurrency` workers over one keep-alive pool; returns the statuses. */
async function load(url: string, path: string, total: number, concurrency: number): Promise<number[]> {
  const pool = new Pool(url, { connections: concurrency });
  const statuses: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < total) {
      next++;
      const response = await pool.request({ path, method: 'GET' });
      await response.body.dump();
      statuses.push(response.statusCode);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await pool.close();
  }
  return statuses;
}

describe('retries against a flaky upstream process', () => {
  let gw: RunningGateway;
  let upstreamUrl: string;

  beforeAll(async () => {
    const upstream = await spawnCli(['emulate', 'http', '--errors', '0.3', '--error-status', '503']);
    upstreamUrl = upstream.url;
    gw = await startGateway(`
upstreams:
  flaky: { url: ${upstream.url} }
routes:
  - match: { prefix: / }
    upstream: flaky
    retry: { attempts: 5, baseDelay: 1ms, maxDelay: 5ms }
    breaker: false
`);
  });
  afterAll(() => gw?.close());

  it('recovers a 30%-error upstream to at least 99% success', async () => {
    await call(`${upstreamUrl}/__emulator/reset`, { method: 'POST' });
    // Three callers: the budget's floor of 3 concurrent retries always has room for them.
    const statuses = await load(gw.url, '/quote', 1000, 3);
    const ok = statuses.filter((s) => s === 200).length;
    expect(ok / statuses.length).toBeGreaterThanOrEqual(0.99);
    const stats = await emulatorStats(upstreamUrl);
    // Without retries 30% would fail; with them the upstream sees about 1/(1-0.3) = 1.43 requests per call.
    expect(stats.requests / statuses.length).toBeGreaterThan(1.2);
    expect(stats.requests / statuses.length).toBeLessThan(1.7);
  });
});

/**
 * A real upstream that answers 503 after `latencyMs` and tells retries apart: every attempt of one client
 * request carries the same `x-request-id`, so a request whose id it has seen before is a retry.
 */
async function retryCountingUpstream(latencyMs: number) {
  const seen = new Set<string>();
  const counts = { requests: 0, retriesInFlight: 0, maxRetriesInFlight: 0 };
  const server = createServer((req, res) => {
    counts.requests++;
    const id = String(req.headers['x-request-id']);
    const isRetry = seen.has(id);
    seen.add(id);
    if (isRetry) counts.maxRetriesInFlight = Math.max(counts.maxRetriesInFlight, ++counts.retriesInFlight);
    req.resume();
    setTimeout(() => {
      if (isRetry) counts.retriesInFlight--;
      res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
    }, latencyMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('the retry budget against an upstream that always fails', () => {
  it('keeps retries in flight within 20% of active requests (plus 3), so load is not multiplied', async () => {
    const upstream = await spawnCli(['emulate', 'http', '--errors', '1', '--latency', '20ms']);
    const gw = await startGateway(`
upstreams:
  down: { url: ${upstream.url}, pool: { connections: 200 } }
routes:
  - match: { prefix: / }
    upstream: down
    retry: { attempts: 5, baseDelay: 1ms, maxDelay: 2ms }
    breaker: false
`);
    try {
      await call(`${upstream.url}/__emulator/reset`, { method: 'POST' });
      const statuses = await load(gw.url, '/x', 1000, 50);
      expect(statuses.every((s) => s === 503)).toBe(true);
      const stats = await emulatorStats(upstream.url);
      // Unbudgeted, 5 attempts would mean 5,000 upstream requests. (Requests in flight cannot exceed the 50
      // callers either way; the next test counts the retries in flight themselves.)
      expect(stats.requests).toBeLessThan(1000 * 1.5);
      expect(stats.requests).toBeGreaterThan(1000); // some retries did happen
    } finally {
      await gw.close();
    }
  });

  it('never has more retries in flight upstream than max(3, 20% of the 50 active requests)', async () => {
    const upstream = await retryCountingUpstream(20);
    const gw = await startGateway(`
upstreams:
  down: { url: ${upstream.url}, pool: { connections: 200 } }
routes:
  - match: { prefix: / }
    upstream: down
    retry: { attempts: 5, baseDelay: 1ms, maxDelay: 2ms }
    breaker: false
`);
    try {
      const statuses = await load(gw.url, '/x', 500, 50);
      expect(statuses.every((s) => s === 503)).toBe(true);
      // Retries ran (the budget let some through), but never more than 10 at once: unbudgeted, 50 callers
      // each retrying 4 times would keep up to 50 retries in flight.
      expect(upstream.counts.requests).toBeGreaterThan(500);
      expect(upstream.counts.maxRetriesInFlight).toBeGreaterThan(0);
      expect(upstream.counts.maxRetriesInFlight).toBeLessThanOrEqual(10);
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});

describe('the circuit breaker in front of a real upstream', () => {
  it('opens after consecutive failures, rejects fast without calling upstream, half-opens and closes', async () => {
    const upstream = await spawnCli(['emulate', 'http', '--errors', '1', '--error-status', '500']);
    const gw = await startGateway(`
upstreams:
  svc: { url: ${upstream.url} }
routes:
  - match: { prefix: / }
    upstream: svc
    retry: false
    breaker: { mode: consecutive, threshold: 5, halfOpenAfter: 2s }
`);
    // 2 s open: the 21 rejected calls below finish well inside it even on a loaded machine.
    try {
      await call(`${upstream.url}/__emulator/reset`, { method: 'POST' });
      for (let i = 0; i < 5; i++) expect((await call(`${gw.url}/x`)).status).toBe(500);

      const rejected = await call(`${gw.url}/x`);
      expect(rejected.status).toBe(503);
      expect(rejected.body.error.code).toBe('GW_BREAKER_OPEN');
      expect(rejected.headers['retry-after']).toBe('2');
      for (let i = 0; i < 20; i++) expect((await call(`${gw.url}/x`)).status).toBe(503);
      expect((await emulatorStats(upstream.url)).requests).toBe(5);

      await call(`${upstream.url}/__emulator/config`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ errorRate: 0 }),
      });
      await new Promise((resolve) => setTimeout(resolve, 2_050));
      expect((await call(`${gw.url}/x`)).status).toBe(200); // the half-open probe
      expect((await call(`${gw.url}/x`)).status).toBe(200); // closed again
      expect((await emulatorStats(upstream.url)).requests).toBe(7);

      const metrics = await call(`${gw.adminUrl}/metrics`);
      expect(metrics.body).toMatch(/slipstream_breaker_state\{name="\/"\} 0/);
    } finally {
      await gw.close();
    }
  });
});

describe('the bulkhead', () => {
  it('rejects calls past max concurrent + queue with 503 GW_BULKHEAD_FULL', async () => {
    const upstream = await spawnCli(['emulate', 'http', '--latency', '300ms']);
    const gw = await startGateway(`
upstreams:
  svc: { url: ${upstream.url} }
routes:
  - match: { prefix: / }
    upstream: svc
    bulkhead: { maxConcurrent: 2, queue: 2, queueTimeout: 5s }
`);
    try {
      const results = await Promise.all(Array.from({ length: 10 }, () => call(`${gw.url}/x`)));
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 200)).toHaveLength(4);
      expect(statuses.filter((s) => s === 503)).toHaveLength(6);
      const rejected = results.find((r) => r.status === 503)!;
      expect(rejected.body.error.code).toBe('GW_BULKHEAD_FULL');
      const metrics = await call(`${gw.adminUrl}/metrics`);
      expect(metrics.body).toMatch(
        /slipstream_bulkhead_rejections_total\{route="\/",reason="queue-full"\} 6/,
      );
    } finally {
      await gw.close();
    }
  });
});

describe('a dead upstream', () => {
  it('answers 502 GW_UPSTREAM_UNAVAILABLE, not a client error', async () => {
    const gw = await startGateway(`
upstreams:
  dead: { url: "http://127.0.0.1:9", timeouts: { connect: 500ms } }
routes:
  - match: { prefix: / }
    upstream: dead
    retry: { attempts: 2, baseDelay: 1ms }
`);
    try {
      const response = await call(`${gw.url}/x`);
      expect(response.status).toBe(502);
      expect(response.body.error.code).toBe('GW_UPSTREAM_UNAVAILABLE');
      expect(response.body.error.message).toMatch(/upstream "dead": connection refused/);
    } finally {
      await gw.close();
    }
  });
});
