import { describe, expect, it } from 'vitest';
import { memoryCache } from '../../src/cache/memory.js';
import type { CacheEntry } from '../../src/cache/store.js';
import { GatewayError } from '../../src/errors.js';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { cache } from '../../src/policies/cache.js';
import type { CachePolicyOptions } from '../../src/policies/cache.js';
import { coalesce } from '../../src/policies/coalesce.js';
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

  it('never coalesces calls that are not idempotent', async () => {
    const up = upstream();
    const handler = coalesce({ route: 'r', key: () => 'same', maxBytes: 1024 })(up.handler);
    await Promise.all([handler(makeCall({ idempotent: false })), handler(makeCall({ idempotent: false }))]);
    expect(up.calls()).toBe(2);
  });
});
