// The cache store interface and the entry it holds: a buffered response with its freshness deadlines.

/** A stored response. Times are epoch milliseconds. */
export interface CacheEntry {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** When the response arrived (RFC 9111 §4.2.3 `response_time`). */
  storedAt: number;
  /** Its age when it arrived, in ms (§4.2.3 `corrected_initial_age`): a hit's `Age` adds the time since. */
  initialAgeMs: number;
  /** Served as a hit until then. */
  freshUntil: number;
  /** Served stale (with one background refresh) until then: RFC 5861 stale-while-revalidate. */
  staleUntil: number;
  /** Served stale when the upstream fails, until then: RFC 5861 stale-if-error. */
  errorUntil: number;
  /**
   * The store may drop it after then. Later than the deadlines above when the entry has a validator, so
   * a stale entry can still be revalidated with a conditional request instead of fetched again.
   */
  keepUntil: number;
  /** Once stale, never served without revalidation (must-revalidate, no-cache; proxy-revalidate, s-maxage on shared routes). */
  mustRevalidate: boolean;
  /**
   * Set on a Vary marker only, the entry at a primary key whose responses vary: the request headers that
   * select a variant (RFC 9111 §4.1). Each variant is an entry of its own under `variantKey`.
   */
  vary?: readonly string[];
}

/** Where entries live. Every method may be slow (Redis) but must never throw for a miss. */
export interface CacheStore {
  get(key: string): Promise<CacheEntry | undefined>;
  /**
   * Reads the tier every instance shares, past an in-process copy (a tiered store's L1, which a peer's
   * newer write does not replace), and keeps what it found locally. Stores with one tier omit it: `get`
   * already reads what every instance sees.
   */
  getShared?(key: string): Promise<CacheEntry | undefined>;
  /** Stores `entry`; the store may drop it after `entry.keepUntil`. */
  set(key: string, entry: CacheEntry): Promise<void>;
  /** Deletes every key starting with `prefix` (a scan: for admin purges); returns how many. */
  purge(prefix: string): Promise<number>;
  /**
   * Deletes every key in the given key groups (`keyGroup`: one method and path on a route, all their
   * queries, principals and variants) without scanning the store; returns how many.
   */
  invalidate(groups: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

/** Approximate memory held by an entry, for byte-bounded stores. */
export function entryBytes(entry: CacheEntry): number {
  let bytes = entry.body.length + 96;
  for (const key in entry.headers) bytes += key.length + String(entry.headers[key]).length;
  return bytes;
}
