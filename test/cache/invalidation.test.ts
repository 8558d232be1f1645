import { describe, expect, it } from 'vitest';
import { invalidatedPaths, invalidates } from '../../src/cache/invalidation.js';

const CACHED = new Set(['GET', 'HEAD']);
const upstream = { origin: 'http://api.internal:9000', basePath: '/v1' };

describe('writes that invalidate (RFC 9111 §4.4)', () => {
  it('are successful unsafe methods the route does not cache', () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'PURGE'])
      expect(invalidates(method, 204, CACHED)).toBe(true);
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'TRACE'])
      expect(invalidates(method, 200, CACHED)).toBe(false);
    expect(invalidates('POST', 303, CACHED)).toBe(true);
    expect(invalidates('POST', 404, CACHED)).toBe(false);
    expect(invalidates('POST', 500, CACHED)).toBe(false);
    expect(invalidates('POST', 200, new Set(['GET', 'POST']))).toBe(false); // a route that caches POST reads with it
  });
});

describe('paths a write invalidates', () => {
  it("are its own path without the query, and its Location / Content-Location on the upstream's origin", () => {
    expect(
      invalidatedPaths(
        '/items?x=1',
        { location: '/v1/items/7', 'content-location': 'http://api.internal:9000/v1/items/8?y=2' },
        upstream,
      ),
    ).toEqual(['/items', '/items/7', '/items/8']);
    expect(invalidatedPaths('/items/1', { location: '2' }, upstream)).toEqual(['/items/1', '/items/2']);
  });

  it('are never those of another origin, outside the base path, or unreadable', () => {
    for (const location of [
      'http://elsewhere.example/v1/items/9',
      'https://api.internal:9000/v1/x',
      '/other/x',
      'http://[bad',
    ]) {
      expect([location, invalidatedPaths('/items', { location }, upstream)]).toEqual([location, ['/items']]);
    }
  });

  it('without a known upstream, count only relative references', () => {
    expect(
      invalidatedPaths('/a', { location: '/b', 'content-location': 'http://x.example/c' }, undefined),
    ).toEqual(['/a', '/b']);
  });
});
