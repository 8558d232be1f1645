// Background cache refreshes (stale-while-revalidate, refresh-ahead): one per key at a time, bounded, with a deadline, closed with the gateway.
import { GatewayError } from '../errors.js';
import { events, publish } from '../telemetry/events.js';
import type { RefreshTrigger } from '../telemetry/events.js';

export interface RefresherOptions {
  /** Most refreshes running at once (over every route); more are skipped and counted. Default 1,000. */
  maxRunning?: number;
}

/** What a background refresh reports: the entry was replaced, confirmed (304) or found stored by a peer; or it failed. */
export type RefreshOutcome = 'refreshed' | 'peer' | 'failed';

/** Runs background refreshes for every cached route of a gateway; a component in its lifecycle list. */
export interface Refresher {
  /**
   * Starts `task` in the background for `key` unless one runs for it already, the refresher is full or
   * closed (then it is skipped: the entry stays as it is). `task` gets a signal that aborts after
   * `timeoutMs` or at `close()`. Never throws; a failure is counted.
   */
  run(
    key: string,
    label: { route: string; trigger: RefreshTrigger },
    timeoutMs: number,
    task: (signal: AbortSignal) => Promise<RefreshOutcome>,
  ): void;
  /** Refreshes running now. */
  readonly size: number;
  /** Stops starting refreshes, aborts the running ones and waits for them to settle. */
  close(): Promise<void>;
}

/**
 * Builds a refresher. RFC 5861 asks for one background revalidation per stale key; refresh-ahead uses the
 * same slot, so a key never has two refreshes in flight in this process (across processes, the cache's
 * peer lock coalesces them).
 */
export function refresher(options: RefresherOptions = {}): Refresher {
  const maxRunning = options.maxRunning ?? 1_000;
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  let closed = false;

  return {
    get size() {
      return running.size;
    },
    run(key, label, timeoutMs, task) {
      if (running.has(key)) return;
      if (closed || running.size >= maxRunning) {
        publish(events.cacheRefresh, { ...label, outcome: 'skipped', durationMs: 0 });
        return;
      }
      const controller = new AbortController();
      const timer = setTimeout(() => {
        controller.abort(
          new GatewayError('GW_UPSTREAM_TIMEOUT', `background refresh exceeded ${timeoutMs} ms`),
        );
      }, timeoutMs);
      timer.unref();
      const started = performance.now();
      const done = task(controller.signal)
        .catch((): RefreshOutcome => 'failed')
        .then((outcome) => {
          publish(events.cacheRefresh, { ...label, outcome, durationMs: performance.now() - started });
        })
        .finally(() => {
          clearTimeout(timer);
          running.delete(key);
        });
      running.set(key, { controller, done });
    },
    async close() {
      closed = true;
      const settling = [...running.values()];
      for (const { controller } of settling) {
        controller.abort(new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down'));
      }
      await Promise.all(settling.map((r) => r.done));
    },
  };
}
