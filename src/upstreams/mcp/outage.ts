// An MCP server that is down (it could not start or does not answer): why, the one log line, the error calls get.
import type { Logger } from 'pino';
import { GatewayError } from '../../errors.js';
import { events, publish } from '../../telemetry/events.js';

/** What `stats().down` says of a server that is down. */
export interface McpServerDown {
  /** The spawn or connect error, in the gateway's words (`spawn /opt/x ENOENT`, `connect ECONNREFUSED ...`). */
  reason: string;
  /** Seconds until the next attempt (at least 1), for `Retry-After`. */
  retryAfterS: number;
}

/** Backoff between attempts to bring a server up: doubled from `baseMs`, at most `maxMs`, jittered. */
export interface OutageBackoff {
  baseMs: number;
  maxMs: number;
  /** Injectable random source for the jitter. Default `Math.random`. */
  random?: () => number;
}

/** Most causes followed when describing an error (a cycle must not loop). */
const MAX_CAUSES = 5;

/** The error a call to a down server gets: 503 `GW_MCP_SERVER_DOWN`, naming the server and the reason (after `before`). */
export function serverDownError(server: string, down: McpServerDown, before = ''): GatewayError {
  return new GatewayError('GW_MCP_SERVER_DOWN', `${before}MCP server "${server}" is down: ${down.reason}`, {
    retryAfterS: down.retryAfterS,
    data: { server },
  });
}

/**
 * One server's up/down state. `failed()` marks it down: the first failure of an outage is logged once at
 * error level with code `GW_MCP_SERVER_DOWN`, the server and the reason (later attempts only at debug, so a
 * command that is missing for a day writes one line), and `slipstream_mcp_server_up` goes to 0. `up()` marks
 * it serving (logged when it had been down). `retry()` runs an attempt until one succeeds, with backoff.
 */
export class Outage {
  private current: string | undefined;
  private retryAtMs = 0;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly server: string,
    private readonly log: Logger,
  ) {}

  /** Why the server is down and when it is tried again; undefined while it serves. */
  get down(): McpServerDown | undefined {
    if (this.current === undefined) return undefined;
    const retryAfterS = Math.max(1, Math.ceil((this.retryAtMs - performance.now()) / 1000));
    return { reason: this.current, retryAfterS };
  }

  /** The error for a call while down (see `serverDownError`); undefined while the server serves. */
  error(): GatewayError | undefined {
    const down = this.down;
    return down === undefined ? undefined : serverDownError(this.server, down);
  }

  /** An attempt to start or reach the server failed; the next one runs in `retryInMs`. */
  failed(error: unknown, retryInMs: number): void {
    const reason = describe(error);
    const first = this.current === undefined;
    this.current = reason;
    this.retryAtMs = performance.now() + retryInMs;
    this.failures++;
    const fields = { code: 'GW_MCP_SERVER_DOWN', reason, retryInMs: Math.round(retryInMs) };
    if (!first) {
      this.log.debug({ ...fields, attempts: this.failures }, 'MCP server still down');
      return;
    }
    this.log.error(
      fields,
      `MCP server "${this.server}" is down: ${reason}; its calls get 503 GW_MCP_SERVER_DOWN, retrying in the background`,
    );
    publish(events.mcpServerState, { server: this.server, up: false, reason });
  }

  /** The server serves (first start included). */
  up(): void {
    const wasDown = this.current !== undefined;
    this.current = undefined;
    if (wasDown) this.log.warn({ attempts: this.failures + 1 }, 'MCP server is up');
    this.failures = 0;
    publish(events.mcpServerState, { server: this.server, up: true });
  }

  /**
   * Runs `attempt` (resolving once the first run settled); while it throws, marks the server down and runs
   * it again after a jittered exponential backoff, until it succeeds or `stop()` is called.
   */
  async retry(attempt: () => Promise<void>, backoff: OutageBackoff): Promise<void> {
    const random = backoff.random ?? Math.random;
    const run = async (tries: number): Promise<void> => {
      try {
        await attempt();
        this.up();
      } catch (error) {
        if (this.stopped) return;
        const delayMs = Math.min(backoff.maxMs, backoff.baseMs * 2 ** (tries - 1)) * (0.5 + random() / 2);
        this.failed(error, delayMs);
        this.timer = setTimeout(() => void run(tries + 1), delayMs);
        this.timer.unref();
      }
    };
    await run(1);
  }

  /** Stops retrying (shutdown). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

/**
 * The messages of `error` and its causes, innermost detail kept (`spawn /opt/x ENOENT`, `fetch failed: connect
 * ECONNREFUSED 127.0.0.1:9`); a message already contained in an outer one is not repeated.
 */
function describe(error: unknown): string {
  const parts: string[] = [];
  let at: unknown = error;
  for (let depth = 0; depth < MAX_CAUSES && at !== undefined && at !== null; depth++) {
    const message = at instanceof Error ? at.message : JSON.stringify(at);
    if (!(at instanceof GatewayError) && !parts.some((part) => part.includes(message))) parts.push(message);
    at = at instanceof Error ? at.cause : undefined;
  }
  return parts.join(': ') || (error instanceof Error ? error.message : 'unknown error');
}
