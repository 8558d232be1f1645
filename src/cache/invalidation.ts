// Invalidation after writes (RFC 9111 §4.4): which cached paths a successful unsafe request makes stale.
import type { Headers } from '../pipeline/types.js';

/** Methods RFC 9110 §9.2.1 defines as safe; any other method is a write. */
const SAFE = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/**
 * Whether a reply to `method` invalidates: an unsafe method the route does not cache (a route that caches
 * POST treats it as a query, as tools and search APIs do) answered with a non-error status (2xx, 3xx).
 */
export function invalidates(method: string, status: number, cachedMethods: ReadonlySet<string>): boolean {
  return !SAFE.has(method) && !cachedMethods.has(method) && status >= 200 && status < 400;
}

/** Where an upstream lives, to tell which `Location` / `Content-Location` URIs are its own. */
export interface UpstreamBase {
  /** `scheme://host:port`. */
  origin: string;
  /** The upstream URL's path prefix, without a trailing `/` ("" for none): upstream paths start after it. */
  basePath: string;
}

/**
 * The upstream paths (query removed) a successful write invalidates: its own, and its `Location` and
 * `Content-Location` when they are the upstream's (a relative reference, or an absolute URI with the
 * upstream's origin and under its base path). Other origins are never touched: invalidating them would
 * let one upstream flush another's entries (§4.4).
 */
export function invalidatedPaths(
  path: string,
  replyHeaders: Headers,
  upstream: UpstreamBase | undefined,
): string[] {
  const queryAt = path.indexOf('?');
  const paths = new Set([queryAt === -1 ? path : path.slice(0, queryAt)]);
  for (const name of ['location', 'content-location']) {
    const value = replyHeaders[name];
    if (typeof value !== 'string') continue;
    const own = ownPath(value, path, upstream);
    if (own !== undefined) paths.add(own);
  }
  return [...paths];
}

function ownPath(
  reference: string,
  requestPath: string,
  upstream: UpstreamBase | undefined,
): string | undefined {
  const origin = upstream?.origin ?? 'http://upstream.invalid';
  const base = upstream?.basePath ?? '';
  let url: URL;
  try {
    url = new URL(reference, origin + base + requestPath);
  } catch {
    return undefined;
  }
  // Without a known upstream only a relative reference (resolved against the placeholder) is ours.
  if (url.origin !== origin) return undefined;
  if (base !== '' && url.pathname !== base && !url.pathname.startsWith(`${base}/`)) return undefined;
  return url.pathname.slice(base.length) || '/';
}
