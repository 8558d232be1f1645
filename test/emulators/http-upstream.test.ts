import { gunzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, request } from 'undici';
import { startHttpEmulator } from '../../emulators/http-upstream.js';
import type { RunningEmulator } from '../../emulators/http-upstream.js';
import { parseLatency } from '../../emulators/latency.js';

const running: RunningEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.close()));
});

async function start(options: Parameters<typeof startHttpEmulator>[0] = {}) {
  const emulator = await startHttpEmulator(options);
  running.push(emulator);
  return emulator;
}

describe('latency specs', () => {
  it('parses fixed, uniform, normal and exponential specs', () => {
    expect(parseLatency('50ms')(Math.random)).toBe(50);
    expect(parseLatency('uniform:10ms-50ms')(() => 0.5)).toBe(30);
    // Box-Muller with both draws 0.5: z = sqrt(2 ln 2) * cos(pi) = -1.1774, so 100 - 1.1774 * 20.
    expect(parseLatency('normal:100ms,20ms')(() => 0.5)).toBeCloseTo(76.45, 1);
    expect(parseLatency('exp:20ms')(() => 1 - Math.exp(-1))).toBeCloseTo(20, 5);
  });

  it('rejects malformed specs with a message naming them', () => {
    expect(() => parseLatency('fast')).toThrow('bad latency "fast"');
    expect(() => parseLatency('uniform:50ms-10ms')).toThrow('use uniform:LOW-HIGH');
    expect(() => parseLatency('gamma:1ms')).toThrow('unknown kind "gamma"');
  });
});

describe('HTTP emulator', () => {
  it('waits at least the configured latency', async () => {
    const emulator = await start({ latency: '40ms' });
    const started = performance.now();
    const response = await request(emulator.url);
    await response.body.dump();
    expect(performance.now() - started).toBeGreaterThanOrEqual(39);
  });

  it('answers errorStatus for every request at errorRate 1, with Retry-After when configured', async () => {
    const emulator = await start({ errorRate: 1, errorStatus: 502, retryAfterS: 3 });
    const response = await request(emulator.url);
    await response.body.dump();
    expect(response.statusCode).toBe(502);
    expect(response.headers['retry-after']).toBe('3');
    expect(emulator.stats().errors).toBe(1);
  });

  it('counts one connection for many keep-alive requests on one client', async () => {
    const emulator = await start();
    const client = new Client(emulator.url);
    for (let i = 0; i < 50; i++) await (await client.request({ path: `/${i}`, method: 'GET' })).body.dump();
    await client.close();
    expect(emulator.stats()).toMatchObject({ connections: 1, requests: 50 });
  });

  it('honours per-request override headers and echoes request headers', async () => {
    const emulator = await start();
    const forced = await request(`${emulator.url}/x`, { headers: { 'x-emulate-status': '418' } });
    await forced.body.dump();
    expect(forced.statusCode).toBe(418);
    const big = await request(`${emulator.url}/x?echo=headers`, {
      headers: { 'x-emulate-body-bytes': '10000', 'x-app': 'a' },
    });
    const body = (await big.body.json()) as { headers: Record<string, string>; pad: string };
    expect(body.headers['x-app']).toBe('a');
    expect(body.pad.length).toBeGreaterThan(9_000);
  });

  it('adds the reply headers a request asks for, one line per element of a JSON array', async () => {
    const emulator = await start();
    const response = await request(`${emulator.url}/x`, {
      headers: { 'x-emulate-reply-expires': '0', 'x-emulate-reply-vary': '["Accept", "*"]' },
    });
    await response.body.dump();
    expect(response.headers.expires).toBe('0');
    expect(response.headers.vary).toEqual(['Accept', '*']);
  });

  it('answers a matching If-None-Match or If-Modified-Since with a bodiless 304, and counts both', async () => {
    const emulator = await start();
    const lastModified = 'Tue, 01 Jan 2030 00:00:00 GMT';
    const headers = { 'x-emulate-reply-etag': '"v1"', 'x-emulate-reply-last-modified': lastModified };
    const weak = await request(`${emulator.url}/r`, { headers: { ...headers, 'if-none-match': 'W/"v1"' } });
    expect([weak.statusCode, await weak.body.text(), weak.headers.etag]).toEqual([304, '', '"v1"']);
    const other = await request(`${emulator.url}/r`, { headers: { ...headers, 'if-none-match': '"v0"' } });
    await other.body.dump();
    expect(other.statusCode).toBe(200);
    const since = await request(`${emulator.url}/r`, {
      headers: { ...headers, 'if-modified-since': lastModified },
    });
    await since.body.dump();
    expect(since.statusCode).toBe(304);
    expect(emulator.stats()).toMatchObject({ conditional: 3, notModified: 2 });
  });

  it('sends gzip only to a client that accepts it, with Vary: Accept-Encoding either way', async () => {
    const emulator = await start();
    const gzip = await request(`${emulator.url}/z`, {
      headers: { 'x-emulate-gzip': '1', 'accept-encoding': 'gzip, br' },
    });
    const bytes = Buffer.from(await gzip.body.arrayBuffer());
    expect([gzip.headers['content-encoding'], gzip.headers.vary]).toEqual(['gzip', 'Accept-Encoding']);
    expect((JSON.parse(gunzipSync(bytes).toString()) as { ok: boolean }).ok).toBe(true);
    const plain = await request(`${emulator.url}/z`, { headers: { 'x-emulate-gzip': '1' } });
    expect([plain.headers['content-encoding'], plain.headers.vary]).toEqual([undefined, 'Accept-Encoding']);
    expect(((await plain.body.json()) as { ok: boolean }).ok).toBe(true);
  });

  it('applies a live config patch', async () => {
    const emulator = await start();
    emulator.configure({ errorRate: 1, errorStatus: 500 });
    expect((await request(emulator.url)).statusCode).toBe(500);
    emulator.configure({ errorRate: 0 });
    expect((await request(emulator.url)).statusCode).toBe(200);
  });

  it('issues OAuth2 tokens to the right client only and requires them on work requests', async () => {
    const emulator = await start({ oauth: { clientId: 'app', clientSecret: 'pw', tokenTtlS: 60 } });
    const token = async (headers: Record<string, string>, body: string) => {
      const response = await request(`${emulator.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body,
      });
      return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> };
    };
    const basic = await token(
      { authorization: `Basic ${Buffer.from('app:pw').toString('base64')}` },
      'grant_type=client_credentials',
    );
    expect(basic.status).toBe(200);
    expect(basic.body).toMatchObject({ token_type: 'Bearer', expires_in: 60 });
    const post = await token({}, 'grant_type=client_credentials&client_id=app&client_secret=pw');
    expect(post.status).toBe(200);
    expect((await token({}, 'grant_type=client_credentials&client_id=app&client_secret=no')).status).toBe(
      401,
    );
    expect((await token({}, 'grant_type=password&client_id=app&client_secret=pw')).status).toBe(400);

    expect((await request(emulator.url)).statusCode).toBe(401);
    const ok = await request(emulator.url, {
      headers: { authorization: `Bearer ${String(basic.body.access_token)}` },
    });
    expect(ok.statusCode).toBe(200);
    await request(`${emulator.url}/__emulator/revoke`, { method: 'POST' });
    const revoked = await request(emulator.url, {
      headers: { authorization: `Bearer ${String(basic.body.access_token)}` },
    });
    expect(revoked.statusCode).toBe(401);
    expect(emulator.stats()).toMatchObject({ tokensIssued: 2, unauthorized: 2 });
  });

  it('ends hung requests when closed', async () => {
    const emulator = await startHttpEmulator({ hangRate: 1 });
    const pending = request(emulator.url).catch((error: { code?: string }) => error.code);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(emulator.stats().hangs).toBe(1);
    await emulator.close();
    expect(await pending).toBe('UND_ERR_SOCKET');
  });
});
