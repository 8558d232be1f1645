// Let no one in who doesn't belong: API keys, JWTs with a rotating JWKS, allowances, verified scoping, rate limits.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpEmulator } from '../../emulators/http-upstream.js';
import type { RunningEmulator } from '../../emulators/http-upstream.js';
import { startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import type { ConfigError } from '../../src/config/load.js';
import { parseConfig } from '../../src/config/load.js';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { startJwks, token } from '../helpers/jwks.js';
import { spawnCli, stopAll } from '../helpers/processes.js';
import { REDIS_URL, serviceAvailable, startPrivateRedis } from '../helpers/services.js';

const KEY_A = 'sk-test-alice-0123456789abcdef';
const KEY_B = 'sk-test-bob-0123456789abcdef00';
const KEY_C = 'sk-test-carol-0123456789abcdef';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('inbound authentication', () => {
  let upstream: RunningEmulator;
  let llm: RunningLlmEmulator;
  let jwks: Awaited<ReturnType<typeof startJwks>>;
  let key1: Awaited<ReturnType<Awaited<ReturnType<typeof startJwks>>['newKey']>>;
  let gw: RunningGateway;

  beforeAll(async () => {
    [upstream, llm, jwks] = await Promise.all([
      startHttpEmulator(),
      startLlmEmulator({ tokens: 2 }),
      startJwks(),
    ]);
    key1 = await jwks.newKey('k1');
    jwks.publish(key1.jwk);
    gw = await startGateway(
      `
auth:
  apiKeys:
    keys:
      - { name: alice, key: "\${KEY_A}", allow: { routes: [api, cached], models: [fast], tools: ["emu__echo"], groups: [] } }
      - { name: bob, sha256: "${sha256(KEY_B)}", principal: bob }
  jwt:
    jwksUrl: "${jwks.url}"
    issuer: https://issuer.test
    audience: slipstream
    algorithms: [ES256]
    refetchCooldown: 1ms
upstreams:
  emu: { url: "${upstream.url}" }
routes:
  - { name: api, match: { prefix: /api }, upstream: emu }
  - { name: other, match: { prefix: /other }, upstream: emu }
  - { name: health, match: { prefix: /health }, upstream: emu, auth: false }
  - { name: cached, match: { prefix: /cached }, upstream: emu, cache: { ttl: 60s } }
mcp:
  servers:
    emu: ${emulatorServer()}
llm:
  providers:
    emu: { baseUrl: "${llm.url}/v1", models: { fast: emu-small, slow: emu-large } }
groups:
  team: { members: [{ name: echo, server: emu, tool: echo }] }
`,
      { KEY_A },
    );
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([upstream?.close(), llm?.close(), jwks?.close()]);
  });

  it('refuses an anonymous call with 401 and a Bearer challenge, before anything goes upstream', async () => {
    upstream.reset();
    const response = await call(`${gw.url}/api/x`);
    expect([response.status, response.body.error.code]).toEqual([401, 'GW_UNAUTHORIZED']);
    expect(response.headers['www-authenticate']).toMatch(/^Bearer realm="slipstream"/);
    expect(upstream.stats().requests).toBe(0);
  });

  it('accepts an API key from config (hashed at load) and one given as its SHA-256', async () => {
    expect((await call(`${gw.url}/api/x`, { headers: bearer(KEY_A) })).status).toBe(200);
    expect((await call(`${gw.url}/other/x`, { headers: bearer(KEY_B) })).status).toBe(200);
  });

  it('refuses an unknown key with 401 invalid_token', async () => {
    const response = await call(`${gw.url}/api/x`, { headers: bearer('sk-nobody-0000000000000000') });
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('serves a route marked auth: false to anyone', async () => {
    expect((await call(`${gw.url}/health`)).status).toBe(200);
  });

  it("refuses what a key's allowances leave out with 403 GW_FORBIDDEN (routes, models, groups) or hides it (tools)", async () => {
    const route = await call(`${gw.url}/other/x`, { headers: bearer(KEY_A) });
    expect([route.status, route.body.error.code]).toEqual([403, 'GW_FORBIDDEN']);
    const model = await call(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...bearer(KEY_A), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect([model.status, model.body.error.code]).toEqual([403, 'GW_FORBIDDEN']);
    const allowedModel = await call(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...bearer(KEY_A), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(allowedModel.status).toBe(200);
    const group = await call(`${gw.url}/fanout/team`, {
      method: 'POST',
      headers: bearer(KEY_A),
      body: '{"text":"x"}',
    });
    expect([group.status, group.body.error.code]).toEqual([403, 'GW_FORBIDDEN']);
    const catalogue = await call(`${gw.url}/tools`, { headers: bearer(KEY_A) });
    expect(catalogue.body.tools.map((t: { name: string }) => t.name)).toEqual(['emu__echo']);
    const hidden = await call(`${gw.url}/tools/emu/pid`, {
      method: 'POST',
      headers: bearer(KEY_A),
      body: '{}',
    });
    expect([hidden.status, hidden.body.error.code]).toEqual([404, 'GW_TOOL_NOT_FOUND']);
    const shown = await call(`${gw.url}/tools/emu/echo`, {
      method: 'POST',
      headers: bearer(KEY_A),
      body: '{"text":"hi"}',
    });
    expect(shown.status).toBe(200);
  });

  it('accepts a JWT signed by a key of the JWKS, and refuses expired, foreign-audience and forged ones', async () => {
    expect((await call(`${gw.url}/other/x`, { headers: bearer(await token(key1)) })).status).toBe(200);
    const expired = await call(`${gw.url}/other/x`, {
      headers: bearer(await token(key1, { expiresIn: '-2m' })),
    });
    expect(expired.status).toBe(401);
    expect(expired.headers['www-authenticate']).toContain('expired');
    expect(
      (await call(`${gw.url}/other/x`, { headers: bearer(await token(key1, { aud: 'someone-else' })) }))
        .status,
    ).toBe(401);
    const stranger = await jwks.newKey('k1');
    expect((await call(`${gw.url}/other/x`, { headers: bearer(await token(stranger)) })).status).toBe(401);
  });

  it('follows a key rotation: a token with a new kid is verified against the refetched JWKS', async () => {
    const key2 = await jwks.newKey('k2');
    jwks.publish(key2.jwk);
    const before = jwks.fetches();
    expect((await call(`${gw.url}/other/x`, { headers: bearer(await token(key2)) })).status).toBe(200);
    expect(jwks.fetches()).toBeGreaterThan(before);
    jwks.publish(key1.jwk, key2.jwk);
  });

  it('scopes the cache by the verified principal: each key has its own entries', async () => {
    const a1 = await call(`${gw.url}/cached/me`, { headers: bearer(KEY_A) });
    const b1 = await call(`${gw.url}/cached/me`, { headers: bearer(KEY_B) });
    const a2 = await call(`${gw.url}/cached/me`, { headers: bearer(KEY_A) });
    expect(b1.body.n).not.toBe(a1.body.n);
    expect([a2.headers['x-slipstream-cache'], a2.body.n]).toEqual(['hit', a1.body.n]);
  });

  it('lets no rotation of unverified credentials reach upstream, flush the cache or open sessions', async () => {
    await call(`${gw.url}/cached/keep`, { headers: bearer(KEY_A) });
    upstream.reset();
    const forged = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        call(`${gw.url}/cached/keep?${i}`, { headers: bearer(`forged-${randomBytes(8).toString('hex')}`) }),
      ),
    );
    expect(new Set(forged.map((r) => r.status))).toEqual(new Set([401]));
    const sessions = await Promise.all(
      Array.from({ length: 50 }, () =>
        call(`${gw.url}/mcp`, {
          method: 'POST',
          headers: {
            ...bearer(`forged-${randomBytes(8).toString('hex')}`),
            accept: 'application/json, text/event-stream',
            'content-type': 'application/json',
          },
          body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: {
              protocolVersion: '2025-06-18',
              capabilities: {},
              clientInfo: { name: 't', version: '1' },
            },
          }),
        }),
      ),
    );
    expect(new Set(sessions.map((r) => r.status))).toEqual(new Set([401]));
    expect(upstream.stats().requests).toBe(0);
    expect(
      (await call(`${gw.url}/cached/keep`, { headers: bearer(KEY_A) })).headers['x-slipstream-cache'],
    ).toBe('hit');
  });

  it('makes /mcp an OAuth protected resource: a 401 names the metadata, which names the issuer (RFC 9728)', async () => {
    const refused = await call(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(refused.status).toBe(401);
    const host = new URL(gw.url).host;
    expect(refused.headers['www-authenticate']).toContain(
      `resource_metadata="http://${host}/.well-known/oauth-protected-resource/mcp"`,
    );
    const metadata = await call(`${gw.url}/.well-known/oauth-protected-resource/mcp`);
    expect(metadata.body).toEqual({
      resource: `http://${host}/mcp`,
      authorization_servers: ['https://issuer.test'],
      bearer_methods_supported: ['header'],
      resource_name: 'Slipstream',
    });
  });
});

describe('API keys read from another header, and from a file', () => {
  it('reads the key from x-api-key and from a YAML keys file', async () => {
    const upstream = await startHttpEmulator();
    const dir = await mkdtemp(join(tmpdir(), 'slipstream-keys-'));
    const file = join(dir, 'keys.yaml');
    await writeFile(file, `- { name: carol, sha256: "${sha256(KEY_C)}" }\n`);
    const gw = await startGateway(`
auth: { apiKeys: { header: x-api-key, file: "${file}" } }
upstreams: { emu: { url: "${upstream.url}" } }
routes: [{ match: { prefix: / }, upstream: emu }]
`);
    try {
      expect((await call(`${gw.url}/x`, { headers: { 'x-api-key': KEY_C } })).status).toBe(200);
      expect((await call(`${gw.url}/x`, { headers: bearer(KEY_C) })).status).toBe(401);
    } finally {
      await gw.close();
      await upstream.close();
    }
  });
});

describe('rate limits', () => {
  let upstream: RunningEmulator;
  let gw: RunningGateway;
  beforeAll(async () => {
    upstream = await startHttpEmulator();
    gw = await startGateway(
      `
auth:
  apiKeys:
    keys:
      - { name: alice, key: "${KEY_A}" }
      - { name: bob, key: "${KEY_B}", limits: { requests: { rate: 100, burst: 100 } } }
rateLimits:
  perPrincipal: { rate: 0.01, burst: 3 }
upstreams: { emu: { url: "${upstream.url}" } }
routes:
  - { name: api, match: { prefix: /api }, upstream: emu }
  - { name: tight, match: { prefix: /tight }, upstream: emu, rateLimit: { perIp: { rate: 0.01, burst: 1 } } }
`,
    );
  });
  afterAll(async () => {
    await gw?.close();
    await upstream?.close();
  });

  it("answers 429 with Retry-After and RateLimit-* once a principal's bucket is empty, other principals unaffected", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await call(`${gw.url}/api/x`, { headers: bearer(KEY_A) })).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await call(`${gw.url}/api/x`, { headers: bearer(KEY_A) });
    expect([refused.status, refused.body.error.code]).toEqual([429, 'GW_RATE_LIMITED']);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.headers['ratelimit-limit']).toBe('3');
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    // Bob's key carries its own, larger limit.
    for (let i = 0; i < 10; i++)
      expect((await call(`${gw.url}/api/x`, { headers: bearer(KEY_B) })).status).toBe(200);
  });

  it("applies a route's own rateLimit from its stack", async () => {
    expect((await call(`${gw.url}/tight/x`, { headers: bearer(KEY_B) })).status).toBe(200);
    const second = await call(`${gw.url}/tight/x`, { headers: bearer(KEY_B) });
    expect([second.status, second.body.error.code]).toEqual([429, 'GW_RATE_LIMITED']);
    const metrics = (await call(`${gw.adminUrl}/metrics`)).body as string;
    expect(metrics).toMatch(/slipstream_rate_limited_total\{route="tight",scope="ip"\} 1/);
  });
});

describe("an API key's LLM token limits", () => {
  it('refuses LLM calls with 429 once the usage replies reported has spent the tokens per minute', async () => {
    const llm = await startLlmEmulator({ tokens: 4 });
    const gw = await startGateway(`
auth:
  apiKeys:
    keys:
      - { name: small, key: "${KEY_A}", limits: { tokensPerMinute: 6 } }
      - { name: big, key: "${KEY_B}" }
upstreams: {}
llm:
  providers:
    emu: { baseUrl: "${llm.url}/v1", models: { fast: emu-small } }
`);
    const chat = (key: string) =>
      call(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { ...bearer(key), 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'one two three' }] }),
      });
    try {
      const first = await chat(KEY_A);
      expect(first.status).toBe(200);
      const used = first.body.usage.prompt_tokens + first.body.usage.completion_tokens;
      expect(used).toBeGreaterThanOrEqual(6); // one reply spends the whole minute's budget
      // The usage is spent as the reply ends, a moment after the client has it.
      await expect.poll(async () => (await chat(KEY_A)).status, { timeout: 10_000 }).toBe(429);
      const refused = await chat(KEY_A);
      expect([refused.status, refused.body.error.code]).toEqual([429, 'GW_RATE_LIMITED']);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      // Another key, without limits, is not affected.
      expect((await chat(KEY_B)).status).toBe(200);
    } finally {
      await gw.close();
      await llm.close();
    }
  });
});

const redisUp = await serviceAvailable('Redis', REDIS_URL);

describe.skipIf(!redisUp)('rate limits across gateway processes on Redis', () => {
  it('holds one limit over two gateways, and falls back to per-process limits when Redis stops', async () => {
    const redis = await startPrivateRedis();
    const upstream = await startHttpEmulator();
    const dir = await mkdtemp(join(tmpdir(), 'slipstream-rl-'));
    const start = async (name: string) => {
      const file = join(dir, `${name}.yaml`);
      await writeFile(
        file,
        `server: { listen: "127.0.0.1:0" }
admin: { listen: "127.0.0.1:0" }
telemetry: { log: { level: warn } }
cache: { store: tiered, redis: { url: "${redis.url}", keyPrefix: "rl-test:" } }
auth: { apiKeys: { keys: [{ name: alice, key: "${KEY_A}" }] } }
rateLimits: { perPrincipal: { rate: 0.01, burst: 4 } }
upstreams: { emu: { url: "${upstream.url}" } }
routes: [{ match: { prefix: / }, upstream: emu }]
`,
      );
      return spawnCli(['serve', '-c', file]);
    };
    try {
      const [a, b] = await Promise.all([start('a'), start('b')]);
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        statuses.push((await call(`${(i % 2 === 0 ? a : b).url}/x`, { headers: bearer(KEY_A) })).status);
      }
      // One bucket of 4 for both processes: the first four pass, wherever they land.
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429, 429, 429]);
      await redis.kill();
      // Redis is gone: each process limits on its own (a fresh bucket of 4), and nothing fails with 5xx.
      const after: number[] = [];
      for (let i = 0; i < 6; i++) after.push((await call(`${a.url}/x`, { headers: bearer(KEY_A) })).status);
      expect(after).toEqual([200, 200, 200, 200, 429, 429]);
      const metrics = (await call(`${String(a.listening.adminUrl)}/metrics`)).body as string;
      expect(metrics).toMatch(/^slipstream_rate_limit_shared 0$/m);
    } finally {
      await stopAll();
      await redis.kill();
      await upstream.close();
    }
  }, 60_000);
});

describe('secure defaults', () => {
  it('refuses a data plane bound beyond loopback without auth, at the listen key', () => {
    const yaml = 'server: { listen: "0.0.0.0:8080" }\nupstreams: { a: { url: "http://127.0.0.1:1" } }\n';
    try {
      parseConfig(yaml, 'slipstream.yaml', {});
      expect.unreachable();
    } catch (error) {
      expect(
        (error as ConfigError).problems.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`),
      ).toEqual([
        '1:19 server.listen: the data plane is bound beyond loopback without auth: configure auth (apiKeys, jwt or trust: header)',
      ]);
    }
    expect(() =>
      parseConfig(
        `${yaml}auth: { apiKeys: { keys: [{ name: a, key: "${KEY_A}" }] } }\n`,
        'slipstream.yaml',
        {},
      ),
    ).not.toThrow();
  });
});
