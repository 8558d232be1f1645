// In-process cache store on lru-cache, bounded by entries and by bytes.
import { LRUCache } from 'lru-cache';
import { entryBytes, expiresAt } from './store.js';
import type { CacheEntry, CacheStore } from './store.js';
import { events, publish } from '../telemetry/events.js';

/** A memory store also tells how full it is (read by /metrics). */
export interface MemoryCacheStore extends CacheStore {
  stats(): { entries: number; bytes: number };
}

export interface MemoryCacheOptions {
  /** Most entries kept. Default 10,000. */
  maxEntries?: number;
  /** Most bytes kept (bodies and headers). Default 64 MiB. */
  maxBytes?: number;
  /** Called when an entry is evicted to make room (not when it expires). */
  onEvict?: (key: string) => void;
  /**
   * Longest an entry is kept, in ms, whatever its own expiry: the tiered store's L1 uses it so an
   * instance re-reads the shared tier at least this often. Default: no cap.
   */
  maxTtlMs?: number;
  /** Injectable clock for tests. Default `Date.now`. */
  now?: () => number;
}

/** An LRU store: least recently used entries go first when either bound is hit; expired ones go on read. */
export function memoryCache(options: MemoryCacheOptions = {}): MemoryCacheStore {
  const now = options.now ?? Date.now;
  const maxTtlMs = options.maxTtlMs;
  const lru = new LRUCache<string, CacheEntry>({
    max: options.maxEntries ?? 10_000,
    maxSize: options.maxBytes ?? 64 * 1024 ** 2,
    sizeCalculation: entryBytes,
    dispose: (_value, key, reason) => {
      if (reason !== 'evict') return;
      options.onEvict?.(key);
      publish(events.cacheEvict, { store: 'memory' });
    },
  });
  return {
    async get(key) {
      const entry = lru.get(key);
      if (entry === undefined || expiresAt(entry) > now()) return entry;
      lru.delete(key);
      return undefined;
    },
    async set(key, entry) {
      const lifeMs = expiresAt(entry) - now();
      if (lifeMs <= 0) return;
      if (maxTtlMs === undefined || lifeMs <= maxTtlMs) lru.set(key, entry);
      else lru.set(key, { ...entry, ...capped(entry, now() + maxTtlMs) });
    },
    async purge(prefix) {
      let purged = 0;
      for (const key of [...lru.keys()]) {
        if (key.startsWith(prefix)) {
          lru.delete(key);
          purged++;
        }
      }
      return purged;
    },
    async close() {
      lru.clear();
    },
    stats: () => ({ entries: lru.size, bytes: lru.calculatedSize }),
  };
}

/** The entry's deadlines, none later than `until`: the copy is dropped (and re-read from L2) by then. */
function capped(
  entry: CacheEntry,
  until: number,
): Pick<CacheEntry, 'freshUntil' | 'staleUntil' | 'errorUntil'> {
  return {
    freshUntil: Math.min(entry.freshUntil, until),
    staleUntil: Math.min(entry.staleUntil, until),
    errorUntil: Math.min(entry.errorUntil, until),
  };
}
