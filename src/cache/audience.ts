// Who may reuse a response: principal scoping, Authorization on shared routes (RFC 9111 §3.5), credentials without a principal.
import type { Call, Reply } from '../pipeline/types.js';
import type { CacheDirectives } from './cache-control.js';
import { sameVariant, varyNames } from './vary.js';

/**
 * Whether a principal-scoped route must not cache a call at all: it has no principal (`call.principal`,
 * later a verified identity) yet carries a credential (`credentials`: the credential headers its key
 * leaves out, e.g. `cookie`, `authorization`). Its key would be every anonymous caller's, so caller B
 * would get caller A's reply. Such calls bypass the cache and its coalescing.
 */
export function unidentifiedCaller(call: Call, credentials: readonly string[]): boolean {
  if (call.principal !== undefined) return false;
  for (const name of credentials) if (call.headers[name] !== undefined) return true;
  return false;
}

/** §3.5: a response a shared cache may reuse although the request carried `Authorization`. */
function reusableDespiteAuthorization(cc: CacheDirectives): boolean {
  return cc.has('public') || cc.has('s-maxage') || cc.has('must-revalidate');
}

/**
 * Whether a response fetched for `call` may be stored under its key: never a `private` one where the key
 * is not one caller's (a shared route, or an anonymous call, §5.2.2.7), and on shared routes never one
 * to a request with `Authorization` unless it says `public`, `s-maxage` or `must-revalidate` (§3.5).
 */
export function storableFor(call: Call, cc: CacheDirectives, shared: boolean): boolean {
  if (cc.has('private') && (shared || call.principal === undefined)) return false;
  return !(shared && call.headers.authorization !== undefined && !reusableDespiteAuthorization(cc));
}

/**
 * Whether a reply fetched for `leader` may also go to `waiter`, a coalesced caller with the same key:
 * never one that sets a cookie; only to a waiter selecting the same Vary variant; a `private` or
 * `no-store` one only where every waiter is the same caller (a principal-scoped key with a principal);
 * on shared routes one fetched with an `Authorization` the waiter does not share only if §3.5 allows.
 * (Errors are shared too, so a failing upstream is not hit once per waiter.)
 */
export function shareableWith(
  reply: Reply,
  cc: CacheDirectives,
  waiter: Call,
  leader: Call,
  shared: boolean,
): boolean {
  if (reply.headers['set-cookie'] !== undefined) return false;
  const names = varyNames(reply.headers.vary);
  if (names === '*' || (names !== undefined && !sameVariant(names, waiter.headers, leader.headers)))
    return false;
  const oneCaller = !shared && waiter.principal !== undefined;
  if (!oneCaller && (cc.has('private') || cc.has('no-store'))) return false;
  const authorization = leader.headers.authorization;
  return (
    !shared ||
    authorization === undefined ||
    authorization === waiter.headers.authorization ||
    reusableDespiteAuthorization(cc)
  );
}
