// A remote MCP server over streamable HTTP (SSE fallback): one kept-alive session, re-established when it expires.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolResultSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { HttpServerConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { NO_SDK_TIMEOUT_MS, upstreamFailure } from './mcp-upstream.js';
import type { McpUpstream, McpUpstreamStats } from './mcp-upstream.js';

/** Largest tool list kept. */
const MAX_TOOLS = 10_000;
/** Backoff between attempts to reach a server that was down at start-up. */
const RETRY_BASE_MS = 1_000;
const RETRY_MAX_MS = 30_000;

/**
 * Builds the upstream for a remote server. `start()` opens one session (streamable HTTP, MCP spec
 * 2025-06-18 transports; falling back to the 2024-11-05 HTTP+SSE transport when the server rejects the
 * streamable POST with a 4xx) and loads `tools/list`; a server that is down is retried in the background
 * instead of failing start-up. Every call reuses that session; when the server answers 404 (the session
 * expired, spec: "the client MUST start a new session"), one new session is opened for all waiting
 * callers and the call is sent once more.
 */
export function httpSession(name: string, config: HttpServerConfig, logger: Logger): McpUpstream {
  const log = logger.child({ mcpServer: name });
  const url = new URL(config.url);
  const listeners: Array<() => void> = [];
  let toolList: Tool[] = [];
  let current: Promise<Client> | undefined;
  let inFlight = 0;
  let started = 0;
  let restarts = 0;
  let closing = false;
  let retryTimer: NodeJS.Timeout | undefined;
  /** Calls in flight per session client; a replaced client is closed once its last one settles. */
  const busy = new Map<Client, number>();
  const retired = new WeakSet<Client>();
  const release = (client: Client) => {
    const left = (busy.get(client) ?? 1) - 1;
    if (left > 0) return void busy.set(client, left);
    busy.delete(client);
    if (retired.has(client)) client.close().catch(() => {});
  };

  const open = async (): Promise<Client> => {
    started++;
    const requestInit = { headers: config.headers };
    const connect = async (transport: Transport) => {
      const client = new Client({ name: 'slipstream', version: '0.1.0' });
      client.onerror = () => {};
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => refresh(client));
      await client.connect(transport, { timeout: config.timeout });
      return client;
    };
    try {
      return await connect(new StreamableHTTPClientTransport(url, { requestInit }));
    } catch (error) {
      const status = error instanceof StreamableHTTPError ? (error.code ?? 0) : 0;
      const rejected = status >= 400 && status < 500;
      if (!rejected) throw upstreamFailure(name, error, new AbortController().signal);
      log.info('streamable HTTP rejected; falling back to HTTP+SSE');
      try {
        return await connect(new SSEClientTransport(url, { requestInit }));
      } catch (sseError) {
        throw upstreamFailure(name, sseError, new AbortController().signal); // an outage, never a 500
      }
    }
  };

  /** The live session, opened on first use; a failed open is forgotten so the next call tries again. */
  const session = (): Promise<Client> => {
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
  const reestablish = (stale: Client): Promise<Client> => {
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

  const listTools = async (client: Client): Promise<Tool[]> => {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor === undefined ? undefined : { cursor }, {
        timeout: config.timeout,
      });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined && tools.length < MAX_TOOLS);
    return tools;
  };

  const refresh = (client: Client) => {
    listTools(client).then(
      (tools) => {
        toolList = tools;
        for (const listener of listeners) listener();
      },
      (error: unknown) => log.warn({ err: error }, 'tools/list refresh failed'),
    );
  };

  return {
    name,
    async start() {
      // A remote server that is down must not keep the gateway from starting: its tools appear once it answers.
      const load = async (attempt: number): Promise<void> => {
        try {
          toolList = await listTools(await session());
          if (attempt > 1) for (const listener of listeners) listener();
        } catch (error) {
          if (closing) return;
          const delayMs = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
          log.warn(
            { err: error, retryInMs: delayMs },
            'MCP server unreachable; its tools are listed once it answers',
          );
          retryTimer = setTimeout(() => void load(attempt + 1), delayMs);
          retryTimer.unref();
        }
      };
      await load(1);
    },
    tools: () => toolList,
    onToolsChanged(listener) {
      listeners.push(listener);
    },
    async callTool(tool, args, options): Promise<CallToolResult> {
      inFlight++;
      try {
        let client = await session();
        for (let attempt = 1; ; attempt++) {
          const used = client;
          busy.set(used, (busy.get(used) ?? 0) + 1);
          try {
            return await used.request(
              { method: 'tools/call', params: { name: tool, arguments: args } },
              CallToolResultSchema,
              {
                signal: options.signal,
                onprogress: options.onProgress,
                timeout: NO_SDK_TIMEOUT_MS,
              },
            );
          } catch (error) {
            const expired = error instanceof StreamableHTTPError && error.code === 404;
            if (!expired || attempt > 1 || options.signal.aborted)
              throw upstreamFailure(name, error, options.signal);
            log.info('MCP session expired; re-establishing');
          } finally {
            release(used);
          }
          client = await reestablish(used);
        }
      } finally {
        inFlight--;
      }
    },
    stats(): McpUpstreamStats {
      return { server: name, ready: current === undefined ? 0 : 1, inFlight, started, restarts, pids: [] };
    },
    async close() {
      closing = true;
      clearTimeout(retryTimer);
      const client = await current?.catch(() => undefined);
      await client?.close();
    },
  };
}
