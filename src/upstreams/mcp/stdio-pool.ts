// Supervised pool of stdio MCP processes: pre-warmed, least-in-flight, restarted with backoff, hung ones recycled.
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { StdioServerConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { events, publish } from '../../telemetry/events.js';
import type { McpUpstream, McpUpstreamStats, ToolCallOptions } from './mcp-upstream.js';
import { StdioSession } from './stdio-session.js';

export interface StdioPoolOptions {
  /** Injectable random source for backoff jitter. Default `Math.random`. */
  random?: () => number;
}

/** Calls allowed to wait for a process while none is ready (during a restart). */
const MAX_WAITERS = 10_000;
/** A process that dies sooner than this after starting counts towards the restart backoff. */
const STABLE_AFTER_MS = 10_000;
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 5_000;

interface Waiter {
  resolve: (session: StdioSession) => void;
  reject: (error: unknown) => void;
}

/**
 * Builds the pool for one stdio server. `start()` spawns `pool.min` processes and runs `initialize` once
 * on each; every call then goes to the ready process with the fewest calls in flight (the SDK Client
 * multiplexes them by JSON-RPC id), and a process is added, up to `pool.max`, when all have `maxInFlight`.
 * A process that exits is replaced after a jittered exponential backoff while it keeps dying young; its
 * in-flight calls fail with `GW_MCP_SERVER_CRASHED`, or run once more elsewhere when the tool is idempotent.
 * Every process is pinged each `healthInterval` (and at once after a call hits its deadline); one that does
 * not answer within `pingTimeout` is killed and replaced.
 */
export function stdioPool(
  name: string,
  config: StdioServerConfig,
  logger: Logger,
  options: StdioPoolOptions = {},
): McpUpstream {
  const random = options.random ?? Math.random;
  const log = logger.child({ mcpServer: name });
  const sessions: StdioSession[] = [];
  const startedAt = new WeakMap<StdioSession, number>();
  const checking = new WeakSet<StdioSession>();
  const waiters = new Set<Waiter>();
  const listeners: Array<() => void> = [];
  let toolList: Tool[] = [];
  /** Restarts scheduled but not yet spawned (they hold a pool slot). */
  let reserved = 0;
  let started = 0;
  let restarts = 0;
  let youngDeaths = 0;
  let closing = false;
  /** Restarts waiting out their backoff: cleared on close, so shutdown never spawns a process. */
  const restartTimers = new Set<NodeJS.Timeout>();
  let healthTimer: NodeJS.Timeout | undefined;
  let refreshing: Promise<void> | undefined;
  let refreshAgain = false;

  const ready = (): StdioSession | undefined => {
    let best: StdioSession | undefined;
    for (const session of sessions) {
      if (session.state === 'ready' && (best === undefined || session.inFlight < best.inFlight))
        best = session;
    }
    return best;
  };

  const spawn = async (): Promise<StdioSession> => {
    started++;
    const session: StdioSession = new StdioSession({
      server: name,
      config,
      logger,
      onExit: lost,
      onToolsChanged: () => refreshTools(session),
    });
    sessions.push(session);
    try {
      await session.start(config.pool.startTimeout);
    } catch (error) {
      remove(session);
      throw error;
    }
    startedAt.set(session, performance.now());
    publish(events.mcpProcess, { server: name, event: 'started', pid: session.pid });
    if (closing) {
      await session.close();
      throw shuttingDown();
    }
    for (const waiter of waiters) {
      waiters.delete(waiter);
      waiter.resolve(session);
    }
    return session;
  };

  const remove = (session: StdioSession) => {
    const at = sessions.indexOf(session);
    if (at !== -1) sessions.splice(at, 1);
  };

  /** A process exited unexpectedly (or was recycled): replace it when the pool fell below `min`. */
  const lost = (session: StdioSession) => {
    remove(session);
    if (closing) return;
    restarts++;
    const lived = performance.now() - (startedAt.get(session) ?? 0);
    publish(events.mcpProcess, {
      server: name,
      event: 'exited',
      pid: session.pid,
      reason: `exited unexpectedly after ${(lived / 1000).toFixed(1)} s`,
    });
    youngDeaths = lived < STABLE_AFTER_MS ? youngDeaths + 1 : 0;
    log.warn({ pid: session.pid, livedMs: Math.round(lived) }, 'MCP server process exited; restarting');
    replenish();
  };

  const replenish = () => {
    if (closing || sessions.length + reserved >= config.pool.min) return;
    const delayMs =
      youngDeaths === 0
        ? 0
        : Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (youngDeaths - 1)) * (0.5 + random() / 2);
    reserved++; // hold the slot while waiting, so concurrent exits do not over-spawn
    const timer = setTimeout(() => {
      restartTimers.delete(timer);
      reserved--;
      if (closing) return; // shutdown began while this restart waited: spawn nothing
      spawn().then(
        () => replenish(),
        (error: unknown) => {
          if (closing) return;
          youngDeaths++;
          log.error({ err: error }, 'MCP server process failed to start');
          replenish();
        },
      );
    }, delayMs);
    timer.unref();
    restartTimers.add(timer);
  };

  /** Adds a process when every ready one is saturated and the pool may grow. */
  const growIfSaturated = (least: StdioSession) => {
    if (least.inFlight < config.pool.maxInFlight || sessions.length + reserved >= config.pool.max) return;
    spawn().catch((error: unknown) => {
      if (!closing) log.error({ err: error }, 'MCP server process failed to start');
    });
  };

  const waitForSession = (signal: AbortSignal): Promise<StdioSession> => {
    if (closing) return Promise.reject(shuttingDown());
    if (sessions.length === 0 && reserved === 0) replenish();
    if (waiters.size >= MAX_WAITERS) {
      return Promise.reject(
        new GatewayError('GW_UPSTREAM_UNAVAILABLE', `MCP server "${name}" has no process ready`),
      );
    }
    return new Promise<StdioSession>((resolve, reject) => {
      const onAbort = () => {
        waiters.delete(waiter);
        reject(signal.reason as Error);
      };
      const waiter: Waiter = {
        resolve: (session) => {
          signal.removeEventListener('abort', onAbort);
          resolve(session);
        },
        reject: (error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      waiters.add(waiter);
    });
  };

  /** Pings `session`; kills it when it does not answer in time (the exit handler replaces it). */
  const checkHealth = async (session: StdioSession) => {
    if (checking.has(session) || session.state !== 'ready') return;
    checking.add(session);
    try {
      if (!(await session.ping(config.pool.pingTimeout)) && session.state === 'ready') {
        log.warn(
          { pid: session.pid },
          `MCP server process did not answer a ping within ${config.pool.pingTimeout} ms; recycling`,
        );
        const reason = `no answer to a ping within ${config.pool.pingTimeout} ms`;
        publish(events.mcpProcess, { server: name, event: 'recycled', pid: session.pid, reason });
        session.recycle(reason);
      }
    } finally {
      checking.delete(session);
    }
  };

  const refreshTools = (from?: StdioSession) => {
    if (refreshing !== undefined) {
      refreshAgain = true;
      return;
    }
    const session = from?.state === 'ready' ? from : ready();
    if (session === undefined) return;
    refreshing = session
      .listTools(config.pool.startTimeout)
      .then((tools) => {
        toolList = tools;
        for (const listener of listeners) listener();
      })
      .catch((error: unknown) => log.warn({ err: error }, 'tools/list refresh failed'))
      .finally(() => {
        refreshing = undefined;
        if (refreshAgain) {
          refreshAgain = false;
          refreshTools();
        }
      });
  };

  return {
    name,
    async start() {
      const results = await Promise.allSettled(Array.from({ length: config.pool.min }, spawn));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      const first = ready();
      if (first === undefined) throw failed[0]?.reason ?? shuttingDown();
      if (failed.length > 0) {
        log.error({ err: failed[0]!.reason }, `${failed.length} MCP server process(es) failed to start`);
        replenish();
      }
      toolList = await first.listTools(config.pool.startTimeout);
      healthTimer = setInterval(() => {
        for (const session of sessions) void checkHealth(session);
      }, config.pool.healthInterval);
      healthTimer.unref();
    },
    tools: () => toolList,
    onToolsChanged(listener) {
      listeners.push(listener);
    },
    async callTool(tool, args, callOptions: ToolCallOptions): Promise<CallToolResult> {
      for (let attempt = 1; ; attempt++) {
        const session = ready() ?? (await waitForSession(callOptions.signal));
        growIfSaturated(session);
        try {
          return await session.callTool(tool, args, callOptions);
        } catch (error) {
          const code = error instanceof GatewayError ? error.code : undefined;
          if (code === 'GW_UPSTREAM_TIMEOUT') void checkHealth(session);
          const retry = code === 'GW_MCP_SERVER_CRASHED' && callOptions.idempotent && attempt === 1;
          if (!retry || callOptions.signal.aborted) throw error;
        }
      }
    },
    stats(): McpUpstreamStats {
      let inFlight = 0;
      let readyCount = 0;
      const pids: number[] = [];
      for (const session of sessions) {
        inFlight += session.inFlight;
        if (session.state === 'ready') readyCount++;
        if (session.pid !== undefined) pids.push(session.pid);
      }
      return { server: name, ready: readyCount, inFlight, started, restarts, pids };
    },
    async close() {
      closing = true;
      clearInterval(healthTimer);
      for (const timer of restartTimers) clearTimeout(timer);
      restartTimers.clear();
      for (const waiter of waiters) waiter.reject(shuttingDown());
      waiters.clear();
      await Promise.all([...sessions].map((session) => session.close()));
    },
  };
}

function shuttingDown(): GatewayError {
  return new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
}
