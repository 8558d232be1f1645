// The cache store interface and the entry it holds: a buffered response with its freshness deadlines.

/** A stored response. Times are epoch milliseconds. */
export interface CacheEntry {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  storedAt: number;
  /** Served as a hit until then. */
  freshUntil: number;
  /** Served stale (with one background refresh) until then: RFC 5861 stale-while-revalidate. */
  staleUntil: number;
  /** Served stale when the upstream fails, until then: RFC 5861 stale-if-error. */
  errorUntil: number;
}

/** Where entries live. Every method may be slow (Redis) but must never throw for a miss. */
export interface CacheStore {
  get(key: string): Promise<CacheEntry | undefined>;
  /** Stores `entry`; the store may drop it after `entry`'s last useful moment (max of staleUntil, errorUntil). */
  set(key: string, entry: CacheEntry): Promise<void>;
  /** Deletes every key starting with `prefix`; returns how many. */
  purge(prefix: string): Promise<number>;
  close(): Promise<void>;
}

/** The last moment an entry can still be served in any way. */
export function expiresAt(entry: CacheEntry): number {
  return Math.max(entry.freshUntil, entry.staleUntil, entry.errorUntil);
}

/** Approximate memory held by an entry, for byte-bounded stores. */
export function entryBytes(entry: CacheEntry): number {
  let bytes = entry.body.length + 64;
  for (const key in entry.headers) bytes += key.length + String(entry.headers[key]).length;
  return bytes;
}
