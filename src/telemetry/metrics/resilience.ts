// Resilience metrics: retries and the retry budget, breakers, bulkhead rejections, OAuth2 token refreshes.
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type {
  BreakerStateEvent,
  BulkheadRejectEvent,
  FanoutMemberRemovedEvent,
  RetryBudgetExhaustedEvent,
  RetryEvent,
  TokenRefreshEvent,
} from '../events.js';
import type { Subscription } from './subscription.js';

const BREAKER_STATE = { closed: 0, open: 1, 'half-open': 2 } as const;

/** Registers the resilience policies' metrics and returns the subscriptions that feed them. */
export function resilienceMetrics(registry: Registry): Subscription[] {
  const registers = [registry];
  const retries = new Counter({
    name: 'slipstream_retries_total',
    help: 'Retries sent, by the status or error code that caused them.',
    labelNames: ['route', 'upstream', 'reason'] as const,
    registers,
  });
  const budgetExhausted = new Counter({
    name: 'slipstream_retry_budget_exhausted_total',
    help: 'Retries not sent because the retry budget was spent.',
    labelNames: ['route', 'upstream'] as const,
    registers,
  });
  const breakerState = new Gauge({
    name: 'slipstream_breaker_state',
    help: 'Circuit breaker state: 0 closed, 1 open, 2 half-open.',
    labelNames: ['name'] as const,
    registers,
  });
  const breakerTransitions = new Counter({
    name: 'slipstream_breaker_transitions_total',
    help: 'Circuit breaker state changes.',
    labelNames: ['name', 'state'] as const,
    registers,
  });
  const bulkheadRejections = new Counter({
    name: 'slipstream_bulkhead_rejections_total',
    help: 'Calls rejected by a bulkhead, by reason.',
    labelNames: ['route', 'reason'] as const,
    registers,
  });
  const tokenRefreshes = new Counter({
    name: 'slipstream_token_refreshes_total',
    help: 'OAuth2 token requests, by trigger and outcome.',
    labelNames: ['upstream', 'trigger', 'ok'] as const,
    registers,
  });
  return [
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
      // A departed fan-out member's breaker label sets go with it.
      events.fanoutMemberRemoved,
      (message) => {
        const e = message as FanoutMemberRemovedEvent;
        breakerState.remove(e.upstream);
        for (const state of ['closed', 'open', 'half-open']) breakerTransitions.remove(e.upstream, state);
      },
    ],
  ];
}
