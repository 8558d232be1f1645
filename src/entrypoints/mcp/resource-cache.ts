// `resources/read` results in the gateway's cache tier, for as long as their SEP-2549 hint (or the config) says.
import { createHash } from 'node:crypto';
import type { CacheEntry, CacheStore } from '../../cache/store.js';
import { keyGroup } from '../../cache/keys.js';
import { parseCacheControl } from '../../cache/cache-control.js';
import { events, publish } from '../../telemetry/events.js';
import type { CacheResult } from '../../telemetry/events.js';
import { cacheHintOf } from '../../upstreams/mcp/mcp-client.js';
import type { McpCacheHint } from '../../upstreams/mcp/mcp-upstream.js';

export interface ResourceCacheOptions {
  /** The gateway's cache tier (memory, Redis, or both). */
  store: CacheStore;
  /** Per server: a hint used instead of the server's own (`servers.<name>.resourceCache`). */
  configured?: ReadonlyMap<string, McpCacheHint>;
  /** Largest result stored, in bytes (larger ones are relayed, not stored). Default 1 MiB. */
  maxEntryBytes?: number;
  /** Injectable clock for tests. Default `Date.now`. */
  now?: () => number;
}

/** One `resources/read` as the cache sees it. */
export interface ResourceRead {
  /** The server owning the resource, and the URI on that server. */
  server: string;
  uri: string;
  /** The verified caller: a `private` result is kept for this caller only (none: not kept). */
  principal: string | undefined;
  /** The client's `cache-control`: `no-store` bypasses the cache, `no-cache` reads upstream and stores. */
  cacheControl: string | undefined;
}

export interface ResourceCache {
  /**
   * The result of `read` for this resource and caller: from the cache while fresh, else read upstream and
   * stored for its hint's `ttlMs` (`public`: for every caller; `private`: for this principal only). A
   * result without a usable hint, with `ttlMs: 0`, an `input_required` one, or one overtaken by an
   * update while it was read is not stored. Store failures count as misses.
   */
  read(request: ResourceRead, read: () => Promise<Record<string, unknown>>): Promise<Record<string, unknown>>;
  /** `notifications/resources/updated` for `uri` of `server`: every caller's entry of it is dropped. */
  invalidate(server: string, uri: string): Promise<void>;
}

const DEFAULT_MAX_ENTRY_BYTES = 1024 ** 2;
/** Recent invalidations remembered, so a read that started before an update does not store what it read. */
const MAX_REMEMBERED_UPDATES = 10_000;

/**
 * Builds the cache for `resources/read` (SEP-2549 cache hints: `ttlMs` is how long a result stays fresh,
 * `cacheScope: private` means it may be reused for the same user only). Entries live in the gateway's
 * cache tier under `mcp-resources:<server>|READ <uri>|<hash>`, so an update drops every caller's copy
 * of one URI at once (one key group) and an admin purge by prefix reaches them.
 */
export function resourceCache(options: ResourceCacheOptions): ResourceCache {
  const { store } = options;
  const now = options.now ?? Date.now;
  const maxEntryBytes = options.maxEntryBytes ?? DEFAULT_MAX_ENTRY_BYTES;
  /**
   * Key group -> its last update: the update count then (a read started before it stores nothing) and the
   * time (an entry stored before it is never served, even while a shared tier is still deleting it).
   * Bounded: the oldest is forgotten.
   */
  const updates = new Map<string, { count: number; at: number }>();
  let updateCount = 0;

  const groupOf = (server: string, uri: string) => keyGroup(`mcp-resources:${server}`, 'READ', uri);
  const keyOf = (group: string, scope: McpCacheHint['cacheScope'], principal: string | undefined) =>
    group +
    createHash('sha256')
      .update(JSON.stringify(scope === 'public' ? ['public'] : ['private', principal]))
      .digest('base64url');
  const counted = (route: string, result: CacheResult) => publish(events.cacheLookup, { route, result });

  const lookup = async (route: string, group: string, key: string): Promise<CacheEntry | undefined> => {
    try {
      const entry = await store.get(key);
      const updated = updates.get(group)?.at ?? -Infinity;
      return entry !== undefined && now() < entry.freshUntil && entry.storedAt > updated ? entry : undefined;
    } catch (error) {
      publish(events.cacheStoreError, { route, operation: 'get', error });
      return undefined;
    }
  };

  /** A stored result, its `ttlMs` lowered to what is left of its freshness (the client may keep it that long). */
  const served = (entry: CacheEntry): Record<string, unknown> => {
    const result = JSON.parse(entry.body.toString('utf8')) as Record<string, unknown>;
    if (typeof result.ttlMs === 'number')
      result.ttlMs = Math.max(0, Math.min(result.ttlMs, entry.freshUntil - now()));
    return result;
  };

  const save = async (route: string, key: string, result: Record<string, unknown>, ttlMs: number) => {
    const body = Buffer.from(JSON.stringify(result));
    if (body.length > maxEntryBytes) return;
    const at = now();
    const entry: CacheEntry = {
      status: 200,
      headers: {},
      body,
      storedAt: at,
      initialAgeMs: 0,
      freshUntil: at + ttlMs,
      staleUntil: at + ttlMs,
      errorUntil: at + ttlMs,
      keepUntil: at + ttlMs,
      mustRevalidate: true,
    };
    try {
      await store.set(key, entry);
    } catch (error) {
      publish(events.cacheStoreError, { route, operation: 'set', error });
    }
  };

  return {
    async read(request, read) {
      const route = `mcp-resources:${request.server}`;
      const directives = parseCacheControl(request.cacheControl);
      if (directives.has('no-store')) {
        counted(route, 'bypass');
        return read();
      }
      const group = groupOf(request.server, request.uri);
      if (!directives.has('no-cache')) {
        // A public entry serves everyone; a private one only the principal it was read for.
        const hit =
          (await lookup(route, group, keyOf(group, 'public', undefined))) ??
          (request.principal === undefined
            ? undefined
            : await lookup(route, group, keyOf(group, 'private', request.principal)));
        if (hit !== undefined) {
          counted(route, 'hit');
          return served(hit);
        }
      }
      const startedAt = updateCount;
      const result = await read();
      counted(route, 'miss');
      const hint = options.configured?.get(request.server) ?? cacheHintOf(result);
      if (
        hint === undefined ||
        hint.ttlMs <= 0 ||
        result.resultType === 'input_required' ||
        (hint.cacheScope === 'private' && request.principal === undefined) ||
        (updates.get(group)?.count ?? -1) >= startedAt
      ) {
        return result;
      }
      await save(route, keyOf(group, hint.cacheScope, request.principal), result, hint.ttlMs);
      return result;
    },
    async invalidate(server, uri) {
      const group = groupOf(server, uri);
      updates.delete(group);
      updates.set(group, { count: updateCount++, at: now() });
      if (updates.size > MAX_REMEMBERED_UPDATES) updates.delete(updates.keys().next().value!);
      try {
        await store.invalidate([group]);
      } catch (error) {
        publish(events.cacheStoreError, { route: `mcp-resources:${server}`, operation: 'invalidate', error });
      }
    },
  };
}
