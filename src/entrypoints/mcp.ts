// Aggregated MCP endpoint: Slipstream as one MCP server at /mcp (streamable HTTP) exposing every upstream's tools.
import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  isInitializeRequest,
  ListToolsRequestSchema,
  McpError,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/sdk/types.js';
import type { CallToolRequest, CallToolResult, Progress, Tool } from '@modelcontextprotocol/sdk/types.js';
import { GatewayError, toGatewayError } from '../errors.js';
import type { Reply, RequestContext } from '../pipeline/types.js';
import { written } from '../server/exchange.js';
import type { Endpoint, Exchange } from '../server/exchange.js';
import { allowed } from '../server/auth.js';
import type { Caller } from '../server/auth.js';
import { requestContext } from '../server/request.js';
import { resultOf } from '../upstreams/mcp/tool-registry.js';
import type { ToolRegistry } from '../upstreams/mcp/tool-registry.js';

export interface McpEntrypointOptions {
  registry: ToolRegistry;
  maxRequestBytes: number;
  /** Sessions kept at once; the least recently used is closed past it. */
  maxSessions: number;
  /** Sessions one verified caller may keep at once; anonymous callers share only `maxSessions`. */
  maxSessionsPerPrincipal: number;
  /** A session unused this long is closed, in ms. */
  sessionIdleMs: number;
  /** At a session limit, the least recently used session idle at least this long (ms) is closed to admit a new one. */
  evictableAfterMs: number;
}

export interface McpEntrypoint {
  readonly endpoint: Endpoint;
  /** `/mcp` sessions open now (the dashboard's count). */
  sessions(): number;
  /** Shutdown, first step: ends the sessions' standalone SSE streams so connections can drain. */
  drain(): void;
  /** Shutdown, after in-flight requests: closes every session (the tool registry is closed by its owner). */
  close(): Promise<void>;
}

interface Session {
  server: Server;
  transport: StreamableHTTPServerTransport;
  /** Fast-path calls in flight, by JSON-RPC id, so `notifications/cancelled` can abort them. */
  fastCalls: Map<string | number, AbortController>;
  /** `performance.now()` of the last request. */
  lastUsed: number;
  /** The verified caller that opened it, if any: only that caller may use the session. */
  principal: string | undefined;
  /** Its allowances: the tools it may list and call. */
  caller: Caller | undefined;
}

/** A lone JSON-RPC `tools/call` request without a progress token. */
interface FastToolCall {
  id: string | number;
  params: CallToolRequest['params'];
}

/** Fast-path calls tracked per session for cancellation (past it, a call just cannot be cancelled). */
const MAX_FAST_CALLS = 10_000;

/**
 * Serves `/mcp` with the SDK's `Server` and `StreamableHTTPServerTransport` (MCP spec 2025-06-18,
 * transports/streamable-http) in stateful mode: `initialize` opens a session (`Mcp-Session-Id`), later
 * requests reuse its Server, so a call costs one transport round and no per-request setup. `tools/list`
 * returns every upstream tool namespaced `server__tool`; `tools/call` runs the tool's policy stack (cache,
 * coalescing, deadline...) exactly as REST does, relays upstream progress notifications to the caller's
 * progress token, and a client's `notifications/cancelled` aborts the upstream call.
 */
export function createMcpEntrypoint(options: McpEntrypointOptions): McpEntrypoint {
  const { registry, maxRequestBytes, maxSessions, maxSessionsPerPrincipal, sessionIdleMs, evictableAfterMs } =
    options;
  /** Insertion order is recency order: a used session is moved to the end. */
  const sessions = new Map<string, Session>();

  /** `tools/list`, built once per change of the tool set rather than per request. */
  let toolList: { tools: Tool[] } | undefined;
  registry.onChange(() => (toolList = undefined));
  const listTools = (caller: Caller | undefined) => {
    toolList ??= { tools: registry.list().map((entry) => ({ ...entry.tool, name: entry.namespaced })) };
    // A key with tool allowances sees only the tools it may call.
    return caller?.allow?.tools === undefined
      ? toolList
      : { tools: toolList.tools.filter((tool) => allowed(caller, 'tools', tool.name)) };
  };

  /**
   * Runs one `tools/call` through the tool's policy stack, for the SDK Server and the JSON fast path alike.
   * Throws McpError: the GatewayError's JSON-RPC code, its message, and its stable code in `data.code`.
   */
  const callTool = async (
    params: CallToolRequest['params'],
    headers: Record<string, string | string[] | undefined>,
    signal: AbortSignal,
    session: string | undefined,
    ctx: RequestContext | undefined,
    onProgress?: (progress: Progress) => void,
  ): Promise<CallToolResult> => {
    const entry = registry.byNamespacedName(params.name);
    const caller = session === undefined ? undefined : sessions.get(session)?.caller;
    if (entry === undefined || !allowed(caller, 'tools', entry.namespaced)) {
      throw new McpError(ErrorCode.InvalidParams, `unknown tool "${params.name}"`, {
        code: 'GW_TOOL_NOT_FOUND',
      });
    }
    // A call on the SDK's path shares its HTTP request with other messages: it gets a context of its own.
    const callCtx = ctx ?? requestContext(headers, entry.route);
    if (ctx !== undefined) ctx.route = entry.route;
    try {
      const reply = await registry.invoke(entry, params.arguments ?? {}, {
        ctx: callCtx,
        principal: session === undefined ? undefined : sessions.get(session)?.principal,
        signal,
        cacheControl: header(headers, 'cache-control'),
        session,
        onProgress,
      });
      return resultOf(reply);
    } catch (error) {
      const failure = toGatewayError(
        signal.aborted && !(error instanceof GatewayError) ? cancelled() : error,
      );
      throw new McpError(failure.rpcCode, failure.message, { code: failure.code, ...failure.data });
    }
  };

  const newServer = (caller: Caller | undefined): Server => {
    const server = new Server(
      { name: 'slipstream', version: '0.1.0' },
      { capabilities: { tools: { listChanged: true } } },
    );
    server.setRequestHandler(ListToolsRequestSchema, () => listTools(caller));
    server.setRequestHandler(CallToolRequestSchema, (request, extra) => {
      const token = request.params._meta?.progressToken;
      const onProgress =
        token === undefined
          ? undefined
          : (progress: Progress) => {
              extra
                .sendNotification({
                  method: 'notifications/progress',
                  params: { ...progress, progressToken: token },
                })
                .catch(() => {}); // the client may be gone; the call itself still completes
            };
      const headers = extra.requestInfo?.headers ?? {};
      return callTool(request.params, headers, extra.signal, extra.sessionId, undefined, onProgress);
    });
    return server;
  };

  /**
   * The hot path: a lone `tools/call` without a progress token is answered here with a JSON body (the
   * spec lets a server answer a POST with `application/json` instead of an SSE stream), skipping the SDK
   * transport's Node-to-web-standard conversion and SSE framing, which cost more than the call itself
   * (bench/RESULTS.md). Its `notifications/cancelled` is honoured through `session.fastCalls`.
   */
  const fastCall = async (
    session: Session,
    sessionId: string,
    message: FastToolCall,
    x: Exchange,
  ): Promise<Reply> => {
    const controller = new AbortController();
    const onGone = () => controller.abort(x.signal.reason);
    x.signal.addEventListener('abort', onGone, { once: true });
    if (session.fastCalls.size < MAX_FAST_CALLS) session.fastCalls.set(message.id, controller);
    let body: string;
    try {
      const result = await callTool(message.params, x.req.headers, controller.signal, sessionId, x.ctx);
      body = JSON.stringify({ result, jsonrpc: '2.0', id: message.id });
    } catch (error) {
      const rpc = error instanceof McpError ? error : new McpError(ErrorCode.InternalError, String(error));
      const failure = {
        code: rpc.code,
        message: rpc.message,
        ...(rpc.data === undefined ? {} : { data: rpc.data }),
      };
      body = JSON.stringify({ jsonrpc: '2.0', id: message.id, error: failure });
    } finally {
      x.signal.removeEventListener('abort', onGone);
      session.fastCalls.delete(message.id);
    }
    const bytes = Buffer.from(body);
    return {
      status: 200,
      headers: {
        'content-type': 'application/json',
        'content-length': String(bytes.length),
        'mcp-session-id': sessionId,
      },
      body: bytes,
    };
  };

  /** A session ended (closed by the client, evicted or idle): stateful upstreams drop its process. */
  const forget = (id: string) => {
    if (sessions.delete(id)) registry.endSession(id);
  };
  const evict = (id: string, session: Session) => {
    forget(id);
    session.transport.close().catch(() => {});
  };

  /** Sessions being initialized, counted against the limits so concurrent initializes cannot overshoot them. */
  let opening = 0;
  const openingBy = new Map<string, number>();
  /** The least recently used session (of `principal`, when given), if it has been idle long enough to close. */
  const evictable = (principal?: string): [string, Session] | undefined => {
    for (const entry of sessions) {
      if (principal !== undefined && entry[1].principal !== principal) continue;
      return performance.now() - entry[1].lastUsed >= evictableAfterMs ? entry : undefined;
    }
    return undefined;
  };
  /**
   * Room for one more session of `principal`: at a limit (the caller's own, then the gateway's), the least
   * recently used session in that scope goes, but only if it has been idle a while. Sessions in use are
   * never closed to admit new ones, so a flood of `initialize` requests is refused instead of evicting
   * everyone's sessions. Throws `GW_TOO_MANY_SESSIONS` (429) or `GW_BULKHEAD_FULL` (503).
   */
  const makeRoom = (principal: string | undefined): void => {
    if (principal !== undefined) {
      let own = openingBy.get(principal) ?? 0;
      for (const session of sessions.values()) if (session.principal === principal) own++;
      if (own >= maxSessionsPerPrincipal) {
        const idle = evictable(principal);
        if (idle === undefined) {
          throw new GatewayError(
            'GW_TOO_MANY_SESSIONS',
            `this caller already has ${maxSessionsPerPrincipal} MCP sessions open and in use; close one first`,
            { retryAfterS: 5 },
          );
        }
        evict(idle[0], idle[1]);
      }
    }
    if (sessions.size + opening < maxSessions) return;
    const idle = evictable();
    if (idle === undefined) {
      throw new GatewayError(
        'GW_BULKHEAD_FULL',
        `${maxSessions} MCP sessions are open and in use; try again later`,
        {
          retryAfterS: 5,
        },
      );
    }
    evict(idle[0], idle[1]);
  };

  // Sessions are in recency order: the sweep closes from the oldest until it meets a live one.
  const sweep = setInterval(
    () => {
      const cutoff = performance.now() - sessionIdleMs;
      for (const [id, session] of sessions) {
        if (session.lastUsed > cutoff) break;
        evict(id, session);
      }
    },
    Math.min(sessionIdleMs, 60_000),
  );
  sweep.unref();

  registry.onChange(() => {
    for (const session of sessions.values()) session.server.sendToolListChanged().catch(() => {});
  });

  const open = async (caller: Caller | undefined): Promise<StreamableHTTPServerTransport> => {
    const principal = caller?.id;
    const server = newServer(caller);
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (id) => {
        sessions.set(id, {
          server,
          transport,
          fastCalls: new Map(),
          lastUsed: performance.now(),
          principal,
          caller,
        });
      },
      onsessionclosed: forget,
    });
    transport.onclose = () => {
      if (transport.sessionId !== undefined) forget(transport.sessionId);
    };
    await server.connect(transport);
    return transport;
  };

  const handle = async (x: Exchange) => {
    const { req, res } = x;
    const sessionId = req.headers['mcp-session-id'];
    const body = x.method === 'POST' ? await x.json(maxRequestBytes) : undefined;
    if (typeof sessionId === 'string') {
      const session = sessions.get(sessionId);
      // Another caller's session does not exist for this one (no hint that the id is valid).
      if (session === undefined || session.principal !== x.principal) {
        // Spec: an unknown or expired session is 404; the client then starts a new one.
        return rpcError(404, ErrorCode.InvalidRequest, 'session not found');
      }
      sessions.delete(sessionId);
      sessions.set(sessionId, session);
      session.lastUsed = performance.now();
      const fast = asFastToolCall(body, req.headers);
      if (fast !== undefined) return fastCall(session, sessionId, fast, x);
      cancelFastCall(session, body);
      await session.transport.handleRequest(req, res, body);
      return written(res);
    }
    if (x.method === 'POST' && isInitializeRequest(body)) {
      const principal = x.principal;
      makeRoom(principal);
      opening++;
      if (principal !== undefined) openingBy.set(principal, (openingBy.get(principal) ?? 0) + 1);
      try {
        const transport = await open(x.caller);
        await transport.handleRequest(req, res, body);
        return written(res);
      } finally {
        opening--;
        if (principal !== undefined) {
          const left = openingBy.get(principal)! - 1;
          if (left === 0) openingBy.delete(principal);
          else openingBy.set(principal, left);
        }
      }
    }
    return rpcError(400, ErrorCode.InvalidRequest, 'no Mcp-Session-Id: send initialize first');
  };

  return {
    endpoint: { route: 'mcp', protectedResource: '/mcp', handle },
    sessions: () => sessions.size,
    drain() {
      for (const session of sessions.values()) session.transport.closeStandaloneSSEStream();
    },
    async close() {
      clearInterval(sweep);
      const open = [...sessions.values()];
      sessions.clear();
      await Promise.all(open.map((session) => session.transport.close().catch(() => {})));
    },
  };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function cancelled(): GatewayError {
  return new GatewayError('GW_CLIENT_CLOSED', 'the client cancelled the call');
}

function rpcError(status: number, code: number, message: string): Reply {
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
  return {
    status,
    headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
    body,
  };
}

/**
 * The message when it is a plain `tools/call` the fast path may answer: one request (not a batch), no
 * progress token (progress needs an SSE stream), a client that accepts JSON, and a protocol version this
 * SDK supports (anything else goes to the SDK transport, which reports the problem).
 */
function asFastToolCall(body: unknown, headers: Exchange['req']['headers']): FastToolCall | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const message = body as { jsonrpc?: unknown; method?: unknown; id?: unknown; params?: unknown };
  if (message.jsonrpc !== '2.0' || message.method !== 'tools/call') return undefined;
  if (typeof message.id !== 'string' && typeof message.id !== 'number') return undefined;
  const params = message.params as
    { name?: unknown; arguments?: unknown; _meta?: { progressToken?: unknown } } | undefined;
  if (params === undefined || params === null || typeof params.name !== 'string') return undefined;
  if (params._meta?.progressToken !== undefined) return undefined;
  const args = params.arguments;
  if (args !== undefined && (args === null || typeof args !== 'object' || Array.isArray(args)))
    return undefined;
  if (headers.accept?.includes('application/json') !== true) return undefined;
  const version = headers['mcp-protocol-version'];
  if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(String(version))) return undefined;
  return { id: message.id, params: params as CallToolRequest['params'] };
}

/** Aborts the fast-path call a `notifications/cancelled` names (the SDK transport sees it too, harmlessly). */
function cancelFastCall(session: Session, body: unknown): void {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return;
  const message = body as { method?: unknown; params?: { requestId?: unknown; reason?: unknown } };
  if (message.method !== 'notifications/cancelled') return;
  const requestId = message.params?.requestId;
  if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
  const reason = message.params?.reason;
  const detail = typeof reason === 'string' ? `: ${reason}` : '';
  session.fastCalls
    .get(requestId)
    ?.abort(new GatewayError('GW_CLIENT_CLOSED', `the client cancelled the call${detail}`));
}
