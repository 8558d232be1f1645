// Supervised pool of stdio MCP processes: pre-warmed, least-in-flight, restarted with backoff, hung ones recycled.
import type { CallToolResult, PriorDiscovery } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { StdioServerConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { events, publish } from '../../telemetry/events.js';
import { Catalog, SESSION_STATE_METHODS } from './catalog.js';
import { upstreamFailure } from './mcp-upstream.js';
import { Outage } from './outage.js';
import type {
  McpListKind,
  McpRequestOptions,
  McpUpstream,
  McpUpstreamStats,
  ToolCallOptions,
} from './mcp-upstream.js';
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
 * Builds the pool for one stdio server. `start()` spawns `pool.min` processes and connects each once; the
 * era is settled by the first (`era: auto` probes `server/discover`, spec 2026-07-28) and every later process
 * connects with that verdict, so a pool probes once, not per process. Every call then goes to the ready
 * process with the fewest calls in flight (the SDK Client multiplexes them by JSON-RPC id), and a process is
 * added, up to `pool.max`, when all have `maxInFlight`. A call that wants its own log lines or server
 * requests (an interactive call) goes to a process with no other such call, since nothing on the stdio wire
 * says which call a server request belongs to; the pool grows for them too. Session-state requests
 * (`logging/setLevel`, `resources/subscribe`) reach every process and are replayed to new ones; on
 * 2026-07-28 subscriptions ride one process's `subscriptions/listen` stream.
 * A process that exits is replaced after a jittered exponential backoff while it keeps dying young; its
 * in-flight calls fail with `GW_MCP_SERVER_CRASHED`, or run once more elsewhere when the tool is idempotent.
 * A server none of whose processes can start (command not found, exits before `initialize`) does not stop
 * the gateway: it is down (one log line, `stats().down`), its calls fail at once with 503
 * `GW_MCP_SERVER_DOWN`, and the spawn is retried with the same backoff until it starts and its lists load.
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
  const catalog = new Catalog(name, log);
  const outage = new Outage(name, log);
  /** The era verdict of the first process; every later one connects with it (no second probe). */
  let verdict: PriorDiscovery | undefined;
  /** The 2026-07-28 process whose `subscriptions/listen` stream carries change notifications. */
  let listener: StdioSession | undefined;
  /** Restarts scheduled but not yet spawned (they hold a pool slot). */
  let reserved = 0;
  let started = 0;
  let restarts = 0;
  let youngDeaths = 0;
  let closing = false;
  /** Restarts waiting out their backoff: cleared on close, so shutdown never spawns a process. */
  const restartTimers = new Set<NodeJS.Timeout>();
  let healthTimer: NodeJS.Timeout | undefined;

  /** The ready process with the fewest calls in flight; for an interactive call, one without another. */
  const ready = (options?: McpRequestOptions): StdioSession | undefined => {
    let best: StdioSession | undefined;
    let bestFree: StdioSession | undefined;
    for (const session of sessions) {
      if (session.state !== 'ready') continue;
      if (best === undefined || session.inFlight < best.inFlight) best = session;
      if (!session.busyAttributed && (bestFree === undefined || session.inFlight < bestFree.inFlight))
        bestFree = session;
    }
    if (options === undefined || best === undefined || !best.needsTurn(options)) return best;
    if (bestFree === undefined) growForInteractive();
    return bestFree ?? best;
  };

  const spawn = async (): Promise<StdioSession> => {
    started++;
    const session: StdioSession = new StdioSession({
      server: name,
      config,
      prior: verdict,
      logger,
      onExit: lost,
      onListChanged: (from, kind) => catalog.refresh(kind, loader(from, kind)),
      onResourceUpdated: (uri) => catalog.resourceUpdated(uri),
    });
    sessions.push(session);
    try {
      const settled = await session.start(config.pool.startTimeout);
      verdict ??= settled;
      if (session.state === 'ready') await replay(session);
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
    if (listener === session) {
      listener = undefined;
      relistenLater();
    }
  };

  /** A fresh 2025 process gets the pool's session state (log level, subscriptions) as soon as it starts. */
  const replay = async (session: StdioSession) => {
    if (verdict?.kind === 'modern') return;
    for (const { method, params } of catalog.replay()) {
      await session
        .request(method, params, { signal: AbortSignal.timeout(config.pool.startTimeout) })
        .catch((error: unknown) => log.warn({ err: error, method }, 'MCP session state not replayed'));
    }
  };

  /** 2026-07-28: (re)opens the listen stream on one ready process with the current subscriptions. */
  const relisten = async (): Promise<void> => {
    if (closing || verdict?.kind !== 'modern') return;
    const session = listener?.state === 'ready' ? listener : ready();
    if (session === undefined) return;
    listener = session;
    try {
      await session.listen([...catalog.subscriptions]);
    } catch (error) {
      throw upstreamFailure(name, error, new AbortController().signal);
    }
  };
  /** Re-listens in the background (start-up, or the listening process died): a failure is logged. */
  const relistenLater = () => {
    relisten().catch((error: unknown) => log.warn({ err: error }, 'MCP subscriptions/listen failed'));
  };

  const loader = (from: StdioSession, kind: McpListKind) => {
    const session = from.state === 'ready' ? from : ready();
    return session === undefined ? undefined : () => session.loadList(kind, config.pool.startTimeout);
  };
  catalog.reloadWith((kind) => {
    const session = ready();
    return session === undefined ? undefined : () => session.loadList(kind, config.pool.startTimeout);
  });

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

  /** The wait before the next restart: none after a stable run, then jittered exponential. */
  const restartDelayMs = () =>
    youngDeaths === 0
      ? 0
      : Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (youngDeaths - 1)) * (0.5 + random() / 2);

  /** A process failed to start: tries again; with none ready the server is down (logged once per outage). */
  const failedToStart = (error: unknown) => {
    youngDeaths++;
    const retryInMs = replenish();
    if (ready() !== undefined) return log.error({ err: error }, 'MCP server process failed to start');
    outage.failed(error, retryInMs ?? 0);
  };

  /** A process started: a server that was down serves again (its lists loaded if it never had them). */
  const cameUp = async (session: StdioSession) => {
    if (outage.down === undefined) return;
    try {
      if (catalog.info() === undefined) await loadCatalog(session, true);
    } catch (error) {
      log.warn({ err: error }, 'MCP server lists not loaded; restarting its process');
      return session.recycle('its lists could not be loaded');
    }
    outage.up();
  };

  const loadCatalog = async (session: StdioSession, announce: boolean) => {
    catalog.set(session.info(), await session.loadLists(config.pool.startTimeout), announce);
    await relisten().catch((error: unknown) => log.warn({ err: error }, 'MCP subscriptions/listen failed'));
  };

  /** Schedules restarts up to `pool.min`; returns the wait before the one it scheduled. */
  const replenish = (): number | undefined => {
    if (closing || sessions.length + reserved >= config.pool.min) return undefined;
    const delayMs = restartDelayMs();
    reserved++; // hold the slot while waiting, so concurrent exits do not over-spawn
    const timer = setTimeout(() => {
      restartTimers.delete(timer);
      reserved--;
      if (closing) return; // shutdown began while this restart waited: spawn nothing
      spawn()
        .then(cameUp)
        .then(
          () => replenish(),
          (error: unknown) => {
            if (!closing) failedToStart(error);
          },
        );
    }, delayMs);
    timer.unref();
    restartTimers.add(timer);
    return delayMs;
  };

  const grow = () => {
    if (sessions.length + reserved >= config.pool.max) return;
    spawn().catch((error: unknown) => {
      if (!closing) log.error({ err: error }, 'MCP server process failed to start');
    });
  };
  /** Adds a process when every ready one is saturated and the pool may grow. */
  const growIfSaturated = (least: StdioSession) => {
    if (least.inFlight >= config.pool.maxInFlight) grow();
  };
  /** Adds a process when every one already runs an interactive call (unless one is starting). */
  const growForInteractive = () => {
    if (!sessions.some((session) => session.state === 'starting')) grow();
  };

  const waitForSession = (signal: AbortSignal): Promise<StdioSession> => {
    if (closing) return Promise.reject(shuttingDown());
    // A server that cannot start answers at once: waiting out the deadline would only hide why.
    const down = outage.error();
    if (down !== undefined) return Promise.reject(down);
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

  const startHealthChecks = () => {
    healthTimer = setInterval(() => {
      for (const session of sessions) void checkHealth(session);
    }, config.pool.healthInterval);
    healthTimer.unref();
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

  /**
   * Runs `send` on a ready process (waiting for one during a restart); a call lost to a crash is sent once
   * more elsewhere when `idempotent`, and one that hit its deadline triggers a health check.
   */
  const onSession = async <T>(
    options: McpRequestOptions,
    idempotent: boolean,
    send: (session: StdioSession) => Promise<T>,
  ): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      const session = ready(options) ?? (await waitForSession(options.signal));
      growIfSaturated(session);
      try {
        return await send(session);
      } catch (error) {
        const code = error instanceof GatewayError ? error.code : undefined;
        if (code === 'GW_UPSTREAM_TIMEOUT') void checkHealth(session);
        const retry = code === 'GW_MCP_SERVER_CRASHED' && idempotent && attempt === 1;
        if (!retry || options.signal.aborted) throw error;
      }
    }
  };

  /** `logging/setLevel`, `resources/(un)subscribe`: every 2025 process; the listen stream on 2026-07-28. */
  const sessionState = async (
    method: string,
    params: Record<string, unknown> | undefined,
    options: McpRequestOptions,
  ): Promise<Record<string, unknown>> => {
    catalog.remember(method, params); // throws GW_BULKHEAD_FULL past its subscription bound
    if (verdict?.kind === 'modern') {
      // 2026-07-28 removed these methods: subscriptions ride subscriptions/listen, the log level each request's _meta.
      if (method !== 'logging/setLevel') await relisten();
      return {};
    }
    const live = sessions.filter((session) => session.state === 'ready');
    if (live.length === 0) await waitForSession(options.signal);
    const results = await Promise.all(
      sessions
        .filter((session) => session.state === 'ready')
        .map((session) => session.request(method, params, options)),
    );
    return results[0] ?? {};
  };

  return {
    name,
    async start() {
      // The first process settles the era; the others connect with its verdict (one probe per pool).
      const first = await spawn().then(
        () => undefined,
        (error: unknown) => error,
      );
      const results = await Promise.allSettled(Array.from({ length: config.pool.min - 1 }, spawn));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      const connected = ready();
      if (connected === undefined) {
        // Start-up goes on without it: the pool keeps trying, and its lists appear once a process starts.
        if (closing) throw shuttingDown();
        failedToStart(first ?? failed[0]?.reason);
        return startHealthChecks();
      }
      if (first !== undefined || failed.length > 0) {
        const count = failed.length + (first === undefined ? 0 : 1);
        log.error({ err: first ?? failed[0]!.reason }, `${count} MCP server process(es) failed to start`);
        replenish();
      }
      await loadCatalog(connected, false);
      outage.up();
      // Only now: a ping during the first list load could recycle the process it is loading from.
      startHealthChecks();
    },
    ...catalog.surface(),
    callTool(tool, args, callOptions: ToolCallOptions): Promise<CallToolResult> {
      return onSession(callOptions, callOptions.idempotent, (session) =>
        session.callTool(tool, args, callOptions),
      );
    },
    request(method, params, requestOptions) {
      if (closing) return Promise.reject(shuttingDown());
      if (SESSION_STATE_METHODS.has(method)) return sessionState(method, params, requestOptions);
      // Reads (resources/read, prompts/get, completion/complete) change nothing: one resend after a crash.
      return onSession(requestOptions, true, (session) => session.request(method, params, requestOptions));
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
      const era = catalog.info()?.era;
      return { server: name, ready: readyCount, inFlight, started, restarts, pids, era, down: outage.down };
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
