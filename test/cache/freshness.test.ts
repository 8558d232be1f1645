import { describe, expect, it } from 'vitest';
import { parseCacheControl } from '../../src/cache/cache-control.js';
import {
  currentAgeMs,
  entryTiming,
  entryUse,
  explicitLifetimeMs,
  initialAgeMs,
  storableResponse,
  usableOnError,
} from '../../src/cache/freshness.js';
import type { FreshnessRules } from '../../src/cache/freshness.js';
import type { CacheEntry } from '../../src/cache/store.js';
import { makeEntry } from '../helpers/entries.js';

const T = Date.UTC(2026, 0, 1, 12, 0, 0); // a whole second, as Date values are
const date = (offsetS: number) => new Date(T + offsetS * 1000).toUTCString();
const RULES: FreshnessRules = {
  shared: true,
  heuristicMs: 30_000,
  staleWhileRevalidateMs: 0,
  staleIfErrorMs: 0,
  respectCacheControl: true,
};

/** Timing of a response with `headers` that took 10 ms, arriving at T. */
function timing(headers: Record<string, string | string[]>, rules: Partial<FreshnessRules> = {}) {
  const cc = parseCacheControl(headers['cache-control']);
  return entryTiming({ date: date(0), ...headers }, cc, { ...RULES, ...rules }, T - 10, T);
}
const lifetime = (headers: Record<string, string | string[]>, shared = true) =>
  explicitLifetimeMs({ date: date(0), ...headers }, parseCacheControl(headers['cache-control']), shared, T);

describe('explicit freshness (RFC 9111 §4.2.1)', () => {
  it('takes s-maxage on shared routes, then max-age, then Expires minus Date', () => {
    expect(lifetime({ 'cache-control': 's-maxage=5, max-age=60', expires: date(600) })).toBe(5_000);
    expect(lifetime({ 'cache-control': 's-maxage=5, max-age=60' }, false)).toBe(60_000);
    expect(lifetime({ 'cache-control': 'max-age=60', expires: date(600) })).toBe(60_000);
    expect(lifetime({ expires: date(600) })).toBe(600_000);
    expect(explicitLifetimeMs({ expires: date(30) }, parseCacheControl(undefined), true, T)).toBe(30_000);
    expect(lifetime({})).toBeUndefined();
  });

  it('counts an invalid max-age, s-maxage or Expires as already stale, never as absent', () => {
    const cases: Array<Record<string, string | string[]>> = [
      { 'cache-control': 'max-age=-1' },
      { 'cache-control': 'max-age="3600"' },
      { 'cache-control': 'max-age=60, max-age=3600' },
      { 'cache-control': 's-maxage=soon' },
      { expires: '0' },
      { expires: 'Thu, 01 Jan 1970 00:00:00 GMT' },
      { expires: [date(600), date(900)] },
    ];
    for (const headers of cases) {
      expect([headers, lifetime(headers)]).toEqual([headers, 0]);
    }
  });
});

describe('age (§4.2.3)', () => {
  it("adds the upstream's Age to the time the request took, or uses an older Date", () => {
    expect(initialAgeMs({ age: '120' }, T - 50, T)).toBe(120_050);
    expect(initialAgeMs({ date: date(-300), age: '120' }, T - 50, T)).toBe(299_000);
    expect(initialAgeMs({ age: '7, 9' }, T, T)).toBe(7_000); // a list: its first member
    expect(initialAgeMs({ age: 'old' }, T - 5, T)).toBe(5); // invalid: ignored
  });

  it("does not count a Date's sub-second truncation as age", () => {
    expect(initialAgeMs({ date: date(0) }, T + 990, T + 999)).toBe(9);
  });

  it('only grows until the entry is replaced', () => {
    const entry = { initialAgeMs: 120_000, storedAt: T };
    expect([T, T + 500, T + 60_000].map((at) => currentAgeMs(entry, at))).toEqual([
      120_000, 120_500, 180_000,
    ]);
    expect(currentAgeMs(entry, T - 1_000)).toBe(120_000); // another instance's clock behind: never less
  });
});

describe('entry deadlines', () => {
  it('is already stale when the upstream Age exceeds max-age', () => {
    expect(timing({ 'cache-control': 'max-age=60', age: '120' }).freshUntil).toBeLessThan(T);
    expect(timing({ 'cache-control': 'max-age=600', age: '120' }).freshUntil).toBe(
      T - 10 - 120_000 + 600_000,
    );
  });

  it('uses the route ttl only without explicit freshness, and not with no-cache or Pragma: no-cache', () => {
    expect(timing({}).freshUntil).toBe(T - 10 + 30_000);
    expect(timing({ 'cache-control': 'max-age=0' }).freshUntil).toBeLessThanOrEqual(T);
    expect(timing({ expires: date(-60) }).freshUntil).toBeLessThanOrEqual(T);
    expect(timing({ pragma: 'no-cache' }).freshUntil).toBeLessThanOrEqual(T);
    const noCache = timing({ 'cache-control': 'no-cache, max-age=600' });
    expect([noCache.freshUntil <= T, noCache.mustRevalidate]).toEqual([true, true]);
  });

  it("prefers the response's own stale windows over the route's, shorter or longer", () => {
    const route = { staleWhileRevalidateMs: 30_000, staleIfErrorMs: 30_000 };
    const own = timing({ 'cache-control': 'max-age=1, stale-while-revalidate=2, stale-if-error=120' }, route);
    expect([own.staleUntil - own.freshUntil, own.errorUntil - own.freshUntil]).toEqual([2_000, 120_000]);
    const defaults = timing({ 'cache-control': 'max-age=1' }, route);
    expect([defaults.staleUntil - defaults.freshUntil, defaults.errorUntil - defaults.freshUntil]).toEqual([
      30_000, 30_000,
    ]);
    const invalid = timing({ 'cache-control': 'max-age=1, stale-while-revalidate=-5' }, route);
    expect(invalid.staleUntil).toBe(invalid.freshUntil);
  });

  it("gives no stale window to what must be revalidated, nor the route's to what was never fresh", () => {
    const route = { staleWhileRevalidateMs: 30_000, staleIfErrorMs: 30_000 };
    for (const cc of [
      'max-age=1, must-revalidate, stale-if-error=60',
      'max-age=1, proxy-revalidate',
      's-maxage=1',
    ]) {
      const t = timing({ 'cache-control': cc }, route);
      expect([cc, t.staleUntil - t.freshUntil, t.errorUntil - t.freshUntil, t.mustRevalidate]).toEqual([
        cc,
        0,
        0,
        true,
      ]);
    }
    // proxy-revalidate and s-maxage are for shared caches: a principal-scoped route may serve stale.
    const principal = timing({ 'cache-control': 'max-age=1, proxy-revalidate' }, { ...route, shared: false });
    expect([principal.mustRevalidate, principal.errorUntil - principal.freshUntil]).toEqual([false, 30_000]);
    const never = timing({ 'cache-control': 'max-age=0' }, route);
    expect([never.staleUntil, never.errorUntil]).toEqual([never.freshUntil, never.freshUntil]);
    const ownWindow = timing({ 'cache-control': 'max-age=0, stale-while-revalidate=30' }, route);
    expect(ownWindow.staleUntil - ownWindow.freshUntil).toBe(30_000);
  });

  it('keeps an entry past its freshness when it can be revalidated or was fresh, not when neither', () => {
    expect(timing({ 'cache-control': 'max-age=60', etag: '"a"' }).keepUntil).toBe(T - 10 + 60_000 + 60_000);
    expect(timing({ 'cache-control': 'no-cache', etag: '"a"' }).keepUntil).toBe(T + 30_000);
    expect(timing({ 'cache-control': 'max-age=60' }).keepUntil).toBe(T - 10 + 120_000);
    expect(timing({ 'cache-control': 'max-age=0' }).keepUntil).toBeLessThanOrEqual(T);
    expect(timing({ 'cache-control': 'max-age=60, must-revalidate' }).keepUntil).toBe(T - 10 + 60_000);
  });

  it('ignores the upstream freshness when respectCacheControl is false', () => {
    const t = timing(
      { 'cache-control': 'no-cache, max-age=0, must-revalidate', expires: '0' },
      { respectCacheControl: false, staleIfErrorMs: 5_000 },
    );
    expect([t.freshUntil, t.errorUntil - t.freshUntil, t.mustRevalidate]).toEqual([
      T - 10 + 30_000,
      5_000,
      false,
    ]);
  });
});

describe('what may be stored (§3)', () => {
  const storable = (status: number, headers: Record<string, string | string[]>, respect = true) =>
    storableResponse(status, headers, parseCacheControl(headers['cache-control']), {
      ...RULES,
      respectCacheControl: respect,
    });

  it('stores cacheable statuses only, never with Set-Cookie, Vary: * or no-store', () => {
    expect(storable(200, {})).toBe(true);
    expect(storable(404, {})).toBe(true);
    expect(storable(206, {})).toBe(false);
    expect(storable(500, {})).toBe(false);
    expect(storable(200, { 'set-cookie': 'a=1' })).toBe(false);
    expect(storable(200, { vary: ['Accept', '*'] })).toBe(false);
    expect(storable(200, { 'cache-control': 'no-store' })).toBe(false);
    expect(storable(200, { 'cache-control': 'no-store' }, false)).toBe(true);
  });
});

describe('what a request accepts (§5.2.1)', () => {
  const at = T + 10_000;
  const entry = (overrides: Partial<CacheEntry> = {}) =>
    makeEntry(T, 60_000, { staleUntil: T + 90_000, errorUntil: T + 120_000, ...overrides });
  const use = (e: CacheEntry, cc: string | undefined, now = at) => entryUse(e, now, parseCacheControl(cc));

  it('serves a fresh entry unless the request asks for a younger or longer-fresh one, or no-cache', () => {
    expect(use(entry(), undefined)).toBe('fresh');
    expect(use(entry(), 'max-age=5')).toBe('validate');
    expect(use(entry(), 'max-age=20')).toBe('fresh');
    expect(use(entry(), 'max-age=bad')).toBe('validate'); // invalid: as strict as max-age=0
    expect(use(entry(), 'min-fresh=55')).toBe('validate');
    expect(use(entry(), 'min-fresh=40')).toBe('fresh');
    expect(use(entry(), 'no-cache')).toBe('validate');
  });

  it('serves stale within stale-while-revalidate, or within what max-stale accepts', () => {
    const stale = T + 70_000;
    expect(use(entry(), undefined, stale)).toBe('stale-while-revalidate');
    expect(use(entry(), 'max-age=600', stale)).toBe('validate'); // a stale answer was not accepted
    expect(use(entry(), 'max-stale=5', stale)).toBe('stale-while-revalidate');
    expect(use(entry(), 'max-stale=20', stale)).toBe('stale-accepted');
    expect(use(entry(), 'max-stale', T + 1_000_000)).toBe('stale-accepted');
    expect(use(entry({ mustRevalidate: true }), 'max-stale', stale)).toBe('validate');
    expect(use(entry(), undefined, T + 100_000)).toBe('validate');
  });

  it('stands in for a failed upstream only inside stale-if-error and when the client did not insist', () => {
    expect(usableOnError(entry(), T + 100_000, parseCacheControl(undefined))).toBe(true);
    expect(usableOnError(entry(), T + 130_000, parseCacheControl(undefined))).toBe(false);
    for (const cc of ['no-cache', 'max-age=0', 'min-fresh=1']) {
      expect(usableOnError(entry(), T + 100_000, parseCacheControl(cc))).toBe(false);
    }
  });
});
