import { afterAll, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { call, startGateway } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';

afterAll(() => stopAll());

const CLIENT = ['--oauth-client-id', 'app', '--oauth-client-secret', 's3cret-value'];

function config(upstreamUrl: string, extra = ''): string {
  return `
upstreams:
  biz:
    url: ${upstreamUrl}
    auth:
      type: oauth2
      tokenUrl: ${upstreamUrl}/oauth/token
      clientId: app
      clientSecret: \${CLIENT_SECRET}
      ${extra}
routes:
  - match: { prefix: / }
    upstream: biz
    idempotent: true
`;
}

describe('OAuth2 client credentials in front of a protected upstream', () => {
  it('fetches one token for 1,000 requests', async () => {
    const upstream = await spawnCli(['emulate', 'http', ...CLIENT, '--token-ttl', '3600']);
    const gw = await startGateway(config(upstream.url), { CLIENT_SECRET: 's3cret-value' });
    try {
      const pool = new Pool(gw.url, { connections: 8 });
      const statuses = await Promise.all(
        Array.from({ length: 1000 }, async (_, i) => {
          const response = await pool.request({ path: `/invoice/${i}`, method: 'GET' });
          await response.body.dump();
          return response.statusCode;
        }),
      );
      await pool.close();
      expect(statuses.every((s) => s === 200)).toBe(true);
      const stats = await emulatorStats(upstream.url);
      expect(stats.tokensIssued).toBe(1);
      expect(stats.unauthorized).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('refreshes before expiry in the background, without making callers wait on the token endpoint', async () => {
    // Tokens live 4 s and the token endpoint takes 1.5 s; refresh starts 2.5 s before expiry. A caller that
    // waited for a token would take at least the token endpoint's 1.5 s, whatever the machine's load.
    const upstream = await spawnCli([
      'emulate',
      'http',
      ...CLIENT,
      '--token-ttl',
      '4',
      '--token-latency',
      '1500ms',
    ]);
    const gw = await startGateway(config(upstream.url, 'refreshBefore: 2500ms'), {
      CLIENT_SECRET: 's3cret-value',
    });
    try {
      expect((await call(`${gw.url}/warm`)).status).toBe(200); // the first token (warm-up fetched it)
      const latencies: number[] = [];
      const until = performance.now() + 4_000;
      while (performance.now() < until) {
        const started = performance.now();
        const response = await call(`${gw.url}/x`);
        latencies.push(performance.now() - started);
        expect(response.status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const stats = await emulatorStats(upstream.url);
      expect(stats.tokensIssued).toBeGreaterThanOrEqual(2); // refreshed at least once within 4 s
      expect(stats.unauthorized).toBe(0); // never used an expired token
      // No caller ever waited for the 1.5 s token request.
      expect(Math.max(...latencies)).toBeLessThan(1_500);
    } finally {
      await gw.close();
    }
  });

  it('renews the token and replays the request once when the upstream answers 401', async () => {
    const upstream = await spawnCli(['emulate', 'http', ...CLIENT, '--token-ttl', '3600']);
    const gw = await startGateway(config(upstream.url), { CLIENT_SECRET: 's3cret-value' });
    try {
      expect((await call(`${gw.url}/a`)).status).toBe(200);
      await call(`${upstream.url}/__emulator/revoke`, { method: 'POST' });
      const after = await call(`${gw.url}/b`);
      expect(after.status).toBe(200);
      const stats = await emulatorStats(upstream.url);
      expect(stats.tokensIssued).toBe(2);
      expect(stats.unauthorized).toBe(1);
    } finally {
      await gw.close();
    }
  });

  it('reports a token endpoint that rejects the client as 502 GW_UPSTREAM_AUTH_FAILED without leaking the secret', async () => {
    const upstream = await spawnCli(['emulate', 'http', ...CLIENT]);
    const gw = await startGateway(config(upstream.url), { CLIENT_SECRET: 'wrong-secret' });
    try {
      const response = await call(`${gw.url}/x`);
      expect(response.status).toBe(502);
      expect(response.body.error.code).toBe('GW_UPSTREAM_AUTH_FAILED');
      expect(response.body.error.message).toContain('token endpoint answered 401');
      expect(JSON.stringify(response.body)).not.toContain('wrong-secret');
    } finally {
      await gw.close();
    }
  });
});
