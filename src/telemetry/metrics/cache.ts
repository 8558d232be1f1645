// Cache metrics: lookups by result, coalesced waiters, store and tier errors, evictions, fill, batching.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type {
  BatchEvent,
  CacheLookupEvent,
  CacheStoreErrorEvent,
  CacheTierErrorEvent,
  CacheTierEvent,
  CoalescedEvent,
} from '../events.js';
import type { Subscription } from './subscription.js';

/** Registers the cache, coalescing and batching metrics; `cacheStats` is read at scrape time. */
export function cacheMetrics(
  registry: Registry,
  cacheStats: (() => { entries: number; bytes: number } | undefined) | undefined,
): Subscription[] {
  const registers = [registry];
  const cacheLookups = new Counter({
    name: 'slipstream_cache_requests_total',
    help: 'Cache lookups by result: hit, miss, stale (served stale), revalidated (a 304 from upstream) or bypass.',
    labelNames: ['route', 'result'] as const,
    registers,
  });
  const coalesced = new Counter({
    name: 'slipstream_coalesced_waiters_total',
    help: 'Calls that waited for an identical in-flight call instead of calling upstream.',
    labelNames: ['route'] as const,
    registers,
  });
  const cacheStoreErrors = new Counter({
    name: 'slipstream_cache_store_errors_total',
    help: 'Cache store operations that failed (the request went on as a miss).',
    labelNames: ['route', 'operation'] as const,
    registers,
  });
  const cacheTierUp = new Gauge({
    name: 'slipstream_cache_tier_up',
    help: 'Whether a shared cache tier (Redis) is reachable: 1 up, 0 down (requests then use memory alone).',
    labelNames: ['tier'] as const,
    registers,
  });
  const cacheTierTransitions = new Counter({
    name: 'slipstream_cache_tier_transitions_total',
    help: 'Times a shared cache tier went down or came back.',
    labelNames: ['tier', 'up'] as const,
    registers,
  });
  const cacheTierErrors = new Counter({
    name: 'slipstream_cache_tier_errors_total',
    help: 'Operations on a shared cache tier that failed while it counted as up (timeouts).',
    labelNames: ['tier', 'operation'] as const,
    registers,
  });
  const cacheEvictions = new Counter({
    name: 'slipstream_cache_evictions_total',
    help: 'Entries evicted from the in-process cache to make room (expiries not counted).',
    registers,
  });
  new Gauge({
    name: 'slipstream_cache_memory',
    help: 'In-process cache fill: entries, and bytes of bodies and headers.',
    labelNames: ['unit'] as const,
    registers,
    collect() {
      const stats = cacheStats?.();
      if (stats === undefined) return;
      this.set({ unit: 'entries' }, stats.entries);
      this.set({ unit: 'bytes' }, stats.bytes);
    },
  });
  const batchItems = new Histogram({
    name: 'slipstream_batch_items',
    help: 'Distinct items per bulk upstream call made by batching.',
    labelNames: ['route'] as const,
    buckets: [1, 2, 3, 5, 10, 20, 50, 100, 200, 500],
    registers,
  });
  const batchCallers = new Counter({
    name: 'slipstream_batched_calls_total',
    help: 'Single-item calls served by a bulk upstream call.',
    labelNames: ['route'] as const,
    registers,
  });
  return [
    [
      events.cacheLookup,
      (message) => {
        const e = message as CacheLookupEvent;
        cacheLookups.inc({ route: e.route, result: e.result });
      },
    ],
    [events.coalesced, (message) => coalesced.inc({ route: (message as CoalescedEvent).route })],
    [
      events.cacheStoreError,
      (message) => {
        const e = message as CacheStoreErrorEvent;
        cacheStoreErrors.inc({ route: e.route, operation: e.operation });
      },
    ],
    [
      events.cacheTier,
      (message) => {
        const e = message as CacheTierEvent;
        cacheTierUp.set({ tier: e.tier }, e.up ? 1 : 0);
        cacheTierTransitions.inc({ tier: e.tier, up: String(e.up) });
      },
    ],
    [
      events.cacheTierError,
      (message) => {
        const e = message as CacheTierErrorEvent;
        cacheTierErrors.inc({ tier: e.tier, operation: e.operation });
      },
    ],
    [events.cacheEvict, () => cacheEvictions.inc()],
    [
      events.batch,
      (message) => {
        const e = message as BatchEvent;
        batchItems.observe({ route: e.route }, e.items);
        batchCallers.inc({ route: e.route }, e.callers);
      },
    ],
  ];
}
