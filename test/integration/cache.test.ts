import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { REDIS_URL, serviceAvailable } from '../helpers/services.js';

const redisUp = await serviceAvailable('Redis', REDIS_URL);
/**
 * The same behaviour, whichever store holds the entries: in-process memory, or memory in front of real Redis.
 * Without Redis (outside CI) the tiered variant's tests are reported as skipped, never silently left out.
 */
const STORES = [
  { name: 'memory', yaml: '', available: true },
  {
    name: 'tiered (memory + Redis)',
    yaml: `cache: { store: tiered, redis: { url: "${REDIS_URL}", keyPrefix: "slipstream-test:${randomBytes(6).toString('hex')}:" } }\n`,
    available: redisUp,
  },
];

describe.each(STORES)('caching and coalescing through the gateway, $name store', (store) => {
  let upstream: CliProcess;
  let doomed: CliProcess;
  let gw: RunningGateway;

  beforeAll(async () => {
    if (!store.available) return;
    upstream = await spawnCli(['emulate', 'http', '--latency', '50ms']);
    doomed = await spawnCli(['emulate', 'http']);
    gw = await startGateway(`${store.yaml}
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams:
  emu: { url: ${upstream.url} }
  doomed: { url: ${doomed.url}, timeouts: { connect: 500ms } }
routes:
  - name: swr
    match: { prefix: /swr }
    upstream: emu
    cache: { ttl: 300ms, staleWhileRevalidate: 30s, scope: shared }
  - name: sie
    match: { prefix: /sie }
    upstream: doomed
    retry: { attempts: 1 }
    cache: { ttl: 200ms, staleIfError: 30s, scope: shared }
  - name: quotes
    match: { prefix: /quote }
    upstream: emu
    cache: { ttl: 400ms, scope: shared }
  - name: stable
    match: { prefix: /stable }
    upstream: emu
    cache: { ttl: 60s, scope: shared }
  - name: private
    match: { prefix: /me }
    upstream: emu
    cache: { ttl: 10s }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await stopAll();
  });
  beforeEach(async ({ skip }) => {
    if (!store.available) skip();
    await call(`${upstream.url}/__emulator/reset`, { method: 'POST' });
  });

  it('serves repeats from cache until the TTL passes', async () => {
    const first = await call(`${gw.url}/quote/AAPL`);
    expect(first.headers['x-slipstream-cache']).toBe('miss');
    const second = await call(`${gw.url}/quote/AAPL`);
    expect(second.headers['x-slipstream-cache']).toBe('hit');
    expect(second.body.n).toBe(first.body.n);
    expect(second.headers.age).toBe('0');
    await new Promise((resolve) => setTimeout(resolve, 450));
    expect((await call(`${gw.url}/quote/AAPL`)).headers['x-slipstream-cache']).toBe('miss');
    expect((await emulatorStats(upstream.url)).requests).toBe(2);
  });

  // A long TTL: on a loaded machine the 1,000 requests may take longer than a short TTL to arrive.
  it('turns 1,000 concurrent identical misses into exactly one upstream call', async () => {
    const pool = new Pool(gw.url, { connections: 50 });
    const bodies = await Promise.all(
      Array.from({ length: 1000 }, async () => {
        const response = await pool.request({ path: '/stable/MSFT', method: 'GET' });
        return (await response.body.json()) as { n: number };
      }),
    );
    await pool.close();
    expect(new Set(bodies.map((b) => b.n)).size).toBe(1);
    expect((await emulatorStats(upstream.url)).requests).toBe(1);
    const metrics = await call(`${gw.adminUrl}/metrics`);
    expect(metrics.body).toMatch(/slipstream_coalesced_waiters_total\{route="stable"\} \d{2,}/);
  });

  it('serves stale while exactly one background refresh runs, for 100 concurrent readers', async () => {
    const first = await call(`${gw.url}/swr/report`);
    await new Promise((resolve) => setTimeout(resolve, 350)); // past the TTL, inside stale-while-revalidate
    // The refresh takes 1 s upstream, so every reader arrives while it runs, however loaded the machine.
    const slow = { 'x-emulate-latency': '1s' };
    const readers = await Promise.all(
      Array.from({ length: 100 }, () => call(`${gw.url}/swr/report`, { headers: slow })),
    );
    expect(readers.every((r) => r.status === 200 && r.headers['x-slipstream-cache'] === 'stale')).toBe(true);
    expect(readers.every((r) => r.body.n === first.body.n)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1_300)); // the refresh lands
    expect((await emulatorStats(upstream.url)).requests).toBe(2);
    const refreshed = await call(`${gw.url}/swr/report`);
    expect(refreshed.body.n).toBe(2); // the refreshed entry (it may be stale again by now: 300 ms TTL)
    expect((await emulatorStats(upstream.url)).requests).toBeLessThanOrEqual(3);
  });

  it('serves the stale entry when the upstream has died, within stale-if-error', async () => {
    const first = await call(`${gw.url}/sie/orders`);
    expect(first.status).toBe(200);
    await doomed.stop('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 250)); // past the TTL
    const stale = await call(`${gw.url}/sie/orders`);
    expect([stale.status, stale.headers['x-slipstream-cache'], stale.body.n]).toEqual([
      200,
      'stale',
      first.body.n,
    ]);
    const uncached = await call(`${gw.url}/sie/never-cached`);
    expect([uncached.status, uncached.body.error.code]).toEqual([502, 'GW_UPSTREAM_UNAVAILABLE']);
  });

  it("keeps each caller's entries apart on principal-scoped routes", async () => {
    const alice = await call(`${gw.url}/me/orders`, { headers: { authorization: 'Bearer alice' } });
    const bob = await call(`${gw.url}/me/orders`, { headers: { authorization: 'Bearer bob' } });
    expect(bob.headers['x-slipstream-cache']).toBe('miss');
    expect(bob.body.n).not.toBe(alice.body.n);
    const aliceAgain = await call(`${gw.url}/me/orders`, { headers: { authorization: 'Bearer alice' } });
    expect(aliceAgain.headers['x-slipstream-cache']).toBe('hit');
    expect(aliceAgain.body.n).toBe(alice.body.n);
  });

  it('never caches a response that sets a cookie or says no-store', async () => {
    const cases: Array<Record<string, string>> = [
      { 'x-emulate-set-cookie': 'sid=1' },
      { 'x-emulate-cache-control': 'no-store' },
    ];
    for (const headers of cases) {
      await call(`${gw.url}/quote/COOKIE`, { headers });
      const again = await call(`${gw.url}/quote/COOKIE`, { headers });
      expect(again.headers['x-slipstream-cache']).toBe('miss');
    }
  });

  it("purges a route's entries through the admin endpoint, and rejects a malformed purge", async () => {
    await call(`${gw.url}/quote/PURGE`);
    expect((await call(`${gw.url}/quote/PURGE`)).headers['x-slipstream-cache']).toBe('hit');
    const purge = (body: string) =>
      call(`${gw.adminUrl}/admin/cache/purge`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
    const purged = await purge('{"route":"quotes"}');
    expect(purged.status).toBe(200);
    expect(purged.body.purged).toBeGreaterThanOrEqual(1);
    expect((await call(`${gw.url}/quote/PURGE`)).headers['x-slipstream-cache']).toBe('miss');
    const bad = await purge('{"nothing":1}');
    expect([bad.status, bad.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
    const broken = await purge('{not json');
    expect([broken.status, broken.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);
  });
});

/** A request's headers asking the emulator for these reply headers (`x-emulate-reply-<name>`). */
const reply = (headers: Record<string, string>) =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [`x-emulate-reply-${name}`, value]));
const cc = (value: string) => ({ 'x-emulate-cache-control': value });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(STORES)('RFC 9111 caching through the gateway, $name store', (store) => {
  let upstream: CliProcess;
  let gw: RunningGateway;
  const get = (path: string, headers: Record<string, string> = {}) => call(`${gw.url}${path}`, { headers });
  const requests = async () => (await emulatorStats(upstream.url)).requests;

  beforeAll(async () => {
    upstream = await spawnCli(['emulate', 'http', '--latency', '5ms']);
    gw = await startGateway(`${store.yaml}
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
server: { listen: "127.0.0.1:0", principalHeader: x-api-key }
upstreams:
  emu: { url: ${upstream.url} }
routes:
  - name: shared
    match: { prefix: /shared }
    upstream: emu
    cache: { ttl: 30s, scope: shared }
  - name: short
    match: { prefix: /short }
    upstream: emu
    cache: { ttl: 1s, scope: shared }
  - name: lenient
    match: { prefix: /lenient }
    upstream: emu
    retry: { attempts: 1 }
    cache: { ttl: 30s, staleWhileRevalidate: 30s, staleIfError: 30s, scope: shared }
  - name: items
    match: { prefix: /items }
    upstream: emu
    retry: { attempts: 1 }
    cache: { ttl: 30s, scope: shared }
  - name: mine
    match: { prefix: /mine }
    upstream: emu
    cache: { ttl: 30s }
  - name: by-cookie
    match: { prefix: /by-cookie }
    upstream: emu
    cache: { ttl: 30s, key: { headers: [cookie] } }
`);
  });
  afterAll(async () => {
    await gw?.close();
    await stopAll();
  });
  beforeEach(() => call(`${upstream.url}/__emulator/reset`, { method: 'POST' }));

  describe('Vary (§4.1)', () => {
    it('keeps one variant per Accept-Language, normalising case and whitespace, and serves each its own', async () => {
      const vary = reply({ vary: 'Accept-Language' });
      const fr = await get('/shared/lang?echo=headers', { ...vary, 'accept-language': 'fr, en;q=0.5' });
      const en = await get('/shared/lang?echo=headers', { ...vary, 'accept-language': 'en' });
      expect(en.headers['x-slipstream-cache']).toBe('miss');
      expect(en.body.headers['accept-language']).toBe('en');
      const frAgain = await get('/shared/lang?echo=headers', { ...vary, 'accept-language': 'FR,EN; q=0.5' });
      expect([frAgain.headers['x-slipstream-cache'], frAgain.body.n]).toEqual(['hit', fr.body.n]);
      const enAgain = await get('/shared/lang?echo=headers', { ...vary, 'accept-language': 'en' });
      expect([enAgain.headers['x-slipstream-cache'], enAgain.body.n]).toEqual(['hit', en.body.n]);
      const none = await get('/shared/lang?echo=headers', vary);
      expect(none.headers['x-slipstream-cache']).toBe('miss'); // an absent header is its own variant
      expect(await requests()).toBe(3);
    });

    it('never serves a gzip body to a client that did not accept gzip', async () => {
      const gzip = await get('/shared/encoded', { 'x-emulate-gzip': '1', 'accept-encoding': 'gzip' });
      expect(gzip.headers['content-encoding']).toBe('gzip');
      const plain = await get('/shared/encoded', { 'x-emulate-gzip': '1' });
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(plain.body.ok).toBe(true);
      const gzipAgain = await get('/shared/encoded', { 'x-emulate-gzip': '1', 'accept-encoding': 'gzip' });
      expect([gzipAgain.headers['x-slipstream-cache'], gzipAgain.headers['content-encoding']]).toEqual([
        'hit',
        'gzip',
      ]);
    });

    it('does not coalesce concurrent misses for different variants into one reply', async () => {
      const slow = { ...reply({ vary: 'Accept-Language' }), 'x-emulate-latency': '300ms' };
      const languages = ['de', 'ja', 'es', 'de', 'ja', 'es'];
      const replies = await Promise.all(
        languages.map((language) =>
          get('/shared/coalesced-lang?echo=headers', { ...slow, 'accept-language': language }),
        ),
      );
      expect(replies.map((r) => r.body.headers['accept-language'])).toEqual(languages);
      const again = await Promise.all(
        ['de', 'ja', 'es'].map((l) =>
          get('/shared/coalesced-lang?echo=headers', { ...slow, 'accept-language': l }),
        ),
      );
      expect(again.map((r) => [r.headers['x-slipstream-cache'], r.body.headers['accept-language']])).toEqual([
        ['hit', 'de'],
        ['hit', 'ja'],
        ['hit', 'es'],
      ]);
    });

    it('never stores a response whose Vary holds * anywhere, on any line', async () => {
      for (const [i, vary] of ['*', '*, Accept', 'Accept, *', '["Accept", "*"]'].entries()) {
        await get(`/shared/vary-star-${i}`, reply({ vary }));
        const again = await get(`/shared/vary-star-${i}`, reply({ vary }));
        expect([vary, again.headers['x-slipstream-cache']]).toEqual([vary, 'miss']);
      }
    });
  });

  describe('freshness (§4.2)', () => {
    it('counts the upstream Age: a reply already older than its max-age is not served as fresh', async () => {
      await get('/shared/aged', { ...cc('max-age=60'), ...reply({ age: '120' }) });
      expect(
        (await get('/shared/aged', { ...cc('max-age=60'), ...reply({ age: '120' }) })).headers[
          'x-slipstream-cache'
        ],
      ).toBe('miss');
    });

    it('serves hits with an Age that starts at the upstream Age and never goes back', async () => {
      const first = await get('/shared/old', { ...cc('max-age=600'), ...reply({ age: '120' }) });
      expect(first.headers.age).toBe('120');
      const hit = await get('/shared/old');
      expect(hit.headers['x-slipstream-cache']).toBe('hit');
      expect(Number(hit.headers.age)).toBeGreaterThanOrEqual(120);
    });

    it('never serves from cache a reply whose Expires is invalid or past or whose max-age is invalid, whatever the route ttl', async () => {
      const cases: Array<Record<string, string>> = [
        reply({ expires: '0' }),
        reply({ expires: 'Thu, 01 Jan 2015 00:00:00 GMT' }),
        reply({ pragma: 'no-cache', expires: 'Thu, 01 Jan 1970 00:00:00 GMT' }),
        cc('max-age=-1'),
        cc('max-age="3600"'),
        cc('max-age=0'),
        cc('no-cache'),
      ];
      for (const [i, headers] of cases.entries()) {
        await get(`/shared/expired-${i}`, headers);
        const again = await get(`/shared/expired-${i}`, headers);
        expect([i, again.headers['x-slipstream-cache']]).toEqual([i, 'miss']);
      }
      expect(await requests()).toBe(2 * cases.length);
    });

    it('uses the route ttl only as heuristic freshness: a future Expires outlives it', async () => {
      const expires = reply({ expires: new Date(Date.now() + 3_600_000).toUTCString() });
      await get('/short/expires', expires);
      await get('/short/heuristic');
      await sleep(1_200); // past the route ttl (1 s)
      expect((await get('/short/expires')).headers['x-slipstream-cache']).toBe('hit');
      expect((await get('/short/heuristic')).headers['x-slipstream-cache']).toBe('miss');
    });
  });

  describe('serving stale (§4.2.4, RFC 5861)', () => {
    it('passes a 503 instead of a stale entry that says must-revalidate, proxy-revalidate or s-maxage, whatever the route allows', async () => {
      const directives = ['max-age=1, must-revalidate', 'max-age=1, proxy-revalidate', 's-maxage=1'];
      for (const [i, value] of directives.entries()) await get(`/lenient/strict-${i}`, cc(value));
      await get('/lenient/loose', cc('max-age=1'));
      await sleep(1_300);
      for (const [i, value] of directives.entries()) {
        const failed = await get(`/lenient/strict-${i}`, { 'x-emulate-status': '503' });
        expect([value, failed.status]).toEqual([value, 503]);
      }
      // The control: without those directives the route's staleIfError serves the old 200.
      const loose = await get('/lenient/loose', { 'x-emulate-status': '503' });
      expect([loose.status, loose.headers['x-slipstream-cache']]).toEqual([200, 'stale']);
    });

    it("honours the response's own stale-while-revalidate and stale-if-error over the route's", async () => {
      await get('/lenient/short-swr', cc('max-age=1, stale-while-revalidate=1'));
      await get('/short/long-swr', cc('max-age=1, stale-while-revalidate=60'));
      await get('/short/long-sie', cc('max-age=1, stale-if-error=60'));
      await sleep(2_300);
      expect((await get('/lenient/short-swr')).headers['x-slipstream-cache']).toBe('miss');
      expect((await get('/short/long-swr')).headers['x-slipstream-cache']).toBe('stale');
      const failed = await get('/short/long-sie', { 'x-emulate-status': '503' });
      expect([failed.status, failed.headers['x-slipstream-cache']]).toEqual([200, 'stale']);
    });
  });

  describe('validation (§4.3)', () => {
    it('revalidates a stale entry with If-None-Match, refreshing it and its headers from the 304', async () => {
      const v1 = { ...cc('max-age=1'), ...reply({ etag: '"v1"', 'x-version': '1' }) };
      const first = await get('/shared/etag', v1);
      await sleep(1_200);
      const revalidated = await get('/shared/etag', { ...v1, ...reply({ etag: '"v1"', 'x-version': '2' }) });
      expect(revalidated.status).toBe(200);
      expect(revalidated.headers['x-slipstream-cache']).toBe('revalidated');
      expect(revalidated.body.n).toBe(first.body.n);
      expect(revalidated.headers['x-version']).toBe('2');
      expect(await emulatorStats(upstream.url)).toMatchObject({ conditional: 1, notModified: 1 });
      const hit = await get('/shared/etag');
      expect([hit.headers['x-slipstream-cache'], hit.headers['x-version']]).toEqual(['hit', '2']);
    });

    it('revalidates with If-Modified-Since, and stores the new body when the upstream changed', async () => {
      const modified = { ...cc('max-age=1'), ...reply({ 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' }) };
      await get('/shared/modified', modified);
      await sleep(1_200);
      const changed = { ...cc('max-age=60'), ...reply({ 'last-modified': 'Tue, 02 Jan 2024 00:00:00 GMT' }) };
      const fresh = await get('/shared/modified', changed);
      expect([fresh.status, fresh.headers['x-slipstream-cache']]).toEqual([200, 'miss']);
      expect(await emulatorStats(upstream.url)).toMatchObject({ conditional: 1, notModified: 0 });
      expect((await get('/shared/modified')).body.n).toBe(fresh.body.n);
    });

    it("answers a client's matching If-None-Match or If-Modified-Since with 304 from the cache", async () => {
      const validators = {
        ...cc('max-age=60'),
        ...reply({ etag: 'W/"abc"', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' }),
      };
      await get('/shared/client-etag', validators);
      const byTag = await get('/shared/client-etag', { 'if-none-match': '"x", W/"abc"' });
      expect([byTag.status, byTag.body, byTag.headers.etag]).toEqual([304, '', 'W/"abc"']);
      const byDate = await get('/shared/client-etag', {
        'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT',
      });
      expect(byDate.status).toBe(304);
      const other = await get('/shared/client-etag', { 'if-none-match': '"other"' });
      expect([other.status, other.headers['x-slipstream-cache']]).toEqual([200, 'hit']);
      expect(await requests()).toBe(1);
    });

    it("fills the cache with a full response when a client's own conditional request misses", async () => {
      const validators = { ...cc('max-age=60'), ...reply({ etag: '"v9"' }) };
      const conditional = await get('/shared/cond-miss', { ...validators, 'if-none-match': '"v9"' });
      expect(conditional.status).toBe(304);
      const full = await get('/shared/cond-miss');
      expect([full.status, full.headers['x-slipstream-cache'], full.body.ok]).toEqual([200, 'hit', true]);
      expect(await requests()).toBe(1);
    });
  });

  describe('request directives (§5.2.1)', () => {
    it('goes upstream for max-age=0 and for a min-fresh the entry cannot meet', async () => {
      await get('/shared/directives', cc('max-age=60'));
      expect(
        (await get('/shared/directives', { 'cache-control': 'max-age=0' })).headers['x-slipstream-cache'],
      ).toBe('miss');
      expect(
        (await get('/shared/directives', { 'cache-control': 'min-fresh=3600' })).headers[
          'x-slipstream-cache'
        ],
      ).toBe('miss');
      expect(
        (await get('/shared/directives', { 'cache-control': 'max-age=600, min-fresh=10' })).headers[
          'x-slipstream-cache'
        ],
      ).toBe('hit');
    });

    it('serves a stale entry to a client that accepts it with max-stale', async () => {
      await get('/short/max-stale', cc('max-age=1'));
      await sleep(1_200);
      const stale = await get('/short/max-stale', { 'cache-control': 'max-stale=60' });
      expect(stale.headers['x-slipstream-cache']).toBe('stale');
      expect(await requests()).toBe(1);
    });

    it('answers only-if-cached from the cache, or 504 when nothing usable is stored', async () => {
      const none = await get('/shared/only-cached', { 'cache-control': 'only-if-cached' });
      expect([none.status, none.body.error?.code]).toEqual([504, 'GW_NOT_CACHED']);
      expect(await requests()).toBe(0);
      await get('/shared/only-cached');
      const hit = await get('/shared/only-cached', { 'cache-control': 'only-if-cached' });
      expect([hit.status, hit.headers['x-slipstream-cache']]).toEqual([200, 'hit']);
    });

    it('revalidates a stored entry conditionally when the client sends no-cache', async () => {
      const validators = { ...cc('max-age=60'), ...reply({ etag: '"nc"' }) };
      await get('/shared/no-cache', validators);
      const forced = await get('/shared/no-cache', { ...validators, 'cache-control': 'no-cache' });
      expect([forced.status, forced.headers['x-slipstream-cache']]).toEqual([200, 'revalidated']);
      expect(await emulatorStats(upstream.url)).toMatchObject({ requests: 2, notModified: 1 });
    });
  });

  describe('invalidation after writes (§4.4)', () => {
    it.each(['POST', 'PUT', 'DELETE', 'PATCH'])(
      'drops the cached GET and HEAD of a URI after a successful %s to it',
      async (method) => {
        const path = `/items/${method.toLowerCase()}`;
        const before = await get(`${path}?page=1`);
        await call(`${gw.url}${path}`, { method: 'HEAD' });
        expect((await get(`${path}?page=1`)).headers['x-slipstream-cache']).toBe('hit');
        const write = await call(`${gw.url}${path}`, {
          method,
          body: '{}',
          headers: { 'content-type': 'application/json' },
        });
        expect(write.status).toBe(200);
        const after = await get(`${path}?page=1`);
        expect(after.headers['x-slipstream-cache']).toBe('miss');
        expect(after.body.n).not.toBe(before.body.n);
        expect((await call(`${gw.url}${path}`, { method: 'HEAD' })).headers['x-slipstream-cache']).toBe(
          'miss',
        );
      },
    );

    it('keeps the cached GET after a failed write', async () => {
      await get('/items/failed');
      const write = await call(`${gw.url}/items/failed`, {
        method: 'POST',
        headers: { 'x-emulate-status': '500' },
      });
      expect(write.status).toBe(500);
      expect((await get('/items/failed')).headers['x-slipstream-cache']).toBe('hit');
    });

    it('drops the same-origin Location and Content-Location of a write, but not another origin', async () => {
      await get('/items/7');
      await get('/items/8');
      await get('/items/9');
      await call(`${gw.url}/items`, {
        method: 'POST',
        headers: reply({ location: '/items/7', 'content-location': `${upstream.url}/items/8` }),
      });
      await call(`${gw.url}/items`, {
        method: 'POST',
        headers: reply({ location: 'http://elsewhere.example/items/9' }),
      });
      expect((await get('/items/7')).headers['x-slipstream-cache']).toBe('miss');
      expect((await get('/items/8')).headers['x-slipstream-cache']).toBe('miss');
      expect((await get('/items/9')).headers['x-slipstream-cache']).toBe('hit');
    });

    it("drops every caller's entry for the URI on a principal-scoped route", async () => {
      await get('/mine/doc', { 'x-api-key': 'alice' });
      await get('/mine/doc', { 'x-api-key': 'bob' });
      expect((await get('/mine/doc', { 'x-api-key': 'bob' })).headers['x-slipstream-cache']).toBe('hit');
      await call(`${gw.url}/mine/doc`, { method: 'PUT', headers: { 'x-api-key': 'alice' }, body: '{}' });
      expect((await get('/mine/doc', { 'x-api-key': 'bob' })).headers['x-slipstream-cache']).toBe('miss');
    });
  });

  describe('who may reuse a response (§3.5, credentials without a principal)', () => {
    it('never reuses a reply to a request with Authorization on a shared route, unless it says public', async () => {
      const alice = await get('/shared/authz', { authorization: 'Bearer alice' });
      const bob = await get('/shared/authz', { authorization: 'Bearer bob' });
      expect(bob.headers['x-slipstream-cache']).toBe('miss');
      expect(bob.body.n).not.toBe(alice.body.n);
      expect((await get('/shared/authz')).headers['x-slipstream-cache']).toBe('miss');
      await get('/shared/authz-public', { ...cc('public, max-age=60'), authorization: 'Bearer alice' });
      expect(
        (await get('/shared/authz-public', { authorization: 'Bearer bob' })).headers['x-slipstream-cache'],
      ).toBe('hit');
    });

    it('bypasses a principal-scoped cache for an anonymous request carrying a cookie or Authorization', async () => {
      for (const [name, a, b] of [
        ['cookie', 'sid=alice', 'sid=bob'],
        ['authorization', 'Bearer alice', 'Bearer bob'],
      ] as const) {
        const first = await get(`/mine/${name}`, { [name]: a });
        const other = await get(`/mine/${name}`, { [name]: b });
        expect([name, first.headers['x-slipstream-cache'], other.headers['x-slipstream-cache']]).toEqual([
          name,
          'bypass',
          'bypass',
        ]);
        expect(other.body.n).not.toBe(first.body.n);
      }
      // A route that keys on the cookie caches per cookie.
      const alice = await get('/by-cookie/x', { cookie: 'sid=alice' });
      expect((await get('/by-cookie/x', { cookie: 'sid=alice' })).body.n).toBe(alice.body.n);
      expect((await get('/by-cookie/x', { cookie: 'sid=bob' })).headers['x-slipstream-cache']).toBe('miss');
    });

    it('never stores an anonymous private reply on a principal-scoped route', async () => {
      await get('/mine/private', cc('private, max-age=60'));
      expect((await get('/mine/private', cc('private, max-age=60'))).headers['x-slipstream-cache']).toBe(
        'miss',
      );
      await get('/mine/private', { ...cc('private, max-age=60'), 'x-api-key': 'alice' });
      expect((await get('/mine/private', { 'x-api-key': 'alice' })).headers['x-slipstream-cache']).toBe(
        'hit',
      );
    });
  });
});
