// Stateful stdio MCP servers: one process per client session, spawned on the session's first call.
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { StdioServerConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { events, publish } from '../../telemetry/events.js';
import type { McpUpstream, McpUpstreamStats, ToolCallOptions } from './mcp-upstream.js';
import { StdioSession } from './stdio-session.js';

interface Owned {
  /** Resolves once the process is initialized. */
  ready: Promise<StdioSession>;
  /** Set once `ready` resolved. */
  session: StdioSession | undefined;
}

/** The session key of calls that carry none. */
const ANONYMOUS = 'anonymous';

/**
 * Builds the upstream for a `stateful: true` stdio server: each client session gets its own process (and
 * so its own server-side state), initialized once on its first call and closed when the session ends.
 * At most `pool.max` processes live at once; making room closes the least recently used idle one, and
 * when every process is busy the call fails with `GW_BULKHEAD_FULL`. A process that dies takes its
 * session's state with it: in-flight calls fail with `GW_MCP_SERVER_CRASHED`, the next call starts afresh.
 * `start()` runs one short-lived process to load `tools/list`.
 */
export function statefulPool(name: string, config: StdioServerConfig, logger: Logger): McpUpstream {
  const log = logger.child({ mcpServer: name });
  /** Insertion order is recency order. */
  const owners = new Map<string, Owned>();
  const listeners: Array<() => void> = [];
  let toolList: Tool[] = [];
  let started = 0;
  let restarts = 0;
  let closing = false;

  const forget = (session: StdioSession) => {
    for (const [key, owned] of owners) if (owned.session === session) owners.delete(key);
  };

  const spawn = async (): Promise<StdioSession> => {
    started++;
    const session: StdioSession = new StdioSession({
      server: name,
      config,
      logger,
      onExit: (exited) => {
        restarts++;
        publish(events.mcpProcess, {
          server: name,
          event: 'exited',
          pid: exited.pid,
          reason: 'exited unexpectedly',
        });
        forget(exited);
      },
      onToolsChanged: () => {
        session.listTools(config.pool.startTimeout).then(
          (tools) => {
            toolList = tools;
            for (const listener of listeners) listener();
          },
          (error: unknown) => log.warn({ err: error }, 'tools/list refresh failed'),
        );
      },
    });
    await session.start(config.pool.startTimeout);
    publish(events.mcpProcess, { server: name, event: 'started', pid: session.pid });
    return session;
  };

  /** Closes the least recently used idle process; false when every one is busy. */
  const makeRoom = (): boolean => {
    for (const [key, owned] of owners) {
      if (owned.session !== undefined && owned.session.inFlight === 0) {
        owners.delete(key);
        owned.session.close().catch(() => {});
        return true;
      }
    }
    return false;
  };

  const sessionFor = (key: string): Promise<StdioSession> => {
    const found = owners.get(key);
    if (found !== undefined && found.session?.state !== 'dead') {
      owners.delete(key);
      owners.set(key, found);
      return found.ready;
    }
    if (owners.size >= config.pool.max && !makeRoom()) {
      throw new GatewayError(
        'GW_BULKHEAD_FULL',
        `MCP server "${name}" has ${config.pool.max} sessions, all busy`,
        { retryAfterS: 1 },
      );
    }
    const owned: Owned = { ready: spawn(), session: undefined };
    owned.ready.then(
      (session) => {
        owned.session = session;
        if (closing || owners.get(key) !== owned) session.close().catch(() => {});
      },
      () => {
        if (owners.get(key) === owned) owners.delete(key);
      },
    );
    owners.set(key, owned);
    return owned.ready;
  };

  return {
    name,
    async start() {
      const discovery = await spawn();
      try {
        toolList = await discovery.listTools(config.pool.startTimeout);
      } finally {
        await discovery.close();
      }
    },
    tools: () => toolList,
    onToolsChanged(listener) {
      listeners.push(listener);
    },
    async callTool(tool, args, options: ToolCallOptions): Promise<CallToolResult> {
      if (closing) throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
      const session = await sessionFor(options.session ?? ANONYMOUS);
      return session.callTool(tool, args, options);
    },
    endSession(key) {
      const owned = owners.get(key);
      if (owned === undefined) return;
      owners.delete(key);
      owned.ready.then(
        (session) => session.close(),
        () => {},
      );
    },
    stats(): McpUpstreamStats {
      let inFlight = 0;
      let ready = 0;
      const pids: number[] = [];
      for (const { session } of owners.values()) {
        if (session === undefined) continue;
        inFlight += session.inFlight;
        if (session.state === 'ready') ready++;
        if (session.pid !== undefined) pids.push(session.pid);
      }
      return { server: name, ready, inFlight, started, restarts, pids };
    },
    async close() {
      closing = true;
      const all = [...owners.values()];
      owners.clear();
      await Promise.all(
        all.map((owned) =>
          owned.ready.then(
            (session) => session.close(),
            () => {},
          ),
        ),
      );
    },
  };
}
