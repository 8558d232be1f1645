// Admin endpoints: /metrics, /healthz, /readyz, cache purges, the dashboard. Loopback by default; a token guards the rest.
import { timingSafeEqual } from 'node:crypto';
import { GatewayError } from '../errors.js';
import type { Reply } from '../pipeline/types.js';
import type { Endpoint, Exchange } from '../server/exchange.js';
import { parseJson } from '../pipeline/json.js';
import type { EndpointRoute } from '../server/router.js';
import type { LiveStats } from '../telemetry/live/live-stats.js';
import { dashboardRoutes } from './dashboard/dashboard.js';

export interface AdminOptions {
  /** Bearer token for everything but the health checks; when unset, the listener must be on loopback. */
  token: string | undefined;
  /** Prometheus text exposition. */
  metrics: { contentType: string; render(): Promise<string> };
  /** False while starting or draining: load balancers should stop sending traffic. */
  isReady: () => boolean;
  /** Deletes cache entries whose key starts with the prefix; resolves with how many. */
  purgeCache: (prefix: string) => Promise<number>;
  /** Under `serve --workers`: every worker's state (a JSON value), served at `GET /admin/workers`. */
  workers?: () => unknown;
  /** Serves `/dashboard` and its feed from these live counts; omitted when `admin.dashboard.enabled` is false. */
  dashboard?: { live: LiveStats; maxFeeds: number };
}

/** Longest purge prefix accepted (keys are `route|METHOD /path|hash`). */
const MAX_PREFIX = 2048;
/** Largest purge request body. */
const MAX_PURGE_BYTES = 16 * 1024;

/**
 * The admin listener's routes. `/healthz` answers 200 while the process runs; `/readyz` answers 200 only
 * when the gateway takes traffic (503 while starting or draining). `GET /metrics` and
 * `POST /admin/cache/purge` (by route, `{"route":"quotes"}`, or key prefix, `{"prefix":"quotes|GET /quote/A"}`)
 * need `Authorization: Bearer <token>` when a token is configured; so does `GET /admin/workers` (each
 * worker's pid, state and restarts), served when `workers` is given. `/dashboard` and `/dashboard/events`
 * also take the dashboard's session cookie (see `dashboard/dashboard.ts`).
 */
export function adminRoutes(options: AdminOptions): EndpointRoute[] {
  const expected = options.token === undefined ? undefined : Buffer.from(options.token);
  /** Compares in constant time (for a given length): a wrong token's timing says nothing of the right one. */
  const isToken = (given: string) => {
    const bytes = Buffer.from(given);
    return expected !== undefined && bytes.length === expected.length && timingSafeEqual(bytes, expected);
  };
  const bearer = (x: Exchange) => {
    if (expected === undefined) return true;
    const header = x.req.headers.authorization ?? '';
    return header.startsWith('Bearer ') && isToken(header.slice('Bearer '.length));
  };
  const authorize = (x: Exchange) => {
    if (!bearer(x)) {
      throw new GatewayError('GW_UNAUTHORIZED', 'admin endpoints need "Authorization: Bearer <admin.token>"');
    }
  };
  const endpoint = (route: string, handle: Endpoint['handle']): Endpoint => ({ route, handle });
  const { workers } = options;
  const workersRoute: EndpointRoute[] =
    workers === undefined
      ? []
      : [
          {
            path: '/admin/workers',
            exact: true,
            methods: ['GET'],
            endpoint: endpoint('admin', async (x) => {
              authorize(x);
              return json(200, workers());
            }),
          },
        ];
  return [
    ...workersRoute,
    {
      path: '/healthz',
      exact: true,
      methods: ['GET'],
      endpoint: endpoint('admin', async () => json(200, { status: 'ok' })),
    },
    {
      path: '/readyz',
      exact: true,
      methods: ['GET'],
      endpoint: endpoint('admin', async () => {
        const ready = options.isReady();
        return json(ready ? 200 : 503, { status: ready ? 'ready' : 'draining' });
      }),
    },
    {
      path: '/metrics',
      exact: true,
      methods: ['GET'],
      endpoint: endpoint('admin', async (x) => {
        authorize(x);
        const body = Buffer.from(await options.metrics.render());
        return {
          status: 200,
          headers: { 'content-type': options.metrics.contentType, 'content-length': String(body.length) },
          body,
        };
      }),
    },
    {
      path: '/admin/cache/purge',
      exact: true,
      methods: ['POST'],
      endpoint: endpoint('admin', async (x) => {
        authorize(x);
        const raw = await x.body(MAX_PURGE_BYTES);
        const body = (raw.length === 0 ? {} : parse(raw)) as { route?: unknown; prefix?: unknown };
        const prefix =
          typeof body.prefix === 'string'
            ? body.prefix
            : typeof body.route === 'string'
              ? `${body.route}|`
              : undefined;
        if (prefix === undefined || prefix.length === 0 || prefix.length > MAX_PREFIX) {
          throw new GatewayError('GW_BAD_REQUEST', 'send {"route": "<name>"} or {"prefix": "<key prefix>"}');
        }
        return json(200, { purged: await options.purgeCache(prefix), prefix });
      }),
    },
    ...(options.dashboard === undefined
      ? []
      : dashboardRoutes({ ...options.dashboard, token: options.token, bearer, isToken })),
  ];
}

function parse(raw: Buffer): unknown {
  const value = parseJson(raw);
  return typeof value === 'object' && value !== null ? value : {};
}

function json(status: number, value: unknown): Reply {
  const body = Buffer.from(JSON.stringify(value));
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': String(body.length) },
    body,
  };
}
