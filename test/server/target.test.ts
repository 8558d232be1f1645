import { describe, expect, it } from 'vitest';
import { parseTarget } from '../../src/server/target.js';

const path = (url: string) => parseTarget(url).path;
const refused = (url: string) => {
  try {
    parseTarget(url);
    return undefined;
  } catch (error) {
    return (error as { code: string }).code;
  }
};

describe('request targets', () => {
  it('returns a clean origin-form path and its query untouched', () => {
    expect(parseTarget('/api/users/7?x=1&y=%2F')).toEqual({ path: '/api/users/7', query: '?x=1&y=%2F' });
    expect(parseTarget('/')).toEqual({ path: '/', query: '' });
  });

  it('removes dot-segments, percent-encoded ones too, before routing (RFC 3986 §5.2.4)', () => {
    expect(path('/api/../admin')).toBe('/admin');
    expect(path('/api/%2e%2e/admin')).toBe('/admin');
    expect(path('/api/%2E%2E/%2e/admin/./x')).toBe('/admin/x');
    expect(path('/a/b/..')).toBe('/a/');
    expect(path('/a/.')).toBe('/a/');
  });

  it('merges empty segments and keeps a trailing slash', () => {
    expect(path('//api///x/')).toBe('/api/x/');
  });

  it('refuses absolute-form and asterisk-form targets: no forward proxying', () => {
    expect(refused('http://169.254.169.254/latest/meta-data')).toBe('GW_BAD_REQUEST');
    expect(refused('*')).toBe('GW_BAD_REQUEST');
  });

  it('refuses a path that climbs above the root', () => {
    expect(refused('/../etc/passwd')).toBe('GW_BAD_REQUEST');
    expect(refused('/a/../../b')).toBe('GW_BAD_REQUEST');
  });

  it('refuses encoded separators, backslashes, NUL and disguised dot-segments', () => {
    for (const url of [
      '/api/..%2fadmin',
      '/api/%2F..',
      '/a%5c..',
      '/a\\..\\b',
      '/a%00b',
      '/api/..;/admin',
      '/x/.;/y',
    ]) {
      expect(refused(url), url).toBe('GW_BAD_REQUEST');
    }
  });
});
