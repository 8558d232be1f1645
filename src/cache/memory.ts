// In-process cache store on lru-cache, bounded by entries and by bytes, with an index of key groups.
import { LRUCache } from 'lru-cache';
import { groupOf } from './keys.js';
import { entryBytes } from './store.js';
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

/**
 * An LRU store: least recently used entries go first when either bound is hit; expired ones go on read.
 * Every key is also indexed under its group (`groupOf`), so invalidating a path touches only its own
 * keys, never the whole store; the index holds exactly the keys the LRU holds.
 */
export function memoryCache(options: MemoryCacheOptions = {}): MemoryCacheStore {
  const now = options.now ?? Date.now;
  const maxTtlMs = options.maxTtlMs;
  const groups = new Map<string, Set<string>>();
  const unindex = (key: string) => {
    const group = groupOf(key);
    const keys = groups.get(group);
    if (keys?.delete(key) === true && keys.size === 0) groups.delete(group);
  };
  const lru = new LRUCache<string, CacheEntry>({
    max: options.maxEntries ?? 10_000,
    maxSize: options.maxBytes ?? 64 * 1024 ** 2,
    sizeCalculation: entryBytes,
    dispose: (_value, key, reason) => {
      if (reason === 'set') return; // replaced under the same key: still indexed
      unindex(key);
      if (reason !== 'evict') return;
      options.onEvict?.(key);
      publish(events.cacheEvict, { store: 'memory' });
    },
  });
  return {
    async get(key) {
      const entry = lru.get(key);
      if (entry === undefined || entry.keepUntil > now()) return entry;
      lru.delete(key);
      return undefined;
    },
    async set(key, entry) {
      const lifeMs = entry.keepUntil - now();
      if (lifeMs <= 0) return;
      if (maxTtlMs === undefined || lifeMs <= maxTtlMs) lru.set(key, entry);
      // Only the copy's life is capped: it is dropped (and re-read from L2) by then, its freshness unchanged.
      else lru.set(key, { ...entry, keepUntil: now() + maxTtlMs });
      if (!lru.has(key)) return; // too large to keep
      const group = groupOf(key);
      let keys = groups.get(group);
      if (keys === undefined) groups.set(group, (keys = new Set()));
      keys.add(key);
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
    async invalidate(keyGroups) {
      let deleted = 0;
      for (const group of keyGroups) {
        for (const key of [...(groups.get(group) ?? [])]) if (lru.delete(key)) deleted++;
      }
      return deleted;
    },
    async close() {
      lru.clear();
      groups.clear();
    },
    stats: () => ({ entries: lru.size, bytes: lru.calculatedSize }),
  };
}
