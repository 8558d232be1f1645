// Aggregated MCP endpoint: Slipstream as one MCP server at /mcp, 2025-11-25 sessions and 2026-07-28 requests on one URL.
import { randomUUID } from 'node:crypto';
import {
  WebStandardStreamableHTTPServerTransport,
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  localhostAllowedHostnames,
  validateHostHeader,
  validateOriginHeader,
} from '@modelcontextprotocol/server';
import type { CallToolRequestParams, McpHttpHandler, Server } from '@modelcontextprotocol/server';
import { memoryCache } from '../../cache/memory.js';
import type { CacheStore } from '../../cache/store.js';
import type { McpConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import type { Reply } from '../../pipeline/types.js';
import { written } from '../../server/exchange.js';
import type { Endpoint, Exchange } from '../../server/exchange.js';
import type { Caller } from '../../server/auth.js';
import type { McpCacheHint, McpUpstream } from '../../upstreams/mcp/mcp-upstream.js';
import type { ToolRegistry } from '../../upstreams/mcp/tool-registry.js';
import { aggregateServer, callTool } from './aggregate-server.js';
import type { AggregateServerOptions, McpSubscriptions, ToolNoise } from './aggregate-server.js';
import { McpCatalogue } from './catalogue.js';
import { parkedCalls } from './parked-calls.js';
import { resourceCache } from './resource-cache.js';
import { webRequest, writeWebResponse } from './web.js';
import { sessionIds } from './session-id.js';
import type { SessionIds, SessionIdsOptions, SessionOwner } from './session-id.js';
import { FORWARDED_HEADER, sessionForwarder } from './session-forwarder.js';
import type { RemoteOwner, SessionForwarder } from './session-forwarder.js';

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
  /** Host names accepted in `Host` and `Origin` besides the loopback ones; `*` accepts any. Default none. */
  allowedHosts?: readonly string[];
  /** How long a parked call waits for its 2026-07-28 client's input round, in ms. Default 60_000. */
  inputWaitMs?: number;
  /** Calls parked at once for their clients' input. Default 1_000. */
  maxParkedCalls?: number;
  /** Where `resources/read` results are cached (the gateway's cache tier). Default: an in-process LRU. */
  store?: CacheStore;
  /** The servers' config, for their `resourceCache` policies. */
  servers?: McpConfig['servers'];
  /**
   * Sessions through any replica and any worker (`mcp.sessionSecret`, `server.advertise`,
   * `server.replicas`, `serve --workers`): ids are signed and name this process, and a session another
   * process owns is forwarded to it. Unset: random ids, every session local (one process).
   */
  cluster?: SessionClusterOptions;
}

/** Who else serves sessions, and the key every one of them signs ids with. */
export interface SessionClusterOptions extends SessionIdsOptions {
  /** Under `serve --workers N`: each sibling worker's Unix socket, by worker number. */
  siblings?: ReadonlyMap<number, string>;
}

export interface McpEntrypoint {
  readonly endpoint: Endpoint;
  /** `/mcp` sessions open now (the dashboard's count). */
  sessions(): number;
  /** Calls parked now for a 2026-07-28 client's input round (`slipstream_mcp_parked_calls`). */
  parked(): number;
  /** Shutdown, first step: ends the sessions' standalone SSE streams so connections can drain. */
  drain(): void;
  /** Shutdown, after in-flight requests: closes every session (the tool registry is closed by its owner). */
  close(): Promise<void>;
}

interface Session {
  server: Server;
  transport: WebStandardStreamableHTTPServerTransport;
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
  params: CallToolRequestParams;
}

/** Fast-path calls tracked per session for cancellation (past it, a call just cannot be cancelled). */
const MAX_FAST_CALLS = 10_000;
/** Resource URIs one session may subscribe to at once. */
const MAX_SUBSCRIPTIONS_PER_SESSION = 1_000;
/** Protocol revisions the JSON fast path answers (older or unknown ones go to the SDK, which says why). */
const FAST_PATH_VERSIONS = new Set(['2025-11-25', '2025-06-18', '2025-03-26']);

/**
 * Serves `/mcp` with the v2 SDK, both eras on one URL (spec 2025-11-25 basic/transports and 2026-07-28
 * basic/transports): a 2025 `initialize` opens a session (`Mcp-Session-Id`, GET stream, DELETE) whose
 * Server serves every later request; a 2026-07-28 request (its `_meta` envelope, `MCP-Protocol-Version`,
 * `Mcp-Method`) is answered by a Server built for it alone (`server/discover`, `subscriptions/listen`,
 * `input_required` rounds relayed from the upstream). Both serve the aggregate of every upstream: tools
 * through their policy stacks (cache, coalescing, deadline, breaker), resources, prompts, completions,
 * logging. `Host` and `Origin` are checked first (DNS rebinding: 403).
 */
export function createMcpEntrypoint(options: McpEntrypointOptions): McpEntrypoint {
  const { registry, maxRequestBytes, maxSessions, maxSessionsPerPrincipal, sessionIdleMs, evictableAfterMs } =
    options;
  /** Insertion order is recency order: a used session is moved to the end. */
  const sessions = new Map<string, Session>();
  const catalogue = new McpCatalogue(registry);
  const subscriptions = sessionSubscriptions();
  const aggregate: AggregateServerOptions = {
    registry,
    catalogue,
    subscriptions,
    noise: { quiet: new Set(), logging: new Set() },
    resources: resourceCache({
      store: options.store ?? memoryCache(),
      configured: configuredHints(options.servers ?? {}),
    }),
    parked: parkedCalls({
      ...(options.inputWaitMs === undefined ? {} : { waitMs: options.inputWaitMs }),
      ...(options.maxParkedCalls === undefined ? {} : { maxParked: options.maxParkedCalls }),
    }),
  };
  const checkOrigin = originCheck(options.allowedHosts ?? []);
  const cluster = options.cluster === undefined ? undefined : sessionCluster(options.cluster);

  const modern: McpHttpHandler = createMcpHandler(
    (ctx) => aggregateServer(aggregate, { era: 'modern', caller: callerOf(ctx.authInfo?.extra) }),
    { legacy: 'reject', maxRequestBodySize: maxRequestBytes, onerror: () => {} },
  );

  /**
   * The hot path: a lone `tools/call` without a progress token is answered here with a JSON body (the
   * spec lets a server answer a POST with `application/json` instead of an SSE stream), skipping the SDK
   * transport's web-standard conversion and SSE framing, which cost more than the call itself
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
      const result = await callTool(registry, message.params, {
        caller: session.caller,
        session: sessionId,
        headers: x.req.headers,
        signal: controller.signal,
        ctx: x.ctx,
        relay: { clientCapabilities: session.server.getClientCapabilities() ?? {} },
      });
      body = JSON.stringify({ result, jsonrpc: '2.0', id: message.id });
    } catch (error) {
      body = JSON.stringify({ jsonrpc: '2.0', id: message.id, error: rpcErrorObject(error) });
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
    if (sessions.delete(id)) {
      registry.endSession(id);
      subscriptions.end(id);
    }
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
        { retryAfterS: 5 },
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

  // A session whose client is gone (or that never declared the feature) just misses the notification.
  const everySession = (send: (server: Server) => Promise<void>) => {
    for (const session of sessions.values()) {
      Promise.resolve()
        .then(() => send(session.server))
        .catch(() => {});
    }
  };
  registry.onChange(() => {
    everySession((server) => server.sendToolListChanged());
    modern.notify.toolsChanged();
  });
  for (const upstream of registry.upstreams()) {
    upstream.onListChanged((kind) => {
      catalogue.invalidate();
      if (kind === 'prompts') {
        everySession((server) => server.sendPromptListChanged());
        modern.notify.promptsChanged();
      } else if (kind === 'resources') {
        everySession((server) => server.sendResourceListChanged());
        modern.notify.resourcesChanged();
      }
    });
    upstream.onResourceUpdated((uri) => {
      // Dropped before anyone hears of the update, so no client re-reads the old contents from the cache.
      aggregate.resources.invalidate(upstream.name, uri).catch(() => {});
      const exposed = catalogue.exposedUri(upstream.name, uri);
      for (const id of subscriptions.subscribers(upstream, uri)) {
        sessions
          .get(id)
          ?.server.sendResourceUpdated({ uri: exposed })
          .catch(() => {});
      }
      modern.notify.resourceUpdated(exposed);
    });
  }

  const open = async (caller: Caller | undefined): Promise<WebStandardStreamableHTTPServerTransport> => {
    const principal = caller?.id;
    const server = aggregateServer(aggregate, { era: 'legacy', caller });
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: cluster?.ids.mint ?? randomUUID,
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

  /** Hands the request to an SDK transport or handler and relays its Response (JSON or SSE). */
  const relay = async (x: Exchange, respond: Promise<Response>) => {
    writeWebResponse(await respond, x.res);
    return written(x.res);
  };

  const initialize = async (x: Exchange, body: unknown) => {
    const principal = x.principal;
    makeRoom(principal);
    opening++;
    if (principal !== undefined) openingBy.set(principal, (openingBy.get(principal) ?? 0) + 1);
    try {
      const transport = await open(x.caller);
      return await relay(x, transport.handleRequest(webRequest(x.req, x.signal), { parsedBody: body }));
    } finally {
      opening--;
      if (principal !== undefined) {
        const left = openingBy.get(principal)! - 1;
        if (left === 0) openingBy.delete(principal);
        else openingBy.set(principal, left);
      }
    }
  };

  /**
   * A 2026-07-28 `subscriptions/listen` naming resources (spec 2026-07-28 basic/utilities/subscriptions):
   * their servers are subscribed while the stream is open, so their `updated` notifications reach it.
   */
  const subscribeWhileListening = (x: Exchange, body: unknown) => {
    const uris = listenedUris(body);
    if (uris.length === 0) return;
    const id = `listen:${randomUUID()}`;
    for (const uri of uris.slice(0, MAX_SUBSCRIPTIONS_PER_SESSION)) {
      const owner = catalogue.resourceOwner(uri);
      if (owner === undefined) continue;
      subscriptions.subscribe(id, owner.upstream, owner.name, x.signal).catch(() => {});
    }
    x.res.once('close', () => subscriptions.end(id));
  };

  const handle = async (x: Exchange) => {
    checkOrigin(x.req.headers.host, x.req.headers.origin);
    const { req } = x;
    const sessionId = req.headers['mcp-session-id'];
    const raw = x.method === 'POST' ? await x.body(maxRequestBytes) : undefined;
    // Spec 2025-11-25 basic/transports: an unknown or expired session is 404; the client then starts a new one.
    const notFound = (body: unknown) => rpcError(404, -32001, 'session not found', idOf(body));
    // Only an id whose MAC checks out and that names a configured replica or a sibling worker is
    // forwarded, at most once across replicas and once within the owner's machine: a forged id cannot
    // make this process call an address of the client's choosing. Any other id is simply not among this
    // process's sessions (404 below). A session found here was minted here: only the others cost an HMAC.
    const owner =
      typeof sessionId === 'string' && !sessions.has(sessionId) ? cluster?.ids.ownerOf(sessionId) : undefined;
    if (cluster !== undefined && mayForward(owner, req.headers[FORWARDED_HEADER])) {
      return cluster.forwarder.forward(x, owner, raw, () =>
        notFound(raw === undefined ? undefined : x.parse(raw)),
      );
    }
    const body = raw === undefined ? undefined : x.parse(raw);
    // A list past its server's SEP-2549 ttlMs is reloaded before it is listed again (lazily: only lists wait).
    if (isListRequest(body)) await Promise.all(registry.upstreams().map((u) => u.refreshExpiredLists()));
    catalogue.refresh();
    if (typeof sessionId === 'string') {
      const session = sessions.get(sessionId);
      // Another caller's session does not exist for this one (no hint that the id is valid).
      if (session === undefined || session.principal !== x.principal) return notFound(body);
      sessions.delete(sessionId);
      sessions.set(sessionId, session);
      session.lastUsed = performance.now();
      const fast = asFastToolCall(body, req.headers);
      if (fast !== undefined && fastPathFits(registry, aggregate.noise, session, fast))
        return fastCall(session, sessionId, fast, x);
      cancelFastCall(session, body);
      return relay(x, session.transport.handleRequest(webRequest(req, x.signal), { parsedBody: body }));
    }
    if (x.method === 'POST' && isInitializeRequest(body)) return initialize(x, body);
    const request = webRequest(req, x.signal);
    if (x.method !== 'POST' || (await isLegacyRequest(request, body))) {
      return rpcError(400, -32600, 'no Mcp-Session-Id: send initialize first', idOf(body));
    }
    subscribeWhileListening(x, body);
    const authInfo = { token: '', clientId: x.principal ?? '', scopes: [], extra: { caller: x.caller } };
    return relay(x, modern.fetch(request, { parsedBody: body, authInfo }));
  };

  return {
    endpoint: { route: 'mcp', protectedResource: '/mcp', handle },
    sessions: () => sessions.size,
    parked: () => aggregate.parked.size(),
    drain() {
      for (const session of sessions.values()) session.transport.closeStandaloneSSEStream();
      cluster?.forwarder.drain();
    },
    async close() {
      clearInterval(sweep);
      aggregate.parked.close();
      const open = [...sessions.values()];
      sessions.clear();
      await Promise.all([
        modern.close().catch(() => {}),
        cluster?.forwarder.close(),
        ...open.map((session) => session.transport.close().catch(() => {})),
      ]);
    },
  };
}

/** Signed session ids and the pools to every other replica and sibling worker (docs/deploy.md). */
function sessionCluster(options: SessionClusterOptions): { ids: SessionIds; forwarder: SessionForwarder } {
  return {
    ids: sessionIds(options),
    forwarder: sessionForwarder({
      replicas: options.replicas.filter((r) => r !== options.self),
      ...(options.siblings === undefined ? {} : { siblings: options.siblings }),
    }),
  };
}

/**
 * Whether a request for `owner`'s session goes on to it: a session of another replica when no replica
 * forwarded the request yet, of a sibling worker when no sibling did (`x-slipstream-forwarded`).
 */
function mayForward(
  owner: SessionOwner | undefined,
  mark: string | string[] | undefined,
): owner is RemoteOwner {
  if (owner === undefined || 'local' in owner) return false;
  return 'replica' in owner ? mark === undefined : mark !== 'worker';
}

/**
 * Spec 2025-11-25 basic/transports#security-warning: servers MUST validate `Origin` (and we check `Host`
 * too) so a page on another site cannot reach a local gateway through DNS rebinding. Loopback names are
 * always accepted; `extra` adds names, `*` turns the check off. Throws `GW_MCP_ORIGIN_FORBIDDEN` (403).
 */
function originCheck(
  extra: readonly string[],
): (host: string | undefined, origin: string | undefined) => void {
  if (extra.includes('*')) return () => {};
  const hosts = [...localhostAllowedHostnames(), ...extra.map((name) => name.toLowerCase())];
  return (host, origin) => {
    const hostCheck = validateHostHeader(host, hosts);
    if (!hostCheck.ok)
      throw new GatewayError('GW_MCP_ORIGIN_FORBIDDEN', `Host not allowed: ${hostCheck.message}`);
    if (origin === undefined) return;
    const originCheck = validateOriginHeader(origin, hosts);
    if (!originCheck.ok)
      throw new GatewayError('GW_MCP_ORIGIN_FORBIDDEN', `Origin not allowed: ${originCheck.message}`);
  };
}

/**
 * Resource subscriptions of 2025 sessions: the upstream is subscribed while at least one session is
 * (so its `updated` notifications reach exactly the sessions that asked), and unsubscribed after the last.
 */
function sessionSubscriptions(): McpSubscriptions & {
  subscribers(upstream: McpUpstream, uri: string): readonly string[];
  end(session: string): void;
} {
  const byResource = new Map<string, { upstream: McpUpstream; uri: string; sessions: Set<string> }>();
  const bySession = new Map<string, Set<string>>();
  const keyOf = (upstream: McpUpstream, uri: string) => `${upstream.name}\n${uri}`;
  const release = (key: string, session: string, signal: AbortSignal): Promise<unknown> => {
    const entry = byResource.get(key);
    bySession.get(session)?.delete(key);
    if (entry === undefined || !entry.sessions.delete(session) || entry.sessions.size > 0)
      return Promise.resolve();
    byResource.delete(key);
    return entry.upstream.request('resources/unsubscribe', { uri: entry.uri }, { signal });
  };
  return {
    async subscribe(session, upstream, uri, signal) {
      const key = keyOf(upstream, uri);
      const own = bySession.get(session) ?? new Set<string>();
      if (!own.has(key) && own.size >= MAX_SUBSCRIPTIONS_PER_SESSION) {
        throw new GatewayError(
          'GW_BAD_REQUEST',
          `at most ${MAX_SUBSCRIPTIONS_PER_SESSION} resource subscriptions per session`,
        );
      }
      const entry = byResource.get(key);
      if (entry === undefined) await upstream.request('resources/subscribe', { uri }, { signal });
      const current = byResource.get(key) ?? { upstream, uri, sessions: new Set<string>() };
      current.sessions.add(session);
      byResource.set(key, current);
      own.add(key);
      bySession.set(session, own);
    },
    async unsubscribe(session, upstream, uri, signal) {
      await release(keyOf(upstream, uri), session, signal);
    },
    subscribers: (upstream, uri) => [...(byResource.get(keyOf(upstream, uri))?.sessions ?? [])],
    end(session) {
      for (const key of [...(bySession.get(session) ?? [])]) {
        release(key, session, AbortSignal.timeout(5_000)).catch(() => {});
      }
      bySession.delete(session);
    },
  };
}

/** The servers' `resourceCache` policies as the cache hints they stand for. */
function configuredHints(servers: McpConfig['servers']): Map<string, McpCacheHint> {
  const hints = new Map<string, McpCacheHint>();
  for (const [name, server] of Object.entries(servers)) {
    const policy = server.resourceCache;
    if (policy === undefined) continue;
    hints.set(name, { ttlMs: policy.ttl, cacheScope: policy.scope === 'shared' ? 'public' : 'private' });
  }
  return hints;
}

/** The list methods, whose answers come from the servers' held lists. */
const LIST_METHODS = new Set(['tools/list', 'resources/list', 'resources/templates/list', 'prompts/list']);

function isListRequest(body: unknown): boolean {
  const method = (body as { method?: unknown } | null | undefined)?.method;
  return typeof method === 'string' && LIST_METHODS.has(method);
}

/** The resource URIs a `subscriptions/listen` request's filter names. */
function listenedUris(body: unknown): string[] {
  const message = body as {
    method?: unknown;
    params?: { notifications?: { resourceSubscriptions?: unknown } };
  };
  if (message?.method !== 'subscriptions/listen') return [];
  const uris = message.params?.notifications?.resourceSubscriptions;
  return Array.isArray(uris) ? uris.filter((uri): uri is string => typeof uri === 'string') : [];
}

function callerOf(extra: Record<string, unknown> | undefined): Caller | undefined {
  return extra?.caller as Caller | undefined;
}

/** The JSON-RPC id of a request body, when it has one (so errors answer it, not `"id": null`). */
function idOf(body: unknown): string | number | null {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return null;
  const id = (body as { id?: unknown }).id;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

/** A thrown ProtocolError (or anything else) as a JSON-RPC error object. */
function rpcErrorObject(error: unknown): { code: number; message: string; data?: unknown } {
  const rpc = error as { code?: unknown; message?: unknown; data?: unknown };
  const code = typeof rpc.code === 'number' ? rpc.code : -32603;
  const message = typeof rpc.message === 'string' ? rpc.message : String(error);
  return rpc.data === undefined ? { code, message } : { code, message, data: rpc.data };
}

function rpcError(status: number, code: number, message: string, id: string | number | null): Reply {
  const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id }));
  return {
    status,
    headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
    body,
  };
}

/**
 * The message when it is a plain `tools/call` the fast path may answer: one request (not a batch), no
 * progress token (progress needs an SSE stream), a client that accepts JSON, and a 2025 protocol version
 * (anything else goes to the SDK transport, which reports the problem).
 */
function asFastToolCall(body: unknown, headers: Exchange['req']['headers']): FastToolCall | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const message = body as { jsonrpc?: unknown; method?: unknown; id?: unknown; params?: unknown };
  if (message.jsonrpc !== '2.0' || message.method !== 'tools/call') return undefined;
  if (typeof message.id !== 'string' && typeof message.id !== 'number') return undefined;
  const params = message.params as
    { name?: unknown; arguments?: unknown; _meta?: Record<string, unknown> } | undefined;
  if (params === undefined || params === null || typeof params.name !== 'string') return undefined;
  // Any `_meta` (progress token, traceparent...) goes the full path, which relays it.
  if (params._meta !== undefined) return undefined;
  const args = params.arguments;
  if (args !== undefined && (args === null || typeof args !== 'object' || Array.isArray(args)))
    return undefined;
  if (headers.accept?.includes('application/json') !== true) return undefined;
  const version = headers['mcp-protocol-version'];
  if (version !== undefined && !FAST_PATH_VERSIONS.has(String(version))) return undefined;
  return { id: message.id, params: params as CallToolRequestParams };
}

/**
 * A JSON reply carries no message but the result: the fast path takes a call only when nothing is known
 * to need relaying during it. The client declared none of the server→client requests (sampling,
 * elicitation, roots) a server could make, and the tool is not expected to log: its server lacks `logging`, or its
 * calls went the streamed path (which relays log lines) until one completed without any, and it was never
 * seen logging (a tool seen logging stays on the streamed path). (Spec 2025-11-25 basic/transports: the server chooses JSON or SSE for each POST.)
 */
function fastPathFits(
  registry: ToolRegistry,
  noise: ToolNoise,
  session: Session,
  call: FastToolCall,
): boolean {
  const name = call.params.name;
  const server = registry.byNamespacedName(name)?.server;
  const logs = registry
    .upstreams()
    .find((u) => u.name === server)
    ?.info()?.capabilities.logging;
  if (logs !== undefined && (!noise.quiet.has(name) || noise.logging.has(name))) return false;
  const client = session.server.getClientCapabilities() ?? {};
  return client.sampling === undefined && client.elicitation === undefined && client.roots === undefined;
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
