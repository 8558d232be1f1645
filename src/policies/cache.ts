// Cache policy for HTTP routes, with RFC 9111 as its contract: variants, freshness, revalidation, invalidation, stale serving.
import { unidentifiedCaller, shareableWith, storableFor } from '../cache/audience.js';
import { parseCacheControl } from '../cache/cache-control.js';
import {
  clientNotModified,
  hasValidator,
  notModifiedHeaders,
  notModifiedMatches,
  originOnly,
  revalidationHeaders,
  updatedHeaders,
  withoutConditionals,
} from '../cache/conditional.js';
import { currentAgeMs, entryTiming, entryUse, storableResponse, usableOnError } from '../cache/freshness.js';
import type { FreshnessRules } from '../cache/freshness.js';
import { invalidatedPaths, invalidates } from '../cache/invalidation.js';
import type { UpstreamBase } from '../cache/invalidation.js';
import { cacheKey, groupOf, keyGroup } from '../cache/keys.js';
import type { KeySpec } from '../cache/keys.js';
import type { PeerLock } from '../cache/peer-lock.js';
import { refresher as createRefresher } from '../cache/refresher.js';
import type { Refresher } from '../cache/refresher.js';
import type { CacheEntry, CacheStore } from '../cache/store.js';
import { variantKey, varyNames } from '../cache/vary.js';
import { stripHopByHop } from '../pipeline/headers.js';
import { GatewayError } from '../errors.js';
import { bufferReply } from '../pipeline/buffer.js';
import { discard } from '../pipeline/compose.js';
import type { Call, Handler, Headers, HttpRequest, Policy, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import type { CacheResult } from '../telemetry/events.js';
import { coalesce } from './coalesce.js';

export interface CachePolicyOptions {
  route: string;
  store: CacheStore;
  key: KeySpec;
  /**
   * Heuristic freshness (RFC 9111 §4.2.2), in ms: the lifetime of a response that states none (no
   * `max-age`, `s-maxage`, `Expires`), or of every response when `respectCacheControl` is false.
   */
  ttlMs: number;
  /** Stale-while-revalidate (RFC 5861) for responses that state none, in ms. Default 0. */
  staleWhileRevalidateMs: number;
  /** Stale-if-error (RFC 5861) for responses that state none, in ms. Default 0. */
  staleIfErrorMs: number;
  /** Responses larger than this are relayed but not stored. */
  maxEntryBytes: number;
  /** Methods whose responses are cached (GET and HEAD by default); other unsafe methods invalidate. */
  methods: ReadonlySet<string>;
  /** Honour the upstream's freshness directives (see `FreshnessRules.respectCacheControl`). Default true. */
  respectCacheControl: boolean;
  /** Deadline for a background refresh, in ms (the route timeout). */
  refreshTimeoutMs: number;
  /**
   * Refresh-ahead: a hit on an entry past this share (0..1, exclusive) of its freshness lifetime starts one
   * background refresh, so a key in steady use is replaced before it expires and never misses on a
   * request path. Default: off.
   */
  refreshAhead?: number;
  /** Runs background refreshes (the gateway's, in its lifecycle list). Default: one of this policy's own. */
  refresher?: Refresher;
  /**
   * Request headers that identify a caller besides the principal. On a principal-scoped route a call with
   * one of them and no principal bypasses the cache, unless `key.headers` lists it. Default
   * `['authorization', 'cookie']`.
   */
  credentialHeaders?: readonly string[];
  /**
   * The upstream's URL: a write's `Location` / `Content-Location` on its origin are invalidated too.
   * Default: only relative references count.
   */
  upstreamUrl?: string;
  /**
   * Identical concurrent misses (the same Vary variant) in this process share one fetch and one store
   * write. Default true. Only idempotent calls are coalesced.
   */
  coalesce?: boolean;
  /** Identical concurrent misses across instances sharing Redis share one fetch too. Default: off. */
  peerLock?: PeerLock;
  /** Injectable clock for tests. Default `Date.now`. */
  now?: () => number;
}

/** What a lookup found for a call: its primary key, the variant key it selects, the Vary marker and entry. */
interface Lookup {
  primary: string;
  key: string;
  marker?: CacheEntry;
  entry?: CacheEntry;
}

/**
 * The lookup travels on the call to the fetch that fills or revalidates it, past the coalescing policy:
 * a symbol property survives the `{ ...call }` copies inner policies make, and nothing outside this
 * module can see it.
 */
const LOOKUP = Symbol('slipstream.cache.lookup');
type Keyed<P extends HttpRequest = HttpRequest> = Call<P> & {
  readonly key: string;
  readonly [LOOKUP]: Lookup;
};

const DEFAULT_CREDENTIALS = ['authorization', 'cookie'];
/** Recent invalidations remembered, so a fetch that started before a write does not store what it read. */
const MAX_REMEMBERED_WRITES = 1024;
const EMPTY = Buffer.alloc(0);

/**
 * Serves responses from `store`, following RFC 9111. Every reply carries `x-slipstream-cache: hit | miss |
 * stale | revalidated | bypass`; replies from the cache carry `Age`. In short (README "Caching"):
 * - the key is the route, method, path, query, configured headers/body and (scope `principal`) the caller;
 *   a response's `Vary` adds a secondary key (§4.1), one entry per variant; `Vary: *` is never stored;
 * - freshness, age, the heuristic `ttl`, stale windows: see {@link entryTiming} and {@link entryUse};
 * - a stale entry with an `ETag` / `Last-Modified` is revalidated with a conditional request; a 304
 *   refreshes it and the client gets the full response (§4.3.3, §4.3.4). A client's own matching
 *   `If-None-Match` / `If-Modified-Since` gets a 304 from the cache (§4.3.2);
 * - a successful POST / PUT / DELETE / PATCH (any unsafe method the route does not cache) drops every
 *   cached entry of its path and of its same-origin `Location` / `Content-Location`, for every query,
 *   caller and variant (§4.4);
 * - requests with `no-store`, `Range`, `If-Match` / `If-Unmodified-Since` / `If-Range`, and anonymous
 *   requests carrying credentials on principal-scoped routes bypass the cache; `only-if-cached` with
 *   nothing usable is 504 `GW_NOT_CACHED`.
 * Store failures count as misses: a broken cache never fails a request.
 */
export function cache<P extends HttpRequest = HttpRequest>(options: CachePolicyOptions): Policy<P> {
  const now = options.now ?? Date.now;
  const { route, store, methods } = options;
  const shared = options.key.scope === 'shared';
  const rules: FreshnessRules = {
    shared,
    heuristicMs: options.ttlMs,
    staleWhileRevalidateMs: options.staleWhileRevalidateMs,
    staleIfErrorMs: options.staleIfErrorMs,
    respectCacheControl: options.respectCacheControl,
  };
  const credentials = shared
    ? []
    : (options.credentialHeaders ?? DEFAULT_CREDENTIALS)
        .map((h) => h.toLowerCase())
        .filter((h) => !options.key.headers.includes(h));
  const upstream = options.upstreamUrl === undefined ? undefined : upstreamBase(options.upstreamUrl);
  const background = options.refresher ?? createRefresher();
  const ahead = options.refreshAhead;
  if (ahead !== undefined && !(ahead > 0 && ahead < 1)) {
    throw new RangeError(`refreshAhead must be between 0 and 1 (exclusive), got ${ahead}`);
  }
  /** Key group -> when this process last invalidated it. Bounded: the oldest is forgotten first. */
  const writes = new Map<string, number>();

  const lookup = async (key: string): Promise<CacheEntry | undefined> => {
    try {
      return await store.get(key);
    } catch (error) {
      publish(events.cacheStoreError, { route, operation: 'get', error });
      return undefined;
    }
  };

  /** Reads the shared tier past an in-process copy (see `CacheStore.getShared`): what a peer just stored. */
  const lookupShared = async (key: string): Promise<CacheEntry | undefined> => {
    if (store.getShared === undefined) return lookup(key);
    try {
      return await store.getShared(key);
    } catch (error) {
      publish(events.cacheStoreError, { route, operation: 'get', error });
      return undefined;
    }
  };

  /** The entry a request selects: the one at its primary key, or through a Vary marker, its variant's. */
  const resolve = async (primary: string, headers: Headers, read = lookup): Promise<Lookup> => {
    const first = await read(primary);
    if (first?.vary === undefined) return { primary, key: primary, entry: first };
    const key = variantKey(primary, first.vary, headers);
    return { primary, key, marker: first, entry: await read(key) };
  };

  /** A fresh entry stored after `previous` (by a peer, usually): what a waiter or a refresh looks for. */
  const newerFresh = async (call: Keyed<P>): Promise<CacheEntry | undefined> => {
    const previous = call[LOOKUP].entry;
    const { entry } = await resolve(call[LOOKUP].primary, call.headers, lookupShared);
    if (entry === undefined || now() >= entry.freshUntil) return undefined;
    return previous === undefined || entry.storedAt > previous.storedAt ? entry : undefined;
  };

  /** Stores an entry under its primary key, or as a variant plus the primary key's Vary marker. */
  const save = async (call: Keyed<P>, entry: CacheEntry, vary: Headers[string]): Promise<void> => {
    const found = call[LOOKUP];
    const names = varyNames(vary);
    try {
      if (!Array.isArray(names)) {
        await store.set(found.primary, entry);
        return;
      }
      const known = found.marker?.vary?.join() === names.join() ? found.marker : undefined;
      await Promise.all([
        store.set(variantKey(found.primary, names, call.headers), entry),
        store.set(found.primary, marker(names, Math.max(entry.keepUntil, known?.keepUntil ?? 0), now())),
      ]);
    } catch (error) {
      publish(events.cacheStoreError, { route, operation: 'set', error });
    }
  };

  /** Whether a write invalidated the call's path after its request went upstream: what it read may be older. */
  const overtaken = (call: Keyed<P>, requestTime: number): boolean =>
    (writes.get(groupOf(call[LOOKUP].primary)) ?? -Infinity) >= requestTime;

  /**
   * Calls upstream (conditionally when the stale entry has a validator) and stores what may be stored.
   * The reply's body is buffered when it fits. With `awaitStore` the write is finished before returning
   * (peers polling the store must find it).
   */
  const fetchAndStore = async (next: Handler<P>, call: Keyed<P>, awaitStore = false): Promise<Reply> => {
    const previous = call[LOOKUP].entry;
    const stale = previous !== undefined && hasValidator(previous.headers) ? previous : undefined;
    let requestTime = now();
    let reply = await next(
      stale === undefined ? call : { ...call, headers: revalidationHeaders(call.headers, stale.headers) },
    );
    if (stale !== undefined && reply.status === 304) {
      discard(reply);
      if (notModifiedMatches(stale.headers, reply.headers)) {
        return refreshed(call, stale, stripHopByHop(reply.headers), requestTime, awaitStore);
      }
      requestTime = now(); // the 304 names another representation: fetch this one whole
      reply = await next(call);
    }
    const responseTime = now();
    const cc = parseCacheControl(reply.headers['cache-control']);
    if (!storableResponse(reply.status, reply.headers, cc, rules) || !storableFor(call, cc, shared)) {
      return tag(reply, 'miss');
    }
    const timing = entryTiming(reply.headers, cc, rules, requestTime, responseTime);
    // Stale on arrival, with nothing to revalidate or serve stale: not worth a write.
    if (timing.keepUntil <= responseTime || overtaken(call, requestTime)) return tag(reply, 'miss');
    const buffered = await bufferReply(reply, options.maxEntryBytes);
    if (!buffered.complete) return tag(buffered.reply, 'miss');
    const body = buffered.reply.body ?? EMPTY;
    if (body.length > options.maxEntryBytes) return tag(buffered.reply, 'miss');
    const entry: CacheEntry = {
      status: reply.status,
      headers: storedHeaders(reply.headers),
      body,
      ...timing,
    };
    const writing = save(call, entry, reply.headers.vary);
    if (awaitStore) await writing;
    return tag(buffered.reply, 'miss');
  };

  /** A 304 confirmed `stale`: its headers are updated from the 304 (§3.2, §4.3.4), its freshness restarts. */
  const refreshed = async (
    call: Keyed<P>,
    stale: CacheEntry,
    notModified: Headers,
    requestTime: number,
    awaitStore: boolean,
  ): Promise<Reply> => {
    const responseTime = now();
    const headers = updatedHeaders(stale.headers, notModified);
    const cc = parseCacheControl(headers['cache-control']);
    // The age is the 304's: its Date is merged, its Age (never stored) is read here.
    const timing = entryTiming({ ...headers, age: notModified.age }, cc, rules, requestTime, responseTime);
    const entry: CacheEntry = { ...stale, headers, ...timing };
    if (
      storableResponse(entry.status, headers, cc, rules) &&
      storableFor(call, cc, shared) &&
      timing.keepUntil > responseTime &&
      !overtaken(call, requestTime)
    ) {
      const writing = save(call, entry, headers.vary);
      if (awaitStore) await writing;
    }
    return served(entry, 'revalidated', responseTime);
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
      // The shared tier, not this instance's copy: the peer's entry replaces an entry this one still holds.
      const entry = await lock.waitForPeer(call.key, () => newerFresh(call), call.signal);
      if (entry !== undefined && now() < entry.freshUntil) return served(entry, 'miss', now());
      return fetchAndStore(next, call);
    }
    try {
      return await fetchAndStore(next, call, true);
    } finally {
      await flight.release();
    }
  };

  /**
   * One background refresh per key (RFC 5861 for a stale entry; refresh-ahead for one about to expire),
   * through the coalesced miss path: a request that misses meanwhile joins it, and with Redis a peer
   * refreshing the same key is waited for, not repeated. Its failure leaves the entry in place.
   */
  const refreshInBackground = (sharedMiss: Handler<P>, call: Keyed<P>, trigger: 'stale' | 'ahead'): void => {
    background.run(call.key, { route, trigger }, options.refreshTimeoutMs, async (signal) => {
      // A peer may have refreshed it already (this instance's copy is the old one): take theirs.
      if (options.peerLock !== undefined && (await newerFresh(call)) !== undefined) return 'peer';
      const reply = await sharedMiss({ ...call, signal });
      discard(reply);
      return reply.status >= 500 ? 'failed' : 'refreshed';
    });
  };

  /** §4.4: drops every entry of the paths a successful write touched, before the write's reply goes out. */
  const invalidate = async (path: string, headers: Headers): Promise<void> => {
    const groups: string[] = [];
    const at = now();
    for (const target of invalidatedPaths(path, headers, upstream)) {
      for (const method of methods) groups.push(keyGroup(route, method, target));
    }
    for (const group of groups) {
      writes.delete(group);
      writes.set(group, at);
      if (writes.size > MAX_REMEMBERED_WRITES) writes.delete(writes.keys().next().value!);
    }
    try {
      await store.invalidate(groups);
    } catch (error) {
      publish(events.cacheStoreError, { route, operation: 'invalidate', error });
    }
  };

  const served = (entry: CacheEntry, result: CacheResult, at: number): Reply => ({
    status: entry.status,
    headers: {
      ...entry.headers,
      age: String(Math.floor(currentAgeMs(entry, at) / 1000)),
      'x-slipstream-cache': result,
    },
    body: entry.body,
  });

  /** Counts the lookup, and answers a client's own matching conditional GET / HEAD with a 304 (§4.3.2). */
  const finish = (call: Call<P>, reply: Reply, receivedAt: number): Reply => {
    counted(reply);
    const headers = call.headers;
    if (
      reply.status !== 200 ||
      (headers['if-none-match'] === undefined && headers['if-modified-since'] === undefined) ||
      (call.method !== 'GET' && call.method !== 'HEAD') ||
      !clientNotModified(headers, reply.headers, receivedAt)
    ) {
      return reply;
    }
    discard(reply);
    const age = reply.headers.age;
    return {
      status: 304,
      headers: {
        ...notModifiedHeaders(reply.headers),
        ...(age === undefined ? {} : { age }),
        'x-slipstream-cache': reply.headers['x-slipstream-cache'],
      },
      body: null,
    };
  };
  const counted = (reply: Reply): Reply => {
    publish(events.cacheLookup, { route, result: reply.headers['x-slipstream-cache'] as CacheResult });
    return reply;
  };

  return (next) => {
    const miss = (call: Call<P>) => fetchMiss(next, call as Keyed<P>);
    // The coalesced miss path (fetch + store) runs once per key and variant in this process.
    const sharedMiss =
      options.coalesce === false
        ? miss
        : coalesce<P>({
            route,
            key: (call) => call.key!,
            maxBytes: options.maxEntryBytes,
            shareable: (reply, waiter, leader) =>
              shareableWith(reply, parseCacheControl(reply.headers['cache-control']), waiter, leader, shared),
            // Waiters for another variant than the leader's share a flight of their own variant.
            regroup: (reply, waiter) => {
              const names = varyNames(reply.headers.vary);
              if (!Array.isArray(names)) return undefined;
              return variantKey((waiter as Keyed<P>)[LOOKUP].primary, names, waiter.headers);
            },
          })(miss);

    return async (call) => {
      if (!methods.has(call.method)) {
        const reply = await next(call);
        if (invalidates(call.method, reply.status, methods)) await invalidate(call.path, reply.headers);
        return counted(tag(reply, 'bypass'));
      }
      const requested = parseCacheControl(call.headers['cache-control']);
      if (requested.has('no-store') || originOnly(call.headers) || unidentifiedCaller(call, credentials)) {
        return counted(tag(await next(call), 'bypass'));
      }
      const found = await resolve(call.key ?? cacheKey(route, call, options.key), call.headers);
      const entry = found.entry;
      const at = now();
      const use = entry === undefined ? 'validate' : entryUse(entry, at, requested);
      // The client's own conditions are answered here, from the full response fetched for everyone.
      const keyedFor = (): Keyed<P> => ({
        ...call,
        key: found.key,
        headers: withoutConditionals(call.headers),
        [LOOKUP]: found,
      });
      if (entry !== undefined && use === 'fresh') {
        if (ahead !== undefined && dueForRefresh(entry, at, ahead) && !requested.has('only-if-cached')) {
          refreshInBackground(sharedMiss, keyedFor(), 'ahead');
        }
        return finish(call, served(entry, 'hit', at), entry.storedAt);
      }
      const keyed = keyedFor();
      if (entry !== undefined && use !== 'validate') {
        // only-if-cached: the client wants no upstream traffic for its request, a refresh included.
        if (use === 'stale-while-revalidate' && !requested.has('only-if-cached'))
          refreshInBackground(sharedMiss, keyed, 'stale');
        return finish(call, served(entry, 'stale', at), entry.storedAt);
      }
      if (requested.has('only-if-cached')) {
        publish(events.cacheLookup, { route, result: 'miss' });
        throw new GatewayError('GW_NOT_CACHED', 'only-if-cached, and no usable response is stored');
      }
      const fallback = entry !== undefined && usableOnError(entry, at, requested) ? entry : undefined;
      try {
        const reply = await sharedMiss(keyed);
        if (reply.status >= 500 && fallback !== undefined) {
          discard(reply);
          return finish(call, served(fallback, 'stale', now()), fallback.storedAt);
        }
        return finish(call, reply, now());
      } catch (error) {
        if (fallback !== undefined && !(error instanceof GatewayError && error.code === 'GW_CLIENT_CLOSED')) {
          return finish(call, served(fallback, 'stale', now()), fallback.storedAt);
        }
        throw error;
      }
    };
  };
}

/** Whether a fresh entry has lived `share` of its freshness lifetime (refresh-ahead). */
function dueForRefresh(entry: CacheEntry, at: number, share: number): boolean {
  const lifetimeMs = entry.freshUntil - (entry.storedAt - entry.initialAgeMs);
  return lifetimeMs > 0 && currentAgeMs(entry, at) >= share * lifetimeMs;
}

function tag(reply: Reply, result: CacheResult): Reply {
  return { ...reply, headers: { ...reply.headers, 'x-slipstream-cache': result } };
}

/** The Vary marker at a primary key: which request headers select its variants, kept as long as they are. */
function marker(names: readonly string[], keepUntil: number, at: number): CacheEntry {
  return {
    status: 0,
    headers: {},
    body: EMPTY,
    storedAt: at,
    initialAgeMs: 0,
    freshUntil: keepUntil,
    staleUntil: keepUntil,
    errorUntil: keepUntil,
    keepUntil,
    mustRevalidate: false,
    vary: names,
  };
}

/** Headers kept with an entry: hop-by-hop and per-response ones dropped (`age` is recomputed on each hit). */
function storedHeaders(headers: Headers): CacheEntry['headers'] {
  const stripped = stripHopByHop(headers);
  delete stripped.age;
  delete stripped['x-request-id'];
  delete stripped['x-slipstream-cache'];
  const out: CacheEntry['headers'] = {};
  for (const key in stripped) {
    const value = stripped[key];
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function upstreamBase(url: string): UpstreamBase {
  const parsed = new URL(url);
  return { origin: parsed.origin, basePath: parsed.pathname.replace(/\/$/, '') };
}
