// The router: one table of built-in endpoints and configured proxy routes (method, host, path), compiled once.
import type { RouteConfig } from '../config/schema.js';
import type { Handler } from '../pipeline/types.js';
import type { Endpoint } from './exchange.js';

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
  readonly handler: Handler;
}

export type RouteMatch =
  { route: CompiledRoute; upstreamPath: string } | { route: undefined; methodMismatch: boolean };

/** Builds a compiled route from config and its handler. */
export function compileRoute(config: RouteConfig, handler: Handler): CompiledRoute {
  return {
    name: config.name ?? config.match.prefix,
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
    handler,
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

  /** The methods some route allows at `path` (for a 405's `Allow`), or undefined when one allows every method. */
  allowed(host: string | undefined, path: string): string[] | undefined {
    const methods = new Set<string>();
    for (const route of this.routes) {
      if (route.prefix !== '/' && !underPrefix(path, route.prefix)) continue;
      if (route.host !== undefined && stripPort(host) !== route.host) continue;
      if (route.methods === undefined) return undefined;
      for (const m of route.methods) methods.add(m);
    }
    return [...methods].sort();
  }
}

/** A built-in endpoint's place in the table: a path (exact, or a prefix on segment boundaries) and its methods. */
export interface EndpointRoute {
  readonly path: string;
  /** Only this path, not the paths under it. */
  readonly exact?: boolean;
  /** Methods answered; others get 405 with `Allow`. Default: every method (the endpoint decides). */
  readonly methods?: readonly string[];
  readonly endpoint: Endpoint;
}

/** What a request reached: an endpoint (with the path under its prefix), a proxy route, or nothing. */
export type Match =
  | { kind: 'endpoint'; endpoint: Endpoint; rest: string }
  | { kind: 'proxy'; route: CompiledRoute; upstreamPath: string }
  | { kind: 'none'; allow: readonly string[] | undefined };

/**
 * Every entrypoint of one listener. Built-in endpoints (`/mcp`, `/tools`, `/v1/...`, `/fanout/...`) win
 * over proxy routes, even a catch-all `/` one; a built-in path with the wrong method is a 405, never a
 * proxied call.
 */
export class Router {
  private readonly endpoints: ReadonlyArray<EndpointRoute & { methodSet: ReadonlySet<string> | undefined }>;

  constructor(
    endpoints: readonly EndpointRoute[],
    private readonly proxy: RouteTable = new RouteTable([]),
  ) {
    this.endpoints = endpoints
      .map((e) => ({
        ...e,
        path: trimSlash(e.path),
        methodSet: e.methods === undefined ? undefined : new Set(e.methods),
      }))
      .sort((a, b) => b.path.length - a.path.length);
  }

  /** Routes one request; `path` excludes the query string. */
  match(method: string, host: string | undefined, path: string): Match {
    for (const e of this.endpoints) {
      if (e.exact === true ? path !== e.path : !underPrefix(path, e.path)) continue;
      if (e.methodSet !== undefined && !e.methodSet.has(method)) {
        return { kind: 'none', allow: e.methods };
      }
      return { kind: 'endpoint', endpoint: e.endpoint, rest: path.slice(e.path.length) };
    }
    const found = this.proxy.match(method, host, path);
    if (found.route !== undefined) return { kind: 'proxy', ...found };
    return { kind: 'none', allow: found.methodMismatch ? (this.proxy.allowed(host, path) ?? []) : undefined };
  }
}

function underPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47; /* "/" */
}

function trimSlash(prefix: string): string {
  return prefix.replace(/\/$/, '') || '/';
}

function stripPort(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const colon = host.lastIndexOf(':');
  return (colon > 0 && !host.endsWith(']') ? host.slice(0, colon) : host).toLowerCase();
}
