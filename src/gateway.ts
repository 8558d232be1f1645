// Builds the running gateway from a validated config: upstreams, per-route policy stacks, listeners, telemetry.
import { createServer } from 'node:http';
import Fastify from 'fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config, RouteConfig } from './config/schema.js';
import { registerAdmin } from './entrypoints/admin.js';
import { createProxyHandler } from './entrypoints/proxy.js';
import type { ProxyHandler as RawHandler } from './entrypoints/proxy.js';
import { writeError } from './entrypoints/reply-error.js';
import { compileRoute, RouteTable } from './entrypoints/route-table.js';
import { GatewayError } from './errors.js';
import { compose } from './pipeline/compose.js';
import type { Handler, Policy } from './pipeline/types.js';
import { bulkhead } from './policies/bulkhead.js';
import { cache } from './policies/cache.js';
import { coalesce } from './policies/coalesce.js';
import { circuitBreaker } from './policies/circuit-breaker.js';
import { deadline } from './policies/deadline.js';
import { hedge } from './policies/hedge.js';
import { retry } from './policies/retry.js';
import { RetryBudget } from './policies/retry-budget.js';
import { createLogger, subscribeRequestLog } from './telemetry/log.js';
import { createMetrics } from './telemetry/metrics.js';
import { startTracing } from './telemetry/tracing.js';
import { httpUpstream } from './upstreams/http.js';
import { cacheKey } from './cache/keys.js';
import type { KeySpec } from './cache/keys.js';
import { memoryCache } from './cache/memory.js';
import type { CacheStore } from './cache/store.js';
import type { HttpUpstream } from './upstreams/http.js';

export interface GatewayOptions {
  /** Logger to use instead of one built from `telemetry.log`. */
  logger?: Logger;
}

export interface Gateway {
  readonly proxy: FastifyInstance;
  readonly admin: FastifyInstance;
  readonly logger: Logger;
  /** Warms upstream pools, then listens. Resolves with the bound addresses. */
  listen(): Promise<{ url: string; adminUrl: string }>;
  /**
   * Graceful shutdown: stops accepting, lets in-flight requests finish for up to `server.shutdownGrace`,
   * then cuts what is left, closes upstream pools and flushes telemetry.
   */
  close(): Promise<void>;
}

/** Builds (but does not start) a gateway. Every policy stack is composed here, once. */
export function createGateway(config: Config, options: GatewayOptions = {}): Gateway {
  const logger = options.logger ?? createLogger({ level: config.telemetry.log.level });
  const upstreams = new Map<string, HttpUpstream>(
    Object.entries(config.upstreams).map(([name, upstream]) => [name, httpUpstream(name, upstream)]),
  );
  const metrics = createMetrics({ upstreamStats: () => [...upstreams.values()].map((u) => u.stats()) });
  const stopRequestLog = subscribeRequestLog(logger, {
    sampleRate: config.telemetry.log.sampleRate,
    slowMs: config.telemetry.log.slow,
  });
  const tracingConfig = config.telemetry.tracing;
  const tracing =
    tracingConfig.otlpEndpoint === undefined
      ? undefined
      : startTracing({
          endpoint: tracingConfig.otlpEndpoint,
          serviceName: tracingConfig.serviceName,
          sampleRatio: tracingConfig.sampleRatio,
        });

  const store = memoryCache(config.cache.memory);
  const table = new RouteTable(
    config.routes.map((route) =>
      compileRoute(route, routeHandler(route, upstreams.get(route.upstream)!.handler, store)),
    ),
  );

  let ready = false;
  let draining = false;
  /** fastify's own errors (bad JSON, body too large...) in our JSON shape; a 4xx stays the client's. */
  const errorHandler = (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
    const clientFault = error.statusCode !== undefined && error.statusCode < 500;
    if (!clientFault) logger.error({ err: error }, 'unhandled error');
    const code = error.statusCode === 413 ? 'GW_PAYLOAD_TOO_LARGE' : 'GW_BAD_REQUEST';
    reply.hijack();
    writeError(reply.raw, clientFault ? new GatewayError(code, error.message) : error);
  };
  const proxyHandler = createProxyHandler({
    table,
    principalHeader: config.server.principalHeader.toLowerCase(),
    overheadHeader: config.server.overheadHeader,
    isDraining: () => draining,
  });
  /**
   * Request dispatch, in order: built-in entrypoints (`/mcp`, `/tools`, `/v1/...`, `/fanout/...`) win over
   * proxy routes, even a catch-all "/" one; hot entrypoints answer on the raw `node:http` request
   * (`rawEntrypoints`), the others are fastify routes under `fastifyPrefixes`. Then the proxy table,
   * then fastify's 404/405 fallbacks.
   */
  const rawEntrypoints: RawHandler[] = [];
  const fastifyPrefixes: string[] = [];
  const claimedByFastify = (url: string | undefined) =>
    url !== undefined && fastifyPrefixes.some((prefix) => url.startsWith(prefix));
  const proxy = Fastify({
    logger: false,
    return503OnClosing: true,
    serverFactory: (fastifyHandler) =>
      createServer((req, res) => {
        for (const handler of rawEntrypoints) if (handler(req, res)) return;
        if (claimedByFastify(req.url) || !proxyHandler(req, res)) fastifyHandler(req, res);
      }),
  });
  proxy.setNotFoundHandler((request, reply) => {
    const match = table.match(request.method, request.headers.host, request.url.split('?')[0]!);
    const error =
      !match.route && match.methodMismatch
        ? new GatewayError(
            'GW_METHOD_NOT_ALLOWED',
            `method ${request.method} is not allowed on ${request.url}`,
          )
        : new GatewayError('GW_ROUTE_NOT_FOUND', `no route matches ${request.method} ${request.url}`);
    reply.hijack();
    writeError(reply.raw, error);
  });
  proxy.setErrorHandler(errorHandler);

  const admin = Fastify({ logger: false });
  admin.setErrorHandler(errorHandler);
  admin.setNotFoundHandler((request, reply) => {
    reply.hijack();
    writeError(
      reply.raw,
      new GatewayError('GW_ROUTE_NOT_FOUND', `no admin endpoint ${request.method} ${request.url}`),
    );
  });
  registerAdmin(admin, {
    token: config.admin.token,
    metrics,
    isReady: () => ready,
    purgeCache: (prefix) => store.purge(prefix),
  });

  return {
    proxy,
    admin,
    logger,
    async listen() {
      await Promise.all([...upstreams.values()].map((u) => u.warm()));
      const url = await proxy.listen(config.server.listen);
      const adminUrl = await admin.listen(config.admin.listen);
      ready = true;
      logger.info(
        { url, adminUrl, routes: config.routes.length, upstreams: upstreams.size },
        'slipstream listening',
      );
      return { url, adminUrl };
    },
    async close() {
      ready = false;
      draining = true;
      const force = setTimeout(() => proxy.server.closeAllConnections(), config.server.shutdownGrace);
      force.unref();
      try {
        await proxy.close();
      } finally {
        clearTimeout(force);
      }
      await admin.close();
      await Promise.all([...upstreams.values()].map((u) => u.close()));
      await store.close();
      stopRequestLog();
      metrics.close();
      await tracing?.shutdown();
    },
  };
}

/** What varies a response on routes that coalesce without caching: everything, per caller. */
const DEFAULT_KEY: KeySpec = { query: '*', headers: [], body: '*', scope: 'principal' };
/** Largest reply shared between coalesced callers on routes without a cache (bigger ones are fetched per caller). */
const DEFAULT_SHARED_BYTES = 1024 ** 2;

/**
 * Composes a route's policies, outermost first: the cache (a hit costs nothing else), coalescing (one
 * upstream call for identical misses), one total deadline, the bulkhead (queueing counts against the
 * deadline), retry, whose every attempt passes the breaker (so an open breaker stops retries at once),
 * the optional hedge, then the transport.
 */
function routeHandler(route: RouteConfig, transport: Handler, store: CacheStore): Handler {
  const name = route.name ?? route.match.prefix;
  const policies: Policy[] = [];
  const keySpec = route.cache === undefined ? DEFAULT_KEY : { ...route.cache.key, scope: route.cache.scope };
  if (route.cache !== undefined) {
    policies.push(
      cache({
        route: name,
        store,
        key: keySpec,
        ttlMs: route.cache.ttl,
        staleWhileRevalidateMs: route.cache.staleWhileRevalidate,
        staleIfErrorMs: route.cache.staleIfError,
        maxEntryBytes: route.cache.maxEntryBytes,
        methods: new Set(route.cache.methods),
        respectCacheControl: route.cache.respectCacheControl,
        refreshTimeoutMs: route.timeout,
      }),
    );
  }
  if (route.coalesce ?? route.cache !== undefined) {
    policies.push(
      coalesce({
        route: name,
        key: (call) => cacheKey(name, call, keySpec),
        maxBytes: route.cache?.maxEntryBytes ?? DEFAULT_SHARED_BYTES,
      }),
    );
  }
  policies.push(deadline({ timeoutMs: route.timeout }));
  if (route.bulkhead !== false) {
    policies.push(
      bulkhead({
        route: name,
        maxConcurrent: route.bulkhead.maxConcurrent,
        queue: route.bulkhead.queue,
        queueTimeoutMs: route.bulkhead.queueTimeout,
      }),
    );
  }
  if (route.retry !== false) {
    policies.push(
      retry({
        route: name,
        attempts: route.retry.attempts,
        baseDelayMs: route.retry.baseDelay,
        maxDelayMs: route.retry.maxDelay,
        retryOn: route.retry.on,
        budget: new RetryBudget(route.retry.budget),
      }),
    );
  }
  if (route.breaker !== false) {
    const b = route.breaker;
    policies.push(
      b.mode === 'consecutive'
        ? circuitBreaker({
            name,
            mode: 'consecutive',
            threshold: b.threshold,
            halfOpenAfterMs: b.halfOpenAfter,
          })
        : circuitBreaker({
            name,
            mode: 'ratio',
            threshold: b.threshold,
            windowMs: b.window,
            minRequests: b.minRequests,
            halfOpenAfterMs: b.halfOpenAfter,
          }),
    );
  }
  if (route.hedge !== undefined) {
    policies.push(hedge({ delay: route.hedge.delay, minDelayMs: route.hedge.minDelay }));
  }
  return compose(policies, transport);
}
