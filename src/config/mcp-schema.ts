// The `mcp:` config key (zod): stdio and remote MCP servers, their pools, and per-tool policies.
import { z } from 'zod';
import { duration, headerMap } from './fields.js';
import { breakerSchema, cacheFields, rateLimitSchema, retrySchema } from './policy-schema.js';

/** A tool's defaults: two quick attempts (idempotent tools only), a breaker after five failures in a row. */
const retry = retrySchema({ attempts: 2, baseDelayMs: 25, maxDelayMs: 500, on: [] });
const breaker = breakerSchema({ threshold: 5, halfOpenAfterMs: 5_000 });

const NAME = /^[a-zA-Z0-9_-]+$/;
const name = z.string().regex(NAME, 'use letters, digits, "_" or "-"');

const toolPolicy = z.strictObject({
  /** Cache results keyed by the canonical arguments; `principal` scope (the default) keeps callers apart. */
  cache: z.strictObject(cacheFields).optional(),
  /** Share one upstream call among identical in-flight calls. Default: on when `cache` is set. */
  coalesce: z.boolean().optional(),
  /** Total deadline for one call, including queueing and retries. Default: the server's `timeout`. */
  timeout: duration.optional(),
  /**
   * Calling twice is harmless: enables retries, and one transparent retry when the server process crashes
   * mid-call. Default: true when `cache` or `coalesce` is set (caching says the result is reusable), else false.
   */
  idempotent: z.boolean().optional(),
  /** Retries for idempotent tools (crashes, timeouts); false turns them off. */
  retry: retry.default(retry.parse({})),
  /** This tool's own call rate per principal and per address (429 past it). */
  rateLimit: rateLimitSchema.optional(),
  /** Calls of this tool in flight at once; more wait up to 1 s, then fail with GW_BULKHEAD_FULL. */
  concurrency: z.number().int().min(1).max(100_000).optional(),
});

/** The MCP eras an upstream may speak; `auto` asks the server (`server/discover`, spec 2026-07-28). */
const era = z.enum(['auto', '2025-11-25', '2026-07-28']);

const common = {
  /**
   * The protocol era to speak: `auto` (default) probes `server/discover` once per server and falls back to
   * the 2025-11-25 `initialize` handshake; a revision pins it (a server that does not speak it fails to start).
   */
  era: era.default('auto'),
  /**
   * Server→client requests the gateway relays to downstream clients, declared to this server on 2025-11-25
   * connections (the union: a request for a capability the calling client lacks is refused with -32601).
   * On 2026-07-28 each request declares exactly its client's capabilities instead.
   */
  clientCapabilities: z
    .array(z.enum(['sampling', 'elicitation', 'roots']))
    .default(['sampling', 'elicitation', 'roots']),
  /** Default deadline of a tool call on this server. */
  timeout: duration.default(30_000),
  /**
   * Caches this server's `resources/read` results at /mcp for `ttl` (`scope: principal`, the default, per
   * caller; `shared` for everyone), instead of the SEP-2549 `ttlMs` / `cacheScope` the server sends with
   * each result. 2025-era servers send no hint: without this their reads are never cached.
   */
  resourceCache: z
    .strictObject({ ttl: duration, scope: z.enum(['principal', 'shared']).default('principal') })
    .optional(),
  /** Per-tool policies, by the tool's name on the server (not the namespaced one). */
  tools: z.record(z.string().min(1), toolPolicy).default({}),
  /** Circuit breaker per tool (crashes, timeouts, protocol errors; not `isError` results); false turns it off. */
  breaker: breaker.default(breaker.parse({})),
  /**
   * Prefix this server's tools and prompts with `server<separator>` at /mcp and /tools. Default: the
   * top-level `namespacing`. Without it two servers exposing one name is a start-up config error.
   */
  namespace: z.boolean().optional(),
};

const stdioServer = z.strictObject({
  type: z.literal('stdio'),
  command: z.string().min(1),
  args: z.array(z.string()).default([]),
  /** Added to a minimal inherited environment (HOME, PATH, ...); use ${ENV} for secrets. */
  env: z.record(z.string(), z.string()).default({}),
  cwd: z.string().optional(),
  pool: z
    .strictObject({
      /** Processes started and initialized at gateway start. */
      min: z.number().int().min(1).max(64).default(1),
      /** Processes allowed under load (added when every process has `maxInFlight` calls). */
      max: z.number().int().min(1).max(64).default(4),
      /** Calls in flight on one process before another is started (while below `max`). */
      maxInFlight: z.number().int().min(1).max(10_000).default(32),
      /** How often each idle process is pinged; a call that hits its deadline triggers a ping at once. */
      healthInterval: duration.default(10_000),
      /** A process that does not answer a ping within this long is recycled (SIGKILL, then restarted). */
      pingTimeout: duration.default(2_000),
      /** Longest wait for a process to spawn and answer `initialize`. */
      startTimeout: duration.default(10_000),
    })
    .prefault({}),
  /**
   * One process per client session (an /mcp session; for REST, the principal) instead of a shared pool, for
   * servers that keep per-client state. `pool.max` then bounds the processes (the least recently used idle
   * one is closed to make room); `pool.min` is ignored.
   */
  stateful: z.boolean().default(false),
  ...common,
});

const httpServer = z.strictObject({
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
  headers: headerMap.default({}),
  ...common,
});

export const mcpSchema = z
  .strictObject({
    servers: z.record(name, z.discriminatedUnion('type', [stdioServer, httpServer])),
    /** Joins server and tool in namespaced names (`quotes__get_quote`). */
    separator: z
      .string()
      .regex(/^[a-zA-Z0-9_.-]{1,4}$/, 'use 1 to 4 of letters, digits, "_", "-" or "."')
      .default('__'),
    /** Prefix tools and prompts with their server's name (`quotes__get_quote`); false keeps the servers' names. */
    namespacing: z.boolean().default(true),
    /**
     * Host names (and `Origin` host names) `/mcp` accepts besides the loopback ones (`localhost`, `127.0.0.1`,
     * `[::1]`): spec 2025-11-25 basic/transports says servers MUST validate `Origin` (DNS rebinding). Others
     * get 403 `GW_MCP_ORIGIN_FORBIDDEN`. `"*"` accepts any (behind a proxy that checks them).
     */
    allowedHosts: z.array(z.string().min(1).max(253)).max(1_000).default([]),
    /** Largest JSON body accepted by `POST /tools/...` and `/mcp`. */
    maxRequestBytes: z
      .number()
      .int()
      .min(1)
      .default(1024 ** 2),
    /** Most `/mcp` sessions open at once. At the limit a session idle for `evictableAfter` is closed to admit a new one; if none is, `initialize` gets 503. */
    maxSessions: z.number().int().min(1).max(100_000).default(1_000),
    /**
     * Most `/mcp` sessions one caller (by `server.principalHeader`) keeps at once; past it, its least recently
     * used session idle for `evictableAfter` is closed, else `initialize` gets 429. Callers without the header share `maxSessions`.
     */
    maxSessionsPerPrincipal: z.number().int().min(1).max(100_000).default(100),
    /** At a session limit, the least recently used session may be closed to admit a new one once it has been idle this long. */
    evictableAfter: duration.default(60_000),
    /** A `/mcp` session unused this long is closed (the client gets 404 and opens a new one). */
    sessionIdle: duration.default(30 * 60_000),
    /**
     * How long a call of a 2025-era server, parked while a 2026-07-28 client answers its sampling /
     * elicitation / roots request (an `input_required` round), waits for the client's retry; then it is
     * cancelled upstream and the retry gets `GW_MCP_REQUEST_STATE_EXPIRED`.
     */
    inputWait: duration.default(60_000),
    /** Calls parked at once waiting for their clients' input; one more is cancelled with `GW_BULKHEAD_FULL`. */
    maxParkedCalls: z.number().int().min(1).max(100_000).default(1_000),
    /**
     * Key signing `/mcp` session ids (HMAC-SHA256), the same on every replica; use `${ENV}`. With
     * `server.advertise`, a session opened on one replica works through any other (docs/deploy.md).
     * Unset: random ids, sessions served only where they were opened.
     */
    sessionSecret: z.string().min(32, 'a session secret must be at least 32 characters').optional(),
  })
  .superRefine((mcp, ctx) => {
    for (const [server, config] of Object.entries(mcp.servers)) {
      if (server.includes(mcp.separator)) {
        ctx.addIssue({
          code: 'custom',
          path: ['servers', server],
          message: `server name must not contain the separator "${mcp.separator}"`,
        });
      }
      if (config.type === 'stdio' && config.pool.min > config.pool.max) {
        ctx.addIssue({
          code: 'custom',
          path: ['servers', server, 'pool', 'min'],
          message: `pool.min (${config.pool.min}) exceeds pool.max (${config.pool.max})`,
        });
      }
    }
  });

export type McpConfig = z.output<typeof mcpSchema>;
export type McpServerConfig = McpConfig['servers'][string];
export type StdioServerConfig = Extract<McpServerConfig, { type: 'stdio' }>;
export type HttpServerConfig = Extract<McpServerConfig, { type: 'http' }>;
export type ToolPolicyConfig = z.output<typeof toolPolicy>;

/** The policies of a tool that has no entry under its server's `tools`. */
export const DEFAULT_TOOL_POLICY: ToolPolicyConfig = toolPolicy.parse({});
export type McpEraSetting = z.output<typeof era>;

/** True when `server`'s tools and prompts are exposed as `server<separator>name`. */
export function namespaced(mcp: McpConfig, server: string): boolean {
  return mcp.servers[server]?.namespace ?? mcp.namespacing;
}
