// Async requests as jobs, with real processes: a gateway (or two sharing Redis), an emulated upstream, a webhook receiver.
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, spawnGateway, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { REDIS_URL, serviceAvailable } from '../helpers/services.js';

const redisUp = await serviceAvailable('Redis', REDIS_URL);
const SECRET = 'a-webhook-secret-of-32-characters!';

interface Delivery {
  headers: Record<string, string | string[] | undefined>;
  raw: Buffer;
  receivedAtS: number;
}

/** A webhook receiver on loopback that records every delivery; answers 503 to the first `failFirst`. */
async function receiver(failFirst = 0): Promise<{ url: string; deliveries: Delivery[]; server: Server }> {
  const deliveries: Delivery[] = [];
  let seen = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen++;
      if (seen <= failFirst) {
        res.writeHead(503).end();
        return;
      }
      deliveries.push({ headers: req.headers, raw: Buffer.concat(chunks), receivedAtS: Date.now() / 1000 });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, deliveries, server };
}

/** Verifies a delivery the way the README tells receivers to, with node:crypto alone. */
function verified(delivery: Delivery): boolean {
  const header = String(delivery.headers['x-slipstream-signature']);
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (match === null) return false;
  const [, t, v1] = match;
  if (Math.abs(delivery.receivedAtS - Number(t)) > 300) return false;
  const expected = createHmac('sha256', SECRET).update(`${t}.`).update(delivery.raw).digest('hex');
  return expected === v1;
}

/** Polls a job's monitor until it is no longer pending; returns that answer. */
async function settled(url: string, headers: Record<string, string> = {}) {
  let last: Awaited<ReturnType<typeof call>> | undefined;
  await expect
    .poll(
      async () => {
        last = await call(url, { headers });
        return last.headers['x-slipstream-job-status'];
      },
      { timeout: 20_000, interval: 100 },
    )
    .not.toMatch(/^(queued|running)$/);
  return last!;
}

describe('async requests in process', () => {
  let upstream: CliProcess;
  let gateway: CliProcess;
  let hooks: Awaited<ReturnType<typeof receiver>>;

  beforeAll(async () => {
    [upstream, hooks] = await Promise.all([spawnCli(['emulate', 'http', '--latency', '300ms']), receiver(1)]);
    gateway = await spawnGateway(`
server: { listen: "127.0.0.1:0", principalHeader: x-user }
auth: { trust: header }
upstreams:
  emu: { url: "${upstream.url}" }
  nowhere: { url: "http://127.0.0.1:9", pool: { warm: 0 } }
routes:
  - name: report
    match: { prefix: /report }
    upstream: emu
    async: prefer
  - name: sync
    match: { prefix: /sync }
    upstream: emu
  - name: batch
    match: { prefix: /batch }
    upstream: emu
    async: always
  - name: dead
    match: { prefix: /dead }
    upstream: nowhere
    async: prefer
    retry: false
jobs:
  webhooks: { secret: "${SECRET}", allow: ["${hooks.url}/hooks/"], baseDelay: 20ms }
`);
  });
  afterAll(async () => {
    await stopAll();
    await new Promise((r) => hooks?.server.close(r));
  });

  it('answers 202 with Location at once, runs the call in the background and serves the stored reply', async () => {
    const accepted = await call(`${gateway.url}/report/q3?echo=headers`, {
      headers: {
        prefer: 'respond-async',
        'x-user': 'alice',
        'x-slipstream-callback': `${hooks.url}/hooks/a`,
      },
    });
    expect(accepted.status).toBe(202);
    expect(accepted.headers['preference-applied']).toBe('respond-async');
    const location = String(accepted.headers.location);
    expect(location).toMatch(/^\/jobs\/[A-Za-z0-9_-]{22}$/);
    expect(accepted.body.job).toMatchObject({ status: 'queued', route: 'report', location });
    const pending = await call(`${gateway.url}${location}`, { headers: { 'x-user': 'alice' } });
    expect([pending.status, pending.headers['x-slipstream-job-status']]).toEqual([
      202,
      expect.stringMatching(/queued|running/),
    ]);

    const done = await settled(`${gateway.url}${location}`, { 'x-user': 'alice' });
    expect(done.status).toBe(200);
    expect(done.headers['x-slipstream-job-status']).toBe('done');
    expect(done.body).toMatchObject({ ok: true, path: '/report/q3?echo=headers' });
    // The upstream saw neither the gateway's own preference nor the callback header.
    expect(done.body.headers.prefer).toBeUndefined();
    expect(done.body.headers['x-slipstream-callback']).toBeUndefined();

    // The first delivery got a 503 and was retried; the second one is signed over its timestamp and body.
    await expect.poll(() => hooks.deliveries.length, { timeout: 10_000 }).toBe(1);
    const delivery = hooks.deliveries[0]!;
    expect(verified(delivery)).toBe(true);
    expect(verified({ ...delivery, raw: Buffer.concat([delivery.raw, Buffer.from(' ')]) })).toBe(false);
    const payload = JSON.parse(delivery.raw.toString());
    expect(payload).toMatchObject({ id: location.split('/').pop(), status: 'done', result: { status: 200 } });
    expect(JSON.parse(Buffer.from(payload.result.body, 'base64').toString())).toEqual(done.body);
    expect(delivery.headers['x-slipstream-job']).toBe(payload.id);
  });

  it('shows a job only to the caller that made it', async () => {
    const accepted = await call(`${gateway.url}/report/private`, {
      headers: { prefer: 'respond-async', 'x-user': 'alice' },
    });
    const location = String(accepted.headers.location);
    for (const headers of [{ 'x-user': 'bob' }, {}] as Array<Record<string, string>>) {
      const other = await call(`${gateway.url}${location}`, { headers });
      expect([other.status, other.body.error.code]).toEqual([404, 'GW_JOB_NOT_FOUND']);
      const del = await call(`${gateway.url}${location}`, { method: 'DELETE', headers });
      expect(del.status).toBe(404);
    }
    expect((await settled(`${gateway.url}${location}`, { 'x-user': 'alice' })).status).toBe(200);
  });

  it('stores the request body with the job and replays it upstream', async () => {
    const body = JSON.stringify({ rows: 'x'.repeat(5_000) });
    const accepted = await call(`${gateway.url}/batch/sync`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(accepted.status).toBe(202); // `async: always`: no Prefer needed
    expect(accepted.headers['preference-applied']).toBeUndefined();
    const done = await settled(`${gateway.url}${String(accepted.headers.location)}`);
    expect(done.body).toMatchObject({ ok: true, method: 'POST', bodyBytes: body.length });
  });

  it('cancels a running job with DELETE, aborting its upstream call', async () => {
    await call(`${upstream.url}/__emulator/reset`, { method: 'POST' });
    const accepted = await call(`${gateway.url}/report/hang`, {
      headers: { prefer: 'respond-async', 'x-emulate-hang': '1' },
    });
    const location = String(accepted.headers.location);
    await expect.poll(async () => (await emulatorStats(upstream.url)).inFlight).toBe(1);
    const cancelled = await call(`${gateway.url}${location}`, { method: 'DELETE' });
    expect([cancelled.status, cancelled.body.job.status]).toEqual([200, 'cancelled']);
    await expect.poll(async () => (await emulatorStats(upstream.url)).inFlight).toBe(0);
    expect((await call(`${gateway.url}${location}`)).headers['x-slipstream-job-status']).toBe('cancelled');
    expect((await call(`${gateway.url}${location}`, { method: 'DELETE' })).status).toBe(204);
    expect((await call(`${gateway.url}${location}`)).status).toBe(404);
  });

  it('refuses a callback outside the allowed prefixes, and answers synchronously where async is off', async () => {
    const refused = await call(`${gateway.url}/report/x`, {
      headers: {
        prefer: 'respond-async',
        'x-slipstream-callback': 'http://169.254.169.254/latest/meta-data',
      },
    });
    expect([refused.status, refused.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
    const sync = await call(`${gateway.url}/sync/x`, { headers: { prefer: 'respond-async' } });
    expect([sync.status, sync.body.ok]).toEqual([200, true]);
  });

  it("stores an upstream's error reply as the job's reply, and a gateway error as a failed job", async () => {
    const replied = await call(`${gateway.url}/report/fails`, {
      headers: { prefer: 'respond-async', 'x-emulate-status': '404' },
    });
    const stored = await settled(`${gateway.url}${String(replied.headers.location)}`);
    expect([stored.status, stored.headers['x-slipstream-job-status']]).toEqual([404, 'done']);
    const unreachable = await call(`${gateway.url}/dead/x`, { headers: { prefer: 'respond-async' } });
    const failed = await settled(`${gateway.url}${String(unreachable.headers.location)}`);
    expect([failed.status, failed.headers['x-slipstream-job-status'], failed.body.error.code]).toEqual([
      502,
      'failed',
      'GW_UPSTREAM_UNAVAILABLE',
    ]);
  });
});

/**
 * An upstream whose first request for each path hangs until its connection closes (the gateway running
 * it was killed) and whose later ones answer at once with the attempt number.
 */
async function hangsFirst(): Promise<{ url: string; server: Server; attempts: Map<string, number> }> {
  const attempts = new Map<string, number>();
  const server = createServer((req, res) => {
    req.resume();
    const n = (attempts.get(req.url ?? '') ?? 0) + 1;
    attempts.set(req.url ?? '', n);
    if (n > 1) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ attempt: n }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, attempts };
}

describe.skipIf(!redisUp)('async requests on a Redis Streams queue shared by replicas', () => {
  let upstream: CliProcess;
  let held: Awaited<ReturnType<typeof hangsFirst>>;
  let yaml: string;

  beforeAll(async () => {
    [upstream, held] = await Promise.all([spawnCli(['emulate', 'http']), hangsFirst()]);
    const prefix = `slipstream-test:${randomBytes(6).toString('hex')}:`;
    yaml = `
upstreams:
  emu: { url: "${upstream.url}", pool: { warm: 0 } }
  held: { url: "${held.url}", pool: { warm: 0 } }
routes:
  - name: read
    match: { prefix: /read }
    upstream: emu
    async: always
    timeout: 60s
  - name: held
    match: { prefix: /held }
    upstream: held
    async: always
    timeout: 60s
  - name: held-write
    match: { prefix: /held-write, methods: [POST] }
    upstream: held
    async: always
    timeout: 60s
jobs:
  store: redis
  concurrency: 4
  redis: { url: "${REDIS_URL}", keyPrefix: "${prefix}", lease: 1s }
`;
  });
  afterAll(async () => {
    await stopAll();
    await new Promise((r) => held?.server.close(r));
  });

  it('re-runs an idempotent job on another replica after kill -9 of the gateway running it', async () => {
    const a = await spawnGateway(yaml);
    const accepted = await call(`${a.url}/held/report`);
    const location = String(accepted.headers.location);
    await expect.poll(() => held.attempts.get('/held/report')).toBe(1); // A runs it, and it hangs
    const b = await spawnGateway(yaml);
    try {
      await a.stop('SIGKILL');
      const done = await settled(`${b.url}${location}`);
      expect([done.status, done.headers['x-slipstream-job-status'], done.body]).toEqual([
        200,
        'done',
        { attempt: 2 },
      ]);
    } finally {
      await b.stop();
    }
  });

  it('fails a job of a route that is not idempotent with GW_JOB_INTERRUPTED instead of running it twice', async () => {
    const a = await spawnGateway(yaml);
    const accepted = await call(`${a.url}/held-write/order`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"qty":1}',
    });
    await expect.poll(() => held.attempts.get('/held-write/order')).toBe(1);
    const b = await spawnGateway(yaml);
    try {
      await a.stop('SIGKILL');
      const failed = await settled(`${b.url}${String(accepted.headers.location)}`);
      expect([failed.status, failed.headers['x-slipstream-job-status'], failed.body.error.code]).toEqual([
        503,
        'failed',
        'GW_JOB_INTERRUPTED',
      ]);
      expect(held.attempts.get('/held-write/order')).toBe(1);
    } finally {
      await b.stop();
    }
  });

  it('never runs one job twice with two replicas taking jobs from the same queue', async () => {
    const [a, b] = await Promise.all([spawnGateway(yaml), spawnGateway(yaml)]);
    await call(`${upstream.url}/__emulator/reset`, { method: 'POST' });
    const locations = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const accepted = await call(`${(i % 2 === 0 ? a : b).url}/read/item-${i}`, {
          headers: { 'x-emulate-latency': '100ms' },
        });
        expect(accepted.status).toBe(202);
        return String(accepted.headers.location);
      }),
    );
    const results = await Promise.all(locations.map((l, i) => settled(`${(i % 2 === 0 ? b : a).url}${l}`)));
    expect(results.map((r) => r.body.path)).toEqual(locations.map((_, i) => `/read/item-${i}`));
    expect((await emulatorStats(upstream.url)).requests).toBe(40);
    const started = async (gateway: CliProcess) => {
      const text = await (await request(`${String(gateway.listening.adminUrl)}/metrics`)).body.text();
      return Number(
        /^slipstream_jobs_started_total\{route="read",rerun="false"\} (\d+)/m.exec(text)?.[1] ?? 0,
      );
    };
    const [onA, onB] = await Promise.all([started(a), started(b)]);
    expect(onA + onB).toBe(40);
    expect(onA).toBeGreaterThan(0);
    expect(onB).toBeGreaterThan(0);
  });
});
