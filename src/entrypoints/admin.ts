// Admin listener: /metrics, /healthz, /readyz. Bound to loopback by default; a token guards the rest.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';
import { writeError } from './reply-error.js';

export interface AdminOptions {
  /** Bearer token for everything but the health checks; when unset, the listener must be on loopback. */
  token: string | undefined;
  /** Prometheus text exposition. */
  metrics: { contentType: string; render(): Promise<string> };
  /** False while starting or draining: load balancers should stop sending traffic. */
  isReady: () => boolean;
  /** Deletes cache entries whose key starts with the prefix; resolves with how many. */
  purgeCache: (prefix: string) => Promise<number>;
}

/** Longest purge prefix accepted (keys are `route|METHOD /path|hash`). */
const MAX_PREFIX = 2048;

/**
 * Registers the admin routes. `POST /admin/cache/purge` deletes cached entries by route or key prefix. `/healthz` answers 200 while the process runs; `/readyz` answers 200 only
 * when the gateway takes traffic (503 while draining). Other routes need `Authorization: Bearer <token>`
 * when a token is configured.
 */
export function registerAdmin(app: FastifyInstance, options: AdminOptions): void {
  const expected = options.token === undefined ? undefined : Buffer.from(`Bearer ${options.token}`);

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = options.isReady();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'draining' });
  });

  app.register(async (guarded) => {
    guarded.addHook('onRequest', async (request, reply) => {
      if (expected === undefined) return;
      const given = Buffer.from(request.headers.authorization ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        reply.hijack();
        writeError(
          reply.raw,
          new GatewayError('GW_UNAUTHORIZED', 'admin endpoints need "Authorization: Bearer <admin.token>"'),
        );
      }
    });
    // Purge by route (`{"route":"quotes"}`) or by key prefix (`{"prefix":"quotes|GET /quote/AAPL"}`).
    guarded.post('/admin/cache/purge', { bodyLimit: 16 * 1024 }, async (request, reply) => {
      const body = (request.body ?? {}) as { route?: unknown; prefix?: unknown };
      const prefix =
        typeof body.prefix === 'string'
          ? body.prefix
          : typeof body.route === 'string'
            ? `${body.route}|`
            : undefined;
      if (prefix === undefined || prefix.length === 0 || prefix.length > MAX_PREFIX) {
        reply.hijack();
        writeError(
          reply.raw,
          new GatewayError('GW_BAD_REQUEST', 'send {"route": "<name>"} or {"prefix": "<key prefix>"}'),
        );
        return reply;
      }
      return { purged: await options.purgeCache(prefix), prefix };
    });
    guarded.get('/metrics', async (_request, reply) => {
      return reply.header('content-type', options.metrics.contentType).send(await options.metrics.render());
    });
  });
}
