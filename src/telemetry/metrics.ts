// Prometheus metrics: a prom-client registry fed by the gateway's diagnostics_channel events.
import type { Channel } from 'node:diagnostics_channel';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { llmSubscriptions } from '../streams/metrics.js';
import { events } from './events.js';
import type {
  AttemptEndEvent,
  BreakerStateEvent,
  BulkheadRejectEvent,
  BatchEvent,
  CacheLookupEvent,
  CacheTierErrorEvent,
  CacheTierEvent,
  CacheStoreErrorEvent,
  CoalescedEvent,
  DiscoveryRefreshEvent,
  FanoutEndEvent,
  FanoutMemberEvent,
  FanoutMemberRemovedEvent,
  McpProcessEvent,
  RequestEndEvent,
  RetryBudgetExhaustedEvent,
  RetryEvent,
  TokenRefreshEvent,
} from './events.js';

/** Pool counters for one upstream, read at scrape time (undici `Pool.stats`). */
export interface UpstreamConnectionStats {
  upstream: string;
  connected: number;
  free: number;
  pending: number;
  queued: number;
  running: number;
}

export interface MetricsOptions {
  /** Reads upstream pool counters when /metrics is scraped. */
  upstreamStats?: () => Iterable<UpstreamConnectionStats>;
  /** Reads the in-process cache's fill when /metrics is scraped. */
  cacheStats?: () => { entries: number; bytes: number } | undefined;
  /** Node process metrics (event loop lag, heap, GC) with the `slipstream_` prefix. Default true. */
  processMetrics?: boolean;
}

export interface Metrics {
  /** The registry; later features register their own metrics here. */
  readonly registry: Registry;
  readonly contentType: string;
  render(): Promise<string>;
  /** Unsubscribes from every event. */
  close(): void;
}

/** Latency buckets in seconds, from 100 us (a cache hit) to 30 s (a slow LLM call). */
const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
const BREAKER_STATE = { closed: 0, open: 1, 'half-open': 2 } as const;

/**
 * Creates the metrics registry and subscribes to gateway events. Label children are cached by label
 * tuple so recording a request costs two Map lookups and two histogram observations.
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'slipstream_' });

  const requests = new Counter({
    name: 'slipstream_requests_total',
    help: 'Client requests by route, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const requestDuration = new Histogram({
    name: 'slipstream_request_duration_seconds',
    help: 'Time from receiving a request to sending its response headers.',
    labelNames: ['route', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const upstreamDuration = new Histogram({
    name: 'slipstream_upstream_request_duration_seconds',
    help: 'Time to upstream response headers per attempt; status is the HTTP status or the error code.',
    labelNames: ['upstream', 'status'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: 'slipstream_upstream_connections',
    help: 'Upstream pool connections and requests by state (undici Pool stats).',
    labelNames: ['upstream', 'state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const s of options.upstreamStats?.() ?? []) {
        for (const state of ['connected', 'free', 'pending', 'queued', 'running'] as const) {
          this.set({ upstream: s.upstream, state }, s[state]);
        }
      }
    },
  });
  const retries = new Counter({
    name: 'slipstream_retries_total',
    help: 'Retries sent, by the status or error code that caused them.',
    labelNames: ['route', 'upstream', 'reason'] as const,
    registers: [registry],
  });
  const budgetExhausted = new Counter({
    name: 'slipstream_retry_budget_exhausted_total',
    help: 'Retries not sent because the retry budget was spent.',
    labelNames: ['route', 'upstream'] as const,
    registers: [registry],
  });
  const breakerState = new Gauge({
    name: 'slipstream_breaker_state',
    help: 'Circuit breaker state: 0 closed, 1 open, 2 half-open.',
    labelNames: ['name'] as const,
    registers: [registry],
  });
  const breakerTransitions = new Counter({
    name: 'slipstream_breaker_transitions_total',
    help: 'Circuit breaker state changes.',
    labelNames: ['name', 'state'] as const,
    registers: [registry],
  });
  const bulkheadRejections = new Counter({
    name: 'slipstream_bulkhead_rejections_total',
    help: 'Calls rejected by a bulkhead, by reason.',
    labelNames: ['route', 'reason'] as const,
    registers: [registry],
  });
  const tokenRefreshes = new Counter({
    name: 'slipstream_token_refreshes_total',
    help: 'OAuth2 token requests, by trigger and outcome.',
    labelNames: ['upstream', 'trigger', 'ok'] as const,
    registers: [registry],
  });

  const cacheLookups = new Counter({
    name: 'slipstream_cache_requests_total',
    help: 'Cache lookups by result: hit, miss, stale (served stale), revalidated (a 304 from upstream) or bypass.',
    labelNames: ['route', 'result'] as const,
    registers: [registry],
  });
  const coalesced = new Counter({
    name: 'slipstream_coalesced_waiters_total',
    help: 'Calls that waited for an identical in-flight call instead of calling upstream.',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const cacheStoreErrors = new Counter({
    name: 'slipstream_cache_store_errors_total',
    help: 'Cache store operations that failed (the request went on as a miss).',
    labelNames: ['route', 'operation'] as const,
    registers: [registry],
  });

  const cacheTierUp = new Gauge({
    name: 'slipstream_cache_tier_up',
    help: 'Whether a shared cache tier (Redis) is reachable: 1 up, 0 down (requests then use memory alone).',
    labelNames: ['tier'] as const,
    registers: [registry],
  });
  const cacheTierTransitions = new Counter({
    name: 'slipstream_cache_tier_transitions_total',
    help: 'Times a shared cache tier went down or came back.',
    labelNames: ['tier', 'up'] as const,
    registers: [registry],
  });
  const cacheTierErrors = new Counter({
    name: 'slipstream_cache_tier_errors_total',
    help: 'Operations on a shared cache tier that failed while it counted as up (timeouts).',
    labelNames: ['tier', 'operation'] as const,
    registers: [registry],
  });
  const cacheEvictions = new Counter({
    name: 'slipstream_cache_evictions_total',
    help: 'Entries evicted from the in-process cache to make room (expiries not counted).',
    registers: [registry],
  });
  new Gauge({
    name: 'slipstream_cache_memory',
    help: 'In-process cache fill: entries, and bytes of bodies and headers.',
    labelNames: ['unit'] as const,
    registers: [registry],
    collect() {
      const stats = options.cacheStats?.();
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
    registers: [registry],
  });
  const batchCallers = new Counter({
    name: 'slipstream_batched_calls_total',
    help: 'Single-item calls served by a bulk upstream call.',
    labelNames: ['route'] as const,
    registers: [registry],
  });

  const fanoutMemberDuration = new Histogram({
    name: 'slipstream_fanout_member_duration_seconds',
    help: 'Fan-out: time from the start of a fan-out to each member settling, by outcome (skipped members not observed).',
    labelNames: ['group', 'member', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const fanoutMemberOutcomes = new Counter({
    name: 'slipstream_fanout_member_outcomes_total',
    help: 'Fan-out member results: answered, failed, timedOut, skipped (breaker open) or cancelled (quorum met).',
    labelNames: ['group', 'member', 'outcome'] as const,
    registers: [registry],
  });
  const fanoutDuration = new Histogram({
    name: 'slipstream_fanout_duration_seconds',
    help: 'Fan-out completion time per group (all members settled, or enough answered).',
    labelNames: ['group'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const discoveryRefreshes = new Counter({
    name: 'slipstream_discovery_refreshes_total',
    help: 'Fan-out group discovery loads; a failed one keeps the last good member list.',
    labelNames: ['group', 'ok'] as const,
    registers: [registry],
  });
  const discoveryMembers = new Gauge({
    name: 'slipstream_discovery_members',
    help: 'Members listed by the last successful discovery load of each group.',
    labelNames: ['group'] as const,
    registers: [registry],
  });
  const mcpProcesses = new Counter({
    name: 'slipstream_mcp_processes_total',
    help: 'MCP stdio pool processes started, exited unexpectedly (recycled ones included), or recycled for missing a ping.',
    labelNames: ['server', 'event'] as const,
    registers: [registry],
  });
  const fanoutMemberChildren = new Map<string, { count: Counter; duration: Histogram }>();

  // Label children, cached: `labels()` builds a key string and looks it up on every call.
  const requestChildren = new Map<string, { count: Counter; duration: Histogram }>();
  const attemptChildren = new Map<string, Histogram>();

  const subscriptions: Array<[Channel, (message: unknown) => void]> = [
    [
      events.requestEnd,
      (message) => {
        const e = message as RequestEndEvent;
        const status = String(e.status);
        const key = `${e.ctx.route}\0${e.method}\0${status}`;
        let child = requestChildren.get(key);
        if (child === undefined) {
          child = {
            count: requests.labels(e.ctx.route, e.method, status) as unknown as Counter,
            duration: requestDuration.labels(e.ctx.route, status) as unknown as Histogram,
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
          child = upstreamDuration.labels(e.call.upstream, status) as unknown as Histogram;
          attemptChildren.set(key, child);
        }
        child.observe(e.durationMs / 1000);
      },
    ],
    [
      events.retry,
      (message) => {
        const e = message as RetryEvent;
        retries.inc({ route: e.route, upstream: e.upstream, reason: e.reason });
      },
    ],
    [
      events.retryBudgetExhausted,
      (message) => {
        const e = message as RetryBudgetExhaustedEvent;
        budgetExhausted.inc({ route: e.route, upstream: e.upstream });
      },
    ],
    [
      events.breakerState,
      (message) => {
        const e = message as BreakerStateEvent;
        breakerState.set({ name: e.name }, BREAKER_STATE[e.state]);
        breakerTransitions.inc({ name: e.name, state: e.state });
      },
    ],
    [
      events.bulkheadReject,
      (message) => {
        const e = message as BulkheadRejectEvent;
        bulkheadRejections.inc({ route: e.route, reason: e.reason });
      },
    ],
    [
      events.tokenRefresh,
      (message) => {
        const e = message as TokenRefreshEvent;
        tokenRefreshes.inc({ upstream: e.upstream, trigger: e.trigger, ok: String(e.ok) });
      },
    ],
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
    [
      events.fanoutMember,
      (message) => {
        const e = message as FanoutMemberEvent;
        const key = `${e.group}\0${e.member}\0${e.outcome}`;
        let child = fanoutMemberChildren.get(key);
        if (child === undefined) {
          child = {
            count: fanoutMemberOutcomes.labels(e.group, e.member, e.outcome) as unknown as Counter,
            duration: fanoutMemberDuration.labels(e.group, e.member, e.outcome) as unknown as Histogram,
          };
          fanoutMemberChildren.set(key, child);
        }
        child.count.inc();
        if (e.outcome !== 'skipped') child.duration.observe(e.durationMs / 1000);
      },
    ],
    [
      events.fanoutMemberRemoved,
      (message) => {
        const e = message as FanoutMemberRemovedEvent;
        const memberKey = `${e.group}\0${e.member}\0`;
        for (const key of [...fanoutMemberChildren.keys()]) {
          if (!key.startsWith(memberKey)) continue;
          const outcome = key.slice(memberKey.length);
          fanoutMemberOutcomes.remove(e.group, e.member, outcome);
          fanoutMemberDuration.remove(e.group, e.member, outcome);
          fanoutMemberChildren.delete(key);
        }
        const upstreamKey = `${e.upstream}\0`;
        for (const key of [...attemptChildren.keys()]) {
          if (!key.startsWith(upstreamKey)) continue;
          upstreamDuration.remove(e.upstream, key.slice(upstreamKey.length));
          attemptChildren.delete(key);
        }
        breakerState.remove(e.upstream);
        for (const state of ['closed', 'open', 'half-open']) breakerTransitions.remove(e.upstream, state);
      },
    ],
    [
      events.fanoutEnd,
      (message) => {
        const e = message as FanoutEndEvent;
        fanoutDuration.observe({ group: e.group }, e.durationMs / 1000);
      },
    ],
    [
      events.discoveryRefresh,
      (message) => {
        const e = message as DiscoveryRefreshEvent;
        discoveryRefreshes.inc({ group: e.group, ok: String(e.ok) });
        if (e.ok) discoveryMembers.set({ group: e.group }, e.members);
      },
    ],
    [
      events.mcpProcess,
      (message) => {
        const e = message as McpProcessEvent;
        mcpProcesses.inc({ server: e.server, event: e.event });
      },
    ],
    ...llmSubscriptions(registry),
  ];
  for (const [channel, handler] of subscriptions) channel.subscribe(handler);

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close() {
      for (const [channel, handler] of subscriptions) channel.unsubscribe(handler);
    },
  };
}
