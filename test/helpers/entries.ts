// Builds cache entries for store and policy unit tests.
import type { CacheEntry } from '../../src/cache/store.js';

/** An entry stored at `now`, fresh and kept for `ttlMs`; `overrides` win. */
export function makeEntry(now: number, ttlMs = 1000, overrides: Partial<CacheEntry> = {}): CacheEntry {
  return {
    status: 200,
    headers: {},
    body: Buffer.from('body'),
    storedAt: now,
    initialAgeMs: 0,
    freshUntil: now + ttlMs,
    staleUntil: now + ttlMs,
    errorUntil: now + ttlMs,
    keepUntil: now + ttlMs,
    mustRevalidate: false,
    ...overrides,
  };
}
