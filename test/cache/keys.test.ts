import { describe, expect, it } from 'vitest';
import { cacheKey, canonicalJson, groupOf, keyGroup } from '../../src/cache/keys.js';
import type { KeySpec } from '../../src/cache/keys.js';
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

  it('starts every key of a method and path with its group, whatever the query, principal or variant', () => {
    const group = keyGroup('r', 'GET', '/a|b');
    for (const call of [makeCall({ path: '/a|b?x=1', principal: 'p' }), makeCall({ path: '/a|b' })]) {
      const key = cacheKey('r', call, ALL);
      expect(key.startsWith(group)).toBe(true);
      expect(groupOf(key)).toBe(group);
      expect(groupOf(`${key}.variant`)).toBe(group);
    }
    expect(groupOf(cacheKey('r', makeCall({ path: '/a' }), ALL))).not.toBe(group);
  });

  it('serialises equal values identically', () => {
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null })).toBe('{"a":null,"b":[1,{"c":2,"d":1}]}');
  });
});
