import { get as httpGet } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';

async function configure(emulator: string, patch: Record<string, unknown>): Promise<void> {
  await call(`${emulator}/__emulator/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(patch),
  });
}

function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }),
      );
    });
    req.on('error', reject);
  });
}

async function reset(emulator: string): Promise<void> {
  await call(`${emulator}/__emulator/reset`, { method: 'POST' });
}

describe('proxying to a real upstream process', () => {
  let upstream: CliProcess;
  let gw: RunningGateway;

  beforeAll(async () => {
    upstream = await spawnCli(['emulate', 'http']);
    gw = await startGateway(
      `
upstreams:
  emu:
    url: ${upstream.url}
    pool: { connections: 4 }
    headers: { x-api-key: "\${API_KEY}" }
routes:
  - name: small
    match: { prefix: /small }
    upstream: emu
    maxRequestBytes: 1kb
  - name: posts
    match: { prefix: /posts, methods: [POST] }
    upstream: emu
  - name: api
    match: { prefix: /api }
    upstream: emu
    rewrite: /v1
  - name: slow
    match: { prefix: /slow }
    upstream: emu
    timeout: 200ms
    retry: false
  - name: writes
    match: { prefix: /writes }
    upstream: emu
    retry: { attempts: 3, baseDelay: 1ms, maxDelay: 2ms }
  - name: replayable
    match: { prefix: /replayable }
    upstream: emu
    idempotent: true
    retry: { attempts: 3, baseDelay: 1ms, maxDelay: 2ms }
`,
      { API_KEY: 'k-123' },
    );
  });

  afterAll(async () => {
    await gw?.close();
    await stopAll();
  });

  beforeEach(async () => {
    await configure(upstream.url, { latency: '0ms', errorRate: 0, hangRate: 0 });
  });

  it('reuses pooled keep-alive connections: 1,000 sequential requests open at most the pool size', async () => {
    await reset(upstream.url);
    const client = new Client(gw.url);
    try {
      for (let i = 0; i < 1000; i++) {
        const response = await client.request({ path: `/api/item/${i}`, method: 'GET' });
        expect(response.statusCode).toBe(200);
        await response.body.dump();
      }
    } finally {
      await client.close();
    }
    const stats = await emulatorStats(upstream.url);
    expect(stats.requests).toBe(1000);
    // Pool size 4; the emulator also counts the one fresh connection used to read its stats.
    expect(stats.connections).toBeLessThanOrEqual(4 + 1);
  });

  it('rewrites the matched prefix, keeps the query string and adds static upstream headers', async () => {
    // node:http, because undici will not send a Connection header that names other headers.
    const response = await rawGet(`${gw.url}/api/users/7?echo=headers&x=1`, {
      connection: 'keep-alive, x-hop',
      'x-hop': 'must not pass',
      'x-app': 'passes',
    });
    expect(response.status).toBe(200);
    expect(response.body.path).toBe('/v1/users/7?echo=headers&x=1');
    expect(response.body.headers['x-api-key']).toBe('k-123');
    expect(response.body.headers['x-app']).toBe('passes');
    expect(response.body.headers['x-hop']).toBeUndefined();
    expect(response.body.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(response.headers['x-request-id']).toEqual(expect.any(String));
  });

  it('streams a POST body to the upstream', async () => {
    const body = JSON.stringify({ text: 'x'.repeat(50_000) });
    const response = await call(`${gw.url}/posts`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(response.status).toBe(200);
    expect(response.body.bodyBytes).toBe(Buffer.byteLength(body));
  });

  it('rejects a request body over the route limit with 413 GW_PAYLOAD_TOO_LARGE', async () => {
    const response = await call(`${gw.url}/small`, { method: 'POST', body: 'x'.repeat(2048) });
    expect(response.status).toBe(413);
    expect(response.body.error.code).toBe('GW_PAYLOAD_TOO_LARGE');
  });

  it('answers an unknown route with 404 and a method outside the route with 405, as JSON', async () => {
    const missing = await call(`${gw.url}/nowhere`);
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({
      error: { code: 'GW_ROUTE_NOT_FOUND', message: 'no route matches GET /nowhere' },
    });
    const wrongMethod = await call(`${gw.url}/posts`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.body.error.code).toBe('GW_METHOD_NOT_ALLOWED');
  });

  it('returns 504 GW_UPSTREAM_TIMEOUT by the route deadline when the upstream is slow', async () => {
    const started = performance.now();
    const response = await call(`${gw.url}/slow`, { headers: { 'x-emulate-latency': '5s' } });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(504);
    expect(response.body.error.code).toBe('GW_UPSTREAM_TIMEOUT');
    expect(elapsed).toBeGreaterThanOrEqual(195);
    expect(elapsed).toBeLessThan(1_000);
  });

  it('sends a POST or a PATCH to a 503 upstream exactly once, while a PUT on the same route is retried', async () => {
    const unavailable = { 'x-emulate-status': '503', 'content-type': 'application/json' };
    for (const method of ['POST', 'PATCH']) {
      await reset(upstream.url);
      const response = await call(`${gw.url}/writes/order`, { method, headers: unavailable, body: '{}' });
      expect(response.status).toBe(503);
      expect((await emulatorStats(upstream.url)).requests).toBe(1);
    }
    // The route does retry: an idempotent method gets all three attempts.
    await reset(upstream.url);
    const put = await call(`${gw.url}/writes/order`, { method: 'PUT', headers: unavailable, body: '{}' });
    expect(put.status).toBe(503);
    expect((await emulatorStats(upstream.url)).requests).toBe(3);
  });

  it('retries a POST on a route marked idempotent', async () => {
    await reset(upstream.url);
    const body = JSON.stringify({ id: 'order-1' });
    const response = await call(`${gw.url}/replayable/order`, {
      method: 'POST',
      headers: { 'x-emulate-status': '503', 'content-type': 'application/json' },
      body,
    });
    expect(response.status).toBe(503);
    expect((await emulatorStats(upstream.url)).requests).toBe(3);
  });

  it('passes upstream error statuses through unchanged when they are not retried', async () => {
    const response = await call(`${gw.url}/slow`, { headers: { 'x-emulate-status': '418' } });
    expect(response.status).toBe(418);
  });
});

describe('connection warm-up', () => {
  afterAll(stopAll);

  it('opens pool.warm connections before listening and serves the first requests on them', async () => {
    const upstream = await spawnCli(['emulate', 'http']);
    const gw = await startGateway(`
upstreams:
  emu: { url: ${upstream.url}, pool: { connections: 8, warm: 3 } }
routes:
  - { name: emu, match: { prefix: / }, upstream: emu }
`);
    try {
      const warmed = await emulatorStats(upstream.url);
      // Three warm connections still open (plus the one reading the stats).
      expect(warmed.openConnections).toBe(4);
      await Promise.all(Array.from({ length: 3 }, () => call(`${gw.url}/first`)));
      const after = await emulatorStats(upstream.url);
      expect(after.connections - warmed.connections).toBe(1); // only the second stats read is new
    } finally {
      await gw.close();
    }
  });
});
