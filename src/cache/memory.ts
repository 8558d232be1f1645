// In-process cache store on lru-cache, bounded by entries and by bytes.
import { LRUCache } from 'lru-cache';
import { entryBytes, expiresAt } from './store.js';
import type { CacheEntry, CacheStore } from './store.js';

export interface MemoryCacheOptions {
  /** Most entries kept. Default 10,000. */
  maxEntries?: number;
  /** Most bytes kept (bodies and headers). Default 64 MiB. */
  maxBytes?: number;
  /** Called when an entry is evicted to make room (not when it expires). */
  onEvict?: (key: string) => void;
  /** Injectable clock for tests. Default `Date.now`. */
  now?: () => number;
}

/** An LRU store: least recently used entries go first when either bound is hit; expired ones go on read. */
export function memoryCache(options: MemoryCacheOptions = {}): CacheStore {
  const now = options.now ?? Date.now;
  const lru = new LRUCache<string, CacheEntry>({
    max: options.maxEntries ?? 10_000,
    maxSize: options.maxBytes ?? 64 * 1024 ** 2,
    sizeCalculation: entryBytes,
    dispose: (_value, key, reason) => {
      if (reason === 'evict') options.onEvict?.(key);
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
      if (expiresAt(entry) > now()) lru.set(key, entry);
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
  };
}
