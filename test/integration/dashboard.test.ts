import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpEmulator } from '../../emulators/http-upstream.js';
import type { RunningEmulator } from '../../emulators/http-upstream.js';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { openFeed } from '../helpers/feed.js';
import type { OpenFeed } from '../helpers/feed.js';

const TOKEN = 'admin-token-0123456789';

/** A non-loopback IPv4 address of this machine, when it has one. */
function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
}

describe('the dashboard on an admin listener with a token', () => {
  let emulator: RunningEmulator;
  let gw: RunningGateway;
  const host = externalAddress();

  beforeAll(async () => {
    if (host === undefined) {
      process.stderr.write('\n!!! no non-loopback address here: the token path is tested on 127.0.0.1\n\n');
    }
    emulator = await startHttpEmulator();
    // Beyond loopback when this machine has an address there (admin.listen then requires admin.token).
    gw = await startGateway(`
admin: { listen: "${host ?? '127.0.0.1'}:0", token: "${TOKEN}", dashboard: { maxFeeds: 2 } }
upstreams:
  emu: { url: "${emulator.url}" }
routes:
  - { name: api, match: { prefix: /api }, upstream: emu }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await emulator?.close();
  });

  it('answers 401 to the page and its feed without the token, and to a wrong token', async () => {
    if (host !== undefined) expect(gw.adminUrl).toContain(host);
    for (const path of ['/dashboard', '/dashboard/events', '/dashboard?token=wrong-token-0123456789']) {
      const denied = await call(`${gw.adminUrl}${path}`);
      expect(denied.status, path).toBe(401);
      expect(denied.body.error.code).toBe('GW_UNAUTHORIZED');
    }
  });

  it('trades the token for a session cookie and a 303 to the page; the cookie opens the page and the feed, not /metrics', async () => {
    const signIn = await call(`${gw.adminUrl}/dashboard?token=${TOKEN}`);
    expect(signIn.status).toBe(303);
    expect(signIn.headers.location).toBe('/dashboard');
    const setCookie = String(signIn.headers['set-cookie']);
    expect(setCookie).toMatch(
      /^slipstream_dashboard=[^;]+; Path=\/dashboard; Max-Age=3600; HttpOnly; SameSite=Strict$/,
    );
    expect(setCookie).not.toContain(TOKEN);
    const cookie = setCookie.slice(0, setCookie.indexOf(';'));

    const page = await call(`${gw.adminUrl}/dashboard`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(String(page.body)).not.toContain(TOKEN);

    const feed = await openFeed(gw.adminUrl, { cookie });
    try {
      expect(feed.status).toBe(200);
      expect(feed.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect((await feed.next()).seq).toBe(1);
    } finally {
      feed.close();
    }
    expect((await call(`${gw.adminUrl}/metrics`, { headers: { cookie } })).status).toBe(401);
    const tampered = cookie.replace(/=(\d+)\./, (_m, s: string) => `=${Number(s) + 86_400}.`);
    expect((await call(`${gw.adminUrl}/dashboard`, { headers: { cookie: tampered } })).status).toBe(401);
  });

  it('opens the feed with the bearer token too, for scripts', async () => {
    const feed = await openFeed(gw.adminUrl, { authorization: `Bearer ${TOKEN}` });
    try {
      expect(feed.status).toBe(200);
      await feed.next();
    } finally {
      feed.close();
    }
  });

  it('refuses one feed more than admin.dashboard.maxFeeds with 503, and takes one again once a feed closes', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const open: OpenFeed[] = [await openFeed(gw.adminUrl, auth), await openFeed(gw.adminUrl, auth)];
    try {
      await Promise.all(open.map((feed) => feed.next()));
      const third = await openFeed(gw.adminUrl, auth);
      expect(third.status).toBe(503);
      await expect.poll(() => third.text()).toContain('GW_BULKHEAD_FULL');
      open.shift()!.close();
      await expect
        .poll(async () => {
          const again = await openFeed(gw.adminUrl, auth);
          again.close();
          return again.status;
        })
        .toBe(200);
    } finally {
      for (const feed of open) feed.close();
    }
  });

  it('sends route labels and counts, never a request’s path, headers or body', async () => {
    const feed = await openFeed(gw.adminUrl, { authorization: `Bearer ${TOKEN}` });
    try {
      await feed.next();
      const sent = await call(`${gw.url}/api/client-path-7f3a?q=client-query-7f3a`, {
        method: 'POST',
        headers: { authorization: 'Bearer client-secret-7f3a', 'content-type': 'text/plain' },
        body: 'client-body-7f3a',
      });
      expect(sent.status).toBe(200);
      const message = await feed.next((m) => (m.frame.routes.api?.requests ?? 0) >= 1);
      expect(message.frame.routes.api!.requests).toBe(1);
      expect(feed.text()).not.toMatch(/7f3a/);
    } finally {
      feed.close();
    }
  });
});

describe('the dashboard on a loopback admin listener without a token', () => {
  let gw: RunningGateway;
  let off: RunningGateway;

  beforeAll(async () => {
    gw = await startGateway('upstreams: {}\n');
    off = await startGateway(
      'admin: { listen: "127.0.0.1:0", dashboard: { enabled: false } }\nupstreams: {}\n',
    );
  });
  afterAll(async () => {
    await gw?.close();
    await off?.close();
  });

  it('serves one page that fetches nothing: every script and style inline and allowed by its hash alone', async () => {
    const page = await call(`${gw.adminUrl}/dashboard`);
    expect(page.status).toBe(200);
    const html = String(page.body);
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers['x-frame-options']).toBe('DENY');
    // Nothing to fetch: no src= at all, no href= but the empty data: icon.
    expect(html).not.toMatch(/\ssrc=/i);
    expect([...html.matchAll(/\shref="([^"]*)"/gi)].map((m) => m[1])).toEqual(['data:,']);
    expect(html).toContain('uPlot');
    const { createHash } = await import('node:crypto');
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
    expect(scripts).toHaveLength(2);
    for (const script of scripts) {
      expect(csp).toContain(`'sha256-${createHash('sha256').update(script).digest('base64')}'`);
    }
  });

  it('answers 403 to a host name that is not loopback (DNS rebinding), and 200 to a loopback one', async () => {
    const port = new URL(gw.adminUrl).port;
    const rebound = await call(`${gw.adminUrl}/dashboard`, { headers: { host: `attacker.example:${port}` } });
    expect(rebound.status).toBe(403);
    expect(rebound.body.error.code).toBe('GW_FORBIDDEN');
    expect(
      (await call(`${gw.adminUrl}/dashboard/events`, { headers: { host: 'attacker.example' } })).status,
    ).toBe(403);
    expect((await call(`${gw.adminUrl}/dashboard`, { headers: { host: `localhost:${port}` } })).status).toBe(
      200,
    );
  });

  it('is not served when admin.dashboard.enabled is false', async () => {
    expect((await call(`${off.adminUrl}/dashboard`)).status).toBe(404);
    expect((await call(`${off.adminUrl}/metrics`)).status).toBe(200);
  });
});
