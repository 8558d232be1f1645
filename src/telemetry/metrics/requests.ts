// Request and upstream-attempt metrics: counts and latency per route, attempts per upstream, pool connections.
import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type { AttemptEndEvent, FanoutMemberRemovedEvent, RequestEndEvent } from '../events.js';
import { HotCounter, HotHistogram } from './hot.js';
import type { CounterCell, HistogramCell } from './hot.js';
import { LATENCY_BUCKETS } from './subscription.js';
import type { Subscription } from './subscription.js';

/** Pool counters for one upstream, read at scrape time (undici `Pool.stats`). */
export interface UpstreamConnectionStats {
  upstream: string;
  connected: number;
  free: number;
  pending: number;
  queued: number;
  running: number;
}

/**
 * `slipstream_requests_total`, `slipstream_request_duration_seconds`, the per-attempt upstream latency,
 * the pool connections gauge (read from `upstreamStats` at scrape time) and the requests in flight (read
 * from `inFlight`). Label cells are cached by label tuple, so recording a request costs a Map lookup and
 * two updates that hash nothing (`hot.ts`).
 */
export function requestMetrics(
  registry: Registry,
  upstreamStats: (() => Iterable<UpstreamConnectionStats>) | undefined,
  inFlight?: () => number,
): Subscription[] {
  const registers = [registry];
  if (inFlight !== undefined) {
    new Gauge({
      name: 'slipstream_requests_in_flight',
      help: 'Client requests in flight, streams included (what a drain waits for).',
      registers,
      collect() {
        this.set(inFlight());
      },
    });
  }
  const requests = new HotCounter({
    name: 'slipstream_requests_total',
    help: 'Client requests by route, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers,
  });
  const requestDuration = new HotHistogram({
    name: 'slipstream_request_duration_seconds',
    help: 'Time from receiving a request to sending its response headers.',
    labelNames: ['route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const upstreamDuration = new HotHistogram({
    name: 'slipstream_upstream_request_duration_seconds',
    help: 'Time to upstream response headers per attempt; status is the HTTP status or the error code.',
    labelNames: ['upstream', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  new Gauge({
    name: 'slipstream_upstream_connections',
    help: 'Upstream pool connections and requests by state (undici Pool stats).',
    labelNames: ['upstream', 'state'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of upstreamStats?.() ?? []) {
        for (const state of ['connected', 'free', 'pending', 'queued', 'running'] as const) {
          this.set({ upstream: s.upstream, state }, s[state]);
        }
      }
    },
  });

  // Label cells, cached by one key string (`labels()` would join the values and look them up again).
  const requestChildren = new Map<string, { count: CounterCell; duration: HistogramCell }>();
  const attemptChildren = new Map<string, HistogramCell>();
  return [
    [
      events.requestEnd,
      (message) => {
        const e = message as RequestEndEvent;
        const status = String(e.status);
        const key = `${e.ctx.route}\0${e.method}\0${status}`;
        let child = requestChildren.get(key);
        if (child === undefined) {
          child = {
            count: requests.labels(e.ctx.route, e.method, status),
            duration: requestDuration.labels(e.ctx.route, status),
          };
          requestChildren.set(key, child);
        }
        child.count.inc();
        child.duration.observe(e.durationMs / 1000);
      },
    ],
    [
      events.attemptEnd,
      (message) => {
        const e = message as AttemptEndEvent;
        const status = e.errorCode ?? String(e.status);
        const key = `${e.call.upstream}\0${status}`;
        let child = attemptChildren.get(key);
        if (child === undefined) {
          child = upstreamDuration.labels(e.call.upstream, status);
          attemptChildren.set(key, child);
        }
        child.observe(e.durationMs / 1000);
      },
    ],
    [
      // A departed fan-out member's upstream label sets go with it (no unbounded label growth).
      events.fanoutMemberRemoved,
      (message) => {
        const e = message as FanoutMemberRemovedEvent;
        const upstreamKey = `${e.upstream}\0`;
        for (const key of [...attemptChildren.keys()]) {
          if (!key.startsWith(upstreamKey)) continue;
          upstreamDuration.remove(e.upstream, key.slice(upstreamKey.length));
          attemptChildren.delete(key);
        }
      },
    ],
  ];
}
