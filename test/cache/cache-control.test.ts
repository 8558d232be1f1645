import { describe, expect, it } from 'vitest';
import { directiveMs, parseCacheControl } from '../../src/cache/cache-control.js';

describe('Cache-Control parsing', () => {
  it('reads flags and delta-seconds, case-insensitively, across several header lines', () => {
    const cc = parseCacheControl(['Public, MAX-AGE=60', 's-maxage=30, no-transform']);
    expect(cc.get('public')).toBe(true);
    expect(cc.get('max-age')).toBe(60);
    expect(cc.get('s-maxage')).toBe(30);
    expect(cc.get('no-transform')).toBe(true);
    expect(parseCacheControl(undefined).size).toBe(0);
  });

  it('keeps a quoted, negative or missing delta-seconds as invalid rather than absent', () => {
    const cc = parseCacheControl('max-age="3600", s-maxage=-1, stale-if-error');
    expect(cc.get('max-age')).toBe('"3600"');
    expect(directiveMs(cc, 'max-age')).toBeNaN();
    expect(directiveMs(cc, 's-maxage')).toBeNaN();
    expect(directiveMs(cc, 'stale-if-error')).toBeNaN();
    expect(directiveMs(cc, 'stale-while-revalidate')).toBeUndefined();
  });

  it('treats a directive repeated with another argument as invalid, and an identical repeat as one', () => {
    expect(directiveMs(parseCacheControl('max-age=60, max-age=120'), 'max-age')).toBeNaN();
    expect(directiveMs(parseCacheControl(['max-age=60', 'max-age=60']), 'max-age')).toBe(60_000);
  });

  it('does not split at commas inside quoted strings', () => {
    const cc = parseCacheControl('no-cache="Set-Cookie, X-Token", max-age=5');
    expect(cc.get('no-cache')).toBe('"Set-Cookie, X-Token"');
    expect(cc.get('max-age')).toBe(5);
    expect(cc.has('x-token"')).toBe(false);
  });

  it('counts delta-seconds too large to represent as 2^31 (RFC 9111 §1.2.2)', () => {
    expect(parseCacheControl('max-age=99999999999999999999').get('max-age')).toBe(2 ** 31);
  });
});
