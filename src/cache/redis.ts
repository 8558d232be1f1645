// Redis cache store: entries as one binary value each (metadata + exact body bytes), expiry set in Redis.
import type { RedisConnection } from './redis-connection.js';
import { expiresAt } from './store.js';
import type { CacheEntry, CacheStore } from './store.js';

export interface RedisCacheOptions {
  connection: RedisConnection;
  /** Prefix of every key this store writes. Default `slipstream:cache:`. */
  keyPrefix?: string;
  /** Injectable clock for tests. Default `Date.now`. */
  now?: () => number;
}

/** Keys deleted per UNLINK while purging. */
const PURGE_BATCH = 500;

/**
 * A shared store for many gateway instances. Values are binary-safe; Redis drops each entry at its last
 * useful moment (`PX`). Calls reject while Redis is down or slow (see `redisConnection`): the cache policy
 * counts that as a miss, and the tiered store falls back to memory.
 */
export function redisCache(options: RedisCacheOptions): CacheStore {
  const { client, timed } = options.connection;
  const prefix = options.keyPrefix ?? 'slipstream:cache:';
  const now = options.now ?? Date.now;
  return {
    async get(key) {
      const value = await timed(client.get(prefix + key));
      if (value === null) return undefined;
      const entry = decodeEntry(value);
      return entry !== undefined && expiresAt(entry) > now() ? entry : undefined;
    },
    async set(key, entry) {
      const ttlMs = Math.ceil(expiresAt(entry) - now());
      if (ttlMs > 0)
        await timed(
          client.set(prefix + key, encodeEntry(entry), { expiration: { type: 'PX', value: ttlMs } }),
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
      f: entry.freshUntil,
      w: entry.staleUntil,
      e: entry.errorUntil,
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
      f: number;
      w: number;
      e: number;
    };
    return {
      status: meta.s,
      headers: meta.h,
      storedAt: meta.t,
      freshUntil: meta.f,
      staleUntil: meta.w,
      errorUntil: meta.e,
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
