// Builds the gateway's cache from config: memory, Redis or tiered, plus the peer lock and the purge bus.
import type { Config } from '../config/schema.js';
import { memoryCache } from './memory.js';
import type { PeerLock } from './peer-lock.js';
import { peerLock } from './peer-lock.js';
import { purgeBus } from './purge-bus.js';
import type { PurgeBus } from './purge-bus.js';
import { redisCache } from './redis.js';
import { redisConnection } from './redis-connection.js';
import type { RedisConnection } from './redis-connection.js';
import type { CacheStore } from './store.js';
import { tieredCache } from './tiered.js';

/** Everything cached routes share. */
export interface CacheTier {
  /** The store cached routes use; with a tiered store, its `invalidate` also reaches every instance's L1. */
  readonly store: CacheStore;
  /** Set when misses are coalesced across instances (Redis stores with `coalesce: true`). */
  readonly peerLock: PeerLock | undefined;
  /** The Redis connection, for other cluster-wide state (rate-limit buckets); undefined for memory alone. */
  readonly connection: RedisConnection | undefined;
  /** In-process fill, for /metrics (L1 of a tiered store; nothing for Redis alone). */
  stats(): { entries: number; bytes: number } | undefined;
  /** Purges here, in Redis, and (tiered) in every other instance's memory. Resolves with how many here. */
  purge(prefix: string): Promise<number>;
  /** Waits up to `timeoutMs` for Redis; false when it is not there yet (the gateway starts anyway). */
  ready(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Builds the configured store. Redis being down at start is not an error: it is used once it comes up. */
export function createCacheTier(config: Config['cache']): CacheTier {
  const redisConfig = config.redis;
  if (config.store === 'memory' || redisConfig === undefined) {
    const memory = memoryCache(config.memory);
    return {
      store: memory,
      peerLock: undefined,
      connection: undefined,
      stats: () => memory.stats(),
      purge: (prefix) => memory.purge(prefix),
      ready: async () => true,
      close: () => memory.close(),
    };
  }

  const connection: RedisConnection = redisConnection({
    url: redisConfig.url,
    commandTimeoutMs: redisConfig.commandTimeout,
    connectTimeoutMs: redisConfig.connectTimeout,
  });
  const shared = redisCache({
    connection,
    keyPrefix: `${redisConfig.keyPrefix}cache:`,
    indexPrefix: `${redisConfig.keyPrefix}cache-index:`,
  });
  const memory =
    config.store === 'tiered' ? memoryCache({ ...config.memory, maxTtlMs: redisConfig.l1Ttl }) : undefined;
  const tiers = memory === undefined ? shared : tieredCache({ l1: memory, l2: shared, connection });
  const bus: PurgeBus | undefined =
    memory === undefined
      ? undefined
      : purgeBus({
          connection,
          onPurge: (op) => ('prefix' in op ? memory.purge(op.prefix) : memory.invalidate(op.groups)),
        });
  // A write through this instance must also drop the other instances' L1 copies (RFC 9111 §4.4).
  const store: CacheStore =
    bus === undefined
      ? tiers
      : {
          ...tiers,
          async invalidate(groups) {
            const deleted = await tiers.invalidate(groups);
            await bus.announce({ groups });
            return deleted;
          },
        };
  return {
    store,
    connection,
    peerLock: redisConfig.coalesce
      ? peerLock({ connection, keyPrefix: `${redisConfig.keyPrefix}lock:`, lockTtlMs: redisConfig.lockTtl })
      : undefined,
    stats: () => memory?.stats(),
    async purge(prefix) {
      const purged = await store.purge(prefix);
      await bus?.announce({ prefix });
      return purged;
    },
    ready: (timeoutMs) => connection.ready(timeoutMs),
    async close() {
      await bus?.close();
      await store.close();
      await connection.close();
    },
  };
}
