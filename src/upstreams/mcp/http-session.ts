// A remote MCP server over streamable HTTP (SSE fallback): one kept-alive connection, re-established when it expires.
import {
  SSEClientTransport,
  SdkHttpError,
  StreamableHTTPClientTransport,
} from '@modelcontextprotocol/client';
import type { CallToolResult, PriorDiscovery, Transport } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { HttpServerConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { Catalog, SESSION_STATE_METHODS } from './catalog.js';
import { McpClient, declaredCapabilities } from './mcp-client.js';
import { upstreamFailure } from './mcp-upstream.js';
import { Outage } from './outage.js';
import type { McpRequestOptions, McpUpstream, McpUpstreamStats } from './mcp-upstream.js';

/**
 * Extra sessions opened for interactive calls while the main one already runs one: a human answering an
 * elicitation may take minutes, and must not hold up every other client's interactive call.
 */
const MAX_INTERACTIVE_SESSIONS = 8;
/** Backoff between attempts to reach a server that was down at start-up. */
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 30_000;

/**
 * Builds the upstream for a remote server. `start()` connects (streamable HTTP, spec 2025-11-25
 * basic/transports; `era: auto` probes `server/discover` in place and falls back to `initialize`; a 4xx on
 * the streamable POST falls back to the 2024-11-05 HTTP+SSE transport) and loads the lists; a server that is
 * down is retried in the background instead of failing start-up. The era verdict is kept, so a reconnect
 * never probes again. Every call reuses the connection; when a 2025 server answers 404 (the session expired,
 * spec: "the client MUST start a new session"), one new session is opened for all waiting callers, its
 * session state (log level, subscriptions) replayed, and the call sent once more. An interactive call (its
 * own log lines or, on 2025 sessions, server requests) runs alone among such calls on its session: while the
 * main session runs one, up to 8 extra sessions are opened for others, then they take turns.
 */
export function httpSession(name: string, config: HttpServerConfig, logger: Logger): McpUpstream {
  const log = logger.child({ mcpServer: name });
  const url = new URL(config.url);
  const catalog = new Catalog(name, log);
  /** Verdict of the first connect; static headers are this server's only auth context. */
  let verdict: PriorDiscovery | undefined;
  let current: Promise<McpClient> | undefined;
  /** Extra sessions for concurrent interactive calls, and how many are being opened. */
  const extras: McpClient[] = [];
  let extrasOpening = 0;
  let inFlight = 0;
  let started = 0;
  let restarts = 0;
  let closing = false;
  const outage = new Outage(name, log);
  /** Lists loaded after the first attempt (a server that was down) are announced to the listeners. */
  let announceLists = false;
  /** Calls in flight per session client; a replaced client is closed once its last one settles. */
  const busy = new Map<McpClient, number>();
  const retired = new WeakSet<McpClient>();
  const release = (client: McpClient) => {
    const left = (busy.get(client) ?? 1) - 1;
    if (left > 0) return void busy.set(client, left);
    busy.delete(client);
    if (retired.has(client)) client.close().catch(() => {});
  };

  const open = async (): Promise<McpClient> => {
    started++;
    const requestInit = { headers: config.headers };
    const connect = async (transport: Transport) => {
      const mcp: McpClient = new McpClient({
        server: name,
        era: config.era,
        prior: verdict,
        declared: declaredCapabilities(config.clientCapabilities),
        onListChanged: (kind) => catalog.refresh(kind, () => mcp.loadList(kind, config.timeout)),
        onResourceUpdated: (uri) => catalog.resourceUpdated(uri),
        onUnattributedLog: (params) => log.debug({ mcpLog: params }, 'MCP server log line'),
      });
      const settled = await mcp.connect(transport, config.timeout);
      verdict ??= settled;
      for (const { method, params } of mcp.era() === 'legacy' ? catalog.replay() : []) {
        await mcp.request(method, params, { signal: AbortSignal.timeout(config.timeout) });
      }
      if (mcp.era() === 'modern') {
        // Change notifications are a nicety: a server whose listen stream fails still serves calls.
        await mcp
          .listen([...catalog.subscriptions])
          .catch((error: unknown) => log.warn({ err: error }, 'MCP subscriptions/listen failed'));
      }
      return mcp;
    };
    try {
      return await connect(new StreamableHTTPClientTransport(url, { requestInit }));
    } catch (error) {
      const status = error instanceof SdkHttpError ? error.status : 0;
      const rejected = status >= 400 && status < 500 && status !== 401 && status !== 403;
      if (!rejected) throw upstreamFailure(name, error, new AbortController().signal);
      log.info('streamable HTTP rejected; falling back to HTTP+SSE');
      try {
        return await connect(new SSEClientTransport(url, { requestInit }));
      } catch (sseError) {
        throw upstreamFailure(name, sseError, new AbortController().signal); // an outage, never a 500
      }
    }
  };

  /** The live connection, opened on first use; a failed open is forgotten so the next call tries again. */
  const session = (): Promise<McpClient> => {
    if (closing) return Promise.reject(new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down'));
    if (current === undefined) {
      const opening = open();
      current = opening;
      opening.catch(() => {
        if (current === opening) current = undefined;
      });
    }
    return current;
  };

  /** Replaces `stale` (once, however many calls saw it expire). */
  const reestablish = (stale: McpClient): Promise<McpClient> => {
    return session().then((live) => {
      if (live !== stale) return live;
      restarts++;
      current = undefined;
      // Other calls on it may still be waiting for their own 404: closing it now would fail them instead.
      retired.add(stale);
      if (!busy.has(stale)) stale.close().catch(() => {});
      return session();
    });
  };

  /** The session for a call: the main one, unless it runs an interactive call and this call is one too. */
  const connectionFor = async (options: McpRequestOptions): Promise<McpClient> => {
    const main = await session();
    if (!main.needsTurn(options) || !main.busyAttributed) return main;
    const free = extras.find((extra) => !extra.busyAttributed);
    if (free !== undefined) return free;
    if (extras.length + extrasOpening >= MAX_INTERACTIVE_SESSIONS) return main; // it waits its turn there
    extrasOpening++;
    try {
      const extra = await open();
      if (closing) {
        await extra.close();
        throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
      }
      extras.push(extra);
      return extra;
    } finally {
      extrasOpening--;
    }
  };

  /** Replaces an expired session: the main one for everybody, an extra one by dropping it. */
  const replace = async (stale: McpClient, options: McpRequestOptions): Promise<McpClient> => {
    const at = extras.indexOf(stale);
    if (at === -1) return reestablish(stale);
    extras.splice(at, 1);
    retired.add(stale);
    if (!busy.has(stale)) stale.close().catch(() => {});
    return connectionFor(options);
  };

  const send = async (
    method: string,
    params: Record<string, unknown> | undefined,
    options: McpRequestOptions,
  ): Promise<Record<string, unknown>> => {
    inFlight++;
    try {
      let mcp = await connectionFor(options);
      for (let attempt = 1; ; attempt++) {
        const used = mcp;
        busy.set(used, (busy.get(used) ?? 0) + 1);
        try {
          return await used.request(method, params, options);
        } catch (error) {
          const cause = error instanceof GatewayError ? error.cause : error;
          const expired = cause instanceof SdkHttpError && cause.status === 404;
          if (!expired || attempt > 1 || options.signal.aborted) throw error;
          log.info('MCP session expired; re-establishing');
        } finally {
          release(used);
        }
        mcp = await replace(used, options);
      }
    } finally {
      inFlight--;
    }
  };

  const sessionState = async (
    method: string,
    params: Record<string, unknown> | undefined,
    options: McpRequestOptions,
  ): Promise<Record<string, unknown>> => {
    catalog.remember(method, params); // throws GW_BULKHEAD_FULL past its subscription bound
    const mcp = await session();
    if (mcp.era() === 'legacy') return send(method, params, options);
    // 2026-07-28 removed these methods: subscriptions ride subscriptions/listen, the log level each request's _meta.
    if (method !== 'logging/setLevel') {
      await mcp.listen([...catalog.subscriptions]).catch((error: unknown) => {
        throw upstreamFailure(name, error, options.signal);
      });
    }
    return {};
  };

  catalog.reloadWith((kind) => async () => (await session()).loadList(kind, config.timeout));

  return {
    name,
    async start() {
      // A remote server that is down must not keep the gateway from starting: its lists appear once it answers.
      await outage.retry(
        async () => {
          const mcp = await session();
          catalog.set(mcp.info(), await mcp.loadLists(config.timeout), announceLists);
        },
        { baseMs: RETRY_BASE_MS, maxMs: RETRY_MAX_MS },
      );
      announceLists = true;
    },
    ...catalog.surface(),
    async callTool(tool, args, options): Promise<CallToolResult> {
      return (await send('tools/call', { name: tool, arguments: args }, options)) as CallToolResult;
    },
    request(method, params, options) {
      return SESSION_STATE_METHODS.has(method)
        ? sessionState(method, params, options)
        : send(method, params, options);
    },
    stats(): McpUpstreamStats {
      return {
        server: name,
        ready: current === undefined ? 0 : 1,
        inFlight,
        started,
        restarts,
        pids: [],
        era: catalog.info()?.era,
        down: outage.down,
      };
    },
    async close() {
      closing = true;
      outage.stop();
      const mcp = await current?.catch(() => undefined);
      const all = mcp === undefined ? extras.splice(0) : [mcp, ...extras.splice(0)];
      await Promise.all(all.map((client) => client.close()));
    },
  };
}
