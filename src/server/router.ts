// The router: one table of built-in endpoints and configured proxy routes (method, host, path), compiled once.
import type { Endpoint } from './exchange.js';
import { RouteTable, trimSlash, underPrefix } from './route-table.js';
import type { CompiledRoute } from './route-table.js';

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
