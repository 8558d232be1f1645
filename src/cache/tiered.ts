// Tiered cache store: in-process memory (L1) in front of Redis (L2); degrades to L1 alone while Redis is down.
import { events, publish } from '../telemetry/events.js';
import type { RedisConnection } from './redis-connection.js';
import type { CacheEntry, CacheStore } from './store.js';

export interface TieredCacheOptions {
  /** The in-process tier; give it a `maxTtlMs` so instances re-read Redis at least that often. */
  l1: CacheStore;
  /** The shared tier (a `redisCache`). */
  l2: CacheStore;
  /** The L2 connection, for its health: while it is down, L2 is not even tried. */
  connection: Pick<RedisConnection, 'isUp'>;
}

/**
 * Reads L1, then L2 (copying an L2 hit into L1); writes, purges and invalidates both (other instances'
 * L1 copies are dropped through the purge bus, see `createCacheTier`). While Redis is down every operation uses
 * L1 alone, with no per-request error or wait, and goes back to both tiers as soon as the connection is
 * ready again (`redisConnection` publishes both transitions). An L2 failure is never a request failure.
 */
export function tieredCache(options: TieredCacheOptions): CacheStore {
  const { l1, l2, connection } = options;
  const failed = (operation: 'get' | 'set' | 'purge' | 'invalidate') => (error: unknown) => {
    publish(events.cacheTierError, { tier: 'redis', operation, error });
    return undefined;
  };
  return {
    async get(key) {
      const local = await l1.get(key);
      if (local !== undefined || !connection.isUp()) return local;
      const shared: CacheEntry | undefined = await l2.get(key).catch(failed('get'));
      if (shared !== undefined) await l1.set(key, shared);
      return shared;
    },
    async getShared(key) {
      if (!connection.isUp()) return l1.get(key);
      const shared: CacheEntry | undefined = await l2.get(key).catch(failed('get'));
      if (shared === undefined) return l1.get(key);
      await l1.set(key, shared);
      return shared;
    },
    async set(key, entry) {
      await l1.set(key, entry);
      if (connection.isUp()) await l2.set(key, entry).catch(failed('set'));
    },
    async purge(prefix) {
      const local = await l1.purge(prefix);
      if (!connection.isUp()) return local;
      const shared = await l2.purge(prefix).catch(failed('purge'));
      return Math.max(local, shared ?? 0);
    },
    async invalidate(groups) {
      const local = await l1.invalidate(groups);
      if (!connection.isUp()) return local;
      const shared = await l2.invalidate(groups).catch(failed('invalidate'));
      return Math.max(local, shared ?? 0);
    },
    async close() {
      await Promise.all([l1.close(), l2.close()]);
    },
  };
}
