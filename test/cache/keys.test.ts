import { describe, expect, it } from 'vitest';
import { parseCacheControl } from '../../src/cache/cache-control.js';
import { cacheKey, canonicalJson } from '../../src/cache/keys.js';
import type { KeySpec } from '../../src/cache/keys.js';
import { memoryCache } from '../../src/cache/memory.js';
import type { CacheEntry } from '../../src/cache/store.js';
import { makeCall } from '../helpers/calls.js';

const ALL: KeySpec = { query: '*', headers: [], body: '*', scope: 'principal' };

describe('cache keys', () => {
  it('keeps route, method and path readable for purging, and hashes the rest', () => {
    expect(cacheKey('quotes', makeCall({ path: '/q/AAPL?x=1' }), ALL)).toMatch(
      /^quotes\|GET \/q\/AAPL\|[\w-]{43}$/,
    );
  });

  it('ignores the order of query parameters and JSON body fields', () => {
    const a = cacheKey(
      'r',
      makeCall({ path: '/s?a=1&b=2', body: Buffer.from('{"x":1,"y":{"p":1,"q":2}}') }),
      ALL,
    );
    const b = cacheKey(
      'r',
      makeCall({ path: '/s?b=2&a=1', body: Buffer.from('{"y":{"q":2,"p":1},"x":1}') }),
      ALL,
    );
    expect(a).toBe(b);
  });

  it('varies only on the selected query parameters, headers and body fields', () => {
    const spec: KeySpec = {
      query: ['symbol'],
      headers: ['accept-language'],
      body: ['query'],
      scope: 'shared',
    };
    const base = {
      path: '/s?symbol=A&trace=1',
      headers: { 'accept-language': 'en' },
      body: Buffer.from('{"query":"x","page":1}'),
    };
    const key = cacheKey('r', makeCall(base), spec);
    expect(cacheKey('r', makeCall({ ...base, path: '/s?symbol=A&trace=2' }), spec)).toBe(key);
    expect(cacheKey('r', makeCall({ ...base, body: Buffer.from('{"query":"x","page":2}') }), spec)).toBe(key);
    expect(cacheKey('r', makeCall({ ...base, path: '/s?symbol=B' }), spec)).not.toBe(key);
    expect(cacheKey('r', makeCall({ ...base, headers: { 'accept-language': 'fr' } }), spec)).not.toBe(key);
  });

  it('includes the principal only on principal-scoped routes, and never in clear', () => {
    const alice = cacheKey('r', makeCall({ principal: 'Bearer secret-alice' }), ALL);
    expect(alice).not.toBe(cacheKey('r', makeCall({ principal: 'Bearer bob' }), ALL));
    expect(alice).not.toContain('secret-alice');
    const shared = { ...ALL, scope: 'shared' as const };
    expect(cacheKey('r', makeCall({ principal: 'a' }), shared)).toBe(
      cacheKey('r', makeCall({ principal: 'b' }), shared),
    );
  });

  it('serialises equal values identically', () => {
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[1,{"c":2,"d":1}]}');
  });
});

describe('Cache-Control parsing', () => {
  it('reads flags and delta-seconds, case-insensitively, across several headers', () => {
    const cc = parseCacheControl(['Public, MAX-AGE=60', 's-maxage="30", no-transform, max-stale=abc']);
    expect(cc.get('public')).toBe(true);
    expect(cc.get('max-age')).toBe(60);
    expect(cc.get('s-maxage')).toBe(30);
    expect(cc.get('max-stale')).toBe(true); // malformed number: treated as a flag
    expect(parseCacheControl(undefined).size).toBe(0);
  });
});

describe('memory store', () => {
  const entry = (now: number, bytes: number, ttl = 1000): CacheEntry => ({
    status: 200,
    headers: {},
    body: Buffer.alloc(bytes),
    storedAt: now,
    freshUntil: now + ttl,
    staleUntil: now + ttl,
    errorUntil: now + ttl,
  });

  it('forgets entries whose last useful moment has passed', async () => {
    let now = 0;
    const store = memoryCache({ now: () => now });
    await store.set('k', entry(now, 10));
    expect(await store.get('k')).toBeDefined();
    now = 1000;
    expect(await store.get('k')).toBeUndefined();
  });

  it('evicts least recently used entries past its byte bound, and counts evictions', async () => {
    const evicted: string[] = [];
    const store = memoryCache({ maxBytes: 3000, onEvict: (key) => evicted.push(key) });
    const now = Date.now();
    await store.set('a', entry(now, 1000));
    await store.set('b', entry(now, 1000));
    await store.get('a');
    await store.set('c', entry(now, 1000));
    expect(evicted).toEqual(['b']);
    expect(await store.get('a')).toBeDefined();
  });

  it('purges by key prefix', async () => {
    const store = memoryCache();
    const now = Date.now();
    for (const key of ['quotes|GET /q/A|x', 'quotes|GET /q/B|y', 'traces|GET /t|z'])
      await store.set(key, entry(now, 1));
    expect(await store.purge('quotes|')).toBe(2);
    expect(await store.get('traces|GET /t|z')).toBeDefined();
  });
});
