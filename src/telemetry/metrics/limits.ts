// Rate-limit metrics: refusals per route and scope, and whether the buckets are shared (Redis) or local.
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type { RateLimitRejectEvent, RateLimitStoreEvent } from '../events.js';
import type { Subscription } from './subscription.js';

/** Registers the rate-limit metrics and returns the subscriptions that feed them. */
export function limitMetrics(registry: Registry): Subscription[] {
  const registers = [registry];
  const rejected = new Counter({
    name: 'slipstream_rate_limited_total',
    help: 'Requests refused with 429 by a rate limit, by route and by what was limited (principal or ip).',
    labelNames: ['route', 'scope'] as const,
    registers,
  });
  const shared = new Gauge({
    name: 'slipstream_rate_limit_shared',
    help: 'Whether rate-limit buckets are cluster-wide in Redis (1) or per process while Redis is away (0).',
    registers,
  });
  return [
    [
      events.rateLimitReject,
      (message) => {
        const e = message as RateLimitRejectEvent;
        rejected.inc({ route: e.route, scope: e.scope });
      },
    ],
    [events.rateLimitStore, (message) => shared.set((message as RateLimitStoreEvent).shared ? 1 : 0)],
  ];
}
