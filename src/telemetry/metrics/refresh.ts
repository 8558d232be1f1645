// Keeping cache entries fresh off the request path: background refreshes (stale-while-revalidate, refresh-ahead) and warm keys.
import { Counter, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type { CacheRefreshEvent, WarmRefreshEvent } from '../events.js';
import { LATENCY_BUCKETS } from './subscription.js';
import type { Subscription } from './subscription.js';

/** Registers the refresh-ahead / stale-while-revalidate refresh metrics and the warm-key metrics. */
export function refreshMetrics(registry: Registry): Subscription[] {
  const registers = [registry];
  const refreshes = new Counter({
    name: 'slipstream_cache_refreshes_total',
    help: 'Background cache refreshes by trigger (stale: stale-while-revalidate, ahead: refresh-ahead) and outcome (refreshed, peer, failed, skipped).',
    labelNames: ['route', 'trigger', 'outcome'] as const,
    registers,
  });
  const refreshDuration = new Histogram({
    name: 'slipstream_cache_refresh_duration_seconds',
    help: 'Time one background refresh took.',
    labelNames: ['route', 'trigger'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const warm = new Counter({
    name: 'slipstream_warm_refreshes_total',
    help: 'Scheduled warm-key refreshes by outcome; a failed one leaves the last good entry in place.',
    labelNames: ['route', 'path', 'outcome'] as const,
    registers,
  });
  const warmDuration = new Histogram({
    name: 'slipstream_warm_refresh_duration_seconds',
    help: 'Time one warm-key refresh took.',
    labelNames: ['route'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  return [
    [
      events.cacheRefresh,
      (message) => {
        const e = message as CacheRefreshEvent;
        refreshes.inc({ route: e.route, trigger: e.trigger, outcome: e.outcome });
        if (e.outcome !== 'skipped')
          refreshDuration.observe({ route: e.route, trigger: e.trigger }, e.durationMs / 1000);
      },
    ],
    [
      events.warmRefresh,
      (message) => {
        const e = message as WarmRefreshEvent;
        warm.inc({ route: e.route, path: e.path, outcome: e.outcome });
        warmDuration.observe({ route: e.route }, e.durationMs / 1000);
      },
    ],
  ];
}
