// The cache policy's storage rules: what is stored, for how long, with which headers, and what each lookup reports.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { memoryCache } from '../../src/cache/memory.js';
import type { CacheStore } from '../../src/cache/store.js';
import { GatewayError } from '../../src/errors.js';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { cache } from '../../src/policies/cache.js';
import type { CachePolicyOptions } from '../../src/policies/cache.js';
import { events } from '../../src/telemetry/events.js';
import { makeCall } from '../helpers/calls.js';
import { recordEvents } from '../helpers/events.js';

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

/** An upstream answering the call number, with the headers (and status) it is told to send. */
function upstream(headers: Reply['headers'] = {}, status = 200) {
  const calls: Call[] = [];
  let answer = (n: number): Promise<Reply> =>
    Promise.resolve({ status, headers, body: Buffer.from(String(n)) });
  return {
    calls,
    set: (next: typeof answer) => (answer = next),
    handler: (call: Call) => (calls.push(call), answer(calls.length)),
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

const flush = () => new Promise((resolve) => setImmediate(resolve));
const result = (reply: Reply) => reply.headers['x-slipstream-cache'];

/** Two requests for the same key, the second after `advanceMs`: what the second one reports. */
async function secondLookup(
  headers: Reply['headers'],
  overrides: Partial<CachePolicyOptions> = {},
  advanceMs = 0,
  principal?: string,
) {
  const time = clock();
  const handler = policy(time, overrides)(upstream(headers).handler);
  await handler(makeCall({ principal }));
  await flush();
  time.advance(advanceMs);
  return result(await handler(makeCall({ principal })));
}

describe('what the cache policy stores', () => {
  it('never stores a reply with Vary: * or Cache-Control no-cache', async () => {
    expect(await secondLookup({ vary: '*' })).toBe('miss');
    expect(await secondLookup({ 'cache-control': 'no-cache' })).toBe('miss');
    expect(await secondLookup({ 'cache-control': 'max-age=0' })).toBe('miss');
  });

  it('ignores upstream Cache-Control when told to, storing for the route TTL', async () => {
    expect(await secondLookup({ 'cache-control': 'no-store' }, { respectCacheControl: false })).toBe('hit');
    expect(await secondLookup({ 'cache-control': 'max-age=60' }, { respectCacheControl: false }, 1_000)).toBe(
      'miss',
    );
  });

  it('on a shared route, skips private replies and prefers s-maxage to max-age', async () => {
    const shared = { key: { query: '*', headers: [], body: '*', scope: 'shared' } as const };
    expect(await secondLookup({ 'cache-control': 'private, max-age=60' }, shared)).toBe('miss');
    expect(await secondLookup({ 'cache-control': 's-maxage=10, max-age=1' }, shared, 5_000)).toBe('hit');
    expect(await secondLookup({ 'cache-control': 's-maxage=1, max-age=60' }, shared, 5_000)).toBe('miss');
  });

  it('on a per-caller route, stores private replies and ignores s-maxage', async () => {
    // A verified caller's own private reply (an anonymous one is never stored: issue 15's cache safety).
    expect(await secondLookup({ 'cache-control': 'private, max-age=60' }, {}, 5_000, 'alice')).toBe('hit');
    expect(await secondLookup({ 'cache-control': 's-maxage=60, max-age=2' }, {}, 5_000, 'alice')).toBe(
      'miss',
    );
  });

  it('stores a body of exactly maxEntryBytes', async () => {
    const time = clock();
    const up = upstream();
    up.set(async () => ({ status: 200, headers: {}, body: Buffer.alloc(16, 'x') }));
    const handler = policy(time, { maxEntryBytes: 16 })(up.handler);
    await handler(makeCall());
    await flush();
    expect(result(await handler(makeCall()))).toBe('hit');
  });

  it('keeps the headers of the reply but not its request id, its age or its hop-by-hop ones', async () => {
    const time = clock();
    const handler = policy(time)(
      upstream({
        'x-keep': 'v',
        'cache-control': 'max-age=60',
        'x-request-id': 'req-1',
        // The upstream's own age counts (RFC 9111 §4.2.3): 1 s old on arrival, 2.5 s later it is 3 s old.
        age: '1',
        connection: 'close',
        'x-nothing': undefined,
      }).handler,
    );
    await handler(makeCall());
    await flush();
    time.advance(2_500);
    const hit = await handler(makeCall());
    expect(hit.headers).toStrictEqual({
      'x-keep': 'v',
      'cache-control': 'max-age=60',
      age: '3',
      'x-slipstream-cache': 'hit',
    });
  });
});

describe('what the cache policy stores, at the edges', () => {
  const shared = { key: { query: '*', headers: [], body: '*', scope: 'shared' } as const };

  it('uses max-age on a shared route that sends no s-maxage', async () => {
    expect(await secondLookup({ 'cache-control': 'max-age=10' }, shared, 5_000)).toBe('hit');
  });

  it('never serves a max-age=0 reply, not even as stale', async () => {
    expect(await secondLookup({ 'cache-control': 'max-age=0' }, { staleWhileRevalidateMs: 60_000 })).toBe(
      'miss',
    );
  });

  it('stores a cacheable reply without a body', async () => {
    const time = clock();
    const up = upstream();
    up.set(async () => ({ status: 204, headers: {}, body: null }));
    const handler = policy(time)(up.handler);
    await handler(makeCall());
    await flush();
    expect(result(await handler(makeCall()))).toBe('hit');
  });

  it('relays a reply it may not store as it came, still streamed', async () => {
    const time = clock();
    const body = Readable.from([Buffer.from('x')]);
    // Without coalescing: a coalesced miss is buffered to be shared, storable or not.
    const reply = await policy(time, { coalesce: false })(async () => ({
      status: 200,
      headers: { 'set-cookie': 's=1' },
      body,
    }))(makeCall());
    expect(reply.body).toBe(body);
  });

  it('answers without waiting for the store write to finish', async () => {
    const time = clock();
    const store = memoryCache({ now: time.now });
    const stalled = { ...store, set: () => new Promise<void>(() => {}) } as CacheStore;
    const reply = await policy(time, { store: stalled })(upstream().handler)(makeCall());
    expect(result(reply)).toBe('miss');
  });

  it('ends stale-while-revalidate at ttl + window, counted from when the entry was stored', async () => {
    expect(await secondLookup({}, { staleWhileRevalidateMs: 5_000 }, 5_500)).toBe('stale');
    expect(await secondLookup({}, { staleWhileRevalidateMs: 5_000 }, 6_000)).toBe('miss');
  });

  it('ends stale-if-error at ttl + window, counted from when the entry was stored', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { staleIfErrorMs: 5_000 })(up.handler);
    await handler(makeCall());
    await flush();
    time.advance(5_500);
    up.set(async () => ({ status: 503, headers: {}, body: Buffer.from('busy') }));
    expect(result(await handler(makeCall()))).toBe('stale');
  });

  it('passes on the upstream error when there is nothing stale to serve', async () => {
    const time = clock();
    const up = upstream();
    up.set(async () => {
      throw new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'down');
    });
    await expect(policy(time)(up.handler)(makeCall())).rejects.toMatchObject({
      code: 'GW_UPSTREAM_UNAVAILABLE',
    });
  });

  it('shares a private reply among callers of one principal, but a no-store one on a shared route with nobody', async () => {
    const sharedCalls = async (headers: Reply['headers'], overrides: Partial<CachePolicyOptions>) => {
      const time = clock();
      const up = upstream(headers);
      const handler = policy(
        time,
        overrides,
      )(async (call) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return up.handler(call);
      });
      await Promise.all([
        handler(makeCall({ principal: 'alice' })),
        handler(makeCall({ principal: 'alice' })),
      ]);
      return up.calls.length;
    };
    expect(await sharedCalls({}, shared)).toBe(1);
    expect(await sharedCalls({ 'cache-control': 'private' }, {})).toBe(1);
    expect(await sharedCalls({ 'cache-control': 'no-store' }, shared)).toBe(2);
  });
});

describe('when the cache policy serves stale', () => {
  it('serves stale from the moment freshness ends, not a hit', async () => {
    expect(await secondLookup({}, { staleWhileRevalidateMs: 5_000 }, 1_000)).toBe('stale');
  });

  it('stops serving stale-while-revalidate the moment its window ends', async () => {
    expect(await secondLookup({}, { staleWhileRevalidateMs: 1_000, staleIfErrorMs: 10_000 }, 2_000)).toBe(
      'miss',
    );
  });

  it('serves stale on a 500 within stale-if-error, but not to a client that left', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { staleIfErrorMs: 5_000 })(up.handler);
    await handler(makeCall());
    await flush();
    time.advance(2_000);
    up.set(async () => ({ status: 500, headers: {}, body: Buffer.from('oops') }));
    expect(result(await handler(makeCall()))).toBe('stale');
    up.set(async () => {
      throw new GatewayError('GW_CLIENT_CLOSED', 'gone');
    });
    await expect(handler(makeCall())).rejects.toMatchObject({ code: 'GW_CLIENT_CLOSED' });
  });

  it('gives a background refresh the route deadline, and refreshes again after it failed', async () => {
    const time = clock();
    const up = upstream();
    const handler = policy(time, { staleWhileRevalidateMs: 60_000, refreshTimeoutMs: 20 })(up.handler);
    await handler(makeCall());
    await flush();
    time.advance(1_000);
    up.set(
      (n) =>
        new Promise<Reply>((_resolve, reject) => {
          const signal = up.calls[n - 1]!.signal;
          signal.addEventListener('abort', () => reject(signal.reason as Error));
        }),
    );
    expect(result(await handler(makeCall()))).toBe('stale');
    await expect
      .poll(() => up.calls[1]?.signal.reason)
      .toMatchObject({
        code: 'GW_UPSTREAM_TIMEOUT',
        message: 'background refresh exceeded 20 ms',
      });
    await flush();
    expect(result(await handler(makeCall()))).toBe('stale');
    await expect.poll(() => up.calls.length).toBe(3);
  });
});

describe('what the cache policy reports', () => {
  it('publishes every lookup with its route and result', async () => {
    const lookups = recordEvents(events.cacheLookup);
    const time = clock();
    const handler = policy(time, { staleWhileRevalidateMs: 5_000 })(upstream().handler);
    await handler(makeCall());
    await flush();
    await handler(makeCall());
    time.advance(1_000);
    await handler(makeCall());
    await handler(makeCall({ method: 'POST' }));
    expect(lookups).toEqual([
      { route: 'r', result: 'miss' },
      { route: 'r', result: 'hit' },
      { route: 'r', result: 'stale' },
      { route: 'r', result: 'bypass' },
    ]);
  });

  it('counts a failing store as a miss and says which operation failed', async () => {
    const errors = recordEvents(events.cacheStoreError);
    const broken: CacheStore = {
      get: async () => {
        throw new Error('get failed');
      },
      set: async () => {
        throw new Error('set failed');
      },
      purge: async () => 0,
      stats: () => ({ entries: 0, bytes: 0 }),
      close: async () => {},
    } as unknown as CacheStore;
    const time = clock();
    const reply = await policy(time, { store: broken })(upstream().handler)(makeCall());
    expect(result(reply)).toBe('miss');
    await flush();
    expect(errors.map((e) => [e.route, e.operation])).toEqual([
      ['r', 'get'],
      ['r', 'set'],
    ]);
  });
});
