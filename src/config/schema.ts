// The slipstream.yaml schema (zod): every key, its default and its unit. slipstream.example.yaml documents it.
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { cidr, duration, headerMap, httpUrl, name, size } from './fields.js';
import { groupsSchema } from './groups-schema.js';
import { llmSchema } from './llm-schema.js';
import { mcpSchema } from './mcp-schema.js';
import { authSchema, rateLimitsSchema } from './auth-schema.js';
import {
  breakerSchema,
  bulkheadSchema,
  cacheFields,
  hedgeSchema,
  rateLimitSchema,
  retrySchema,
} from './policy-schema.js';
import { compressionSchema, routeCompressionSchema, upstreamAcceptEncoding } from './compression-schema.js';
import { jobsSchema, routeAsyncSchema } from './jobs-schema.js';

/** `host:port` or `{ host, port }`; a bare number is a port on the default host. */
function listen(defaultHost: string, defaultPort: number) {
  const object = z.strictObject({
    host: z.string().min(1).default(defaultHost),
    port: z.number().int().min(0).max(65535).default(defaultPort),
  });
  return z
    .union([z.number().int().min(0).max(65535), z.string(), object])
    .transform((value, ctx) => {
      if (typeof value === 'object') return value;
      if (typeof value === 'number') return { host: defaultHost, port: value };
      const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
      const port = match === null ? NaN : Number(match[2]);
      if (match === null || port > 65535) {
        ctx.addIssue({ code: 'custom', message: 'expected "host:port", e.g. "127.0.0.1:8080"' });
        return z.NEVER;
      }
      return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
    })
    .default({ host: defaultHost, port: defaultPort });
}

/** A replica's data-plane address as the other replicas reach it: `host:port` (`10.0.0.11:8080`). */
const replicaAddress = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected "host:port", e.g. "10.0.0.11:8080"');

const oauth2 = z.strictObject({
  type: z.literal('oauth2'),
  tokenUrl: httpUrl,
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  scope: z.string().optional(),
  /** How the client authenticates to the token endpoint (RFC 6749 §2.3.1). */
  clientAuth: z.enum(['basic', 'body']).default('basic'),
  /** Refresh this long before the token expires. */
  refreshBefore: duration.default(60_000),
  /** Deadline for one token request. */
  timeout: duration.default(5_000),
});

const upstream = z.strictObject({
  url: httpUrl,
  pool: z
    .strictObject({
      /** Max TCP connections to this origin. */
      connections: z.number().int().min(1).max(10_000).default(128),
      /** HTTP/1.1 requests in flight per connection; 1 means no pipelining (safe default). HTTP/2 multiplexes. */
      pipelining: z.number().int().min(1).max(100).default(1),
      /** How long an idle keep-alive connection is kept. */
      keepAlive: duration.default(30_000),
      /** Negotiate HTTP/2 (over TLS via ALPN) and multiplex requests on one connection. */
      http2: z.boolean().default(false),
      /** Connections opened at start-up so the first requests do not pay for the handshake. */
      warm: z.number().int().min(0).max(1_000).default(1),
    })
    .prefault({}),
  timeouts: z
    .strictObject({
      connect: duration.default(2_000),
      /** Time to response headers. */
      firstByte: duration.default(30_000),
      /** Longest silence between body chunks. */
      idle: duration.default(30_000),
    })
    .prefault({}),
  /** TLS for https:// upstreams: a private CA, or (never in production) no verification. */
  tls: z
    .strictObject({
      /** PEM file of the CA that signed the upstream's certificate, trusted instead of the system CAs; read at load. */
      ca: z
        .string()
        .min(1)
        .transform((file, ctx) => {
          try {
            return readFileSync(file, 'utf8');
          } catch (error) {
            const reason = (error as NodeJS.ErrnoException).code ?? String(error);
            ctx.addIssue({ code: 'custom', message: `cannot read CA file "${file}" (${reason})` });
            return z.NEVER;
          }
        })
        .optional(),
      /** Verify the upstream's certificate. Turning this off makes TLS unauthenticated. */
      rejectUnauthorized: z.boolean().default(true),
      /** Name to verify the certificate against, when it is not the URL's host. */
      servername: z.string().min(1).optional(),
    })
    .optional(),
  /** Static headers added to every request; use ${ENV} for secrets. */
  headers: headerMap.default({}),
  auth: oauth2.optional(),
  /**
   * Largest response body relayed, and largest a coded body may decode to (a decompression bomb is a 502);
   * bigger ones fail with GW_UPSTREAM_RESPONSE_TOO_LARGE.
   */
  maxResponseBytes: size.default(64 * 1024 ** 2),
  /**
   * Accept-Encoding sent to this upstream in place of the client's (proxy routes): `gzip, br` by default, so
   * the upstream leg carries fewer bytes; clients that cannot take the coding get the body decoded.
   * `identity` asks for none; `false` forwards the client's own header.
   */
  acceptEncoding: upstreamAcceptEncoding,
});

/** A route's defaults: three attempts for idempotent calls, a breaker after five failures in a row. */
const retry = retrySchema({ attempts: 3, baseDelayMs: 25, maxDelayMs: 1_000, on: [429, 502, 503, 504] });
const breaker = breakerSchema({ threshold: 5, halfOpenAfterMs: 5_000 });
const bulkhead = bulkheadSchema({ maxConcurrent: 1_000, queue: 1_000, queueTimeoutMs: 1_000 });

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const routeCache = z.strictObject({
  ...cacheFields,
  /**
   * Heuristic freshness (RFC 9111 §4.2.2): the lifetime of a response that states none (no max-age,
   * s-maxage or Expires). Never applied over no-cache, max-age=0, a past or invalid Expires, Pragma: no-cache.
   */
  ttl: duration,
  /**
   * RFC 5861: once stale, serve this long while one background refresh runs. A default: a response's own
   * stale-while-revalidate wins; never for must-revalidate / no-cache (and proxy-revalidate / s-maxage on
   * shared routes), nor for a response that was stale on arrival.
   */
  staleWhileRevalidate: duration.default(0),
  /** RFC 5861: once stale, serve this long when the upstream fails. A default, as staleWhileRevalidate. */
  staleIfError: duration.default(0),
  /** What varies the response besides method and path. */
  key: z
    .strictObject({
      query: z.union([z.literal('*'), z.array(z.string())]).default('*'),
      headers: z.array(z.string().transform((h) => h.toLowerCase())).default([]),
      body: z.union([z.literal('*'), z.array(z.string())]).default('*'),
    })
    .prefault({}),
  /** Methods whose responses are cached; anything beyond GET/HEAD needs `idempotent: true` on the route. */
  methods: z.array(z.enum(METHODS)).default(['GET', 'HEAD']),
  /**
   * Honour the upstream's freshness: no-store, no-cache, max-age, s-maxage, Expires, must-revalidate and
   * the stale directives. false: every response lives `ttl` with the route's stale windows. Either way
   * `private`, Set-Cookie, Vary and the Authorization rule (RFC 9111 §3.5) are honoured.
   */
  respectCacheControl: z.boolean().default(true),
  /**
   * Request headers that identify a caller besides `server.principalHeader`. On a principal-scoped route,
   * a request carrying one without a principal bypasses the cache, unless `key.headers` lists it.
   */
  credentialHeaders: z
    .array(z.string().transform((h) => h.toLowerCase()))
    .default(['authorization', 'cookie']),
  /**
   * Refresh-ahead: a hit on an entry past this share of its freshness lifetime (0.8 = its last fifth)
   * starts one background refresh (coalesced, across instances with Redis), so a key in steady use is
   * replaced before it expires and never misses on a request path. Off when absent.
   */
  refreshAhead: z.number().gt(0).lt(1).optional(),
  /**
   * Warm keys: requests kept fresh on a schedule, off the request path (seed 003's movers and sectors).
   * Needs `scope: shared` (a warm entry belongs to no caller).
   */
  warm: z
    .strictObject({
      /** Time between two refreshes of each request. Default: half the `ttl`. */
      every: duration.optional(),
      /** Each wait varies by up to this fraction either way, so instances and keys spread out. */
      jitter: z.number().min(0).max(1).default(0.1),
      /** Client paths (under the route's prefix, with their query), or `{ path, method, headers, body }`. */
      requests: z
        .array(
          z.union([
            z.string().startsWith('/', 'must start with "/"'),
            z.strictObject({
              path: z.string().startsWith('/', 'must start with "/"'),
              method: z.enum(METHODS).default('GET'),
              /** Send the headers clients send for any header the upstream varies on (Vary). */
              headers: headerMap.default({}),
              /** A JSON or text body, for a route that caches POST. */
              body: z.string().optional(),
            }),
          ]),
        )
        .min(1)
        .max(1_000),
    })
    .optional(),
});

/** A path pattern with one `:name` parameter (the item id), e.g. `/quote/:symbol`. */
const itemPattern = z
  .string()
  .startsWith('/', 'must start with "/"')
  .refine(
    (p) => (p.match(/:[A-Za-z_]\w*/g) ?? []).length === 1,
    'needs exactly one ":param" segment for the item id',
  );

const routeBatch = z.strictObject({
  /** Upstream path of a single-item request; `:param` captures the item id. Other paths pass through. */
  item: itemPattern,
  /** The bulk call that fetches many items at once. */
  bulk: z.strictObject({
    method: z.enum(['GET', 'POST']).default('GET'),
    /** Upstream path; `{ids}` is replaced by the URL-encoded ids joined with `separator` (GET). */
    path: z.string().startsWith('/', 'must start with "/"'),
    separator: z.string().min(1).default(','),
    /** POST: the JSON body is `{ "<bodyField>": [ids...] }`. */
    bodyField: z.string().min(1).default('ids'),
  }),
  /** Where the items are in the bulk response: a dotted path to an array or an object keyed by id ("" = root). */
  items: z.string().default(''),
  /** For an array of items: the field holding each item's id. Omit when `items` is an object keyed by id. */
  key: z.string().min(1).optional(),
  /** How long the first call of a batch waits for others. */
  window: duration.default(2),
  /** Most distinct items per bulk call; a full batch waits no longer. */
  maxBatch: z.number().int().min(1).max(10_000).default(100),
  /** Largest bulk response read. */
  maxResponseBytes: size.default(16 * 1024 ** 2),
});

const route = z.strictObject({
  name: name.optional(),
  match: z.strictObject({
    /** Path prefix, matched on segment boundaries ("/api" matches "/api" and "/api/x", not "/apix"). */
    prefix: z.string().startsWith('/', 'must start with "/"'),
    methods: z.array(z.enum(METHODS)).optional(),
    host: z.string().min(1).optional(),
  }),
  upstream: z.string().min(1),
  /** Replaces the matched prefix in the upstream path (e.g. "/v2"); omitted keeps the path as is. */
  rewrite: z.string().startsWith('/', 'must start with "/"').optional(),
  /** Treat every method on this route as safe to retry (POSTs that are idempotent by design). */
  idempotent: z.boolean().default(false),
  /** Total deadline for the call, including retries and the response body. */
  timeout: duration.default(30_000),
  retry: retry.default(retry.parse({})),
  breaker: breaker.default(breaker.parse({})),
  bulkhead: bulkhead.default(bulkhead.parse({})),
  hedge: hedgeSchema.optional(),
  cache: routeCache.optional(),
  /** Share one upstream call among identical in-flight idempotent calls. Default: on when `cache` is set. */
  coalesce: z.boolean().optional(),
  /** Send concurrent single-item GETs as one bulk upstream call (seed 003's per-ticker quotes). */
  batch: routeBatch.optional(),
  /** Largest request body accepted; bigger ones get 413 GW_PAYLOAD_TOO_LARGE. */
  maxRequestBytes: size.default(1024 ** 2),
  /** This route's own request rate per principal and per address (429 past it), on top of `rateLimits`. */
  rateLimit: rateLimitSchema.optional(),
  /** `false`: anyone may call this route, even with `auth` configured (a public health page, say). */
  auth: z.boolean().default(true),
  /** Compress replies for clients that accept it: `true` (the top-level `compression` settings) or overrides. */
  compression: routeCompressionSchema,
  /**
   * Run requests as background jobs (202 with `Location: <jobs.path>/<id>` at once): `prefer` for requests
   * saying `Prefer: respond-async` (RFC 7240 §4.1), `always` for every request. Off by default.
   */
  async: routeAsyncSchema,
});

export const configSchema = z
  .strictObject({
    server: z
      .strictObject({
        /** The data plane binds loopback unless told otherwise (beyond loopback needs `auth`). */
        listen: listen('127.0.0.1', 8080),
        /** Bounds on what clients may hold: connections, slow heads and bodies, idle keep-alive, JSON nesting. */
        limits: z
          .strictObject({
            /** Connections open at once; more are closed as they arrive. */
            maxConnections: z.number().int().min(1).max(1_000_000).default(10_000),
            /** Connections one client address may hold at once; more are closed as they arrive. */
            maxConnectionsPerIp: z.number().int().min(1).max(1_000_000).default(256),
            /** Longest wait for a request's head (a slowloris client is cut after it). */
            headersTimeout: duration.default(10_000),
            /** Longest wait for a whole request, body included (not the response). */
            requestTimeout: duration.default(60_000),
            /** An idle kept-alive connection is closed after this. */
            keepAliveTimeout: duration.default(5_000),
            /** Deepest JSON nesting accepted in bodies the gateway parses; deeper gets 400. */
            maxJsonDepth: z.number().int().min(1).max(1_000).default(64),
          })
          .prefault({}),
        /** Adds `x-slipstream-overhead-us` (gateway time minus upstream time) to every response. */
        overheadHeader: z.boolean().default(false),
        /** On SIGTERM, how long in-flight requests may take before connections are closed. */
        shutdownGrace: duration.default(10_000),
        /** Header whose value identifies the caller (cache scoping); the API key header is a good choice. */
        principalHeader: z.string().default('authorization'),
        /**
         * Peers whose `X-Forwarded-For` / `-Proto` / `-Host` and `Forwarded` headers are believed (a load balancer
         * in front). From anyone else they are overwritten with what the gateway itself saw.
         */
        trustedProxies: z.array(cidr).default([]),
        /**
         * Adds `x-slipstream-worker` (the worker that served the request: 1..N under `serve --workers N`,
         * 1 otherwise) to every response. For debugging and tests; off by default (it tells clients how
         * the gateway is laid out).
         */
        workerHeader: z.boolean().default(false),
        /**
         * This replica's data-plane address as the other replicas reach it (`host:port`), named in the
         * `/mcp` session ids it issues. Needs `mcp.sessionSecret`. Often `${SLIPSTREAM_ADVERTISE}`.
         */
        advertise: replicaAddress.optional(),
        /**
         * Every replica's advertised address, this one's included: a `/mcp` session opened on one is
         * forwarded to it from any other (docs/deploy.md). Owners not listed are never contacted.
         */
        replicas: z.array(replicaAddress).max(1_000).default([]),
      })
      .prefault({}),
    admin: z
      .strictObject({
        listen: listen('127.0.0.1', 9090),
        /** Bearer token required for admin endpoints other than /healthz and /readyz. */
        token: z.string().min(16, 'admin token must be at least 16 characters').optional(),
        /** The live dashboard at /dashboard (its feed counts events only while a page is open). */
        dashboard: z
          .strictObject({
            enabled: z.boolean().default(true),
            /** Pages open at once; one more gets 503. */
            maxFeeds: z.number().int().min(1).max(64).default(8),
          })
          .prefault({}),
      })
      .prefault({}),
    telemetry: z
      .strictObject({
        log: z
          .strictObject({
            level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
            /** Fraction of requests logged at info (0..1). */
            sampleRate: z.number().min(0).max(1).default(0.01),
            /** Requests slower than this are always logged. */
            slow: duration.default(1_000),
          })
          .prefault({}),
        tracing: z
          .strictObject({
            /** OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318); tracing is off when unset. */
            otlpEndpoint: httpUrl.optional(),
            serviceName: z.string().default('slipstream'),
            sampleRatio: z.number().min(0).max(1).default(1),
          })
          .prefault({}),
      })
      .prefault({}),
    cache: z
      .strictObject({
        /**
         * `memory`: in-process only (the default; nothing to run). `redis`: one store shared by every
         * instance. `tiered`: memory in front of Redis; while Redis is down, memory alone.
         */
        store: z.enum(['memory', 'redis', 'tiered']).default('memory'),
        /** The in-process store every cached route shares (and the tiered store's L1). */
        memory: z
          .strictObject({
            maxEntries: z.number().int().min(1).default(10_000),
            maxBytes: size.default(64 * 1024 ** 2),
          })
          .prefault({}),
        redis: z
          .strictObject({
            url: z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' }),
            /** Prefix of every key Slipstream writes (cache entries, locks). */
            keyPrefix: z.string().default('slipstream:'),
            /** Longest wait for one Redis command; slower counts as a miss. */
            commandTimeout: duration.default(250),
            connectTimeout: duration.default(1_000),
            /** Tiered: longest an entry stays in memory before Redis is read again (L1 TTL <= L2 TTL). */
            l1Ttl: duration.default(5_000),
            /** Identical misses on many instances fetch once: a short Redis lock, the others wait for the entry. */
            coalesce: z.boolean().default(true),
            /** How long a lock outlives a crashed holder; waiters fetch for themselves after it. */
            lockTtl: duration.default(5_000),
          })
          .optional(),
      })
      .prefault({}),
    /** Inbound authentication: API keys, JWT bearer tokens, or a trusted header. Off (anonymous callers) when absent. */
    auth: authSchema.optional(),
    /** Request rate limits per verified principal and per client address (429 with Retry-After and RateLimit-*). */
    rateLimits: rateLimitsSchema.prefault({}),
    /** Defaults for routes' `compression: true`, and whether the built-in JSON endpoints compress. */
    compression: compressionSchema,
    upstreams: z.record(name, upstream),
    routes: z.array(route).default([]),
    /** OpenAI-compatible LLM relay with transcripts (src/config/llm-schema.ts); off when absent. */
    llm: llmSchema.optional(),
    /** MCP servers (stdio pools, remote sessions) exposed at /mcp and /tools (src/config/mcp-schema.ts); off when absent. */
    mcp: mcpSchema.optional(),
    /** Fan-out groups served at POST /fanout/<group> (src/config/groups-schema.ts); off when absent. */
    groups: groupsSchema.optional(),
    /** Background jobs for routes with `async` (src/config/jobs-schema.ts). */
    jobs: jobsSchema,
  })
  .superRefine((config, ctx) => {
    const names = new Set<string>();
    config.routes.forEach((r, i) => {
      if (!(r.upstream in config.upstreams)) {
        const known = Object.keys(config.upstreams).join(', ') || 'none';
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'upstream'],
          message: `unknown upstream "${r.upstream}" (known: ${known})`,
        });
      }
      const name = r.name ?? r.match.prefix;
      if (names.has(name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'name'],
          message: `duplicate route name "${name}"`,
        });
      }
      names.add(name);
      if (r.batch !== undefined && r.batch.bulk.method === 'GET' && !r.batch.bulk.path.includes('{ids}')) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'batch', 'bulk', 'path'],
          message: 'a GET bulk path needs "{ids}" where the item ids go',
        });
      }
      r.cache?.warm?.requests.forEach((request, j) => {
        const at = ['routes', i, 'cache', 'warm', 'requests', j];
        const { path, method } = typeof request === 'string' ? { path: request, method: 'GET' } : request;
        const prefix = r.match.prefix.replace(/\/$/, '') || '/';
        const bare = path.split('?')[0]!;
        if (prefix !== '/' && bare !== prefix && !bare.startsWith(`${prefix}/`)) {
          ctx.addIssue({
            code: 'custom',
            path: at,
            message: `"${path}" is not under the route prefix "${prefix}"`,
          });
        }
        if (!r.cache!.methods.includes(method as (typeof METHODS)[number])) {
          ctx.addIssue({ code: 'custom', path: at, message: `the route does not cache ${method}` });
        }
      });
      if (r.cache?.warm !== undefined && r.cache.scope !== 'shared') {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'cache', 'warm'],
          message: 'warm keys need "scope: shared" (a warm entry belongs to no caller)',
        });
      }
      const unsafe = r.cache?.methods.filter((m) => m !== 'GET' && m !== 'HEAD') ?? [];
      if (unsafe.length > 0 && !r.idempotent) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'cache', 'methods'],
          message: `caching ${unsafe.join(', ')} needs "idempotent: true" on the route`,
        });
      }
    });
    for (const [group, g] of Object.entries(config.groups ?? {})) {
      g.members.forEach((m, i) => {
        if (!('server' in m) || config.mcp?.servers[m.server] !== undefined) return;
        const known = Object.keys(config.mcp?.servers ?? {}).join(', ') || 'none';
        ctx.addIssue({
          code: 'custom',
          path: ['groups', group, 'members', i, 'server'],
          message: `unknown MCP server "${m.server}" (known: ${known})`,
        });
      });
    }
    if (
      config.jobs.store === 'redis' &&
      config.jobs.redis.url === undefined &&
      config.cache.redis === undefined
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['jobs', 'store'],
        message: 'store "redis" needs jobs.redis.url (or cache.redis.url)',
      });
    }
    const { advertise, replicas } = config.server;
    const secret = config.mcp?.sessionSecret;
    if (secret !== undefined && advertise === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['mcp', 'sessionSecret'],
        message: "needs server.advertise (this replica's address, named in its session ids)",
      });
    }
    if (secret === undefined && (advertise !== undefined || replicas.length > 0)) {
      ctx.addIssue({
        code: 'custom',
        path: ['server', advertise !== undefined ? 'advertise' : 'replicas'],
        message: 'needs mcp.sessionSecret (the key that signs /mcp session ids, shared by every replica)',
      });
    }
    if (advertise !== undefined && replicas.length > 0 && !replicas.includes(advertise)) {
      ctx.addIssue({
        code: 'custom',
        path: ['server', 'advertise'],
        message: `"${advertise}" is not in server.replicas: the other replicas would refuse its sessions`,
      });
    }
    if (config.cache.store !== 'memory' && config.cache.redis === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['cache', 'store'],
        message: `store "${config.cache.store}" needs cache.redis.url`,
      });
    }
    // (listen is undefined here when it failed its own validation: that problem is reported already.)
    const dataHost = (config.server.listen as { host?: string } | undefined)?.host;
    if (dataHost !== undefined && !isLoopback(dataHost) && config.auth === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['server', 'listen'],
        message:
          'the data plane is bound beyond loopback without auth: configure auth (apiKeys, jwt or trust: header)',
      });
    }
    const adminHost = (config.admin.listen as { host?: string } | undefined)?.host;
    if (adminHost !== undefined && !isLoopback(adminHost) && config.admin.token === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'listen'],
        message: 'the admin listener is bound beyond loopback; set admin.token or bind it to 127.0.0.1',
      });
    }
  });

/** Whether `host` is a loopback address (parsed, not matched as text: `127.evil.example` is not). */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  if (isIP(v4) === 4) return LOOPBACK.check(v4, 'ipv4');
  return isIP(host) === 6 && LOOPBACK.check(host, 'ipv6');
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** A validated config with every default filled in and units parsed (ms, bytes). */
export type Config = z.output<typeof configSchema>;
export type UpstreamConfig = Config['upstreams'][string];
export type RouteConfig = Config['routes'][number];
export type OAuth2Config = z.output<typeof oauth2>;
export type RouteCacheConfig = z.output<typeof routeCache>;
export type RouteBatchConfig = z.output<typeof routeBatch>;
