// Every upstream MCP tool under its namespaced name, with its input validator and its policy stack (composed once).
// The registry's surface keeps the v1 SDK types the /mcp entrypoint serves; upstream (v2) objects are the same JSON.
import type { CallToolResult, Progress, Tool } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { Logger } from 'pino';
import { cacheKey, canonicalJson } from '../../cache/keys.js';
import type { CacheStore } from '../../cache/store.js';
import type { McpConfig, McpServerConfig, ToolPolicyConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { compose } from '../../pipeline/compose.js';
import type { Call, Handler, Policy, Reply, RequestContext } from '../../pipeline/types.js';
import { bulkhead } from '../../policies/bulkhead.js';
import { cache } from '../../policies/cache.js';
import type { CachePolicyOptions } from '../../policies/cache.js';
import { circuitBreaker } from '../../policies/circuit-breaker.js';
import { coalesce } from '../../policies/coalesce.js';
import { deadline } from '../../policies/deadline.js';
import { retry } from '../../policies/retry.js';
import { RetryBudget } from '../../policies/retry-budget.js';
import { events, publish } from '../../telemetry/events.js';
import { httpSession } from './http-session.js';
import type { McpUpstream, McpUpstreamStats } from './mcp-upstream.js';
import { statefulPool } from './stateful-pool.js';
import { stdioPool } from './stdio-pool.js';

/** One callable tool. */
export interface ToolEntry {
  readonly server: string;
  /** The tool's name on its server. */
  readonly name: string;
  /** `server__tool`: the name clients see at /mcp. */
  readonly namespaced: string;
  /** The upstream's definition (description, schemas, annotations), name as on the server. */
  readonly tool: Tool;
  /** Route name in metrics and logs: `mcp:server__tool`. */
  readonly route: string;
  readonly idempotent: boolean;
  /** Returns the validation message when `args` fail the tool's input schema. */
  readonly validate: (args: Record<string, unknown>) => string | undefined;
  /** The composed policy stack; the reply body is the JSON `CallToolResult`. */
  readonly handler: Handler;
}

export interface InvokeOptions {
  ctx: RequestContext;
  principal: string | undefined;
  signal: AbortSignal;
  /** The client's `cache-control` (no-cache forces a refresh, no-store bypasses the cache). */
  cacheControl?: string;
  onProgress?: (progress: Progress) => void;
  /** The client session (an /mcp session id, or one per principal for REST); stateful servers key on it. */
  session?: string;
}

export interface ToolRegistry {
  /** Starts every upstream (pre-warmed pools, sessions) and builds the catalogue. */
  start(): Promise<void>;
  lookup(server: string, tool: string): ToolEntry | undefined;
  byNamespacedName(name: string): ToolEntry | undefined;
  /** Every tool, in server order then upstream order. */
  list(): readonly ToolEntry[];
  /** Calls `listener` after any upstream's tool list changed. */
  onChange(listener: () => void): void;
  /**
   * Validates `args`, then runs the tool's handler. Throws `GW_TOOL_INVALID_ARGUMENTS` (400) or any
   * pipeline GatewayError; resolves with the reply (body: the JSON result, `x-slipstream-cache` set when cached).
   */
  invoke(entry: ToolEntry, args: Record<string, unknown>, options: InvokeOptions): Promise<Reply>;
  stats(): McpUpstreamStats[];
  /** A client session ended: stateful servers close its process. */
  endSession(session: string): void;
  close(): Promise<void>;
}

export interface ToolRegistryOptions {
  logger: Logger;
  /** Where cached tool results live (the gateway's cache tier). */
  store: CacheStore;
  /** Cross-instance single flight for cache misses, when the gateway has one. */
  peerLock?: CachePolicyOptions['peerLock'];
}

/** Largest tool list kept per server. */
const MAX_TOOLS_PER_SERVER = 10_000;

const progressByContext = new WeakMap<RequestContext, (progress: Progress) => void>();
const sessionByContext = new WeakMap<RequestContext, string>();
const argsByBody = new WeakMap<Buffer, Record<string, unknown>>();
const resultByBody = new WeakMap<Buffer, CallToolResult>();

/** The `CallToolResult` in a tool reply (parsed again only when it came from a cache). */
export function resultOf(reply: Reply): CallToolResult {
  const body = reply.body;
  if (!Buffer.isBuffer(body)) throw new GatewayError('GW_INTERNAL', 'tool reply without a buffered body');
  return resultByBody.get(body) ?? (JSON.parse(body.toString('utf8')) as CallToolResult);
}

/** Builds the registry for `config.servers`; nothing is spawned until `start()`. */
export function toolRegistry(config: McpConfig, options: ToolRegistryOptions): ToolRegistry {
  const validator = new AjvJsonSchemaValidator();
  const upstreams = Object.entries(config.servers).map(([name, server]) => ({
    server,
    upstream:
      server.type === 'http'
        ? httpSession(name, server, options.logger)
        : server.stateful
          ? statefulPool(name, server, options.logger)
          : stdioPool(name, server, options.logger),
  }));
  /** Handlers survive tool-list refreshes: a breaker or cache keeps its state while the tool exists. */
  const handlers = new Map<string, Handler>();
  let entries: ToolEntry[] = [];
  let byName = new Map<string, ToolEntry>();
  const listeners: Array<() => void> = [];

  const rebuild = () => {
    const next: ToolEntry[] = [];
    for (const { server, upstream } of upstreams) {
      for (const tool of (upstream.tools() as readonly Tool[]).slice(0, MAX_TOOLS_PER_SERVER)) {
        next.push(entryFor(upstream, server, tool));
      }
    }
    entries = next;
    byName = new Map(next.map((entry) => [entry.namespaced, entry]));
  };

  const entryFor = (upstream: McpUpstream, server: McpServerConfig, tool: Tool): ToolEntry => {
    const namespaced = `${upstream.name}${config.separator}${tool.name}`;
    const policy = server.tools[tool.name] ?? {};
    const idempotent = policy.idempotent ?? (policy.cache !== undefined || policy.coalesce === true);
    let handler = handlers.get(namespaced);
    if (handler === undefined) {
      handler = toolHandler(
        `mcp:${namespaced}`,
        server,
        policy,
        idempotent,
        transport(upstream, tool.name),
        options,
      );
      handlers.set(namespaced, handler);
    }
    const check = validator.getValidator<Record<string, unknown>>(tool.inputSchema);
    return {
      server: upstream.name,
      name: tool.name,
      namespaced,
      tool,
      route: `mcp:${namespaced}`,
      idempotent,
      validate: (args) => {
        const result = check(args);
        return result.valid ? undefined : (result.errorMessage ?? 'invalid arguments');
      },
      handler,
    };
  };

  return {
    async start() {
      await Promise.all(upstreams.map(({ upstream }) => upstream.start()));
      for (const { upstream } of upstreams) {
        upstream.onToolsChanged(() => {
          rebuild();
          for (const listener of listeners) listener();
        });
      }
      rebuild();
    },
    lookup: (server, tool) => byName.get(`${server}${config.separator}${tool}`),
    byNamespacedName: (name) => byName.get(name),
    list: () => entries,
    onChange(listener) {
      listeners.push(listener);
    },
    async invoke(entry, args, invoke) {
      const problem = entry.validate(args);
      if (problem !== undefined) {
        throw new GatewayError(
          'GW_TOOL_INVALID_ARGUMENTS',
          `invalid arguments for tool "${entry.namespaced}": ${problem}`,
        );
      }
      const body = Buffer.from(canonicalJson(args));
      argsByBody.set(body, args);
      if (invoke.onProgress !== undefined) progressByContext.set(invoke.ctx, invoke.onProgress);
      if (invoke.session !== undefined) sessionByContext.set(invoke.ctx, invoke.session);
      const call: Call = {
        ctx: invoke.ctx,
        upstream: entry.server,
        method: 'POST',
        path: `/tools/${entry.server}/${entry.name}`,
        headers: invoke.cacheControl === undefined ? {} : { 'cache-control': invoke.cacheControl },
        body,
        idempotent: entry.idempotent,
        principal: invoke.principal,
        signal: invoke.signal,
      };
      return entry.handler(call);
    },
    stats: () => upstreams.map(({ upstream }) => upstream.stats()),
    endSession(session) {
      for (const { upstream } of upstreams) upstream.endSession?.(session);
    },
    async close() {
      await Promise.all(upstreams.map(({ upstream }) => upstream.close()));
    },
  };
}

/** The transport at the bottom of a tool's stack: the Call's body holds the arguments, the reply's the result. */
function transport(upstream: McpUpstream, tool: string): Handler {
  return async (call) => {
    const body = call.body as Buffer;
    const args = argsByBody.get(body) ?? (JSON.parse(body.toString('utf8')) as Record<string, unknown>);
    const attempt = { call, headers: call.headers };
    publish(events.attemptStart, attempt);
    call.ctx.attempts++;
    const started = performance.now();
    let status: number | undefined;
    let errorCode: GatewayError['code'] | undefined;
    try {
      const result = (await upstream.callTool(tool, args, {
        signal: call.signal,
        onProgress: progressByContext.get(call.ctx),
        idempotent: call.idempotent,
        session: sessionByContext.get(call.ctx),
      })) as CallToolResult;
      status = 200;
      const json = Buffer.from(JSON.stringify(result));
      resultByBody.set(json, result);
      // A tool error is an answer (200), but never one to cache; nor is a 2026-07-28 request for input.
      const headers: Reply['headers'] = { 'content-type': 'application/json' };
      if (result.isError === true || (result as { resultType?: unknown }).resultType === 'input_required')
        headers['cache-control'] = 'no-store';
      return { status, headers, body: json };
    } catch (error) {
      errorCode = error instanceof GatewayError ? error.code : 'GW_INTERNAL';
      throw error;
    } finally {
      const durationMs = performance.now() - started;
      call.ctx.upstreamMs += durationMs;
      publish(events.attemptEnd, { call, status, errorCode, durationMs });
    }
  };
}

/** Bulkhead queue for tools with a `concurrency` limit. */
const CONCURRENCY_QUEUE = 1_000;
const CONCURRENCY_QUEUE_TIMEOUT_MS = 1_000;

/**
 * Composes a tool's policies, outermost first, as for proxy routes: cache (misses coalesced), or coalescing
 * alone; one total deadline; the bulkhead (`concurrency`); retry (idempotent tools only); the breaker.
 */
function toolHandler(
  route: string,
  server: McpServerConfig,
  policy: ToolPolicyConfig,
  idempotent: boolean,
  transportHandler: Handler,
  options: ToolRegistryOptions,
): Handler {
  const policies: Policy[] = [];
  const timeoutMs = policy.timeout ?? server.timeout;
  const keySpec = { query: '*', headers: [], body: '*', scope: policy.cache?.scope ?? 'principal' } as const;
  if (policy.cache !== undefined) {
    policies.push(
      cache({
        route,
        store: options.store,
        peerLock: options.peerLock,
        coalesce: policy.coalesce ?? true,
        key: keySpec,
        ttlMs: policy.cache.ttl,
        staleWhileRevalidateMs: policy.cache.staleWhileRevalidate,
        staleIfErrorMs: 0,
        maxEntryBytes: policy.cache.maxEntryBytes,
        methods: new Set(['POST']),
        respectCacheControl: true,
        refreshTimeoutMs: timeoutMs,
      }),
    );
  } else if (policy.coalesce === true) {
    policies.push(coalesce({ route, key: (call) => cacheKey(route, call, keySpec), maxBytes: 1024 ** 2 }));
  }
  policies.push(deadline({ timeoutMs }));
  if (policy.concurrency !== undefined) {
    policies.push(
      bulkhead({
        route,
        maxConcurrent: policy.concurrency,
        queue: CONCURRENCY_QUEUE,
        queueTimeoutMs: CONCURRENCY_QUEUE_TIMEOUT_MS,
      }),
    );
  }
  if (idempotent && policy.retry !== false) {
    const r = policy.retry ?? { attempts: 2, baseDelay: 25, maxDelay: 500 };
    policies.push(
      retry({
        route,
        attempts: r.attempts,
        baseDelayMs: r.baseDelay,
        maxDelayMs: r.maxDelay,
        retryOn: [],
        budget: new RetryBudget(),
      }),
    );
  }
  if (server.breaker !== false) {
    policies.push(
      circuitBreaker({
        name: route,
        mode: 'consecutive',
        threshold: server.breaker.threshold,
        halfOpenAfterMs: server.breaker.halfOpenAfter,
      }),
    );
  }
  return compose(policies, transportHandler);
}
