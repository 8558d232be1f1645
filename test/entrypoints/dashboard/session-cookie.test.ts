import { describe, expect, it } from 'vitest';
import { SESSION_COOKIE, sessionCookies } from '../../../src/entrypoints/dashboard/session-cookie.js';

const TOKEN = 'admin-token-0123456789';

describe('sessionCookies', () => {
  it('issues an HttpOnly, SameSite=Strict cookie limited to the dashboard path that verifies until it expires', () => {
    let clock = 1_700_000_000_000;
    const cookies = sessionCookies({ token: TOKEN, path: '/dashboard', ttlMs: 60_000, now: () => clock });
    const { header, expiresAt } = cookies.issue();
    expect(header).toMatch(
      /^slipstream_dashboard=\d+\.[A-Za-z0-9_-]{43}; Path=\/dashboard; Max-Age=60; HttpOnly; SameSite=Strict$/,
    );
    expect(header).not.toContain(TOKEN);
    const value = header.slice(0, header.indexOf(';'));
    expect(cookies.verify(`theme=dark; ${value}`)).toBe(expiresAt);
    clock = expiresAt - 1;
    expect(cookies.verify(value)).toBe(expiresAt);
    clock = expiresAt;
    expect(cookies.verify(value)).toBeUndefined();
  });

  it('rejects a cookie whose expiry was extended, one signed with another token, and junk', () => {
    const now = () => 1_700_000_000_000;
    const cookies = sessionCookies({ token: TOKEN, path: '/dashboard', now });
    const value = cookies.issue().header.split(';')[0]!;
    const [expires, signature] = value.slice(SESSION_COOKIE.length + 1).split('.');
    expect(cookies.verify(`${SESSION_COOKIE}=${Number(expires) + 3600}.${signature}`)).toBeUndefined();
    const other = sessionCookies({ token: 'another-token-0123456789', path: '/dashboard', now });
    expect(other.verify(value)).toBeUndefined();
    for (const junk of [
      undefined,
      '',
      'slipstream_dashboard=',
      `${SESSION_COOKIE}=1.abc`,
      'x'.repeat(10_000),
    ]) {
      expect(cookies.verify(junk)).toBeUndefined();
    }
  });
});
