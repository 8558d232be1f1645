// RFC 9111 freshness as pure functions: what may be stored, for how long, how old it is, what a request accepts.
import { directiveMs } from './cache-control.js';
import type { CacheDirectives } from './cache-control.js';
import { hasValidator } from './conditional.js';
import { parseHttpDate } from './http-date.js';
import type { CacheEntry } from './store.js';
import { varyNames } from './vary.js';

type ResponseHeaders = Readonly<Record<string, string | string[] | undefined>>;

/** A route's caching settings, fixed at start-up. Durations in ms. */
export interface FreshnessRules {
  /** `scope: shared`: the rules of a shared cache apply (s-maxage, proxy-revalidate). */
  shared: boolean;
  /** The route `ttl`: heuristic freshness (§4.2.2) for a response that states none. */
  heuristicMs: number;
  /** The route's stale-while-revalidate (RFC 5861), for responses that state none. */
  staleWhileRevalidateMs: number;
  /** The route's stale-if-error (RFC 5861), for responses that state none. */
  staleIfErrorMs: number;
  /**
   * False: the upstream's freshness is ignored (no-store, no-cache, max-age, Expires, must-revalidate and
   * the stale directives): every response lives `heuristicMs` with the route's stale windows.
   */
  respectCacheControl: boolean;
}

/** The deadlines of an entry (see {@link CacheEntry}). */
export type EntryTiming = Pick<
  CacheEntry,
  'storedAt' | 'initialAgeMs' | 'freshUntil' | 'staleUntil' | 'errorUntil' | 'keepUntil' | 'mustRevalidate'
>;

/** How a stored entry may answer a request. */
export type EntryUse =
  /** Fresh, and fresh enough for the request: a hit. */
  | 'fresh'
  /** Stale, inside its stale-while-revalidate window: served while one background refresh runs. */
  | 'stale-while-revalidate'
  /** Stale, but the client accepts that much staleness (`max-stale`): served as it is. */
  | 'stale-accepted'
  /** Not usable without asking the origin: revalidated (conditionally when it has a validator) or refetched. */
  | 'validate';

/** Statuses cacheable without explicit freshness (RFC 9110 §15.1): the only ones this cache stores. */
const CACHEABLE_STATUS = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

/**
 * `Date` has a resolution of one second: a response generated just now carries a Date up to 999 ms in
 * the past. The apparent age counts only what lies beyond that, or every sub-second `ttl` would start stale.
 */
const DATE_RESOLUTION_MS = 1000;

/** RFC 9111 §1.2.2: delta-seconds beyond what can be represented count as 2^31. */
const MAX_DELTA_SECONDS = 2 ** 31;

/**
 * Whether a response may be stored whoever asked for it (§3): a cacheable status, no `Set-Cookie` (a
 * session belongs to one client), no `Vary: *` in any member of any line (§4.1), no `no-store`.
 */
export function storableResponse(
  status: number,
  headers: ResponseHeaders,
  cc: CacheDirectives,
  rules: FreshnessRules,
): boolean {
  if (!CACHEABLE_STATUS.has(status) || headers['set-cookie'] !== undefined) return false;
  if (varyNames(headers.vary) === '*') return false;
  return !rules.respectCacheControl || !cc.has('no-store');
}

/**
 * The deadlines of a response that arrived at `responseTime` for a request sent upstream at
 * `requestTime` (epoch ms). Freshness (§4.2.1) comes from `s-maxage` (shared routes), else `max-age`,
 * else `Expires` minus `Date`; an invalid one (`max-age=-1`, `max-age="3600"`, a conflicting repeat,
 * `Expires: 0`, several Expires lines) counts as already stale, never as absent. Only a response with none
 * of them gets the route `ttl` as heuristic freshness (§4.2.2), and not with `Pragma: no-cache`; `no-cache`
 * means stale at once. The current age counts from the upstream's `Age` and `Date` (§4.2.3).
 *
 * Stale windows: the response's own `stale-while-revalidate` / `stale-if-error` when it has them, else
 * the route's, which apply only to a response with a non-zero freshness (an origin that says "stale at
 * once" gets no stale serving it did not ask for); none at all for `must-revalidate`, `no-cache`, and on
 * shared routes `proxy-revalidate` and `s-maxage` (§4.2.4). An entry with a validator, or one that was
 * fresh and may be served stale, is kept for as long again as its freshness (at least the route `ttl`)
 * past it: for a conditional revalidation, or a client's `max-stale`.
 */
export function entryTiming(
  headers: ResponseHeaders,
  cc: CacheDirectives,
  rules: FreshnessRules,
  requestTime: number,
  responseTime: number,
): EntryTiming {
  const respect = rules.respectCacheControl;
  const initialAge = initialAgeMs(headers, requestTime, responseTime);
  const noCache = respect && cc.has('no-cache');
  let lifetimeMs = rules.heuristicMs;
  if (noCache) lifetimeMs = 0;
  else if (respect)
    lifetimeMs = explicitLifetimeMs(headers, cc, rules.shared, responseTime) ?? heuristic(headers, rules);
  const mustRevalidate =
    noCache ||
    (respect &&
      (cc.has('must-revalidate') || (rules.shared && (cc.has('proxy-revalidate') || cc.has('s-maxage')))));
  const freshUntil = responseTime - initialAge + lifetimeMs;
  const window = (directive: string, routeMs: number): number => {
    if (mustRevalidate) return 0;
    const own = respect ? directiveMs(cc, directive) : undefined;
    if (own !== undefined) return Number.isNaN(own) ? 0 : own;
    return lifetimeMs > 0 ? routeMs : 0;
  };
  const staleUntil = freshUntil + window('stale-while-revalidate', rules.staleWhileRevalidateMs);
  const errorUntil = freshUntil + window('stale-if-error', rules.staleIfErrorMs);
  // Kept past its freshness to be revalidated (it has a validator) or given to a client's max-stale (it
  // was fresh once and may be served stale): for as long again as its freshness, at least the route ttl.
  const keptStale = hasValidator(headers) || (lifetimeMs > 0 && !mustRevalidate);
  const revalidateUntil = keptStale
    ? Math.max(freshUntil, responseTime) + Math.max(lifetimeMs, rules.heuristicMs)
    : freshUntil;
  return {
    storedAt: responseTime,
    initialAgeMs: initialAge,
    freshUntil,
    staleUntil,
    errorUntil,
    keepUntil: Math.max(staleUntil, errorUntil, revalidateUntil),
    mustRevalidate,
  };
}

/**
 * The explicit freshness lifetime in ms (§4.2.1), or undefined when the response states none. `Expires`
 * is ignored when `max-age` (or on shared routes `s-maxage`) is present (§5.3).
 */
export function explicitLifetimeMs(
  headers: ResponseHeaders,
  cc: CacheDirectives,
  shared: boolean,
  responseTime: number,
): number | undefined {
  const sMaxAge = shared ? directiveMs(cc, 's-maxage') : undefined;
  if (sMaxAge !== undefined) return Number.isNaN(sMaxAge) ? 0 : sMaxAge;
  const maxAge = directiveMs(cc, 'max-age');
  if (maxAge !== undefined) return Number.isNaN(maxAge) ? 0 : maxAge;
  if (headers.expires === undefined) return undefined;
  const expires = parseHttpDate(headers.expires); // invalid, "0" or several lines: already expired
  if (expires === undefined) return 0;
  return Math.max(0, expires - (parseHttpDate(headers.date) ?? responseTime));
}

/**
 * The age of a response when it arrived (§4.2.3 `corrected_initial_age`), in ms: the larger of its
 * apparent age from `Date` and its `Age` plus the time the request took.
 */
export function initialAgeMs(headers: ResponseHeaders, requestTime: number, responseTime: number): number {
  const date = parseHttpDate(headers.date);
  const apparent = date === undefined ? 0 : Math.max(0, responseTime - date - DATE_RESOLUTION_MS);
  const corrected = (ageSeconds(headers.age) ?? 0) * 1000 + Math.max(0, responseTime - requestTime);
  return Math.max(apparent, corrected);
}

/** An entry's current age at `now` (§4.2.3), in ms: it only grows until the entry is replaced. */
export function currentAgeMs(entry: Pick<CacheEntry, 'initialAgeMs' | 'storedAt'>, now: number): number {
  return entry.initialAgeMs + Math.max(0, now - entry.storedAt);
}

/**
 * How `entry` may answer a request with directives `request` at `now` (§4.2, §5.2.1, RFC 5861): a
 * client's `no-cache` always validates; `max-age` and `min-fresh` narrow what counts as fresh and refuse
 * stale-while-revalidate; `max-stale[=N]` accepts staleness up to N seconds (any without N), but never
 * for an entry that must be revalidated.
 */
export function entryUse(entry: CacheEntry, now: number, request: CacheDirectives): EntryUse {
  if (request.has('no-cache')) return 'validate';
  const maxAge = directiveMs(request, 'max-age');
  const minFresh = directiveMs(request, 'min-fresh');
  const ageOk = maxAge === undefined || currentAgeMs(entry, now) <= (Number.isNaN(maxAge) ? 0 : maxAge);
  const freshForMs = entry.freshUntil - now;
  if (freshForMs > 0 && ageOk && !(freshForMs < (minFresh ?? 0))) return 'fresh';
  if (entry.mustRevalidate || freshForMs > 0) return 'validate';
  const maxStale = request.get('max-stale');
  if (maxStale !== undefined && ageOk) {
    const limitMs = maxStale === true ? Infinity : typeof maxStale === 'number' ? maxStale * 1000 : 0;
    if (-freshForMs <= limitMs) return 'stale-accepted';
  }
  if (maxAge === undefined && minFresh === undefined && now < entry.staleUntil)
    return 'stale-while-revalidate';
  return 'validate';
}

/**
 * Whether `entry` may stand in for a failed upstream (RFC 5861 stale-if-error): inside its window, and
 * not for a client that asked for a fresh or validated answer (`no-cache`, `max-age`, `min-fresh`).
 */
export function usableOnError(entry: CacheEntry, now: number, request: CacheDirectives): boolean {
  return (
    now < entry.errorUntil && !request.has('no-cache') && !request.has('max-age') && !request.has('min-fresh')
  );
}

/** Heuristic freshness: the route `ttl`, except for a response with `Pragma: no-cache` (a common "do not cache"). */
function heuristic(headers: ResponseHeaders, rules: FreshnessRules): number {
  const pragma = headers.pragma;
  const text = Array.isArray(pragma) ? pragma.join(',') : pragma;
  return text !== undefined && /no-cache/i.test(text) ? 0 : rules.heuristicMs;
}

/** `Age` in seconds: its first member when it is a list, ignored when invalid (§5.1). */
function ageSeconds(value: string | string[] | undefined): number | undefined {
  const first = (Array.isArray(value) ? value[0] : value)?.split(',')[0]?.trim();
  return first !== undefined && /^\d+$/.test(first) ? Math.min(Number(first), MAX_DELTA_SECONDS) : undefined;
}
