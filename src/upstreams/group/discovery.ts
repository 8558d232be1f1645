// Member discovery for fan-out groups: one HTTP list, cached with a TTL, refreshed in the background, last good list kept.
import { Pool } from 'undici';
import { z } from 'zod';
import { GatewayError } from '../../errors.js';
import { events, publish } from '../../telemetry/events.js';

/** A member as discovery lists it. */
export interface DiscoveredMember {
  name: string;
  url: string;
}

export interface DiscoveryOptions {
  /** The group, for events and messages. */
  group: string;
  /** `GET` returns `{"members":[{"name","url"}]}` or a bare array of them. */
  url: string;
  /** How long a list is used before a background refresh starts. */
  ttlMs: number;
  /** Deadline of one discovery request. */
  refreshTimeoutMs: number;
  /** Longest list kept; entries past it are dropped. */
  maxMembers: number;
  /** Called with each successfully loaded list (also the first). */
  onList: (members: readonly DiscoveredMember[]) => void;
  /** Called when a load fails (the last good list stays in use). */
  onError?: (error: GatewayError) => void;
  /** Injectable clock (ms) for tests. Default `performance.now`. */
  now?: () => number;
}

export interface Discovery {
  /** True once one load succeeded. */
  readonly loaded: boolean;
  /**
   * Loads the list now, or joins the load already running (one request at a time). Resolves when it is in;
   * rejects with a GatewayError when it fails (the last good list stays).
   */
  load(): Promise<void>;
  /**
   * For the request path. Once a list is loaded: returns undefined at once, after starting one background
   * refresh when the list is older than the TTL. Before the first successful load: returns a promise for
   * the load in flight or due (it never rejects), or undefined while a failed load waits to be retried
   * (`min(ttl, 1 s)`), so a dead discovery service never holds every request.
   */
  ensure(): Promise<void> | undefined;
  close(): Promise<void>;
}

const NAME = /^[a-zA-Z0-9_.-]+$/;
const member = z.object({
  name: z.string().regex(NAME),
  url: z.url({ protocol: /^https?$/ }),
});
const listing = z.union([z.array(member), z.object({ members: z.array(member) })]);
/** A discovery answer larger than this is a failed refresh, not a memory problem. */
const MAX_LISTING_BYTES = 1024 ** 2;
const RETRY_FAILED_MS = 1_000;

/**
 * Builds a discovery source over its own small keep-alive pool. Nothing is fetched until `load()`;
 * the gateway loads once at start-up, and afterwards requests only call `refreshIfStale()`, so a slow or
 * failing discovery service never sits on the request path. Publishes `discoveryRefresh` events.
 */
export function discovery(options: DiscoveryOptions): Discovery {
  const now = options.now ?? (() => performance.now());
  const target = new URL(options.url);
  const pool = new Pool(target.origin, {
    connections: 2,
    connectTimeout: options.refreshTimeoutMs,
    maxResponseSize: MAX_LISTING_BYTES,
  });
  let loaded = false;
  let lastCount = 0;
  let nextRefreshAt = 0;
  let running: Promise<void> | undefined;

  const fetchList = async (): Promise<DiscoveredMember[]> => {
    const response = await pool.request({
      path: target.pathname + target.search,
      method: 'GET',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(options.refreshTimeoutMs),
    });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new Error(`answered ${response.statusCode}`);
    }
    const parsed = listing.safeParse(await response.body.json());
    if (!parsed.success) throw new Error('answered a list that is not [{name, url}]');
    const list = Array.isArray(parsed.data) ? parsed.data : parsed.data.members;
    const unique = new Map<string, DiscoveredMember>();
    for (const m of list) if (!unique.has(m.name)) unique.set(m.name, { name: m.name, url: m.url });
    return [...unique.values()].slice(0, options.maxMembers);
  };

  const refresh = async (): Promise<void> => {
    const started = now();
    try {
      const list = await fetchList();
      loaded = true;
      lastCount = list.length;
      nextRefreshAt = now() + options.ttlMs;
      publish(events.discoveryRefresh, {
        group: options.group,
        ok: true,
        durationMs: now() - started,
        members: list.length,
      });
      options.onList(list);
    } catch (error) {
      nextRefreshAt = now() + Math.min(options.ttlMs, RETRY_FAILED_MS);
      const reason =
        error instanceof Error && error.name === 'TimeoutError'
          ? `no answer within ${options.refreshTimeoutMs} ms`
          : error instanceof Error
            ? error.message
            : String(error);
      const failure = new GatewayError(
        'GW_UPSTREAM_UNAVAILABLE',
        `group "${options.group}": discovery at ${target.origin}${target.pathname} failed: ${reason}`,
        { cause: error },
      );
      publish(events.discoveryRefresh, {
        group: options.group,
        ok: false,
        durationMs: now() - started,
        members: lastCount,
        error: failure,
      });
      options.onError?.(failure);
      throw failure;
    }
  };

  const load = (): Promise<void> => {
    running ??= refresh().finally(() => (running = undefined));
    return running;
  };

  return {
    get loaded() {
      return loaded;
    },
    load,
    ensure() {
      if (running !== undefined) return loaded ? undefined : running.catch(() => {});
      if (now() < nextRefreshAt) return undefined;
      // Failures are reported through onError and the event; requests carry on with the list they have.
      const attempt = load().catch(() => {});
      return loaded ? undefined : attempt;
    },
    close: () => pool.close(),
  };
}
