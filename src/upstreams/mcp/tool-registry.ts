// Every upstream MCP tool under its namespaced name, with its input validator and its policy stack (composed once).
// The registry's surface keeps the v1 SDK types the /mcp entrypoint serves; upstream (v2) objects are the same JSON.
import type { CallToolResult, Progress, Tool } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { Logger } from 'pino';
import { argumentsKey } from '../../cache/keys.js';
import type { CacheStore } from '../../cache/store.js';
import { DEFAULT_TOOL_POLICY, namespaced as isNamespaced } from '../../config/mcp-schema.js';
import type { McpConfig, McpServerConfig, ToolPolicyConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { serverDownError } from './outage.js';
import { buildStack } from '../../policies/stack.js';
import type { Call, Handler, HttpRequest, Policy, Reply, RequestContext } from '../../pipeline/types.js';
import { cache } from '../../policies/cache.js';
import type { CachePolicyOptions } from '../../policies/cache.js';
import { coalesce } from '../../policies/coalesce.js';
import { rateLimitOf } from '../../policies/rate-limit.js';
import type { BucketStore } from '../../policies/rate-limit.js';
import { events, publish } from '../../telemetry/events.js';
import { httpSession } from './http-session.js';
import type { McpRequestOptions, McpUpstream, McpUpstreamStats, ToolRequest } from './mcp-upstream.js';
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
  /** The composed policy stack; the reply body is the JSON `CallToolResult` (`decoded` holds it parsed). */
  readonly handler: Handler<ToolRequest>;
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
  /** `_meta` to send upstream (traceparent, log level...). */
  meta?: McpRequestOptions['meta'];
  onNotification?: McpRequestOptions['onNotification'];
  onServerRequest?: McpRequestOptions['onServerRequest'];
  clientCapabilities?: McpRequestOptions['clientCapabilities'];
  extraParams?: McpRequestOptions['extraParams'];
}

export interface ToolRegistry {
  /** Starts every upstream (pre-warmed pools, sessions) and builds the catalogue. */
  start(): Promise<void>;
  lookup(server: string, tool: string): ToolEntry | undefined;
  byNamespacedName(name: string): ToolEntry | undefined;
  /** Every callable tool, in server order then upstream order. */
  list(): readonly ToolEntry[];
  /**
   * A listed tool that needs task-augmented execution (`execution.taskSupport: "required"`): never listed
   * as callable, since Slipstream relays no tasks; the message says so.
   */
  taskOnly(name: string): string | undefined;
  /**
   * For a name no listed tool has: the 503 `GW_MCP_SERVER_DOWN` of the server it is namespaced under, when
   * that server is down (its tools are not known yet, so "unknown tool" would mislead), else of a server
   * with namespacing off that is down (a bare name could be one of its tools: the message says it may not
   * be). Undefined when no such server is down.
   */
  downServerOf(name: string): GatewayError | undefined;
  /** Every upstream, in config order (for resources, prompts, completions and logging). */
  upstreams(): readonly McpUpstream[];
  /** The name clients see for `name` of `server` (`server__name`, or `name` with namespacing off). */
  exposedName(server: string, name: string): string;
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
  /** Where rate-limit buckets live (the gateway's), for tools with a `rateLimit`. */
  buckets?: BucketStore;
  /** Cross-instance single flight for cache misses, when the gateway has one. */
  peerLock?: CachePolicyOptions['peerLock'];
  /** Builds the start-up error for a problem at `path` under `mcp` (located in the config file). */
  configError?: (path: PropertyKey[], message: string) => Error;
}

/** Largest tool list kept per server. */
const MAX_TOOLS_PER_SERVER = 10_000;

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
  const handlers = new Map<string, Handler<ToolRequest>>();
  let entries: ToolEntry[] = [];
  let byName = new Map<string, ToolEntry>();
  let taskOnly = new Map<string, string>();
  const listeners: Array<() => void> = [];
  const exposedName = (server: string, name: string) =>
    isNamespaced(config, server) ? `${server}${config.separator}${name}` : name;

  /** Rebuilds the catalogue; returns the names two servers expose (the first server keeps each). */
  const rebuild = (): Array<{ name: string; servers: [string, string] }> => {
    const next: ToolEntry[] = [];
    const names = new Map<string, ToolEntry>();
    const tasks = new Map<string, string>();
    const clashes: Array<{ name: string; servers: [string, string] }> = [];
    for (const { server, upstream } of upstreams) {
      for (const tool of (upstream.tools() as readonly Tool[]).slice(0, MAX_TOOLS_PER_SERVER)) {
        const name = exposedName(upstream.name, tool.name);
        const owner = names.get(name)?.server ?? tasks.get(name);
        if (owner !== undefined) {
          clashes.push({ name, servers: [owner, upstream.name] });
          continue;
        }
        // MCP 2025-11-25 tools: `taskSupport: "required"` tools must be called as tasks, which are not relayed.
        if ((tool as { execution?: { taskSupport?: unknown } }).execution?.taskSupport === 'required') {
          tasks.set(name, upstream.name);
          continue;
        }
        const entry = entryFor(upstream, server, tool, name);
        next.push(entry);
        names.set(name, entry);
      }
    }
    entries = next;
    byName = names;
    taskOnly = tasks;
    return clashes;
  };

  const entryFor = (
    upstream: McpUpstream,
    server: McpServerConfig,
    tool: Tool,
    namespaced: string,
  ): ToolEntry => {
    // Tool names come from the server: never look them up in a plain object's prototype.
    const policy = Object.hasOwn(server.tools, tool.name) ? server.tools[tool.name]! : DEFAULT_TOOL_POLICY;
    const idempotent = policy.idempotent ?? (policy.cache !== undefined || policy.coalesce === true);
    let handler = handlers.get(namespaced);
    if (handler === undefined) {
      handler = toolHandler(`mcp:${namespaced}`, server, policy, idempotent, transport(upstream), options);
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
      const [clash] = rebuild();
      if (clash !== undefined) {
        const message = `tool "${clash.name}" is exposed by servers "${clash.servers[0]}" and "${clash.servers[1]}" with namespacing off: turn namespacing on for one of them (namespace: true)`;
        await Promise.all(upstreams.map(({ upstream }) => upstream.close().catch(() => {})));
        throw (
          options.configError?.(['servers', clash.servers[1]], message) ??
          new GatewayError('GW_CONFIG_INVALID', message)
        );
      }
      for (const { upstream } of upstreams) {
        upstream.onToolsChanged(() => {
          for (const later of rebuild()) {
            options.logger.warn(
              { tool: later.name, servers: later.servers },
              'two MCP servers expose one tool name with namespacing off: the first server keeps it',
            );
          }
          for (const listener of listeners) listener();
        });
      }
    },
    lookup: (server, tool) => {
      const entry = byName.get(exposedName(server, tool));
      return entry?.server === server ? entry : undefined;
    },
    byNamespacedName: (name) => byName.get(name),
    list: () => entries,
    taskOnly: (name) => {
      const server = taskOnly.get(name);
      return server === undefined
        ? undefined
        : `tool "${name}" of MCP server "${server}" requires task-augmented execution (execution.taskSupport: "required"), which Slipstream does not relay`;
    },
    downServerOf(name) {
      let bare: GatewayError | undefined;
      for (const { upstream } of upstreams) {
        const down = upstream.stats().down;
        if (down === undefined) continue;
        if (!isNamespaced(config, upstream.name)) {
          // A bare name could be any such server's: the first one down answers, saying it may not be its.
          bare ??= serverDownError(upstream.name, down, `no listed tool is named "${name}", and `);
        } else if (name.startsWith(exposedName(upstream.name, ''))) {
          return serverDownError(upstream.name, down);
        }
      }
      return bare;
    },
    upstreams: () => upstreams.map(({ upstream }) => upstream),
    exposedName,
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
      const call: Call<ToolRequest> = {
        ctx: invoke.ctx,
        upstream: entry.server,
        idempotent: entry.idempotent,
        principal: invoke.principal,
        signal: invoke.signal,
        tool: entry.name,
        arguments: args,
        cacheControl: invoke.cacheControl,
        ...(invoke.onProgress === undefined ? {} : { onProgress: invoke.onProgress }),
        ...(invoke.session === undefined ? {} : { session: invoke.session }),
        ...(invoke.meta === undefined ? {} : { meta: invoke.meta }),
        ...(invoke.onNotification === undefined ? {} : { onNotification: invoke.onNotification }),
        ...(invoke.onServerRequest === undefined ? {} : { onServerRequest: invoke.onServerRequest }),
        ...(invoke.clientCapabilities === undefined ? {} : { clientCapabilities: invoke.clientCapabilities }),
        ...(invoke.extraParams === undefined ? {} : { extraParams: invoke.extraParams }),
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

/** The transport at the bottom of a tool's stack: the call's arguments go out, the result comes back as JSON. */
function transport(upstream: McpUpstream): Handler<ToolRequest> {
  return async (call) => {
    publish(events.attemptStart, { call, headers: {} });
    call.ctx.attempts++;
    const started = performance.now();
    let status: number | undefined;
    let errorCode: GatewayError['code'] | undefined;
    try {
      const result = (await upstream.callTool(call.tool, call.arguments, {
        signal: call.signal,
        onProgress: call.onProgress,
        idempotent: call.idempotent,
        session: call.session,
        ...(call.meta === undefined ? {} : { meta: call.meta }),
        ...(call.onNotification === undefined ? {} : { onNotification: call.onNotification }),
        ...(call.onServerRequest === undefined ? {} : { onServerRequest: call.onServerRequest }),
        ...(call.clientCapabilities === undefined ? {} : { clientCapabilities: call.clientCapabilities }),
        ...(call.extraParams === undefined ? {} : { extraParams: call.extraParams }),
      })) as CallToolResult;
      status = 200;
      // A tool error is an answer (200), but never one to cache; nor is a 2026-07-28 request for input.
      const headers: Reply['headers'] = { 'content-type': 'application/json' };
      if (result.isError === true || (result as { resultType?: unknown }).resultType === 'input_required')
        headers['cache-control'] = 'no-store';
      return { status, headers, body: Buffer.from(JSON.stringify(result)), decoded: result };
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

/**
 * A tool's cache is the gateway's one HTTP cache (RFC 9111 rules, tiers, coalescing, peer locks), seeing a
 * tool call as what it is on the wire of the REST surface: `POST /tools/<server>/<tool>` with the client's
 * `cache-control`, keyed by the canonical arguments (and the principal, for principal-scoped caches).
 */
function toolCache(
  keyOf: (call: Call<ToolRequest>) => string,
  options: CachePolicyOptions,
): Policy<ToolRequest> {
  const policy = cache<ToolRequest & HttpRequest>(options);
  return (next) => {
    const cached = policy(next);
    return (call) =>
      cached({
        ...call,
        method: 'POST',
        path: `/tools/${call.upstream}/${call.tool}`,
        headers: call.cacheControl === undefined ? {} : { 'cache-control': call.cacheControl },
        body: undefined,
        key: keyOf(call),
      });
  };
}

/** Bulkhead queue for tools with a `concurrency` limit. */
const CONCURRENCY_QUEUE = 1_000;
const CONCURRENCY_QUEUE_TIMEOUT_MS = 1_000;

/**
 * A tool's stack, from the one builder (`policies/stack.ts`): in front, the cache keyed by the canonical
 * arguments (misses coalesced), or coalescing alone; then the tool's deadline, the bulkhead
 * (`concurrency`), retry (idempotent tools only) and the server's breaker.
 */
function toolHandler(
  route: string,
  server: McpServerConfig,
  policy: ToolPolicyConfig,
  idempotent: boolean,
  transportHandler: Handler<ToolRequest>,
  options: ToolRegistryOptions,
): Handler<ToolRequest> {
  const timeoutMs = policy.timeout ?? server.timeout;
  const scope = policy.cache?.scope ?? 'principal';
  const keyOf = (call: Call<ToolRequest>) => argumentsKey(route, call.arguments, call.principal, scope);
  const front: Policy<ToolRequest>[] = [];
  if (policy.cache !== undefined) {
    front.push(
      toolCache(keyOf, {
        route,
        store: options.store,
        peerLock: options.peerLock,
        coalesce: policy.coalesce ?? true,
        key: { query: '*', headers: [], body: '*', scope },
        ttlMs: policy.cache.ttl,
        staleWhileRevalidateMs: policy.cache.staleWhileRevalidate,
        staleIfErrorMs: policy.cache.staleIfError,
        maxEntryBytes: policy.cache.maxEntryBytes,
        methods: new Set(['POST']),
        respectCacheControl: true,
        refreshTimeoutMs: timeoutMs,
      }),
    );
  } else if (policy.coalesce === true) {
    front.push(coalesce<ToolRequest>({ route, key: keyOf, maxBytes: 1024 ** 2 }));
  }
  return buildStack<ToolRequest>(
    {
      name: route,
      ...(options.buckets === undefined ? {} : rateLimitOf(policy.rateLimit, options.buckets)),
      front,
      timeoutMs,
      bulkhead:
        policy.concurrency === undefined
          ? false
          : {
              maxConcurrent: policy.concurrency,
              queue: CONCURRENCY_QUEUE,
              queueTimeout: CONCURRENCY_QUEUE_TIMEOUT_MS,
            },
      retry: idempotent ? policy.retry : false,
      breaker: server.breaker,
    },
    transportHandler,
  ).handler;
}
