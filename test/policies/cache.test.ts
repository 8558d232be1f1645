import { describe, expect, it } from 'vitest';
import { memoryCache } from '../../src/cache/memory.js';
import type { CacheEntry } from '../../src/cache/store.js';
import { GatewayError } from '../../src/errors.js';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { cache } from '../../src/policies/cache.js';
import type { CachePolicyOptions } from '../../src/policies/cache.js';
import { coalesce } from '../../src/policies/coalesce.js';
import { refresher } from '../../src/cache/refresher.js';
import { events } from '../../src/telemetry/events.js';
import type { CacheRefreshEvent } from '../../src/telemetry/events.js';
import { makeCall } from '../helpers/calls.js';

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

/** An upstream that counts calls and answers `n` (the call number) unless told otherwise. */
function upstream() {
  let calls = 0;
  let behaviour: (n: number) => Promise<Reply> = async (n) => ({
    status: 200,
    headers: {},
    body: Buffer.from(String(n)),
  });
  return {
    calls: () => calls,
    set: (b: typeof behaviour) => (behaviour = b),
    handler: async (_call: Call) => behaviour(++calls),
  };
}

function policy(time: ReturnType<typeof clock>, overrides: Partial<CachePolicyOptions> = {}) {
  return cache({
    route: 'r',
    store: memoryCache({ now: time.now }),
    key: { query: '*', headers: [], body: '*', scope: 'principal' },
    ttlMs: 1_000,
    staleWhileRevalidateMs: 0,
    staleIfErrorMs: 0,
    maxEntryBytes: 1024,
    methods: new Set(['GET', 'HEAD']),
    respectCacheControl: true,
    refreshTimeoutMs: 1_000,
    now: time.now,
    ...overrides,
  });
}

const text = (reply: Reply) => (reply.body as Buffer).toString();
const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('cache policy', () => {
  it('serves a hit until the TTL passes, then fetches again', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time)(up.handler);
    const first = await handler(makeCall({ path: '/q?a=1' }));
    expect(first.headers['x-slipstream-cache']).toBe('miss');
    await flush();
    const second = await handler(makeCall({ path: '/q?a=1' }));
    expect([text(second), second.headers['x-slipstream-cache']]).toEqual(['1', 'hit']);
    time.advance(1_000);
    const third = await handler(makeCall({ path: '/q?a=1' }));
    expect([text(third), third.headers['x-slipstream-cache']]).toEqual(['2', 'miss']);
  });

  it('shares an entry whatever the order of query parameters', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time)(up.handler);
    await handler(makeCall({ path: '/q?a=1&b=2' }));
    await flush();
    expect((await handler(makeCall({ path: '/q?b=2&a=1' }))).headers['x-slipstream-cache']).toBe('hit');
    expect(up.calls()).toBe(1);
  });

  it("never gives one principal another principal's entry", async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time)(up.handler);
    expect(text(await handler(makeCall({ principal: 'Bearer alice' })))).toBe('1');
    await flush();
    expect(text(await handler(makeCall({ principal: 'Bearer bob' })))).toBe('2');
    await flush();
    expect(text(await handler(makeCall({ principal: 'Bearer alice' })))).toBe('1');
  });

  it('serves stale while exactly one background refresh runs, for 100 concurrent readers', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { staleWhileRevalidateMs: 10_000 })(up.handler);
    await handler(makeCall());
    await flush();
    time.advance(1_500);
    let release: () => void = () => {};
    up.set(
      (n) =>
        new Promise(
          (resolve) => (release = () => resolve({ status: 200, headers: {}, body: Buffer.from(String(n)) })),
        ),
    );
    const replies = await Promise.all(Array.from({ length: 100 }, () => handler(makeCall())));
    expect(replies.every((r) => r.headers['x-slipstream-cache'] === 'stale' && text(r) === '1')).toBe(true);
    expect(up.calls()).toBe(2); // the first fill and one refresh
    release();
    await flush();
    await flush();
    const after = await handler(makeCall());
    expect([text(after), after.headers['x-slipstream-cache']]).toEqual(['2', 'hit']);
  });

  it('serves stale when the upstream fails within the stale-if-error window, and the error after it', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { staleIfErrorMs: 5_000 })(up.handler);
    await handler(makeCall());
    await flush();
    time.advance(2_000);
    up.set(async () => {
      throw new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'down');
    });
    const stale = await handler(makeCall());
    expect([text(stale), stale.headers['x-slipstream-cache']]).toEqual(['1', 'stale']);
    up.set(async () => ({ status: 503, headers: {}, body: Buffer.from('busy') }));
    expect((await handler(makeCall())).headers['x-slipstream-cache']).toBe('stale');
    time.advance(5_000);
    const expired = await handler(makeCall());
    expect([expired.status, expired.headers['x-slipstream-cache']]).toEqual([503, 'miss']);
  });

  it('never stores a response with Set-Cookie or Cache-Control no-store, and honours max-age', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time)(up.handler);
    up.set(async (n) => ({ status: 200, headers: { 'set-cookie': 'sid=1' }, body: Buffer.from(String(n)) }));
    await handler(makeCall({ path: '/cookie' }));
    await flush();
    expect((await handler(makeCall({ path: '/cookie' }))).headers['x-slipstream-cache']).toBe('miss');
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'no-store' },
      body: Buffer.from(String(n)),
    }));
    await handler(makeCall({ path: '/nostore' }));
    await flush();
    expect((await handler(makeCall({ path: '/nostore' }))).headers['x-slipstream-cache']).toBe('miss');
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'max-age=10' },
      body: Buffer.from(String(n)),
    }));
    await handler(makeCall({ path: '/long' }));
    await flush();
    time.advance(5_000); // past the route ttl (1 s), within max-age (10 s)
    expect((await handler(makeCall({ path: '/long' }))).headers['x-slipstream-cache']).toBe('hit');
  });

  it('refreshes on a client Cache-Control: no-cache and bypasses on no-store or an uncached method', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time)(up.handler);
    await handler(makeCall());
    await flush();
    const forced = await handler(makeCall({ headers: { 'cache-control': 'no-cache' } }));
    expect([text(forced), forced.headers['x-slipstream-cache']]).toEqual(['2', 'miss']);
    expect(
      (await handler(makeCall({ headers: { 'cache-control': 'no-store' } }))).headers['x-slipstream-cache'],
    ).toBe('bypass');
    expect(
      (await handler(makeCall({ method: 'POST', idempotent: false }))).headers['x-slipstream-cache'],
    ).toBe('bypass');
  });

  it('does not store a body larger than maxEntryBytes, but still relays it whole', async () => {
    const time = clock();
    const up = upstream();
    up.set(async () => ({ status: 200, headers: {}, body: Buffer.alloc(4096, 1) }));
    const handler = policy(time)(up.handler);
    expect(((await handler(makeCall())).body as Buffer).length).toBe(4096);
    await flush();
    expect((await handler(makeCall())).headers['x-slipstream-cache']).toBe('miss');
  });
});

/** An upstream answering with `headers(call, n)` and a body naming the call number and Accept-Language. */
function negotiating(headers: (call: Call, n: number) => Reply['headers'], delayMs = 0) {
  const seen: Call[] = [];
  const handler = async (call: Call): Promise<Reply> => {
    seen.push(call);
    const n = seen.length;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const language = call.headers['accept-language'];
    return { status: 200, headers: headers(call, n), body: Buffer.from(`${n}:${String(language)}`) };
  };
  return { seen, handler };
}

describe('cache policy, RFC 9111', () => {
  const withLanguage = (language?: string, extra: Call['headers'] = {}) =>
    makeCall({ headers: language === undefined ? extra : { 'accept-language': language, ...extra } });

  it('keeps one entry per Vary variant of a key and serves each caller its own (§4.1)', async () => {
    const time = clock();
    const up = negotiating(() => ({ vary: 'Accept-Language' }));
    const handler = policy(time)(up.handler);
    expect(text(await handler(withLanguage('fr')))).toBe('1:fr');
    await flush();
    expect(text(await handler(withLanguage('en')))).toBe('2:en');
    await flush();
    const fr = await handler(withLanguage(' FR'));
    expect([text(fr), fr.headers['x-slipstream-cache']]).toEqual(['1:fr', 'hit']);
    expect(text(await handler(withLanguage('en')))).toBe('2:en');
    expect(up.seen).toHaveLength(2);
  });

  it('coalesces concurrent misses per variant, never across variants', async () => {
    const time = clock();
    const up = negotiating(() => ({ vary: 'Accept-Language' }), 20);
    const handler = policy(time)(up.handler);
    const languages = ['de', 'ja', 'es', 'de', 'ja', 'es', 'de'];
    const replies = await Promise.all(languages.map((l) => handler(withLanguage(l))));
    expect(replies.map((r) => text(r).split(':')[1])).toEqual(languages);
    expect(up.seen).toHaveLength(3); // the leader's variant, then one flight per other variant
  });

  it('invalidates every entry of a path after a successful unsafe method, but not after a failed one (§4.4)', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const time = clock();
      const up = upstream();
      const handler = policy(time, { key: { query: '*', headers: [], body: '*', scope: 'principal' } })(
        up.handler,
      );
      await handler(makeCall({ path: '/doc?v=1', principal: 'alice' }));
      await handler(makeCall({ path: '/doc?v=2', principal: 'bob' }));
      await flush();
      up.set(async () => ({ status: 500, headers: {}, body: Buffer.from('no') }));
      await handler(makeCall({ method, path: '/doc', idempotent: false }));
      expect(
        (await handler(makeCall({ path: '/doc?v=2', principal: 'bob' }))).headers['x-slipstream-cache'],
      ).toBe('hit');
      up.set(async (n) => ({ status: 204, headers: {}, body: Buffer.from(String(n)) }));
      await handler(makeCall({ method, path: '/doc', idempotent: false, principal: 'alice' }));
      for (const [path, principal] of [
        ['/doc?v=1', 'alice'],
        ['/doc?v=2', 'bob'],
      ]) {
        const after = await handler(makeCall({ path, principal }));
        expect([method, path, after.headers['x-slipstream-cache']]).toEqual([method, path, 'miss']);
      }
    }
  });

  it('invalidates a write’s same-origin Location and Content-Location, not another origin’s', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { upstreamUrl: 'http://api.internal:9000/v1' })(up.handler);
    for (const path of ['/a', '/b', '/c']) await handler(makeCall({ path }));
    await flush();
    up.set(async () => ({
      status: 201,
      headers: { location: '/v1/a', 'content-location': 'http://api.internal:9000/v1/b' },
      body: null,
    }));
    await handler(makeCall({ method: 'POST', path: '/new', idempotent: false }));
    up.set(async () => ({ status: 201, headers: { location: 'http://elsewhere.example/v1/c' }, body: null }));
    await handler(makeCall({ method: 'POST', path: '/new', idempotent: false }));
    up.set(async (n) => ({ status: 200, headers: {}, body: Buffer.from(String(n)) }));
    const results = [];
    for (const path of ['/a', '/b', '/c'])
      results.push((await handler(makeCall({ path }))).headers['x-slipstream-cache']);
    expect(results).toEqual(['miss', 'miss', 'hit']);
  });

  it('does not store what a read fetched while a write to its path was under way', async () => {
    const time = clock();
    let release: () => void = () => {};
    const handler = policy(time)(async (call) => {
      if (call.method === 'GET') await new Promise<void>((resolve) => (release = resolve));
      return { status: 200, headers: {}, body: Buffer.from(call.method) };
    });
    const read = handler(makeCall({ path: '/doc' }));
    await flush();
    await handler(makeCall({ method: 'PUT', path: '/doc', idempotent: false }));
    release();
    await read;
    await flush();
    const next = handler(makeCall({ path: '/doc' }));
    await flush();
    release();
    expect((await next).headers['x-slipstream-cache']).toBe('miss');
  });

  it('counts the upstream Age and Date, and serves an Age that only grows (§4.2.3)', async () => {
    const time = clock();
    const up = upstream();
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'max-age=60', age: '120' },
      body: Buffer.from(String(n)),
    }));
    const handler = policy(time)(up.handler);
    await handler(makeCall({ path: '/old' }));
    await flush();
    expect((await handler(makeCall({ path: '/old' }))).headers['x-slipstream-cache']).toBe('miss');
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'max-age=600', age: '120' },
      body: Buffer.from(String(n)),
    }));
    await handler(makeCall({ path: '/aged' }));
    await flush();
    const ages: number[] = [];
    for (const step of [0, 1_500, 10_000]) {
      time.advance(step);
      ages.push(Number((await handler(makeCall({ path: '/aged' }))).headers.age));
    }
    expect(ages).toEqual([120, 121, 131]);
    const stale = new Date(time.now() - 300_000).toUTCString();
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'max-age=60', date: stale },
      body: Buffer.from(String(n)),
    }));
    await handler(makeCall({ path: '/dated' }));
    await flush();
    expect((await handler(makeCall({ path: '/dated' }))).headers['x-slipstream-cache']).toBe('miss');
  });

  it('never serves from cache what says Expires in the past, invalid max-age or no-cache, whatever the ttl (§4.2)', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { ttlMs: 60_000, staleWhileRevalidateMs: 60_000 })(up.handler);
    const cases: Array<Reply['headers']> = [
      { expires: '0' },
      { expires: new Date(time.now() - 60_000).toUTCString() },
      { pragma: 'no-cache', expires: 'Thu, 01 Jan 1970 00:00:00 GMT' },
      { pragma: 'no-cache' },
      { 'cache-control': 'max-age=-1' },
      { 'cache-control': 'max-age="3600"' },
      { 'cache-control': 'max-age=0' },
      { 'cache-control': 'no-cache' },
    ];
    for (const [i, headers] of cases.entries()) {
      up.set(async (n) => ({ status: 200, headers, body: Buffer.from(String(n)) }));
      await handler(makeCall({ path: `/c${i}` }));
      await flush();
      expect([headers, (await handler(makeCall({ path: `/c${i}` }))).headers['x-slipstream-cache']]).toEqual([
        headers,
        'miss',
      ]);
    }
  });

  it('passes the error of an upstream failing a must-revalidate entry, whatever the route stale settings (§4.2.4)', async () => {
    for (const cc of ['max-age=1, must-revalidate', 'max-age=1, proxy-revalidate', 's-maxage=1']) {
      const time = clock();
      const up = upstream();
      up.set(async (n) => ({ status: 200, headers: { 'cache-control': cc }, body: Buffer.from(String(n)) }));
      const handler = policy(time, {
        staleIfErrorMs: 60_000,
        staleWhileRevalidateMs: 60_000,
        key: { query: '*', headers: [], body: '*', scope: 'shared' },
      })(up.handler);
      await handler(makeCall());
      await flush();
      time.advance(2_000);
      up.set(async () => ({ status: 503, headers: {}, body: Buffer.from('down') }));
      expect([cc, (await handler(makeCall())).status]).toEqual([cc, 503]);
      up.set(async () => {
        throw new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'refused');
      });
      await expect(handler(makeCall())).rejects.toThrow('refused');
    }
  });

  it("honours the response's stale-while-revalidate over the route's", async () => {
    const time = clock();
    const up = upstream();
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'max-age=1, stale-while-revalidate=2' },
      body: Buffer.from(String(n)),
    }));
    const handler = policy(time, { staleWhileRevalidateMs: 60_000 })(up.handler);
    await handler(makeCall());
    await flush();
    time.advance(2_000);
    expect((await handler(makeCall())).headers['x-slipstream-cache']).toBe('stale');
    await flush();
    time.advance(4_000);
    expect((await handler(makeCall())).headers['x-slipstream-cache']).toBe('miss');
  });

  it('revalidates a stale entry with its validators, and a 304 refreshes it and its headers (§4.3)', async () => {
    const time = clock();
    const up = negotiating((call, n) =>
      n === 1
        ? { 'cache-control': 'max-age=1', etag: '"v1"', 'x-version': '1', 'content-length': '4' }
        : { 'cache-control': 'max-age=60', etag: '"v1"', 'x-version': String(n) },
    );
    const notModified = async (call: Call): Promise<Reply> => {
      const reply = await up.handler(call);
      return call.headers['if-none-match'] === '"v1"' ? { ...reply, status: 304, body: null } : reply;
    };
    const handler = policy(time)(notModified);
    const first = await handler(withLanguage(undefined, { 'if-none-match': '"old"' }));
    await flush();
    time.advance(1_500); // stale, still kept for revalidation
    const revalidated = await handler(makeCall());
    expect(up.seen[0]!.headers['if-none-match']).toBeUndefined(); // the client's own condition stays here
    expect(up.seen[1]!.headers['if-none-match']).toBe('"v1"');
    expect([revalidated.status, text(revalidated), revalidated.headers['x-slipstream-cache']]).toEqual([
      200,
      text(first),
      'revalidated',
    ]);
    expect([revalidated.headers['x-version'], revalidated.headers['content-length']]).toEqual(['2', '4']);
    await flush();
    time.advance(30_000); // inside the max-age=60 the 304 brought
    expect((await handler(makeCall())).headers['x-slipstream-cache']).toBe('hit');
  });

  it("answers a client's matching If-None-Match or If-Modified-Since with 304, on a miss as on a hit", async () => {
    const time = clock();
    const lastModified = 'Mon, 01 Jan 2024 00:00:00 GMT';
    const up = negotiating(() => ({
      'cache-control': 'max-age=60',
      etag: 'W/"a"',
      'last-modified': lastModified,
    }));
    const handler = policy(time)(up.handler);
    const miss = await handler(makeCall({ headers: { 'if-none-match': '"a"' } }));
    expect([miss.status, miss.body, miss.headers.etag, miss.headers['x-slipstream-cache']]).toEqual([
      304,
      null,
      'W/"a"',
      'miss',
    ]);
    await flush();
    const hit = await handler(makeCall({ headers: { 'if-modified-since': lastModified } }));
    expect([hit.status, hit.headers['x-slipstream-cache']]).toEqual([304, 'hit']);
    expect((await handler(makeCall({ headers: { 'if-none-match': '"b"' } }))).status).toBe(200);
    expect((await handler(makeCall({ method: 'HEAD', headers: { 'if-none-match': '"a"' } }))).status).toBe(
      304,
    );
  });

  it('honours request max-age, min-fresh, max-stale, no-cache and only-if-cached (§5.2.1)', async () => {
    const time = clock();
    const up = upstream();
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'max-age=10' },
      body: Buffer.from(String(n)),
    }));
    const handler = policy(time)(up.handler);
    const ask = async (cc?: string) =>
      (await handler(makeCall({ headers: cc === undefined ? {} : { 'cache-control': cc } }))).headers[
        'x-slipstream-cache'
      ];
    await expect(handler(makeCall({ headers: { 'cache-control': 'only-if-cached' } }))).rejects.toMatchObject(
      {
        code: 'GW_NOT_CACHED',
        status: 504,
      },
    );
    expect(up.calls()).toBe(0);
    await ask();
    await flush();
    time.advance(5_000);
    expect(await ask('max-age=60')).toBe('hit');
    expect(await ask('max-age=2')).toBe('miss');
    await flush();
    expect(await ask('min-fresh=20')).toBe('miss');
    await flush();
    expect(await ask('no-cache')).toBe('miss');
    await flush();
    time.advance(15_000);
    expect(await ask('max-stale=10')).toBe('stale');
    // Stale, and the client accepts no staleness: nothing usable, and nothing is fetched for it.
    const calls = up.calls();
    await expect(ask('only-if-cached')).rejects.toMatchObject({ code: 'GW_NOT_CACHED' });
    expect(up.calls()).toBe(calls);
  });

  it('never lets a shared route reuse a reply to a request with Authorization unless §3.5 allows it', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { key: { query: '*', headers: [], body: '*', scope: 'shared' } })(
      up.handler,
    );
    const as = (who?: string) =>
      makeCall({ headers: who === undefined ? {} : { authorization: `Bearer ${who}` } });
    expect(text(await handler(as('alice')))).toBe('1');
    await flush();
    expect(text(await handler(as('bob')))).toBe('2');
    await flush();
    expect(text(await handler(as()))).toBe('3');
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'public, max-age=60' },
      body: Buffer.from(String(n)),
    }));
    await handler(makeCall({ path: '/public', headers: { authorization: 'Bearer alice' } }));
    await flush();
    expect(
      (await handler(makeCall({ path: '/public', headers: { authorization: 'Bearer bob' } }))).headers[
        'x-slipstream-cache'
      ],
    ).toBe('hit');
  });

  it('bypasses a principal-scoped cache for anonymous calls with credentials, and stores no anonymous private reply', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time)(up.handler);
    for (const headers of [{ cookie: 'sid=a' }, { cookie: 'sid=b' }, { authorization: 'Bearer a' }]) {
      const reply = await handler(makeCall({ headers }));
      expect(reply.headers['x-slipstream-cache']).toBe('bypass');
    }
    expect(up.calls()).toBe(3);
    const keyed = policy(time, { key: { query: '*', headers: ['cookie'], body: '*', scope: 'principal' } })(
      up.handler,
    );
    await keyed(makeCall({ path: '/k', headers: { cookie: 'sid=a' } }));
    await flush();
    expect(
      (await keyed(makeCall({ path: '/k', headers: { cookie: 'sid=a' } }))).headers['x-slipstream-cache'],
    ).toBe('hit');
    up.set(async (n) => ({
      status: 200,
      headers: { 'cache-control': 'private, max-age=60' },
      body: Buffer.from(String(n)),
    }));
    await handler(makeCall({ path: '/private' }));
    await flush();
    expect((await handler(makeCall({ path: '/private' }))).headers['x-slipstream-cache']).toBe('miss');
    await handler(makeCall({ path: '/private', principal: 'alice' }));
    await flush();
    expect(
      (await handler(makeCall({ path: '/private', principal: 'alice' }))).headers['x-slipstream-cache'],
    ).toBe('hit');
  });

  it('leaves range requests and origin-only preconditions to the upstream', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time)(up.handler);
    await handler(makeCall());
    await flush();
    for (const headers of [{ range: 'bytes=0-1' }, { 'if-match': '"a"' }, { 'if-unmodified-since': 'x' }]) {
      expect((await handler(makeCall({ headers }))).headers['x-slipstream-cache']).toBe('bypass');
    }
  });
});

describe('cache policy refresh-ahead', () => {
  /** An upstream whose calls after the first wait for `release()`. */
  function gated() {
    const up = upstream();
    const releases: Array<() => void> = [];
    up.set((n) =>
      n === 1
        ? Promise.resolve({ status: 200, headers: {}, body: Buffer.from('1') })
        : new Promise((resolve) =>
            releases.push(() => resolve({ status: 200, headers: {}, body: Buffer.from(String(n)) })),
          ),
    );
    return { up, release: () => releases.splice(0).forEach((r) => r()) };
  }

  it('starts one background refresh for hits past the share of the lifetime, never before', async () => {
    const time = clock();
    const { up, release } = gated();
    const handler = policy(time, { refreshAhead: 0.8 })(up.handler); // ttl 1 s: refresh from 800 ms on
    await handler(makeCall());
    await flush();
    time.advance(700);
    expect((await handler(makeCall())).headers['x-slipstream-cache']).toBe('hit');
    expect(up.calls()).toBe(1);
    time.advance(150);
    const hits = await Promise.all(Array.from({ length: 50 }, () => handler(makeCall())));
    expect(hits.every((r) => r.headers['x-slipstream-cache'] === 'hit' && text(r) === '1')).toBe(true);
    expect(up.calls()).toBe(2); // one refresh for 50 hits past the threshold
    release();
    await flush();
    await flush();
    time.advance(300); // past the first entry's expiry: the refreshed entry answers, no miss
    const after = await handler(makeCall());
    expect([text(after), after.headers['x-slipstream-cache']]).toEqual(['2', 'hit']);
  });

  it('lets a miss that arrives while a refresh runs join it instead of calling upstream again', async () => {
    const time = clock();
    const { up, release } = gated();
    const handler = policy(time, { refreshAhead: 0.5 })(up.handler);
    await handler(makeCall());
    await flush();
    time.advance(600);
    await handler(makeCall()); // starts the refresh
    time.advance(500); // the old entry expired while the refresh is still out
    const waiting = handler(makeCall());
    await flush();
    expect(up.calls()).toBe(2);
    release();
    const joined = await waiting;
    expect([text(joined), up.calls()]).toEqual(['2', 2]);
  });

  it('keeps the entry when a refresh fails, and reports it', async () => {
    const seen: CacheRefreshEvent[] = [];
    const listener = (m: unknown) => seen.push(m as CacheRefreshEvent);
    events.cacheRefresh.subscribe(listener);
    try {
      const time = clock();
      const up = upstream();
      const handler = policy(time, { refreshAhead: 0.5 })(up.handler);
      await handler(makeCall());
      await flush();
      up.set(async () => ({ status: 503, headers: {}, body: Buffer.from('down') }));
      time.advance(600);
      await handler(makeCall());
      await expect.poll(() => seen.map((e) => [e.trigger, e.outcome])).toEqual([['ahead', 'failed']]);
      const still = await handler(makeCall());
      expect([text(still), still.headers['x-slipstream-cache']]).toEqual(['1', 'hit']);
    } finally {
      events.cacheRefresh.unsubscribe(listener);
    }
  });

  it('aborts refreshes in flight and starts no more once its refresher is closed', async () => {
    const time = clock();
    const background = refresher();
    let calls = 0;
    // A transport that answers the first call and holds the next until its signal aborts (as undici does).
    const transport = (call: Call): Promise<Reply> =>
      ++calls === 1
        ? Promise.resolve({ status: 200, headers: {}, body: Buffer.from('1') })
        : new Promise((_, reject) =>
            call.signal.addEventListener('abort', () => reject(call.signal.reason as Error)),
          );
    const handler = policy(time, { refreshAhead: 0.5, refresher: background })(transport);
    await handler(makeCall());
    await flush();
    time.advance(600);
    await handler(makeCall());
    expect([background.size, calls]).toEqual([1, 2]);
    await background.close(); // resolves only once the held refresh was aborted and settled
    expect(background.size).toBe(0);
    await handler(makeCall());
    expect(calls).toBe(2);
  });

  it('refuses a share outside (0, 1)', () => {
    expect(() => policy(clock(), { refreshAhead: 1 })).toThrow(RangeError);
  });
});

describe('cache policy coalescing', () => {
  it('fetches and stores a key once for 1,000 concurrent misses, every caller getting the reply', async () => {
    const time = clock();
    const up = upstream();
    up.set(
      (n) =>
        new Promise((resolve) =>
          setTimeout(() => resolve({ status: 200, headers: {}, body: Buffer.from(String(n)) }), 20),
        ),
    );
    const memory = memoryCache({ now: time.now });
    let writes = 0;
    const store = { ...memory, set: (key: string, entry: CacheEntry) => (writes++, memory.set(key, entry)) };
    const handler = policy(time, { store })(up.handler);
    const replies = await Promise.all(Array.from({ length: 1000 }, () => handler(makeCall({ path: '/q' }))));
    expect(up.calls()).toBe(1);
    expect(writes).toBe(1);
    expect(replies.every((r) => text(r) === '1' && r.headers['x-slipstream-cache'] === 'miss')).toBe(true);
  });

  it('never hands a reply that sets a cookie, or a private one on a shared route, to another caller', async () => {
    for (const [scope, headers] of [
      ['principal', { 'set-cookie': 'sid=alice' }],
      ['shared', { 'cache-control': 'private' }],
    ] as const) {
      const time = clock();
      const up = upstream();
      up.set(
        (n) =>
          new Promise((resolve) =>
            setTimeout(() => resolve({ status: 200, headers, body: Buffer.from(String(n)) }), 20),
          ),
      );
      const handler = policy(time, { key: { query: '*', headers: [], body: '*', scope } })(up.handler);
      const replies = await Promise.all([handler(makeCall()), handler(makeCall()), handler(makeCall())]);
      expect(new Set(replies.map(text)).size).toBe(3); // each caller got a reply fetched for it
      expect(up.calls()).toBe(3);
    }
  });

  it('shares an upstream error among waiters instead of hitting the upstream once per waiter', async () => {
    const time = clock();
    const up = upstream();
    up.set(
      (n) =>
        new Promise((resolve) =>
          setTimeout(() => resolve({ status: 503, headers: {}, body: Buffer.from(String(n)) }), 20),
        ),
    );
    const handler = policy(time)(up.handler);
    const replies = await Promise.all(Array.from({ length: 50 }, () => handler(makeCall())));
    expect(replies.every((r) => r.status === 503)).toBe(true);
    expect(up.calls()).toBe(1);
  });

  it('fetches per caller when coalescing is off', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { coalesce: false })(up.handler);
    await Promise.all([handler(makeCall()), handler(makeCall())]);
    expect(up.calls()).toBe(2);
  });
});

describe('coalesce policy', () => {
  it('turns 1,000 concurrent identical calls into one upstream call, each caller getting the reply', async () => {
    const up = upstream();
    up.set(
      (n) =>
        new Promise((resolve) =>
          setTimeout(() => resolve({ status: 200, headers: {}, body: Buffer.from(String(n)) }), 20),
        ),
    );
    const handler = coalesce({ route: 'r', key: (call) => call.path, maxBytes: 1024 })(up.handler);
    const replies = await Promise.all(
      Array.from({ length: 1000 }, () => handler(makeCall({ path: '/same' }))),
    );
    expect(up.calls()).toBe(1);
    expect(replies.every((r) => text(r) === '1')).toBe(true);
  });

  it('keeps the shared call going when one waiter leaves, and aborts it when all have', async () => {
    let seen: AbortSignal | undefined;
    const handler = coalesce({ route: 'r', key: (call) => call.path, maxBytes: 1024 })(
      (call) =>
        new Promise<Reply>((resolve, reject) => {
          seen = call.signal;
          call.signal.addEventListener('abort', () => reject(new Error('aborted')));
          setTimeout(() => resolve({ status: 200, headers: {}, body: Buffer.from('ok') }), 30);
        }),
    );
    const a = new AbortController();
    const first = handler(makeCall({ signal: a.signal }));
    const second = handler(makeCall());
    a.abort(new Error('a left'));
    await expect(first).rejects.toThrow('a left');
    expect(text(await second)).toBe('ok');
    expect(seen!.aborted).toBe(false);

    const b = new AbortController();
    const lone = handler(makeCall({ signal: b.signal }));
    b.abort(new Error('b left'));
    await expect(lone).rejects.toThrow('b left');
    expect(seen!.aborted).toBe(true);
  });

  it('gives a reply not for sharing to the caller it was fetched for, even when it left, never to another', async () => {
    const up = upstream();
    up.set(
      (n) =>
        new Promise((resolve) =>
          setTimeout(
            () => resolve({ status: 200, headers: { 'set-cookie': `n=${n}` }, body: Buffer.from(String(n)) }),
            20,
          ),
        ),
    );
    const handler = coalesce({ route: 'r', key: () => 'same', maxBytes: 1024 })(up.handler);
    const leader = new AbortController();
    const first = handler(makeCall({ signal: leader.signal }));
    const second = handler(makeCall());
    leader.abort(new Error('left'));
    await expect(first).rejects.toThrow('left');
    expect(text(await second)).toBe('2'); // fetched for itself, not the leader's cookie
  });

  it('regroups waiters a reply is not for under the narrower key it names', async () => {
    const up = upstream();
    up.set(
      (n) =>
        new Promise((resolve) =>
          setTimeout(() => resolve({ status: 200, headers: {}, body: Buffer.from(String(n)) }), 20),
        ),
    );
    const group = (call: Call) => String(call.headers.group);
    const handler = coalesce({
      route: 'r',
      key: (call) => call.key ?? 'wide',
      maxBytes: 1024,
      shareable: (_reply, waiter, leader) => group(waiter) === group(leader),
      regroup: (_reply, waiter) => `narrow:${group(waiter)}`,
    })(up.handler);
    const groups = ['a', 'b', 'b', 'c', 'c', 'a'];
    const replies = await Promise.all(groups.map((g) => handler(makeCall({ headers: { group: g } }))));
    expect(up.calls()).toBe(3);
    expect(new Set(replies.filter((_, i) => groups[i] === 'b').map(text)).size).toBe(1);
  });

  it('never coalesces calls that are not idempotent', async () => {
    const up = upstream();
    const handler = coalesce({ route: 'r', key: () => 'same', maxBytes: 1024 })(up.handler);
    await Promise.all([handler(makeCall({ idempotent: false })), handler(makeCall({ idempotent: false }))]);
    expect(up.calls()).toBe(2);
  });
});
