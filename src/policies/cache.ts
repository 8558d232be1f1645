// Cache policy: fresh hits, stale-while-revalidate with one background refresh, stale-if-error (RFC 5861).
import { parseCacheControl } from '../cache/cache-control.js';
import { cacheKey } from '../cache/keys.js';
import type { KeySpec } from '../cache/keys.js';
import type { PeerLock } from '../cache/peer-lock.js';
import type { CacheEntry, CacheStore } from '../cache/store.js';
import { stripHopByHop } from '../pipeline/headers.js';
import { GatewayError } from '../errors.js';
import { bufferReply } from '../pipeline/buffer.js';
import { discard } from '../pipeline/compose.js';
import type { Call, Handler, Headers, HttpRequest, Policy, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import type { CacheResult } from '../telemetry/events.js';
import { coalesce } from './coalesce.js';

/** What the cache reads of a call: its key, and the method and headers that RFC 9111 rules look at. */
export interface CacheRequest {
  readonly key: string;
  readonly method: string;
  readonly headers: Headers;
}

export interface CachePolicyOptions<P extends object = HttpRequest> {
  route: string;
  store: CacheStore;
  /** Scope (and, for HTTP calls, what varies the key). */
  key: KeySpec;
  /**
   * Reads a call of this kind, or undefined when it is never cached (the cache is bypassed). Default, for
   * HTTP calls: the key from `cacheKey(route, call, key)`, cached only for `methods`.
   */
  request?: (call: Call<P>) => CacheRequest | undefined;
  /** Freshness when the upstream does not say (or when `respectCacheControl` is false), in ms. */
  ttlMs: number;
  /** After freshness ends, serve stale this long while one background refresh runs. Default 0. */
  staleWhileRevalidateMs: number;
  /** After freshness ends, serve stale this long when the upstream fails. Default 0. */
  staleIfErrorMs: number;
  /** Responses larger than this are relayed but not stored. */
  maxEntryBytes: number;
  /** Methods whose responses are cached (GET and HEAD by default). */
  methods: ReadonlySet<string>;
  /** Honour upstream `Cache-Control` (no-store, no-cache, private, max-age, s-maxage). Default true. */
  respectCacheControl: boolean;
  /** Deadline for a background refresh, in ms (the route timeout). */
  refreshTimeoutMs: number;
  /**
   * Identical concurrent misses in this process share one fetch (and one store write). Default true.
   * Only idempotent calls are coalesced.
   */
  coalesce?: boolean;
  /** Identical concurrent misses across instances sharing Redis share one fetch too. Default: off. */
  peerLock?: PeerLock;
  /** Injectable clock for tests. Default `Date.now`. */
  now?: () => number;
}

/** Statuses cacheable by default (RFC 9110 §15.1). */
const CACHEABLE_STATUS = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

/**
 * Serves responses from `store`. Every reply carries `x-slipstream-cache: hit | miss | stale | bypass`
 * and hits carry `Age`. A client's `Cache-Control: no-cache` forces a refresh; `no-store` bypasses.
 * Responses with `Set-Cookie`, `Vary: *`, or upstream `no-store` / `no-cache` (and `private` on shared
 * routes) are never stored. Store failures count as misses: a broken cache never fails a request.
 */
export function cache<P extends object = HttpRequest>(options: CachePolicyOptions<P>): Policy<P> {
  const now = options.now ?? Date.now;
  const { route, store, methods } = options;
  const describe =
    options.request ??
    ((call: Call<P>): CacheRequest | undefined => {
      const http = call as unknown as Call;
      if (!methods.has(http.method)) return undefined;
      return {
        key: call.key ?? cacheKey(route, http, options.key),
        method: http.method,
        headers: http.headers,
      };
    });
  const refreshing = new Set<string>();

  const lookup = async (key: string): Promise<CacheEntry | undefined> => {
    try {
      return await store.get(key);
    } catch (error) {
      publish(events.cacheStoreError, { route, operation: 'get', error });
      return undefined;
    }
  };

  /**
   * Calls upstream and stores what may be stored. The reply's body is buffered when it fits. With
   * `awaitStore` the write is finished before returning (peers polling the store must find it).
   */
  const fetchAndStore = async (next: Handler<P>, call: Keyed<P>, awaitStore = false): Promise<Reply> => {
    const reply = await next(call);
    const ttlMs = storableFor(reply);
    if (ttlMs === undefined) return reply;
    const buffered = await bufferReply(reply, options.maxEntryBytes);
    if (!buffered.complete || (buffered.reply.body?.length ?? 0) > options.maxEntryBytes)
      return buffered.reply;
    const storedAt = now();
    const entry: CacheEntry = {
      status: reply.status,
      headers: storedHeaders(reply),
      body: buffered.reply.body ?? Buffer.alloc(0),
      storedAt,
      freshUntil: storedAt + ttlMs,
      staleUntil: storedAt + ttlMs + options.staleWhileRevalidateMs,
      errorUntil: storedAt + ttlMs + options.staleIfErrorMs,
    };
    const stored = store
      .set(call.key, entry)
      .catch((error: unknown) => publish(events.cacheStoreError, { route, operation: 'set', error }));
    if (awaitStore) await stored;
    return buffered.reply;
  };

  /**
   * A miss: with a peer lock, one instance fetches while the others wait for its entry to appear in the
   * shared store (and fetch for themselves only when none does: not cacheable, or the holder died).
   */
  const fetchMiss = async (next: Handler<P>, call: Keyed<P>): Promise<Reply> => {
    const lock = options.peerLock;
    if (lock === undefined) return fetchAndStore(next, call);
    const flight = await lock.acquire(call.key);
    if (!flight.held) {
      const entry = await lock.waitForPeer(call.key, () => lookup(call.key), call.signal);
      if (entry !== undefined && now() < entry.freshUntil) return served(entry, 'hit', now(), false);
      return fetchAndStore(next, call);
    }
    try {
      return await fetchAndStore(next, call, true);
    } finally {
      await flight.release();
    }
  };

  /** Freshness lifetime for a reply, or undefined when it must not be stored. */
  const storableFor = (reply: Reply): number | undefined => {
    if (!CACHEABLE_STATUS.has(reply.status) || reply.headers['set-cookie'] !== undefined) return undefined;
    if (reply.headers.vary === '*') return undefined;
    if (!options.respectCacheControl) return options.ttlMs;
    const cc = parseCacheControl(reply.headers['cache-control']);
    if (cc.has('no-store') || cc.has('no-cache')) return undefined;
    const shared = options.key.scope === 'shared';
    if (shared && cc.has('private')) return undefined;
    const sMaxAge = cc.get('s-maxage');
    const maxAge = cc.get('max-age');
    const seconds =
      shared && typeof sMaxAge === 'number' ? sMaxAge : typeof maxAge === 'number' ? maxAge : undefined;
    const ttlMs = seconds === undefined ? options.ttlMs : seconds * 1000;
    return ttlMs > 0 ? ttlMs : undefined;
  };

  /**
   * Whether a coalesced reply may go to other callers: never one that sets a cookie, and on shared routes
   * (where callers differ) never one the upstream marked `private` or `no-store`. Errors are shared, so a
   * failing upstream is not hit once per waiter.
   */
  const shareable = (reply: Reply): boolean => {
    if (reply.headers['set-cookie'] !== undefined) return false;
    if (options.key.scope !== 'shared') return true;
    const cc = parseCacheControl(reply.headers['cache-control']);
    return !cc.has('private') && !cc.has('no-store');
  };

  /** RFC 5861: exactly one background refresh per key; its failure leaves the stale entry in place. */
  const refreshInBackground = (next: Handler<P>, call: Keyed<P>) => {
    if (refreshing.has(call.key)) return;
    refreshing.add(call.key);
    const controller = new AbortController();
    const timer = setTimeout(() => {
      controller.abort(
        new GatewayError('GW_UPSTREAM_TIMEOUT', `background refresh exceeded ${options.refreshTimeoutMs} ms`),
      );
    }, options.refreshTimeoutMs);
    fetchAndStore(next, { ...call, signal: controller.signal })
      .then(discard, () => {})
      .finally(() => {
        clearTimeout(timer);
        refreshing.delete(call.key);
      });
  };

  const served = (entry: CacheEntry, result: CacheResult, at: number, count = true): Reply => {
    if (count) publish(events.cacheLookup, { route, result });
    const age = String(Math.max(0, Math.floor((at - entry.storedAt) / 1000)));
    return {
      status: entry.status,
      headers: { ...entry.headers, age, 'x-slipstream-cache': result },
      body: entry.body,
    };
  };
  const tagged = (reply: Reply, result: CacheResult): Reply => {
    publish(events.cacheLookup, { route, result });
    return { ...reply, headers: { ...reply.headers, 'x-slipstream-cache': result } };
  };

  return (next) => {
    const miss = (call: Call<P>) => fetchMiss(next, call as Keyed<P>);
    // The coalesced miss path (fetch + store) runs once per key in this process; its waiters share the reply.
    const sharedMiss =
      options.coalesce === false
        ? miss
        : coalesce<P>({
            route,
            key: (call) => call.key!,
            maxBytes: options.maxEntryBytes,
            shareable,
          })(miss);
    return async (call) => {
      const request = describe(call);
      const requested = parseCacheControl(request?.headers['cache-control']);
      if (request === undefined || requested.has('no-store')) return tagged(await next(call), 'bypass');
      const keyed: Keyed<P> = { ...call, key: request.key };
      const entry = requested.has('no-cache') ? undefined : await lookup(keyed.key);
      const at = now();
      if (entry !== undefined && at < entry.freshUntil) return served(entry, 'hit', at);
      if (entry !== undefined && at < entry.staleUntil) {
        refreshInBackground(next, keyed);
        return served(entry, 'stale', at);
      }
      const usableOnError = entry !== undefined && at < entry.errorUntil ? entry : undefined;
      try {
        const reply = await sharedMiss(keyed);
        if (reply.status >= 500 && usableOnError !== undefined) {
          discard(reply);
          return served(usableOnError, 'stale', at);
        }
        return tagged(reply, 'miss');
      } catch (error) {
        if (
          usableOnError !== undefined &&
          !(error instanceof GatewayError && error.code === 'GW_CLIENT_CLOSED')
        ) {
          return served(usableOnError, 'stale', at);
        }
        throw error;
      }
    };
  };
}

/** A call whose cache key is known. */
type Keyed<P extends object> = Call<P> & { readonly key: string };

/** Headers kept with an entry: hop-by-hop and per-response ones dropped (`age` is recomputed on each hit). */
function storedHeaders(reply: Reply): CacheEntry['headers'] {
  const headers = stripHopByHop(reply.headers);
  delete headers.age;
  delete headers['x-request-id'];
  const out: CacheEntry['headers'] = {};
  for (const key in headers) {
    const value = headers[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}
