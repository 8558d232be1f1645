// Stateful stdio MCP servers: one process per client session, spawned on the session's first call.
import type { CallToolResult, PriorDiscovery } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { StdioServerConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { events, publish } from '../../telemetry/events.js';
import { Catalog } from './catalog.js';
import type { McpRequestOptions, McpUpstream, McpUpstreamStats, ToolCallOptions } from './mcp-upstream.js';
import { Outage } from './outage.js';
import { StdioSession } from './stdio-session.js';

interface Owned {
  /** Resolves once the process is connected. */
  ready: Promise<StdioSession>;
  /** Set once `ready` resolved. */
  session: StdioSession | undefined;
}

/** The session key of calls that carry none. */
const ANONYMOUS = 'anonymous';
/** Backoff between attempts to start a server whose discovery process failed. */
const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 5_000;

/**
 * Builds the upstream for a `stateful: true` stdio server: each client session gets its own process (and
 * so its own server-side state: subscriptions and log level included), connected once on its first call and
 * closed when the session ends. At most `pool.max` processes live at once; making room closes the least
 * recently used idle one, and when every process is busy the call fails with `GW_BULKHEAD_FULL`. A process
 * that dies takes its session's state with it: in-flight calls fail with `GW_MCP_SERVER_CRASHED`, the next
 * call starts afresh. `start()` runs one short-lived process to settle the era (probed once, then reused by
 * every session's process) and load the lists; when it cannot start (command not found, exits at once) the
 * gateway starts anyway, the server is down (calls get 503 `GW_MCP_SERVER_DOWN`) and the discovery is retried
 * with backoff until it succeeds.
 */
export function statefulPool(name: string, config: StdioServerConfig, logger: Logger): McpUpstream {
  const log = logger.child({ mcpServer: name });
  /** Insertion order is recency order. */
  const owners = new Map<string, Owned>();
  const catalog = new Catalog(name, log);
  const outage = new Outage(name, log);
  /** Lists loaded after the first attempt (a server that was down) are announced to the listeners. */
  let announceLists = false;
  let verdict: PriorDiscovery | undefined;
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
      prior: verdict,
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
      onListChanged: (from, kind) =>
        catalog.refresh(kind, () => from.loadList(kind, config.pool.startTimeout)),
      onResourceUpdated: (uri) => catalog.resourceUpdated(uri),
    });
    const settled = await session.start(config.pool.startTimeout);
    verdict ??= settled;
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
    if (closing) throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
    const down = outage.error();
    if (down !== undefined) throw down;
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
        else if (session.info().era === 'modern') {
          session
            .listen([])
            .catch((error: unknown) => log.warn({ err: error }, 'MCP subscriptions/listen failed'));
        }
      },
      () => {
        if (owners.get(key) === owned) owners.delete(key);
      },
    );
    owners.set(key, owned);
    return owned.ready;
  };

  catalog.reloadWith((kind) => {
    for (const owned of owners.values()) {
      const session = owned.session;
      if (session?.state === 'ready') return () => session.loadList(kind, config.pool.startTimeout);
    }
    return undefined;
  });

  const on = async <T>(options: McpRequestOptions, send: (session: StdioSession) => Promise<T>): Promise<T> =>
    send(await sessionFor(options.session ?? ANONYMOUS));

  return {
    name,
    async start() {
      await outage.retry(
        async () => {
          const discovery = await spawn();
          try {
            catalog.set(discovery.info(), await discovery.loadLists(config.pool.startTimeout), announceLists);
          } finally {
            await discovery.close();
          }
        },
        { baseMs: RETRY_BASE_MS, maxMs: RETRY_MAX_MS },
      );
      announceLists = true;
    },
    ...catalog.surface(),
    callTool(tool, args, options: ToolCallOptions): Promise<CallToolResult> {
      return on(options, (session) => session.callTool(tool, args, options));
    },
    request(method, params, options) {
      // Session state (subscriptions, log level) belongs to the session's own process: sent there as is.
      return on(options, (session) => session.request(method, params, options));
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
      return {
        server: name,
        ready,
        inFlight,
        started,
        restarts,
        pids,
        era: catalog.info()?.era,
        down: outage.down,
      };
    },
    async close() {
      closing = true;
      outage.stop();
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
