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
}

/**
 * Registers the admin routes. `/healthz` answers 200 while the process runs; `/readyz` answers 200 only
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
    guarded.get('/metrics', async (_request, reply) => {
      return reply.header('content-type', options.metrics.contentType).send(await options.metrics.render());
    });
  });
}
