// Builds the running gateway from a validated config: upstreams, per-route policy stacks, listeners, telemetry.
import { createServer } from 'node:http';
import Fastify from 'fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config, RouteConfig } from './config/schema.js';
import { registerAdmin } from './entrypoints/admin.js';
import { createChatEntrypoint } from './entrypoints/chat.js';
import { createFanoutHandler } from './entrypoints/fanout.js';
import { createMcpEntrypoint } from './entrypoints/mcp.js';
import type { McpEntrypoint } from './entrypoints/mcp.js';
import { createProxyHandler } from './entrypoints/proxy.js';
import type { ProxyHandler as RawHandler } from './entrypoints/proxy.js';
import { writeError } from './entrypoints/reply-error.js';
import { createToolsHandler } from './entrypoints/tools.js';
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
import { fanoutGroup } from './upstreams/group.js';
import { httpUpstream } from './upstreams/http.js';
import { toolRegistry } from './upstreams/mcp/tool-registry.js';
import { cacheKey } from './cache/keys.js';
import type { KeySpec } from './cache/keys.js';
import { createCacheTier } from './cache/cache-tier.js';
import type { CacheTier } from './cache/cache-tier.js';
import { batch } from './policies/batch.js';
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
  const caches = createCacheTier(config.cache);
  // MCP servers' tools: served at /mcp and /tools, and callable as fan-out members.
  const tools =
    config.mcp === undefined
      ? undefined
      : toolRegistry(config.mcp, { logger, store: caches.store, peerLock: caches.peerLock });
  const groups = new Map(
    Object.entries(config.groups ?? {}).map(([name, group]) => [
      name,
      { group: fanoutGroup(name, group, { logger, tools }), config: group },
    ]),
  );
  const metrics = createMetrics({
    upstreamStats: () =>
      [...upstreams.values()]
        .map((u) => u.stats())
        .concat([...groups.values()].flatMap((g) => g.group.stats())),
    cacheStats: () => caches.stats(),
  });
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

  const table = new RouteTable(
    config.routes.map((route) =>
      compileRoute(route, routeHandler(route, upstreams.get(route.upstream)!.handler, caches)),
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
  const chat =
    config.llm === undefined
      ? undefined
      : createChatEntrypoint(config.llm, {
          isDraining: () => draining,
          logger,
          principalHeader: config.server.principalHeader.toLowerCase(),
        });
  if (chat !== undefined) rawEntrypoints.push(chat.handle);
  if (groups.size > 0) rawEntrypoints.push(createFanoutHandler({ groups, isDraining: () => draining }));
  // MCP: supervised stdio pools and remote sessions, served at /mcp (one MCP server) and /tools (REST).
  let mcp: McpEntrypoint | undefined;
  if (config.mcp !== undefined && tools !== undefined) {
    const shared = {
      registry: tools,
      principalHeader: config.server.principalHeader.toLowerCase(),
      maxRequestBytes: config.mcp.maxRequestBytes,
      isDraining: () => draining,
    };
    mcp = createMcpEntrypoint({
      ...shared,
      maxSessions: config.mcp.maxSessions,
      maxSessionsPerPrincipal: config.mcp.maxSessionsPerPrincipal,
      sessionIdleMs: config.mcp.sessionIdle,
      evictableAfterMs: config.mcp.evictableAfter,
    });
    rawEntrypoints.push(mcp.handler, createToolsHandler(shared));
  }
  const claimedByFastify = (url: string | undefined) =>
    url !== undefined && fastifyPrefixes.some((prefix) => url.startsWith(prefix));
  const proxy = Fastify({
    logger: false,
    return503OnClosing: true,
    serverFactory: (fastifyHandler) =>
      createServer((req, res) => {
        // A raw handler's synchronous throw would escape the 'request' event and kill the process:
        // it becomes that request's error reply instead (GW_INTERNAL unless it is a GatewayError).
        try {
          for (const handler of rawEntrypoints) if (handler(req, res)) return;
          if (claimedByFastify(req.url) || !proxyHandler(req, res)) fastifyHandler(req, res);
        } catch (error) {
          // The path only: a query string may carry credentials.
          logger.error({ err: error, path: req.url?.split('?')[0]?.slice(0, 256) }, 'request handler threw');
          if (!res.headersSent) writeError(res, error);
          else res.destroy();
        }
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
    purgeCache: (prefix) => caches.purge(prefix),
  });

  return {
    proxy,
    admin,
    logger,
    async listen() {
      // Redis gets a moment to connect so the first requests use it; a Redis that is down never blocks start-up.
      await Promise.all(
        [...upstreams.values()].map((u) => u.warm()).concat(caches.ready(1_000).then(() => {})),
      );
      await chat?.warm();
      // MCP pools: every process spawned and initialized once, before the first request (and before
      // fan-out groups, whose members may be tools).
      await mcp?.start();
      // Fan-out groups: first discovery load and warm member pools (bounded by their timeouts, never fatal).
      await Promise.all([...groups.values()].map((g) => g.group.start()));
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
      mcp?.drain();
      const force = setTimeout(() => proxy.server.closeAllConnections(), config.server.shutdownGrace);
      force.unref();
      try {
        await proxy.close();
      } finally {
        clearTimeout(force);
      }
      // After the drain: streams have ended (or were cut), so every transcript can be written in full.
      await chat?.close(config.server.shutdownGrace);
      await Promise.all([...groups.values()].map((g) => g.group.close()));
      await mcp?.close();
      await admin.close();
      await Promise.all([...upstreams.values()].map((u) => u.close()));
      await caches.close();
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
 * Composes a route's policies, outermost first: the cache (a hit costs nothing else; identical misses
 * share one fetch, across instances too with Redis), or coalescing alone on uncached routes, batching
 * (single-item calls become one bulk call), one total deadline, the bulkhead (queueing counts against the
 * deadline), retry, whose every attempt passes the breaker (so an open breaker stops retries at once),
 * the optional hedge, then the transport.
 */
function routeHandler(route: RouteConfig, transport: Handler, caches: CacheTier): Handler {
  const name = route.name ?? route.match.prefix;
  const policies: Policy[] = [];
  const keySpec = route.cache === undefined ? DEFAULT_KEY : { ...route.cache.key, scope: route.cache.scope };
  if (route.cache !== undefined) {
    policies.push(
      cache({
        route: name,
        store: caches.store,
        peerLock: caches.peerLock,
        coalesce: route.coalesce ?? true,
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
  if (route.cache === undefined && route.coalesce === true) {
    policies.push(
      coalesce({
        route: name,
        key: (call) => cacheKey(name, call, keySpec),
        maxBytes: DEFAULT_SHARED_BYTES,
      }),
    );
  }
  if (route.batch !== undefined) {
    const b = route.batch;
    policies.push(
      batch({
        route: name,
        item: b.item,
        bulk: b.bulk,
        items: b.items,
        key: b.key,
        windowMs: b.window,
        maxBatch: b.maxBatch,
        maxResponseBytes: b.maxResponseBytes,
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
