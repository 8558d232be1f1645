// Redis cache store: entries as one binary value each (metadata + exact body bytes), expiry set in Redis.
import { groupOf } from './keys.js';
import type { RedisConnection } from './redis-connection.js';
import type { CacheEntry, CacheStore } from './store.js';

export interface RedisCacheOptions {
  connection: RedisConnection;
  /** Prefix of every entry key this store writes. Default `slipstream:cache:`. */
  keyPrefix?: string;
  /** Prefix of the key-group index sets (one per method and path, listing its keys). Default `slipstream:cache-index:`. */
  indexPrefix?: string;
  /** Injectable clock for tests. Default `Date.now`. */
  now?: () => number;
}

/** Keys deleted per UNLINK while purging. */
const PURGE_BATCH = 500;

/**
 * Writes the entry and lists its key in its group's index set, whose expiry is kept at least as late as
 * the entry's (PTTL rather than PEXPIRE GT, which Redis 6 lacks). One script, so an entry is never
 * stored unindexed. KEYS: entry, index; ARGV: value, ttl ms, key.
 */
const SET_INDEXED = `redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
redis.call('sadd', KEYS[2], ARGV[3])
if redis.call('pttl', KEYS[2]) < tonumber(ARGV[2]) then redis.call('pexpire', KEYS[2], ARGV[2]) end
return 1`;

/**
 * Deletes every key listed in the given index sets, and the sets. Atomic, so an entry stored meanwhile is
 * either deleted or listed in a fresh set. The entry keys are computed here from the index (a single
 * Redis, as the store is: not for Redis Cluster). KEYS: index sets; ARGV: entry key prefix.
 */
const INVALIDATE = `local deleted = 0
for _, index in ipairs(KEYS) do
  for _, key in ipairs(redis.call('smembers', index)) do
    deleted = deleted + redis.call('unlink', ARGV[1] .. key)
  end
  redis.call('unlink', index)
end
return deleted`;

/**
 * A shared store for many gateway instances. Values are binary-safe; Redis drops each entry at its last
 * useful moment (`PX`). Calls reject while Redis is down or slow (see `redisConnection`): the cache policy
 * counts that as a miss, and the tiered store falls back to memory.
 */
export function redisCache(options: RedisCacheOptions): CacheStore {
  const { client, timed } = options.connection;
  const prefix = options.keyPrefix ?? 'slipstream:cache:';
  const indexPrefix = options.indexPrefix ?? 'slipstream:cache-index:';
  const now = options.now ?? Date.now;
  return {
    async get(key) {
      const value = await timed(client.get(prefix + key));
      if (value === null) return undefined;
      const entry = decodeEntry(value);
      return entry !== undefined && entry.keepUntil > now() ? entry : undefined;
    },
    async set(key, entry) {
      const ttlMs = Math.ceil(entry.keepUntil - now());
      if (ttlMs <= 0) return;
      await timed(
        client.eval(SET_INDEXED, {
          keys: [prefix + key, indexPrefix + groupOf(key)],
          arguments: [encodeEntry(entry), String(ttlMs), key],
        }),
      );
    },
    async purge(keyPrefix) {
      let purged = 0;
      const match = `${escapeGlob(prefix + keyPrefix)}*`;
      for await (const keys of client.scanIterator({ MATCH: match, COUNT: 1_000 })) {
        for (let i = 0; i < keys.length; i += PURGE_BATCH) {
          purged += await client.unlink(keys.slice(i, i + PURGE_BATCH));
        }
      }
      return purged;
    },
    async invalidate(groups) {
      if (groups.length === 0) return 0;
      const deleted = await timed(
        client.eval(INVALIDATE, { keys: groups.map((g) => indexPrefix + g), arguments: [prefix] }),
      );
      return Number(deleted);
    },
    async close() {
      // The connection is shared; its owner closes it.
    },
  };
}

/**
 * `[4-byte metadata length][metadata JSON][body]`: the body is stored as raw bytes, never re-encoded,
 * so a cached image or gzip body comes back byte for byte.
 */
export function encodeEntry(entry: CacheEntry): Buffer {
  const meta = Buffer.from(
    JSON.stringify({
      s: entry.status,
      h: entry.headers,
      t: entry.storedAt,
      a: entry.initialAgeMs,
      f: entry.freshUntil,
      w: entry.staleUntil,
      e: entry.errorUntil,
      k: entry.keepUntil,
      r: entry.mustRevalidate ? 1 : 0,
      ...(entry.vary === undefined ? {} : { v: entry.vary }),
    }),
  );
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(meta.length);
  return Buffer.concat([head, meta, entry.body]);
}

/** Reverses {@link encodeEntry}; undefined for a value this version cannot read (treated as a miss). */
export function decodeEntry(value: Buffer): CacheEntry | undefined {
  if (value.length < 4) return undefined;
  const metaLength = value.readUInt32BE(0);
  if (4 + metaLength > value.length) return undefined;
  try {
    const meta = JSON.parse(value.subarray(4, 4 + metaLength).toString('utf8')) as {
      s: number;
      h: CacheEntry['headers'];
      t: number;
      a?: number;
      f: number;
      w: number;
      e: number;
      k?: number;
      r?: number;
      v?: string[];
    };
    return {
      status: meta.s,
      headers: meta.h,
      storedAt: meta.t,
      // Entries written before Age and revalidation were tracked: age 0, kept to their last deadline.
      initialAgeMs: meta.a ?? 0,
      freshUntil: meta.f,
      staleUntil: meta.w,
      errorUntil: meta.e,
      keepUntil: meta.k ?? Math.max(meta.f, meta.w, meta.e),
      mustRevalidate: meta.r === 1,
      ...(meta.v === undefined ? {} : { vary: meta.v }),
      body: value.subarray(4 + metaLength),
    };
  } catch {
    return undefined;
  }
}

/** Escapes Redis glob characters so a key prefix matches literally in SCAN MATCH. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
