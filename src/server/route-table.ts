// The proxy route table: configured routes matched by method, host and path prefix, compiled once.
import type { RouteConfig } from '../config/schema.js';
import type { Handler } from '../pipeline/types.js';
import { replyCoder } from './compression.js';
import type { ReplyCoder } from './compression.js';

/** A configured proxy route with its policy stack already composed. */
export interface CompiledRoute {
  readonly name: string;
  readonly upstream: string;
  readonly prefix: string;
  readonly rewrite: string | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly host: string | undefined;
  readonly idempotent: boolean;
  /** Idempotent calls on this route read their body into memory: retries replay it, caches key on it. */
  readonly bufferBodies: boolean;
  readonly maxRequestBytes: number;
  /** Anyone may call it, even with `auth` configured (`auth: false` on the route). */
  readonly public: boolean;
  readonly handler: Handler;
  /** Codes each reply for its client: compression, decoding what it cannot take (`server/compression.ts`). */
  readonly coder: ReplyCoder;
  /** The Accept-Encoding sent upstream instead of the client's; undefined forwards the client's. */
  readonly acceptEncoding: string | undefined;
  /** Requests run as background jobs: on `Prefer: respond-async`, or always. */
  readonly async: 'prefer' | 'always' | undefined;
}

/** What a compiled route gets besides its config and handler. */
export interface RouteParts {
  coder?: ReplyCoder;
  acceptEncoding?: string;
}

export type RouteMatch =
  { route: CompiledRoute; upstreamPath: string } | { route: undefined; methodMismatch: boolean };

/** Builds a compiled route from config and its handler. Default: no compression, the client's Accept-Encoding. */
export function compileRoute(config: RouteConfig, handler: Handler, parts: RouteParts = {}): CompiledRoute {
  const name = config.name ?? config.match.prefix;
  return {
    name,
    upstream: config.upstream,
    prefix: trimSlash(config.match.prefix),
    rewrite: config.rewrite?.replace(/\/$/, ''),
    methods: config.match.methods === undefined ? undefined : new Set(config.match.methods),
    host: config.match.host?.toLowerCase(),
    idempotent: config.idempotent,
    bufferBodies:
      (config.retry !== false && config.retry.attempts > 1) ||
      config.cache !== undefined ||
      config.coalesce === true ||
      config.hedge !== undefined,
    maxRequestBytes: config.maxRequestBytes,
    public: !config.auth,
    handler,
    coder:
      parts.coder ??
      replyCoder({ route: name, compression: undefined, maxDecodedBytes: Number.MAX_SAFE_INTEGER }),
    acceptEncoding: parts.acceptEncoding,
    async: config.async === false ? undefined : config.async,
  };
}

/**
 * The proxy routes: longest prefix first, matched on path segment boundaries (`/api` matches `/api` and
 * `/api/x`, not `/apix`). Routes are sorted once; a lookup is a short scan with string compares, no regex.
 * A method a route does not allow falls through to shorter routes, but never to the catch-all `/`: `/`
 * serves the paths no other route claims, so `POST /internal` on a GET-only `/internal` route is 405.
 */
export class RouteTable {
  private readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly CompiledRoute[]) {
    this.routes = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** Finds the route for a request; `path` excludes the query string. */
  match(method: string, host: string | undefined, path: string): RouteMatch {
    let methodMismatch = false;
    for (const route of this.routes) {
      const { prefix } = route;
      if (prefix !== '/' && !underPrefix(path, prefix)) continue;
      if (route.host !== undefined && stripPort(host) !== route.host) continue;
      if (route.methods !== undefined && !route.methods.has(method)) {
        methodMismatch = true;
        continue;
      }
      if (prefix === '/' && methodMismatch) break;
      const rest = prefix === '/' ? path : path.slice(prefix.length);
      const upstreamPath = route.rewrite === undefined ? path : route.rewrite + rest || '/';
      return { route, upstreamPath };
    }
    return { route: undefined, methodMismatch };
  }

  /** The methods the routes above the catch-all allow at `path` (a 405's `Allow`); undefined when one allows every method. */
  allowed(host: string | undefined, path: string): string[] | undefined {
    const methods = new Set<string>();
    for (const route of this.routes) {
      if (route.prefix === '/' || !underPrefix(path, route.prefix)) continue;
      if (route.host !== undefined && stripPort(host) !== route.host) continue;
      if (route.methods === undefined) return undefined;
      for (const m of route.methods) methods.add(m);
    }
    return [...methods].sort();
  }
}

/** Whether `path` is `prefix` or a path under it (segment boundaries: `/api` is not a prefix of `/apix`). */
export function underPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47; /* "/" */
}

/** A prefix without its trailing slash (`/` stays `/`). */
export function trimSlash(prefix: string): string {
  return prefix.replace(/\/$/, '') || '/';
}

function stripPort(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const colon = host.lastIndexOf(':');
  return (colon > 0 && !host.endsWith(']') ? host.slice(0, colon) : host).toLowerCase();
}
