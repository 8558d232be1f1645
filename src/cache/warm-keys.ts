// Warm keys: requests a route keeps fresh in its cache on a schedule, off the request path (seed 003's movers and sectors).
import { GatewayError } from '../errors.js';
import { discard } from '../pipeline/compose.js';
import type { Handler, Headers } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';

/** One request to keep fresh, as the route's stack receives it. */
export interface WarmRequest {
  method: string;
  /** The client path (the metrics label and log name). */
  path: string;
  /** The path sent upstream (the route's rewrite applied), with its query. */
  upstreamPath: string;
  headers: Headers;
  body: Buffer | undefined;
}

export interface WarmKeysOptions {
  /** Route name, for events. */
  route: string;
  /** The upstream name the route sends to. */
  upstream: string;
  /** The route's whole stack: the refresh goes through its cache, coalescing, deadline, retries and breaker. */
  handler: Handler;
  requests: readonly WarmRequest[];
  /** Time between two refreshes of one request, in ms, before jitter. */
  everyMs: number;
  /** Each wait is `everyMs` times a random factor in [1 - jitter, 1 + jitter]. 0..1. */
  jitter: number;
  /** Deadline of one refresh, in ms (the route timeout). */
  timeoutMs: number;
  /** Injectable random source for tests. Default `Math.random`. */
  random?: () => number;
}

/** The warm keys of one route: a component of the gateway's lifecycle list. */
export interface WarmKeys {
  readonly name: string;
  /** Schedules every request; the first refreshes start at once, spread over the first jitter window. */
  start(): Promise<void>;
  /** Stops the schedule, aborts refreshes in flight and waits for them to end. */
  close(): Promise<void>;
}

/**
 * Keeps `requests` fresh in the route's cache. Each refresh is the request sent through the route's stack
 * with `Cache-Control: no-cache`, so the cache revalidates (conditionally when the entry has a validator)
 * and stores the answer whatever the entry's age; the reply body is read and dropped. A failed refresh
 * (5xx or an error) replaces nothing: the last good entry stays, served while fresh and, with the route's
 * `staleIfError`, beyond; it is counted (`slipstream_warm_refreshes_total{outcome="failed"}`) and the
 * schedule goes on. Timers are unref'ed: they never keep a process alive.
 */
export function warmKeys(options: WarmKeysOptions): WarmKeys {
  const random = options.random ?? Math.random;
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<{ controller: AbortController; done: Promise<void> }>();
  let closed = false;

  const waitMs = (base: number) => base * (1 - options.jitter + 2 * options.jitter * random());

  const schedule = (request: WarmRequest, delayMs: number) => {
    if (closed) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      const controller = new AbortController();
      const entry = { controller, done: refresh(request, controller) };
      running.add(entry);
      void entry.done.finally(() => {
        running.delete(entry);
        schedule(request, waitMs(options.everyMs));
      });
    }, delayMs);
    timer.unref();
    timers.add(timer);
  };

  const refresh = async (request: WarmRequest, controller: AbortController): Promise<void> => {
    const deadline = setTimeout(
      () =>
        controller.abort(
          new GatewayError('GW_UPSTREAM_TIMEOUT', `warm refresh exceeded ${options.timeoutMs} ms`),
        ),
      options.timeoutMs,
    );
    const started = performance.now();
    let status = 0;
    try {
      const reply = await options.handler({
        ctx: {
          id: `warm-${options.route}`,
          route: options.route,
          startedAt: started,
          upstreamMs: 0,
          attempts: 0,
        },
        upstream: options.upstream,
        method: request.method,
        path: request.upstreamPath,
        // RFC 9111 §5.2.1.4: the cache must validate with the origin, fresh entry or not.
        headers: { ...request.headers, 'cache-control': 'no-cache' },
        body: request.body,
        idempotent: true,
        principal: undefined,
        signal: controller.signal,
      });
      status = reply.status;
      discard(reply);
    } catch {
      // counted below; the entry stays
    } finally {
      clearTimeout(deadline);
    }
    publish(events.warmRefresh, {
      route: options.route,
      path: request.path,
      outcome: status > 0 && status < 500 ? 'refreshed' : 'failed',
      status,
      durationMs: performance.now() - started,
    });
  };

  return {
    name: `warm:${options.route}`,
    async start() {
      // Spread over the first jitter window so a route's keys do not all go upstream in the same instant.
      for (const request of options.requests) schedule(request, options.everyMs * options.jitter * random());
    },
    async close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const settling = [...running];
      for (const { controller } of settling) {
        controller.abort(new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down'));
      }
      await Promise.all(settling.map((r) => r.done));
    },
  };
}
