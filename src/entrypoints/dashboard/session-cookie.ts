// The dashboard's sign-in cookie: an expiry time signed with a key derived from the admin token (HMAC-SHA256).
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface SessionCookieOptions {
  /** The admin token the key is derived from: rotating the token signs every browser out. */
  token: string;
  /** Paths the cookie is sent to (RFC 6265 §5.1.4 path-match): the dashboard's, never `/metrics` or a purge. */
  path: string;
  /** Lifetime, in ms. Default one hour. */
  ttlMs?: number;
  /** Injectable clock (epoch ms). Default `Date.now`. */
  now?: () => number;
}

export interface SessionCookies {
  /** A `Set-Cookie` header value for a session that ends `ttlMs` from now, and that end (epoch ms). */
  issue(): { header: string; expiresAt: number };
  /** The session's end (epoch ms) when `cookieHeader` carries a valid, unexpired cookie; else undefined. */
  verify(cookieHeader: string | undefined): number | undefined;
}

export const SESSION_COOKIE = 'slipstream_dashboard';
/** Longest `Cookie` header searched (Node already bounds the whole head at 16 KB). */
const MAX_COOKIE_HEADER = 8_192;

/**
 * Issues and checks `slipstream_dashboard=<expiry>.<signature>`. The signature is HMAC-SHA256 over the
 * expiry with a key derived from the admin token, so the cookie proves its holder once had the token,
 * reveals nothing of it, cannot be extended, and works on every process that has the same token.
 * Attributes (RFC 6265bis): `HttpOnly` (page scripts never read it), `SameSite=Strict` (no other site's page
 * can make the browser send it), `Path` limited to the dashboard, `Max-Age`. Not `Secure`: the admin
 * listener speaks plain HTTP, and a `Secure` cookie would never come back over it (put TLS in front of a
 * listener reachable beyond loopback).
 */
export function sessionCookies(options: SessionCookieOptions): SessionCookies {
  const ttlMs = options.ttlMs ?? 60 * 60 * 1000;
  const now = options.now ?? Date.now;
  const key = createHmac('sha256', options.token).update('slipstream dashboard session v1').digest();
  const sign = (expiresS: number) => createHmac('sha256', key).update(`dashboard.${expiresS}`).digest();

  return {
    issue() {
      const expiresS = Math.floor((now() + ttlMs) / 1000);
      const value = `${expiresS}.${sign(expiresS).toString('base64url')}`;
      return {
        header: `${SESSION_COOKIE}=${value}; Path=${options.path}; Max-Age=${Math.floor(ttlMs / 1000)}; HttpOnly; SameSite=Strict`,
        expiresAt: expiresS * 1000,
      };
    },
    verify(cookieHeader) {
      if (cookieHeader === undefined || cookieHeader.length > MAX_COOKIE_HEADER) return undefined;
      for (const pair of cookieHeader.split(';')) {
        const at = pair.indexOf('=');
        if (at === -1 || pair.slice(0, at).trim() !== SESSION_COOKIE) continue;
        const match = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(pair.slice(at + 1).trim());
        if (match === null) continue;
        const expiresS = Number(match[1]);
        const given = Buffer.from(match[2]!, 'base64url');
        const expected = sign(expiresS);
        if (given.length === expected.length && timingSafeEqual(given, expected) && expiresS * 1000 > now()) {
          return expiresS * 1000;
        }
      }
      return undefined;
    },
  };
}
