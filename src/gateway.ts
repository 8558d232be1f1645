// The composition root: builds upstreams, stores, stacks and endpoints from a validated config; one lifecycle list.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { cacheKey } from './cache/keys.js';
import type { KeySpec } from './cache/keys.js';
import { createCacheTier } from './cache/cache-tier.js';
import type { CacheTier } from './cache/cache-tier.js';
import { refresher } from './cache/refresher.js';
import type { Refresher } from './cache/refresher.js';
import { warmKeys } from './cache/warm-keys.js';
import type { WarmKeys, WarmRequest } from './cache/warm-keys.js';
import type { TranscriptsConfig } from './config/llm-schema.js';
import type { Config, RouteConfig } from './config/schema.js';
import { configProblem } from './config/load.js';
import { adminRoutes } from './entrypoints/admin.js';
import { fanoutEndpoint } from './entrypoints/fanout.js';
import type { FanoutEntrypointOptions } from './entrypoints/fanout.js';
import { chatCompletionsFormat } from './entrypoints/llm/chat-completions.js';
import { embeddingsEndpoint } from './entrypoints/llm/embeddings-endpoint.js';
import { llmEndpoint } from './entrypoints/llm/endpoint.js';
import { countTokensFormat, messagesFormat } from './entrypoints/llm/messages.js';
import { modelsEndpoint } from './entrypoints/llm/models.js';
import type { LlmFormat } from './entrypoints/llm/format.js';
import { responseOwners } from './entrypoints/llm/response-owners.js';
import type { ResponseOwners } from './entrypoints/llm/response-owners.js';
import { responsesFormat } from './entrypoints/llm/responses.js';
import { sessionsEndpoint } from './entrypoints/llm/sessions.js';
import { storedResponsesEndpoint } from './entrypoints/llm/stored-responses.js';
import type { McpEntrypoint, SessionClusterOptions } from './entrypoints/mcp/endpoint.js';
import { protectedResourceEndpoint } from './entrypoints/protected-resource.js';
import { jobsEndpoint } from './entrypoints/jobs.js';
import { proxyEndpoint } from './entrypoints/proxy.js';
import { jobService } from './jobs/jobs.js';
import type { Jobs } from './jobs/jobs.js';
import { memoryJobs } from './jobs/memory-backend.js';
import { redisJobs } from './jobs/redis-backend.js';
import { webhookSender } from './jobs/webhook.js';
import { toolsEndpoint } from './entrypoints/tools.js';
import { buildStack } from './policies/stack.js';
import type { Handler, Policy } from './pipeline/types.js';
import { batch } from './policies/batch.js';
import { cache } from './policies/cache.js';
import { coalesce } from './policies/coalesce.js';
import { bucketOf, memoryBuckets, rateLimitOf, redisBuckets } from './policies/rate-limit.js';
import type { BucketStore } from './policies/rate-limit.js';
import { createAuthenticator } from './server/auth.js';
import type { AdmissionLimits } from './server/exchange.js';
import { createListener } from './server/listener.js';
import type { ConnectionLimits, Listener } from './server/listener.js';
import { compileRoute, RouteTable } from './server/route-table.js';
import type { CompiledRoute } from './server/route-table.js';
import type { RouteParts } from './server/route-table.js';
import type { ReplyCoder } from './server/compression.js';
import { replyCoder } from './server/compression.js';
import { DEFAULT_UPSTREAM_ACCEPT_ENCODING } from './config/compression-schema.js';
import { peerMatcher } from './server/peers.js';
import { Router } from './server/router.js';
import type { EndpointRoute } from './server/router.js';
import { postgresStore } from './stores/postgres.js';
import { sqliteStore } from './stores/sqlite.js';
import { TranscriptBuffer } from './streams/transcript-buffer.js';
import { liveStats } from './telemetry/live/live-stats.js';
import type { LiveSnapshot } from './telemetry/live/live-stats.js';
import { stateBoard } from './telemetry/live/state-board.js';
import type { StateBoard } from './telemetry/live/state-board.js';
import { createLogger, subscribeRequestLog } from './telemetry/log.js';
import { createMetrics } from './telemetry/metrics.js';
import type { Metrics, UpstreamConnectionStats } from './telemetry/metrics.js';
import { startTracing } from './telemetry/tracing.js';
import { fanoutGroup } from './upstreams/group/fanout.js';
import { asUpstream, httpUpstream } from './upstreams/http.js';
import { llmProviders } from './upstreams/llm/providers.js';
import type { LlmProviders } from './upstreams/llm/providers.js';
import type { ToolRegistry } from './upstreams/mcp/tool-registry.js';

export interface GatewayOptions {
  /** Logger to use instead of one built from `telemetry.log`. */
  logger?: Logger;
  /** This process's number under `serve --workers N` (1..N), named by `server.workerHeader`. Default 1. */
  worker?: number;
  /**
   * Bind the admin listener. Default true; a `--workers` worker leaves it to the supervisor, which serves
   * it once for every worker (`cluster/supervisor.ts`).
   */
  admin?: boolean;
  /** Bind the data listener with `SO_REUSEPORT`, one socket per worker (only where the runtime honours it). */
  reusePort?: boolean;
  /**
   * Under `serve --workers N`: N, the directory where each worker also listens on `worker-<n>.sock`
   * (so a sibling reaches the `/mcp` sessions this one owns), and the machine's session secret for a
   * config without `mcp.sessionSecret`.
   */
  siblings?: { count: number; dir: string; secret: string };
}

export interface Gateway {
  /** The data-plane listener (proxy routes and every built-in endpoint). */
  readonly proxy: Listener;
  readonly admin: Listener;
  readonly logger: Logger;
  /** This process's metrics (a `--workers` supervisor merges every worker's into one scrape). */
  readonly metrics: Metrics;
  /** Drops cache entries whose key starts with `prefix`, as `POST /admin/cache/purge`; resolves with how many. */
  purgeCache(prefix: string): Promise<number>;
  /**
   * Starts every component in order (warm pools, MCP processes, discovery), then listens. `adminUrl` is
   * undefined when the admin listener is not this process's (`GatewayOptions.admin`).
   */
  listen(): Promise<{ url: string; adminUrl: string | undefined }>;
  /**
   * Graceful shutdown: stops accepting, lets in-flight requests finish for up to `server.shutdownGrace`,
   * ends streams still open with their format's error event, then closes every component in reverse order
   * and flushes telemetry.
   */
  close(): Promise<void>;
}

/** A part of the gateway with a life, in the lifecycle list. */
interface Component {
  readonly name: string;
  /** Opens it ahead of traffic; never fails start-up for a cold upstream. */
  start?(): Promise<unknown>;
  /** Shutdown, first step, before requests drain (close long-lived streams so connections can end). */
  drain?(): void;
  /** Shutdown, after the drain. */
  close(): Promise<void>;
  stats?(): UpstreamConnectionStats[];
}

/**
 * The MCP layer, imported only for a config with `mcp:`: its two SDKs (server and client) are a third of
 * an idle gateway's memory.
 */
async function loadMcp() {
  const [{ toolRegistry }, { createMcpEntrypoint }] = await Promise.all([
    import('./upstreams/mcp/tool-registry.js'),
    import('./entrypoints/mcp/endpoint.js'),
  ]);
  return { toolRegistry, createMcpEntrypoint };
}

/** A `--workers` worker's Unix socket, where its siblings reach the `/mcp` sessions it owns. */
function siblingSocket(dir: string, worker: number): string {
  return join(dir, `worker-${worker}.sock`);
}

/**
 * Signed `/mcp` session ids and forwarding (docs/deploy.md): across replicas with `mcp.sessionSecret`
 * (the schema then requires `server.advertise`), and between the workers of `serve --workers N`.
 * Undefined for one process without a secret: random ids, as ever.
 */
function sessionCluster(config: Config, options: GatewayOptions): SessionClusterOptions | undefined {
  const machine = options.siblings;
  const secret = config.mcp?.sessionSecret ?? machine?.secret;
  if (secret === undefined) return undefined;
  const self = config.server.advertise;
  const replicas =
    self === undefined ? [] : config.server.replicas.length > 0 ? config.server.replicas : [self];
  if (machine === undefined) return { secret, self, replicas };
  const index = options.worker ?? 1;
  const siblings = new Map<number, string>();
  for (let n = 1; n <= machine.count; n++) if (n !== index) siblings.set(n, siblingSocket(machine.dir, n));
  return { secret, self, replicas, worker: { index, count: machine.count }, siblings };
}

/** Builds (but does not start) a gateway. Every policy stack is composed here, once. */
export async function createGateway(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
  const logger = options.logger ?? createLogger({ level: config.telemetry.log.level });
  const principalHeader = config.server.principalHeader.toLowerCase();
  const caches = createCacheTier(config.cache);
  const auth = createAuthenticator(config.auth, principalHeader, logger);
  const buckets = bucketStore(config, caches);
  const rateLimits = admissionLimits(config, buckets);
  const upstreams = new Map(
    Object.entries(config.upstreams).map(([name, upstream]) => [name, httpUpstream(name, upstream)]),
  );
  // MCP servers' tools: served at /mcp and /tools, and callable as fan-out members.
  const mcpLayer = config.mcp === undefined ? undefined : await loadMcp();
  const tools =
    config.mcp === undefined || mcpLayer === undefined
      ? undefined
      : mcpLayer.toolRegistry(config.mcp, {
          logger,
          store: caches.store,
          peerLock: caches.peerLock,
          buckets,
          configError: (path, message) => configProblem(config, ['mcp', ...path], message),
        });
  const mcp =
    config.mcp === undefined || tools === undefined || mcpLayer === undefined
      ? undefined
      : mcpLayer.createMcpEntrypoint({
          registry: tools,
          maxRequestBytes: config.mcp.maxRequestBytes,
          maxSessions: config.mcp.maxSessions,
          maxSessionsPerPrincipal: config.mcp.maxSessionsPerPrincipal,
          sessionIdleMs: config.mcp.sessionIdle,
          evictableAfterMs: config.mcp.evictableAfter,
          allowedHosts: config.mcp.allowedHosts,
          inputWaitMs: config.mcp.inputWait,
          maxParkedCalls: config.mcp.maxParkedCalls,
          store: caches.store,
          servers: config.mcp.servers,
          cluster: sessionCluster(config, options),
        });
  const providers = config.llm === undefined ? undefined : llmProviders(config.llm);
  const transcripts =
    config.llm?.transcripts === undefined ? undefined : createTranscripts(config.llm.transcripts, logger);
  const groups = new Map(
    Object.entries(config.groups ?? {}).map(([name, group]) => [
      name,
      { group: fanoutGroup(name, group, { logger, tools }), config: group },
    ]),
  );

  /** Background refreshes of every cached route (stale-while-revalidate, refresh-ahead). */
  const refreshes = refresher();
  // The data plane: built-in endpoints first (they win over proxy routes, even a catch-all "/"), then routes.
  const compiled = config.routes.map((route) =>
    compileRoute(
      route,
      routeHandler(
        route,
        upstreams.get(route.upstream)!.handler,
        caches,
        config.upstreams[route.upstream]!.url,
        buckets,
        refreshes,
      ),
      routeCoding(route, config),
    ),
  );
  const routes = new RouteTable(compiled);
  const warmers = config.routes.flatMap((route, i) => warmersOf(route, compiled[i]!));
  const jobs = createJobs(config, compiled);
  const endpoints = builtInEndpoints(config, { tools, mcp, providers, transcripts, groups, caches, buckets });
  if (jobs !== undefined) {
    const coders = new Map(compiled.map((r) => [r.name, r.coder]));
    endpoints.push({
      path: config.jobs.path,
      endpoint: jobsEndpoint({ jobs, coderOf: (route) => coders.get(route) }),
    });
  }

  /**
   * The lifecycle list. Stages start in this order (the components of one stage in parallel) and close in
   * reverse after the drain: the cache and every pool first; MCP pools before fan-out groups, whose members
   * may be tools; the transcript writer once every stream has ended; background work (cache refreshes,
   * warm keys) last to start and first to close.
   */
  const lifecycle: Component[][] = [
    [
      // Redis gets a moment to connect so the first requests use it; a Redis that is down never blocks start-up.
      { name: 'cache', start: () => caches.ready(1_000), close: () => caches.close() },
      // The JWKS is loaded once before traffic (never fatal) and refreshed in the background.
      { name: 'auth', start: () => auth.start(), close: () => auth.close() },
      ...[...upstreams.values()].map(asUpstream),
      ...(providers === undefined ? [] : [{ name: 'llm', ...providers }]),
    ],
    tools === undefined ? [] : [{ name: 'mcp', start: () => tools.start(), close: () => tools.close() }],
    [
      ...[...groups.values()].map(({ group }) => group),
      ...(mcp === undefined
        ? []
        : [{ name: 'mcp-sessions', drain: () => mcp.drain(), close: () => mcp.close() }]),
    ],
    transcripts === undefined
      ? []
      : [
          {
            name: 'transcripts',
            // What is left of the grace, but at least FINAL_WRITE_MS for the rows of streams ended at its end.
            close: () => transcripts.close(Math.max(FINAL_WRITE_MS, graceEnds - performance.now())),
          },
        ],
    // Work the gateway does on its own (it calls routes' stacks): started once everything is up, and
    // closed first, before the pools it uses.
    [
      { name: 'cache-refresh', close: () => refreshes.close() },
      ...warmers,
      ...(jobs === undefined
        ? []
        : [
            {
              ...jobs.component,
              // Jobs get what is left of the grace once requests have drained.
              close: () => jobs.component.close(Math.max(0, graceEnds - performance.now())),
            },
          ]),
    ],
  ];
  const components = lifecycle.flat();
  /** When the shutdown grace ends (set by `close()`). */
  let graceEnds = Infinity;

  const metrics = createMetrics({
    upstreamStats: () => components.flatMap((c) => c.stats?.() ?? []),
    cacheStats: () => caches.stats(),
    inFlight: () => proxy.exchanges.size,
    ...(jobs === undefined ? {} : { jobsRunning: () => jobs.running() }),
    ...(mcp === undefined ? {} : { mcpParked: () => mcp.parked() }),
  });
  // The dashboard: breaker transitions and MCP exits are kept all along (rare events); everything per
  // request is counted only while a page is open.
  const board = config.admin.dashboard.enabled ? stateBoard() : undefined;
  const live =
    board === undefined
      ? undefined
      : liveStats({
          snapshot: () => dashboardSnapshot(board, { tools, mcp, providers, transcripts, groups }),
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

  let ready = false;
  let draining = false;
  const isTrustedPeer = peerMatcher(config.server.trustedProxies);
  const proxy = createListener({
    router: new Router(endpoints, routes),
    proxy: proxyEndpoint({ isTrustedPeer, ...(jobs === undefined ? {} : { jobs }) }),
    isTrustedPeer,
    limits: connectionLimits(config),
    maxJsonDepth: config.server.limits.maxJsonDepth,
    isDraining: () => draining,
    // Without `auth` every caller is anonymous: no authenticator to await on each request.
    ...(config.auth === undefined ? {} : { auth }),
    ...(rateLimits === undefined ? {} : { rateLimits }),
    overheadHeader: config.server.overheadHeader,
    ...(config.server.workerHeader ? { workerHeader: String(options.worker ?? 1) } : {}),
  });
  const serveAdmin = options.admin ?? true;
  const purgeCache = (prefix: string) => caches.purge(prefix);
  const admin = createListener({
    router: new Router(
      adminRoutes({
        token: config.admin.token,
        metrics,
        isReady: () => ready,
        purgeCache,
        ...(live === undefined ? {} : { dashboard: { live, maxFeeds: config.admin.dashboard.maxFeeds } }),
      }),
    ),
    isDraining: () => false,
    overheadHeader: false,
    events: false,
  });

  return {
    proxy,
    admin,
    logger,
    metrics,
    purgeCache,
    async listen() {
      for (const stage of lifecycle) await Promise.all(stage.map(async (c) => c.start?.()));
      const url = await proxy.listen({ ...config.server.listen, reusePort: options.reusePort ?? false });
      if (mcp !== undefined && options.siblings !== undefined)
        await proxy.listenLocal(siblingSocket(options.siblings.dir, options.worker ?? 1));
      const adminUrl = serveAdmin ? await admin.listen(config.admin.listen) : undefined;
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
      for (const c of components) c.drain?.();
      graceEnds = performance.now() + config.server.shutdownGrace;
      await proxy.close(config.server.shutdownGrace);
      // After the drain: streams have ended (or were ended), so every transcript can be written in full.
      for (const stage of [...lifecycle].reverse()) await Promise.all(stage.map((c) => c.close()));
      if (serveAdmin) await admin.close(0);
      board?.close();
      stopRequestLog();
      metrics.close();
      await tracing?.shutdown();
    },
  };
}

/** The components the config turned on, as the data plane's endpoints and the dashboard see them. */
interface Parts {
  tools: ToolRegistry | undefined;
  mcp: McpEntrypoint | undefined;
  providers: LlmProviders | undefined;
  transcripts: TranscriptBuffer | undefined;
  groups: FanoutEntrypointOptions['groups'];
}

/** The built-in endpoints of the data plane, for the parts the config turned on. */
function builtInEndpoints(
  config: Config,
  parts: Parts & { caches: CacheTier; buckets: BucketStore },
): EndpointRoute[] {
  const { tools, mcp, providers, transcripts, groups, caches, buckets } = parts;
  const principalHeader = config.server.principalHeader.toLowerCase();
  const coder = endpointCoder(config);
  const endpoints: EndpointRoute[] = [];
  if (mcp !== undefined && tools !== undefined && config.mcp !== undefined) {
    endpoints.push(
      { path: '/mcp', exact: true, endpoint: mcp.endpoint },
      {
        path: '/tools',
        endpoint: toolsEndpoint({ registry: tools, maxRequestBytes: config.mcp.maxRequestBytes, coder }),
      },
    );
  }
  if (providers !== undefined && config.llm !== undefined) {
    const llm = config.llm;
    const relayed = (route: string, format: LlmFormat, owners?: ResponseOwners) =>
      llmEndpoint({
        route,
        format,
        providers,
        transcripts,
        maxRequestBytes: llm.maxRequestBytes,
        owners,
        buckets,
      });
    // Which provider made which response: chained requests and `GET /v1/responses/:id` go back to it.
    const owners = responseOwners();
    const { cache: embeddingCache, batch: embeddingBatch } = llm.embeddings;
    endpoints.push(
      {
        path: '/v1/chat/completions',
        exact: true,
        methods: ['POST'],
        endpoint: relayed('chat', chatCompletionsFormat),
      },
      // Registered before the prefix below: `/v1/responses` itself is only POST (a WebSocket upgrade is 426).
      {
        path: '/v1/responses',
        exact: true,
        methods: ['POST'],
        endpoint: relayed('responses', responsesFormat, owners),
      },
      {
        path: '/v1/responses',
        methods: ['GET', 'POST', 'DELETE'],
        endpoint: storedResponsesEndpoint({ providers, owners, maxRequestBytes: llm.maxRequestBytes }),
      },
      { path: '/v1/messages', exact: true, methods: ['POST'], endpoint: relayed('messages', messagesFormat) },
      {
        path: '/v1/messages/count_tokens',
        exact: true,
        methods: ['POST'],
        endpoint: relayed('count-tokens', countTokensFormat),
      },
      {
        path: '/v1/embeddings',
        exact: true,
        methods: ['POST'],
        endpoint: embeddingsEndpoint({
          providers,
          maxRequestBytes: llm.maxRequestBytes,
          cache:
            embeddingCache === false
              ? undefined
              : {
                  store: caches.store,
                  peerLock: caches.peerLock,
                  ttlMs: embeddingCache.ttl,
                  staleWhileRevalidateMs: embeddingCache.staleWhileRevalidate,
                  staleIfErrorMs: embeddingCache.staleIfError,
                  scope: embeddingCache.scope,
                  maxEntryBytes: embeddingCache.maxEntryBytes,
                },
          // Off: only one request's own inputs share a call.
          batch:
            embeddingBatch === false
              ? { windowMs: 0, maxBatch: 2_048 }
              : { windowMs: embeddingBatch.window, maxBatch: embeddingBatch.maxBatch },
          maxResponseBytes: llm.embeddings.maxResponseBytes,
        }),
      },
      { path: '/v1/models', methods: ['GET'], endpoint: modelsEndpoint(providers) },
    );
    if (transcripts !== undefined) {
      endpoints.push({
        path: '/v1/sessions',
        methods: ['GET'],
        endpoint: sessionsEndpoint({ transcripts, principalHeader }),
      });
    }
  }
  if (groups.size > 0) endpoints.push({ path: '/fanout', endpoint: fanoutEndpoint({ groups, coder }) });
  if (config.auth?.jwt !== undefined) {
    endpoints.push({
      path: '/.well-known/oauth-protected-resource',
      methods: ['GET'],
      endpoint: protectedResourceEndpoint(config.auth.jwt),
    });
  }
  return endpoints;
}

/**
 * Where rate-limit buckets live: in Redis when the cache has it (cluster-wide, falling back to this process
 * while Redis is away), else in memory.
 */
function bucketStore(config: Config, caches: CacheTier): BucketStore {
  const local = memoryBuckets();
  return caches.connection === undefined
    ? local
    : redisBuckets({
        connection: caches.connection,
        keyPrefix: `${config.cache.redis?.keyPrefix ?? 'slipstream:'}rl:`,
        fallback: local,
      });
}

/** The admission limits (`rateLimits` and API keys' own request limits), or undefined when none is set. */
function admissionLimits(config: Config, store: BucketStore): AdmissionLimits | undefined {
  const { perPrincipal, perIp } = config.rateLimits;
  const keyed = [...(config.auth?.apiKeys?.keys ?? []), ...(config.auth?.apiKeys?.file ?? [])];
  if (
    perPrincipal === undefined &&
    perIp === undefined &&
    !keyed.some((k) => k.limits?.requests !== undefined)
  ) {
    return undefined;
  }
  return { store, perPrincipal: bucketOf(perPrincipal), perIp: bucketOf(perIp) };
}

/** The coder of the built-in JSON endpoints (`/tools`, fan-out JSON), when `compression.endpoints` is on. */
function endpointCoder(config: Config): ReplyCoder | undefined {
  const { endpoints, ...settings } = config.compression;
  if (!endpoints) return undefined;
  // Their bodies are the gateway's own JSON, never a decoded upstream body: the bound is never reached.
  return replyCoder({ route: 'endpoints', compression: settings, maxDecodedBytes: Number.MAX_SAFE_INTEGER });
}

/** The job service when a route is `async`: in this process, or on a Redis Streams queue. */
function createJobs(config: Config, compiled: readonly CompiledRoute[]): Jobs | undefined {
  const asyncRoutes = compiled.filter((r) => r.async !== undefined);
  if (asyncRoutes.length === 0) return undefined;
  const c = config.jobs;
  const bounds = { maxJobs: c.maxJobs, maxBytes: c.maxBytes, ttlMs: c.ttl };
  const backend =
    c.store === 'redis'
      ? redisJobs({
          ...bounds,
          url: c.redis.url ?? config.cache.redis!.url,
          keyPrefix: c.redis.keyPrefix,
          leaseMs: c.redis.lease,
          commandTimeoutMs: c.redis.commandTimeout,
        })
      : memoryJobs(bounds);
  const hooks = c.webhooks;
  return jobService({
    backend,
    routes: new Map(asyncRoutes.map((r) => [r.name, r])),
    path: c.path,
    concurrency: c.concurrency,
    maxResultBytes: c.maxResultBytes,
    ...(hooks.secret === undefined
      ? {}
      : {
          webhooks: {
            allow: hooks.allow,
            sender: webhookSender({
              secret: hooks.secret,
              attempts: hooks.attempts,
              baseDelayMs: hooks.baseDelay,
              maxDelayMs: hooks.maxDelay,
              timeoutMs: hooks.timeout,
              maxBodyBytes: hooks.maxBodyBytes,
            }),
          },
        }),
  });
}

/**
 * A route's warm keys (none without `cache.warm`): each request as the proxy endpoint would send it
 * through the route's stack (the rewrite applied, the upstream's Accept-Encoding, so it fills the variant
 * clients read).
 */
function warmersOf(route: RouteConfig, compiled: CompiledRoute): WarmKeys[] {
  const warm = route.cache?.warm;
  if (warm === undefined || route.cache === undefined) return [];
  const table = new RouteTable([compiled]);
  const requests = warm.requests.map((r): WarmRequest => {
    const { path, method, headers, body } =
      typeof r === 'string' ? { path: r, method: 'GET', headers: {}, body: undefined } : r;
    const queryAt = path.indexOf('?');
    const found = table.match(method, undefined, queryAt === -1 ? path : path.slice(0, queryAt));
    const upstreamPath =
      (found.route === undefined ? path : found.upstreamPath) + (queryAt === -1 ? '' : path.slice(queryAt));
    const out: Record<string, string> = { ...lowerCased(headers) };
    if (compiled.acceptEncoding !== undefined) out['accept-encoding'] = compiled.acceptEncoding;
    const bytes = body === undefined ? undefined : Buffer.from(body);
    if (bytes !== undefined) out['content-length'] = String(bytes.length);
    return { method, path, upstreamPath, headers: out, body: bytes };
  });
  return [
    warmKeys({
      route: compiled.name,
      upstream: route.upstream,
      handler: compiled.handler,
      requests,
      everyMs: warm.every ?? route.cache.ttl / 2,
      jitter: warm.jitter,
      timeoutMs: route.timeout,
    }),
  ];
}

function lowerCased(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

/**
 * A route's content codings: its compression (the top-level settings with the route's overrides), the
 * upstream's Accept-Encoding, and the upstream's `maxResponseBytes` as the bound on a decoded body.
 */
function routeCoding(route: RouteConfig, config: Config): RouteParts {
  const upstream = config.upstreams[route.upstream]!;
  const asked = upstream.acceptEncoding ?? DEFAULT_UPSTREAM_ACCEPT_ENCODING;
  const { endpoints: _, ...defaults } = config.compression;
  const own = route.compression;
  return {
    coder: replyCoder({
      route: route.name ?? route.match.prefix,
      compression: own === false ? undefined : own === true ? defaults : { ...defaults, ...own },
      maxDecodedBytes: upstream.maxResponseBytes,
    }),
    ...(asked === false ? {} : { acceptEncoding: asked }),
  };
}

function connectionLimits(config: Config): ConnectionLimits {
  const l = config.server.limits;
  return {
    maxConnections: l.maxConnections,
    maxConnectionsPerIp: l.maxConnectionsPerIp,
    headersTimeoutMs: l.headersTimeout,
    requestTimeoutMs: l.requestTimeout,
    keepAliveTimeoutMs: l.keepAliveTimeout,
  };
}

/** The MCP protocol era whose sessions `/mcp` serves today (`Mcp-Session-Id`, the 2025 revisions). */
const SESSION_ERA = '2025 (sessions)';

/** What the dashboard reads of the components each second it is open: pools, sessions, queues, members. */
function dashboardSnapshot(board: StateBoard, parts: Parts): LiveSnapshot {
  const { tools, mcp, providers, transcripts, groups } = parts;
  const t = transcripts?.stats();
  return {
    breakers: board.breakers(),
    mcp:
      tools === undefined
        ? undefined
        : {
            servers: tools.stats().map((s) => ({
              server: s.server,
              processes: s.pids.length,
              ready: s.ready,
              inFlight: s.inFlight,
              restarts: s.restarts,
              lastExit: board.lastExit(s.server),
              down: s.down?.reason,
            })),
            sessions: mcp === undefined ? [] : [{ era: SESSION_ERA, sessions: mcp.sessions() }],
          },
    llm:
      providers === undefined
        ? undefined
        : {
            // A stream holds its provider request (and pool slot) until its last chunk.
            providers: providers.stats().map((s) => ({ name: s.upstream, openStreams: s.running })),
            transcripts:
              t === undefined
                ? undefined
                : {
                    queueDepth: t.queueDepth,
                    rowsWritten: t.rowsWritten,
                    storeErrors: t.failures,
                    dropped: t.dropped,
                  },
          },
    groups: [...groups.values()].map(({ group }) => ({ name: group.name, members: group.members() })),
  };
}

/** Builds the transcript buffer and its store from config. */
function createTranscripts(config: TranscriptsConfig, logger: Logger): TranscriptBuffer {
  const store =
    config.store === 'postgres'
      ? postgresStore({
          url: config.postgres.url!,
          tablePrefix: config.postgres.tablePrefix,
          connections: config.postgres.connections,
          queryTimeoutMs: config.postgres.queryTimeout,
        })
      : sqliteStore({ path: config.sqlite.path });
  return new TranscriptBuffer({
    store,
    intervalMs: config.interval,
    minChars: config.minChars,
    persistDeltas: config.persistDeltas,
    maxQueue: config.maxQueue,
    maxQueueChars: config.maxQueueChars,
    retention: {
      maxAgeMs: config.retention.maxAge,
      maxMessagesPerSession: config.retention.maxMessagesPerSession,
      maxSessions: config.retention.maxSessions,
      cleanupIntervalMs: config.retention.cleanupInterval,
    },
    logger,
  });
}

/** The least time the transcript writer gets at shutdown, for the last rows of streams ended at the grace's end. */
const FINAL_WRITE_MS = 1_000;

/** What varies a response on routes that coalesce without caching: everything, per caller. */
const DEFAULT_KEY: KeySpec = { query: '*', headers: [], body: '*', scope: 'principal' };
/** Largest reply shared between coalesced callers on routes without a cache (bigger ones are fetched per caller). */
const DEFAULT_SHARED_BYTES = 1024 ** 2;

/**
 * A proxy route's stack, from the one builder (`policies/stack.ts`): in front, the HTTP-specific policies
 * (the cache, whose identical misses share one fetch, across instances too with Redis; or coalescing alone
 * on uncached routes; then batching), and then the order every kind shares.
 */
function routeHandler(
  route: RouteConfig,
  transport: Handler,
  caches: CacheTier,
  upstreamUrl: string,
  buckets: BucketStore,
  refreshes: Refresher,
): Handler {
  const name = route.name ?? route.match.prefix;
  const front: Policy[] = [];
  const keySpec = route.cache === undefined ? DEFAULT_KEY : { ...route.cache.key, scope: route.cache.scope };
  if (route.cache !== undefined) {
    front.push(
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
        credentialHeaders: route.cache.credentialHeaders,
        upstreamUrl,
        refreshTimeoutMs: route.timeout,
        refresher: refreshes,
        ...(route.cache.refreshAhead === undefined ? {} : { refreshAhead: route.cache.refreshAhead }),
      }),
    );
  } else if (route.coalesce === true) {
    front.push(
      coalesce({ route: name, key: (call) => cacheKey(name, call, keySpec), maxBytes: DEFAULT_SHARED_BYTES }),
    );
  }
  if (route.batch !== undefined) {
    const b = route.batch;
    front.push(
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
  return buildStack(
    {
      name,
      ...rateLimitOf(route.rateLimit, buckets),
      front,
      timeoutMs: route.timeout,
      bulkhead: route.bulkhead,
      retry: route.retry,
      breaker: route.breaker,
      ...(route.hedge === undefined ? {} : { hedge: route.hedge }),
    },
    transport,
  ).handler;
}
