// One v2 SDK `Server` serving the aggregate of every MCP upstream, for a 2025 session or one 2026-07-28 request.
import {
  CLIENT_CAPABILITIES_META_KEY,
  LOG_LEVEL_META_KEY,
  ProtocolError,
  Server,
} from '@modelcontextprotocol/server';
import type {
  CallToolRequestParams,
  CallToolResult,
  ClientCapabilities,
  Progress,
  ServerCapabilities,
  ServerContext,
} from '@modelcontextprotocol/server';
import { GatewayError, toGatewayError } from '../../errors.js';
import type { RequestContext } from '../../pipeline/types.js';
import { allowed } from '../../server/auth.js';
import type { Caller } from '../../server/auth.js';
import { requestContext } from '../../server/request.js';
import type { McpListKind, McpRequestOptions, McpUpstream } from '../../upstreams/mcp/mcp-upstream.js';
import { resultOf } from '../../upstreams/mcp/tool-result.js';
import type { ToolRegistry } from '../../upstreams/mcp/tool-registry.js';

import type { McpCatalogue } from './catalogue.js';
import type { FlowRequest, InputRequiredResult, ParkedCalls, ParkedHooks } from './parked-calls.js';
import type { ResourceCache } from './resource-cache.js';
import { headerRecord } from './web.js';

/** Who a serving unit (a 2025 session, a 2026-07-28 request) belongs to. */
export interface McpServingUnit {
  era: 'legacy' | 'modern';
  caller: Caller | undefined;
}

/** Per-session resource subscriptions (2025 `resources/subscribe`), shared by every session's Server. */
export interface McpSubscriptions {
  subscribe(session: string, upstream: McpUpstream, uri: string, signal: AbortSignal): Promise<void>;
  unsubscribe(session: string, upstream: McpUpstream, uri: string, signal: AbortSignal): Promise<void>;
}

export interface AggregateServerOptions {
  registry: ToolRegistry;
  catalogue: McpCatalogue;
  subscriptions: McpSubscriptions;
  /** What calls showed of each tool's log lines (filled here, read by the JSON fast path). */
  noise: ToolNoise;
  /** Calls of 2025-era servers waiting for a 2026-07-28 client's input round (shared by every request). */
  parked: ParkedCalls;
  /** `resources/read` results kept for their cache hints. */
  resources: ResourceCache;
}

/** What one `tools/call` needs besides its params: who calls, how to reach it back, where it runs. */
export interface ToolCallContext {
  caller: Caller | undefined;
  session: string | undefined;
  headers: Record<string, string | string[] | undefined>;
  signal: AbortSignal;
  /** The HTTP exchange's own context when the call is the whole request (the JSON fast path). */
  ctx?: RequestContext;
  relay?: Pick<
    McpRequestOptions,
    'meta' | 'onProgress' | 'onNotification' | 'onServerRequest' | 'clientCapabilities' | 'extraParams'
  >;
  /** What calls showed of each tool's log lines (the JSON fast path takes only quiet tools). */
  noise?: ToolNoise;
}

/** Tool names remembered in each {@link ToolNoise} set (past it, new tools just stay on the streamed path). */
const MAX_NOISE_ENTRIES = 100_000;

/** Tools seen completing a call with a log listener and no line (`quiet`), and tools seen logging. */
export interface ToolNoise {
  quiet: Set<string>;
  logging: Set<string>;
}

/**
 * Runs one `tools/call` through the tool's policy stack (cache, coalescing, deadline, breaker...), for the
 * SDK Server and the JSON fast path alike. Arguments that fail the tool's input schema are a tool result
 * with `isError: true` (spec 2025-11-25 server/tools#error-handling: input validation errors are tool
 * execution errors, so the model can correct itself). Throws ProtocolError: the upstream's JSON-RPC code
 * when it rejected the request, else the GatewayError's, with the stable code in `data.code`.
 */
export async function callTool(
  registry: ToolRegistry,
  params: CallToolRequestParams,
  call: ToolCallContext,
): Promise<CallToolResult> {
  const entry = registry.byNamespacedName(params.name);
  if (entry === undefined || !allowed(call.caller, 'tools', entry.namespaced)) {
    const taskOnly = registry.taskOnly(params.name);
    if (taskOnly !== undefined && allowed(call.caller, 'tools', params.name)) {
      throw new ProtocolError(-32601, taskOnly, { code: 'GW_MCP_UNSUPPORTED' });
    }
    // Told only to callers without tool allowances, as on REST: the others learn nothing of other servers.
    const down = call.caller?.allow?.tools === undefined ? registry.downServerOf(params.name) : undefined;
    if (down !== undefined) throw rpcFailure(down);
    throw new ProtocolError(-32602, `unknown tool "${params.name}"`, { code: 'GW_TOOL_NOT_FOUND' });
  }
  // A call on the SDK's path shares its HTTP request with other messages: it gets a context of its own.
  const ctx = call.ctx ?? requestContext(call.headers, entry.route);
  if (call.ctx !== undefined) call.ctx.route = entry.route;
  const upstream = registry.upstreams().find((candidate) => candidate.name === entry.server);
  const relay = call.relay === undefined || upstream === undefined ? {} : forUpstream(upstream, call.relay);
  const listener = relay.onNotification;
  const noise = listener === undefined ? undefined : call.noise;
  if (listener !== undefined && noise !== undefined) {
    relay.onNotification = (notification) => {
      if (noise.logging.size < MAX_NOISE_ENTRIES) noise.logging.add(entry.namespaced);
      listener(notification);
    };
  }
  try {
    const reply = await registry.invoke(entry, params.arguments ?? {}, {
      ctx,
      principal: call.caller?.id,
      signal: call.signal,
      // A retried input round is one exchange with its server: never answered from (or into) the cache.
      cacheControl: relay.extraParams === undefined ? header(call.headers, 'cache-control') : 'no-store',
      session: call.session,
      ...relay,
    });
    if (noise !== undefined && !noise.logging.has(entry.namespaced) && noise.quiet.size < MAX_NOISE_ENTRIES)
      noise.quiet.add(entry.namespaced);
    return withoutEnvelope(resultOf(reply));
  } catch (error) {
    const failure = toGatewayError(
      call.signal.aborted && !(error instanceof GatewayError) ? cancelled() : error,
    );
    if (failure.code === 'GW_TOOL_INVALID_ARGUMENTS') {
      return { isError: true, content: [{ type: 'text', text: failure.message }] };
    }
    throw rpcFailure(failure);
  }
}

/** A GatewayError as the JSON-RPC error clients get: an upstream's own code when it rejected the request. */
export function rpcFailure(failure: GatewayError): ProtocolError {
  const upstreamCode = failure.data?.rpcCode;
  const code =
    failure.code === 'GW_MCP_REQUEST_REJECTED' && typeof upstreamCode === 'number'
      ? upstreamCode
      : failure.rpcCode;
  const upstreamData = failure.data?.rpcData;
  const data =
    upstreamData !== null && typeof upstreamData === 'object' && !Array.isArray(upstreamData)
      ? { ...(upstreamData as Record<string, unknown>), code: failure.code }
      : { code: failure.code, ...failure.data };
  return new ProtocolError(code, failure.message, data);
}

/** The capabilities the aggregate has: a feature is advertised when some upstream offers it. */
export function aggregateCapabilities(registry: ToolRegistry): ServerCapabilities {
  const upstreams = registry.upstreams();
  const has = (feature: keyof ServerCapabilities) =>
    upstreams.some((upstream) => upstream.info()?.capabilities[feature] !== undefined);
  const capabilities: ServerCapabilities = { tools: { listChanged: true } };
  if (has('resources')) {
    const subscribe = upstreams.some(
      (upstream) => upstream.info()?.capabilities.resources?.subscribe === true,
    );
    capabilities.resources = { listChanged: true, ...(subscribe ? { subscribe: true } : {}) };
  }
  if (has('prompts')) capabilities.prompts = { listChanged: true };
  if (has('completions')) capabilities.completions = {};
  if (has('logging')) capabilities.logging = {};
  return capabilities;
}

/**
 * Builds the Server for one serving unit: every handler routes to the upstream that owns the tool, URI,
 * prompt or completion reference, and relays what the upstream sends during the request (progress, log
 * lines, server→client requests) to this unit's client.
 */
export function aggregateServer(options: AggregateServerOptions, unit: McpServingUnit): Server {
  const { registry, catalogue, subscriptions } = options;
  const server = new Server(
    { name: 'slipstream', version: '0.1.0' },
    { capabilities: aggregateCapabilities(registry) },
  );
  const capabilities = server.getCapabilities();
  const modern = unit.era === 'modern';
  const personal = unit.caller?.allow !== undefined;

  /** SEP-2549 hints go on 2026-07-28 results only (2025 clients know no such fields). */
  const withHint = <T extends object>(kind: McpListKind, result: T): T =>
    modern ? { ...result, ...catalogue.hint(kind, personal && kind === 'tools') } : result;

  /** The level this 2025 session set (`logging/setLevel`); 2026-07-28 requests carry theirs in `_meta`. */
  let sessionLevel: string | undefined;
  // A 2026-07-28 request has no session: like REST, a stateful server keeps one process per caller.
  const sessionOf = (ctx: ServerContext) => ctx.sessionId ?? `principal:${unit.caller?.id ?? ''}`;
  const relayOf = (ctx: ServerContext) =>
    relayFor(server, ctx, modern ? undefined : (sessionLevel ?? 'debug'));

  server.setRequestHandler('tools/list', () =>
    withHint('tools', {
      tools: registry
        .list()
        .filter((entry) => allowed(unit.caller, 'tools', entry.namespaced))
        .map((entry) => ({ ...entry.tool, name: entry.namespaced })) as never,
    }),
  );
  server.setRequestHandler('tools/call', async (request, ctx) => {
    const { relay, settled } = relayOf(ctx);
    const call: ToolCallContext = {
      caller: unit.caller,
      session: sessionOf(ctx),
      headers: headerRecord(ctx.http?.req),
      signal: ctx.mcpReq.signal,
      relay,
      noise: options.noise,
    };
    try {
      const upstream = modern ? toolUpstream(registry, request.params.name) : undefined;
      const target = { method: 'tools/call', name: request.params.name };
      return (await parkable(upstream, ctx, relay, target, (relay, signal) =>
        callTool(registry, request.params, { ...call, signal, relay }),
      ).catch((error: unknown) => {
        // The call's own failures are JSON-RPC errors already; the park's are GatewayErrors.
        throw error instanceof GatewayError ? rpcFailure(error) : error;
      })) as never;
    } finally {
      await settled();
    }
  });

  if (capabilities.resources !== undefined) {
    server.setRequestHandler('resources/list', () =>
      withHint('resources', { resources: catalogue.resources }),
    );
    server.setRequestHandler('resources/templates/list', () =>
      withHint('resourceTemplates', { resourceTemplates: catalogue.templates }),
    );
    server.setRequestHandler('resources/read', async (request, ctx) => {
      const owner = catalogue.resourceOwner(request.params.uri);
      if (owner === undefined) throw resourceNotFound(request.params.uri);
      const read = () =>
        forward(
          owner.upstream,
          'resources/read',
          { ...request.params, uri: owner.name },
          ctx,
          request.params.uri,
        );
      // A retried input round is one exchange with its server: never answered from (or into) the cache.
      const retry = ctx.mcpReq.inputResponses !== undefined || ctx.mcpReq.requestState() !== undefined;
      const result = retry
        ? await read()
        : await options.resources.read(
            {
              server: owner.upstream.name,
              uri: owner.name,
              principal: unit.caller?.id,
              cacheControl: header(headerRecord(ctx.http?.req), 'cache-control'),
            },
            read,
          );
      return exposeContents(result, owner.upstream.name, catalogue) as never;
    });
    if (capabilities.resources.subscribe === true) {
      const subscription =
        (change: 'subscribe' | 'unsubscribe') =>
        async (request: { params: { uri: string } }, ctx: ServerContext) => {
          const owner = catalogue.resourceOwner(request.params.uri);
          if (owner === undefined) throw resourceNotFound(request.params.uri);
          const session = ctx.sessionId ?? '';
          await subscriptions[change](session, owner.upstream, owner.name, ctx.mcpReq.signal).catch(
            (error: unknown) => {
              throw rpcFailure(toGatewayError(error));
            },
          );
          return {};
        };
      server.setRequestHandler('resources/subscribe', subscription('subscribe'));
      server.setRequestHandler('resources/unsubscribe', subscription('unsubscribe'));
    }
  }

  if (capabilities.prompts !== undefined) {
    server.setRequestHandler('prompts/list', () => withHint('prompts', { prompts: catalogue.prompts }));
    server.setRequestHandler('prompts/get', async (request, ctx) => {
      const owner = catalogue.promptOwner(request.params.name);
      if (owner === undefined) {
        throw new ProtocolError(-32602, `unknown prompt "${request.params.name}"`, {
          code: 'GW_MCP_NOT_FOUND',
        });
      }
      return (await forward(
        owner.upstream,
        'prompts/get',
        { ...request.params, name: owner.name },
        ctx,
        request.params.name,
      )) as never;
    });
  }

  if (capabilities.completions !== undefined) {
    server.setRequestHandler('completion/complete', async (request, ctx) => {
      const ref = request.params.ref as { type: string; name?: string; uri?: string };
      const owner =
        ref.type === 'ref/prompt'
          ? catalogue.promptOwner(ref.name ?? '')
          : catalogue.templateOwner(ref.uri ?? '');
      if (owner === undefined || owner.upstream.info()?.capabilities.completions === undefined) {
        throw new ProtocolError(
          -32602,
          `no MCP server completes ${ref.type} "${ref.name ?? ref.uri ?? ''}"`,
          {
            code: 'GW_MCP_NOT_FOUND',
          },
        );
      }
      const upstreamRef =
        ref.type === 'ref/prompt' ? { ...ref, name: owner.name } : { ...ref, uri: owner.name };
      return (await forward(
        owner.upstream,
        'completion/complete',
        { ...request.params, ref: upstreamRef },
        ctx,
      )) as never;
    });
  }

  if (capabilities.logging !== undefined) {
    // Spec 2025-11-25 server/utilities/logging: the level applies to every server behind the aggregate
    // (the upstreams keep one level for all their clients: the last one set wins).
    server.setRequestHandler('logging/setLevel', async (request, ctx) => {
      sessionLevel = request.params.level;
      const logging = registry.upstreams().filter((u) => u.info()?.capabilities.logging !== undefined);
      await Promise.all(
        logging.map((upstream) =>
          upstream.request(
            'logging/setLevel',
            { level: request.params.level },
            { signal: ctx.mcpReq.signal },
          ),
        ),
      ).catch((error: unknown) => {
        throw rpcFailure(toGatewayError(error));
      });
      return {};
    });
  }

  /**
   * Runs one request to `upstream` with `relay`: straight, or, when a 2026-07-28 client reaches a 2025-era
   * server that may ask it for input, as a parked flow bound to the caller and `target` (the method and the
   * tool, prompt or URI it names), each step running `run` with the flow's relay and signal. Without a
   * target (or an upstream) it always runs straight.
   */
  const parkable = <T>(
    upstream: McpUpstream | undefined,
    ctx: ServerContext,
    relay: NonNullable<ToolCallContext['relay']>,
    target: { method: string; name: string } | undefined,
    run: (relay: NonNullable<ToolCallContext['relay']>, signal: AbortSignal) => Promise<T>,
  ): Promise<T | InputRequiredResult> => {
    if (!modern || upstream === undefined || target === undefined || !parks(upstream, relay))
      return run(relay, ctx.mcpReq.signal);
    const flow = flowRequest(ctx, relay, bindingOf(unit.caller, target.method, target.name));
    return options.parked.serve(flow, (hooks) => run(withoutRetry(relay, hooks), hooks.signal));
  };

  /**
   * Sends a request to its owner with this unit's relaying; maps failures to JSON-RPC errors. A 2025-era
   * server asking a 2026-07-28 client for input during `prompts/get` or `resources/read` parks the request
   * as a `tools/call` does (`target` binds the retry to it).
   */
  const forward = async (
    upstream: McpUpstream,
    method: string,
    params: Record<string, unknown>,
    ctx: ServerContext,
    target?: string,
  ): Promise<Record<string, unknown>> => {
    const relaying = relayOf(ctx);
    const send = (relay: NonNullable<ToolCallContext['relay']>, signal: AbortSignal) => {
      const { onProgress, ...rest } = forUpstream(upstream, relay);
      return upstream.request(method, params, {
        signal,
        session: sessionOf(ctx),
        ...(onProgress === undefined ? {} : { onProgress }),
        ...rest,
      });
    };
    try {
      const bound = target === undefined ? undefined : { method, name: target };
      const result = await parkable(upstream, ctx, relaying.relay, bound, send);
      return withoutEnvelope(result as Record<string, unknown>);
    } catch (error) {
      throw rpcFailure(toGatewayError(error));
    } finally {
      await relaying.settled();
    }
  };

  return server;
}

/**
 * What a request relays between its client and the upstream: `_meta` (traceparent included; the 2026-07-28
 * log level), progress and log lines back on the request's own stream, and server→client requests: on a
 * 2025 session as requests on the session (`ctx.mcpReq.send`); on 2026-07-28 the upstream's
 * `input_required` result goes back to the client as is, and its retry's `inputResponses` / `requestState`
 * go up again (spec 2026-07-28 basic/patterns/mrtr).
 */
function relayFor(
  server: Server,
  ctx: ServerContext,
  legacyLevel: string | undefined,
): { relay: NonNullable<ToolCallContext['relay']>; settled: () => Promise<void> } {
  const modern = legacyLevel === undefined;
  const { progressToken, ...meta } = (ctx.mcpReq._meta ?? {}) as Record<string, unknown>;
  const envelope = (ctx.mcpReq.envelope ?? {}) as Record<string, unknown>;
  // A 2026-07-28 server sends log lines only at the level the request names (spec 2026-07-28
  // server/utilities/logging); a 2025 session's client expects them unless it set a level, so its
  // requests name the session's level (`debug`: everything, as a 2025 server without setLevel sends).
  const level = modern ? envelope[LOG_LEVEL_META_KEY] : legacyLevel;
  if (level !== undefined) meta[LOG_LEVEL_META_KEY] = level;
  // The result must not overtake the notifications sent before it (it ends the request's SSE stream).
  const pending = new Set<Promise<void>>();
  const notify = (notification: { method: string; params?: Record<string, unknown> }) => {
    const sent = ctx.mcpReq
      .notify(notification as never)
      .catch(() => {}) // the client may be gone; the call itself still completes
      .finally(() => pending.delete(sent));
    pending.add(sent);
  };
  const relay: NonNullable<ToolCallContext['relay']> = {
    onNotification: notify,
    clientCapabilities: modern
      ? ((envelope[CLIENT_CAPABILITIES_META_KEY] as ClientCapabilities | undefined) ?? {})
      : (server.getClientCapabilities() ?? {}),
  };
  if (Object.keys(meta).length > 0) relay.meta = meta;
  if (progressToken !== undefined) {
    relay.onProgress = (progress: Progress) =>
      notify({ method: 'notifications/progress', params: { ...progress, progressToken } });
  }
  if (!modern) {
    relay.onServerRequest = (request, signal) =>
      ctx.mcpReq.send({ method: request.method as never, params: request.params }, { signal });
  } else {
    const extra: Record<string, unknown> = {};
    if (ctx.mcpReq.inputResponses !== undefined) extra.inputResponses = ctx.mcpReq.inputResponses;
    const state = ctx.mcpReq.requestState();
    if (typeof state === 'string') extra.requestState = state;
    if (Object.keys(extra).length > 0) relay.extraParams = extra;
  }
  return { relay, settled: async () => void (await Promise.all(pending)) };
}

/** The upstream serving a tool, when the name is one the registry knows. */
function toolUpstream(registry: ToolRegistry, name: string): McpUpstream | undefined {
  const server = registry.byNamespacedName(name)?.server;
  return server === undefined ? undefined : registry.upstreams().find((u) => u.name === server);
}

/**
 * True when a 2026-07-28 request to `upstream` goes through the parked calls: the server speaks 2025, so
 * its sampling / elicitation / roots requests are real requests the client can only get as input rounds,
 * and the client declared one of them (or this is a retry of such a round). Other calls skip the park
 * (and the interactive turn it holds on the connection).
 */
function parks(upstream: McpUpstream, relay: NonNullable<ToolCallContext['relay']>): boolean {
  if (upstream.info()?.era !== 'legacy') return false;
  if (relay.extraParams?.requestState !== undefined) return true;
  const declared = relay.clientCapabilities ?? {};
  return (
    declared.sampling !== undefined || declared.elicitation !== undefined || declared.roots !== undefined
  );
}

/**
 * Who may carry a flow on: the verified caller (how it was identified and who), the method and its target.
 * A retry by another caller, or of another tool, prompt or URI, does not match the state's MAC.
 */
function bindingOf(caller: Caller | undefined, method: string, target: string): string {
  return JSON.stringify([caller?.via ?? null, caller?.id ?? null, method, target]);
}

/** This request as one step of a parked flow: its retry fields, its signal and its own notification relay. */
function flowRequest(
  ctx: ServerContext,
  relay: NonNullable<ToolCallContext['relay']>,
  binding: string,
): FlowRequest {
  const retry = relay.extraParams ?? {};
  return {
    binding,
    requestState: typeof retry.requestState === 'string' ? retry.requestState : undefined,
    inputResponses: retry.inputResponses as Record<string, unknown> | undefined,
    signal: ctx.mcpReq.signal,
    ...(relay.onNotification === undefined ? {} : { onNotification: relay.onNotification }),
    ...(relay.onProgress === undefined ? {} : { onProgress: relay.onProgress }),
  };
}

/**
 * The relay of a parked flow's upstream call: the retry fields are the gateway's (never sent to a 2025
 * server), server requests go to the flow, and notifications to whichever request carries it.
 */
function withoutRetry(
  relay: NonNullable<ToolCallContext['relay']>,
  hooks: Pick<ParkedHooks, 'onServerRequest' | 'onNotification' | 'onProgress'>,
): NonNullable<ToolCallContext['relay']> {
  const { extraParams: _retry, ...rest } = relay;
  return {
    ...rest,
    onServerRequest: hooks.onServerRequest,
    onNotification: hooks.onNotification,
    onProgress: hooks.onProgress,
  };
}

/**
 * The relaying `upstream` can use: a log listener only when it can log, since a call with one runs alone
 * among such calls on its connection (nothing on a 2025 wire ties a log line to its request).
 */
function forUpstream<T extends { onNotification?: unknown }>(upstream: McpUpstream, relay: T): T {
  if (upstream.info()?.capabilities.logging !== undefined) return relay;
  const { onNotification: _unused, ...rest } = relay;
  return rest as T;
}

/** Reserved `_meta` keys of the 2026-07-28 envelope (`io.modelcontextprotocol/serverInfo`...): hop by hop. */
const ENVELOPE_PREFIX = 'io.modelcontextprotocol/';

/**
 * A result without the upstream's envelope keys in `_meta`: the server info and protocol facts in a result
 * are the upstream's, and the client talks to Slipstream (our own Server adds ours). Other `_meta` passes.
 */
function withoutEnvelope<T extends { _meta?: unknown }>(result: T): T {
  const meta = result._meta as Record<string, unknown> | undefined;
  if (meta === undefined || !Object.keys(meta).some((key) => key.startsWith(ENVELOPE_PREFIX))) return result;
  const kept = Object.fromEntries(Object.entries(meta).filter(([key]) => !key.startsWith(ENVELOPE_PREFIX)));
  const { _meta: _dropped, ...rest } = result;
  return (Object.keys(kept).length === 0 ? rest : { ...rest, _meta: kept }) as T;
}

/** Resource contents with their URIs as clients know them (the clash prefix where two servers list one). */
function exposeContents(
  result: Record<string, unknown>,
  server: string,
  catalogue: McpCatalogue,
): Record<string, unknown> {
  const contents = result.contents;
  if (!Array.isArray(contents)) return result;
  return {
    ...result,
    contents: contents.map((item: { uri?: unknown }) =>
      typeof item.uri === 'string' ? { ...item, uri: catalogue.exposedUri(server, item.uri) } : item,
    ),
  };
}

/** An unknown resource is -32602 Invalid Params (SEP-2164, spec 2026-07-28 server/resources#error-handling). */
function resourceNotFound(uri: string): ProtocolError {
  return new ProtocolError(-32602, `Resource not found: ${uri}`, { uri, code: 'GW_MCP_NOT_FOUND' });
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function cancelled(): GatewayError {
  return new GatewayError('GW_CLIENT_CLOSED', 'the client cancelled the call');
}
