// The one policy-stack builder: every upstream kind (route, MCP tool, LLM provider, fan-out member) gets its stack here.
import type { BreakerSpec, BulkheadSpec, HedgeSpec, RetrySpec } from '../config/policy-schema.js';
import { bulkhead } from './bulkhead.js';
import { circuitBreaker } from './circuit-breaker.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import { deadline } from './deadline.js';
import { hedge } from './hedge.js';
import { retry } from './retry.js';
import { RetryBudget } from './retry-budget.js';
import { rateLimit } from './rate-limit.js';
import type { Bucket, BucketStore } from './rate-limit.js';
import { compose } from '../pipeline/compose.js';
import type { Handler, Policy } from '../pipeline/types.js';

/** What one stack is made of: the validated policy config of one route, tool, provider or member. */
export interface StackSpec<P extends object> {
  /** Name in events and metrics (the route name, `mcp:server__tool`, `llm:provider`...). */
  name: string;
  /** This stack's own rate limit, first of all (a cache hit still counts), with the buckets' store. */
  rateLimit?: { store: BucketStore; perPrincipal?: Bucket; perIp?: Bucket };
  /**
   * Kind-specific policies that run first, outermost first: rate limits, then the cache (or coalescing
   * alone on uncached stacks), then batching. They know the kind's payload (an HTTP request's Vary, a tool's
   * arguments); everything below them is the same for every kind.
   */
  front?: ReadonlyArray<Policy<P>>;
  /** One total deadline for the call: queueing, every attempt and a streamed body. Omit when the caller owns it. */
  timeoutMs?: number;
  bulkhead?: BulkheadSpec | false;
  /** Only for calls the kind allows to be sent twice; the policy still checks each call's `idempotent`. */
  retry?: RetrySpec | false;
  breaker?: BreakerSpec | false;
  hedge?: HedgeSpec;
}

/** A composed stack, and its breaker for the components that must follow its state (fan-out groups). */
export interface Stack<P extends object> {
  readonly handler: Handler<P>;
  readonly breaker: CircuitBreaker | undefined;
}

/**
 * Composes `spec` around `transport`, in the one order every kind shares:
 *
 *   rate limit → front (cache | coalesce → batch) → deadline → bulkhead → retry → breaker → hedge → transport
 *
 * - A cache hit or a coalesced waiter costs nothing further, and batching turns single calls into one.
 * - The deadline sits outside the bulkhead, so time spent queueing counts against it.
 * - Retry sits OUTSIDE the breaker on purpose: every attempt passes through the breaker, so once it opens
 *   retries stop at once instead of hammering a dead upstream, and the breaker counts real attempts rather
 *   than whole retried calls.
 * - The hedge is innermost: a hedged attempt is one more attempt the breaker sees.
 * Built once at start-up, never per request.
 */
export function buildStack<P extends object>(spec: StackSpec<P>, transport: Handler<P>): Stack<P> {
  const policies: Policy<P>[] = [];
  if (spec.rateLimit !== undefined) policies.push(rateLimit({ route: spec.name, ...spec.rateLimit }));
  policies.push(...(spec.front ?? []));
  if (spec.timeoutMs !== undefined) policies.push(deadline({ timeoutMs: spec.timeoutMs }));
  if (spec.bulkhead !== undefined && spec.bulkhead !== false) {
    policies.push(
      bulkhead({
        route: spec.name,
        maxConcurrent: spec.bulkhead.maxConcurrent,
        queue: spec.bulkhead.queue,
        queueTimeoutMs: spec.bulkhead.queueTimeout,
      }),
    );
  }
  if (spec.retry !== undefined && spec.retry !== false && spec.retry.attempts > 1) {
    policies.push(
      retry({
        route: spec.name,
        attempts: spec.retry.attempts,
        baseDelayMs: spec.retry.baseDelay,
        maxDelayMs: spec.retry.maxDelay,
        retryOn: spec.retry.on,
        budget: new RetryBudget(spec.retry.budget),
      }),
    );
  }
  const breaker =
    spec.breaker === undefined || spec.breaker === false ? undefined : breakerFor(spec.name, spec.breaker);
  if (breaker !== undefined) policies.push(breaker);
  if (spec.hedge !== undefined) {
    policies.push(hedge({ delay: spec.hedge.delay, minDelayMs: spec.hedge.minDelay }));
  }
  return { handler: compose(policies, transport), breaker };
}

function breakerFor(name: string, spec: BreakerSpec): CircuitBreaker {
  return spec.mode === 'consecutive'
    ? circuitBreaker({
        name,
        mode: 'consecutive',
        threshold: spec.threshold,
        halfOpenAfterMs: spec.halfOpenAfter,
      })
    : circuitBreaker({
        name,
        mode: 'ratio',
        threshold: spec.threshold,
        windowMs: spec.window,
        minRequests: spec.minRequests,
        halfOpenAfterMs: spec.halfOpenAfter,
      });
}
