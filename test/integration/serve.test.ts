import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/gateway.js';
import { emulatorStats, runCli, spawnCli, stopAll } from '../helpers/processes.js';

afterAll(() => stopAll());

async function configFile(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slipstream-'));
  const file = join(dir, 'slipstream.yaml');
  await writeFile(file, text);
  return file;
}

describe('slipstream serve', () => {
  it('drains in-flight requests on SIGTERM, then exits 0', async () => {
    const upstream = await spawnCli(['emulate', 'http']);
    const file = await configFile(`
server: { listen: "127.0.0.1:0", shutdownGrace: 5s }
admin: { listen: "127.0.0.1:0" }
upstreams:
  emu: { url: ${upstream.url} }
routes:
  - match: { prefix: / }
    upstream: emu
`);
    const gateway = await spawnCli(['serve', '-c', file]);
    const inFlight = Array.from({ length: 5 }, (_, i) =>
      call(`${gateway.url}/work/${i}`, { headers: { 'x-emulate-latency': '800ms' } }),
    );
    // All five reached the upstream before the signal.
    await expect.poll(async () => (await emulatorStats(upstream.url)).inFlight).toBe(5);
    const exited = gateway.stop('SIGTERM');

    const results = await Promise.all(inFlight);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(await exited).toBe(0);
    await expect(call(`${gateway.url}/late`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('closes a kept-alive connection after its in-flight reply while draining, so no later request lands on it', async () => {
    const upstream = await spawnCli(['emulate', 'http']);
    const file = await configFile(`
server: { listen: "127.0.0.1:0" }
admin: { listen: "127.0.0.1:0" }
upstreams:
  emu: { url: ${upstream.url} }
routes:
  - match: { prefix: / }
    upstream: emu
`);
    const gateway = await spawnCli(['serve', '-c', file]);
    const adminUrl = gateway.listening.adminUrl as string;
    expect((await call(`${adminUrl}/readyz`)).status).toBe(200);
    // One raw keep-alive connection: a slow request is in flight on it, so the drain cannot close it as idle.
    const { port } = new URL(gateway.url);
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write('GET /slow HTTP/1.1\r\nHost: gw\r\nx-emulate-latency: 1500ms\r\n\r\n');
    await expect.poll(async () => (await emulatorStats(upstream.url)).inFlight).toBe(1);
    const sent = (await emulatorStats(upstream.url)).requests;

    const exited = gateway.stop('SIGTERM');
    // Draining: the load balancer's probe says so at once, while the in-flight request still runs.
    await expect.poll(async () => (await call(`${adminUrl}/readyz`)).status).toBe(503);
    expect((await call(`${adminUrl}/readyz`)).body).toEqual({ status: 'draining' });
    // The in-flight reply completes and says `Connection: close`: a load balancer sends its next request
    // down another connection (another replica) instead of this one. A request pipelined behind it is not
    // taken (RFC 9112 §9.3.2: the client retries it elsewhere). New requests that reach a draining
    // exchange get 503 GW_SHUTTING_DOWN (test/server/exchange.test.ts).
    socket.write('GET /late HTTP/1.1\r\nHost: gw\r\n\r\n');
    await closed;
    const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200]);
    expect(received).toMatch(/^connection: close\r$/im);
    expect(await exited).toBe(0);
    expect((await emulatorStats(upstream.url)).requests).toBe(sent); // the late request never went upstream
  });

  it('refuses to start on an invalid config: exit code 2 and a located message', async () => {
    const file = await configFile(
      `upstreams:\n  api:\n    url: http://127.0.0.1:1\n    pool: { connections: lots }\n`,
    );
    const result = await runCli(['serve', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      `${file}:4:26 upstreams.api.pool.connections: Invalid input: expected number, received string`,
    );
    expect(result.stdout).not.toContain('listening');
  });

  it('check prints a summary of upstreams and routes without secrets', async () => {
    const file = await configFile(`
upstreams:
  api:
    url: http://127.0.0.1:9000
    headers: { x-api-key: "\${API_KEY:-super-secret-key}" }
routes:
  - { name: api, match: { prefix: /api, methods: [GET] }, upstream: api, rewrite: /v1 }
`);
    const result = await runCli(['check', '-c', file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('api  http://127.0.0.1:9000');
    expect(result.stdout).toContain('api  GET /api -> api (rewrite to /v1)');
    expect(result.stdout).toContain('headers: x-api-key');
    expect(result.stdout).not.toContain('super-secret-key');
  });
});

describe('the admin listener and tracing of a running gateway', () => {
  it('serves metrics, health and readiness, requires the admin token, and exports spans with traceparent sent upstream', async () => {
    const spans: any[] = [];
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        if (req.url === '/v1/traces') spans.push(JSON.parse(body));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;

    const upstream = await spawnCli(['emulate', 'http']);
    const file = await configFile(`
server: { listen: "127.0.0.1:0", overheadHeader: true }
admin: { listen: "127.0.0.1:0", token: "admin-token-0123456789" }
telemetry: { tracing: { otlpEndpoint: ${collectorUrl} } }
upstreams:
  emu: { url: ${upstream.url} }
routes:
  - { name: emu, match: { prefix: / }, upstream: emu }
`);
    const gateway = await spawnCli(['serve', '-c', file]);
    const adminUrl = gateway.listening.adminUrl as string;
    try {
      const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const response = await call(`${gateway.url}/hello?echo=headers`, {
        headers: { traceparent: incoming },
      });
      expect(response.status).toBe(200);
      expect(Number(response.headers['x-slipstream-overhead-us'])).toBeGreaterThanOrEqual(0);
      const sent = String(response.body.headers.traceparent);
      expect(sent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
      expect(sent).not.toBe(incoming);

      expect((await call(`${adminUrl}/healthz`)).status).toBe(200);
      expect((await call(`${adminUrl}/readyz`)).status).toBe(200);
      const denied = await call(`${adminUrl}/metrics`);
      expect(denied.status).toBe(401);
      expect(denied.body.error.code).toBe('GW_UNAUTHORIZED');
      const metrics = await call(`${adminUrl}/metrics`, {
        headers: { authorization: 'Bearer admin-token-0123456789' },
      });
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(/slipstream_requests_total\{route="emu",method="GET",status="200"\} 1/);
      expect(metrics.body).toMatch(
        /slipstream_upstream_request_duration_seconds_count\{upstream="emu",status="200"\} \d+/,
      );
      expect(metrics.body).toMatch(
        /slipstream_upstream_connections\{upstream="emu",state="connected"\} [1-9]/,
      );
    } finally {
      expect(await gateway.stop('SIGTERM')).toBe(0);
      collector.close();
    }
    const all = spans.flatMap((s) =>
      s.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((x: any) => x.spans)),
    );
    const traceIds = new Set(all.map((s: any) => s.traceId));
    expect(traceIds).toEqual(new Set(['0af7651916cd43dd8448eb211c80319c']));
    expect(all.map((s: any) => s.kind).sort()).toEqual([2, 3]); // SERVER and CLIENT
  });
});
