// The resilience policies' config (zod), shared by every upstream kind: routes, MCP tools, LLM providers, fan-out members.
import { z } from 'zod';
import { duration, size } from './fields.js';

/** Defaults one kind of upstream gives its retry policy. */
export interface RetryDefaults {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Statuses retried besides connection failures and timeouts. */
  on: readonly number[];
}

/**
 * `retry: false | {attempts, baseDelay, maxDelay, on, budget}`: full-jitter exponential backoff, `Retry-After`
 * honoured, inside an Envoy-style budget. The kind decides when retrying is allowed at all (idempotent calls).
 */
export function retrySchema(defaults: RetryDefaults) {
  return z.union([
    z.literal(false),
    z.strictObject({
      /** Total attempts including the first. */
      attempts: z.number().int().min(1).max(10).default(defaults.attempts),
      /** Backoff base: retry n waits a random time in [0, min(maxDelay, baseDelay * 2^(n-1))] (full jitter). */
      baseDelay: duration.default(defaults.baseDelayMs),
      /** A `Retry-After` longer than this is not waited for: the reply goes back (or to a fallback). */
      maxDelay: duration.default(defaults.maxDelayMs),
      /** Statuses that are retried (connection failures and timeouts always are). */
      on: z.array(z.number().int().min(400).max(599)).default([...defaults.on]),
      /** Envoy-style retry budget: concurrent retries <= max(minConcurrent, ratio * active requests). */
      budget: z
        .strictObject({
          ratio: z.number().min(0).max(1).default(0.2),
          minConcurrent: z.number().int().min(0).default(3),
        })
        .prefault({}),
    }),
  ]);
}

/** Defaults one kind of upstream gives its breaker. */
export interface BreakerDefaults {
  /** Consecutive failures that open it (`mode: consecutive`, the default mode). */
  threshold: number;
  halfOpenAfterMs: number;
}

/**
 * `breaker: false | {mode?, ...}`: `consecutive` (the default mode) opens after `threshold` failures in a
 * row; `ratio` opens when the failure ratio over `window` reaches `threshold` once `minRequests` were seen.
 */
export function breakerSchema(defaults: BreakerDefaults) {
  const consecutive = z.strictObject({
    mode: z.literal('consecutive'),
    /** Consecutive failures that open the breaker. */
    threshold: z.number().int().min(1).default(defaults.threshold),
    /** How long it stays open before one probe call is let through. */
    halfOpenAfter: duration.default(defaults.halfOpenAfterMs),
  });
  const ratio = z.strictObject({
    mode: z.literal('ratio'),
    /** Failure ratio (0..1) over `window` that opens the breaker. */
    threshold: z.number().gt(0).max(1).default(0.5),
    window: duration.default(10_000),
    /** Calls needed in the window before the ratio counts. */
    minRequests: z.number().int().min(1).default(20),
    halfOpenAfter: duration.default(defaults.halfOpenAfterMs),
  });
  const modes = z.discriminatedUnion('mode', [consecutive, ratio]);
  return z.union([
    z.literal(false),
    // `mode` may be left out: consecutive.
    z.preprocess(
      (value) =>
        typeof value === 'object' && value !== null && !('mode' in value)
          ? { ...value, mode: 'consecutive' }
          : value,
      modes,
    ),
  ]);
}

/** Defaults one kind of upstream gives its bulkhead. */
export interface BulkheadDefaults {
  maxConcurrent: number;
  queue: number;
  queueTimeoutMs: number;
}

/** `bulkhead: false | {maxConcurrent, queue, queueTimeout}`: a concurrency cap with a bounded FIFO wait. */
export function bulkheadSchema(defaults: BulkheadDefaults) {
  return z.union([
    z.literal(false),
    z.strictObject({
      maxConcurrent: z.number().int().min(1).default(defaults.maxConcurrent),
      /** Calls waiting for a slot; more are rejected with GW_BULKHEAD_FULL. */
      queue: z.number().int().min(0).default(defaults.queue),
      /** Longest wait in the queue. */
      queueTimeout: duration.default(defaults.queueTimeoutMs),
    }),
  ]);
}

/** `hedge: {delay, minDelay}`: a second attempt for idempotent reads after a delay (opt-in). */
export const hedgeSchema = z.strictObject({
  /** Send a second attempt after this delay, or after the route's observed p95 when "p95". */
  delay: z.union([z.literal('p95'), duration]).default('p95'),
  /** Lower bound for the p95-based delay. */
  minDelay: duration.default(5),
});

/** `rateLimit: {perPrincipal?, perIp?}`: this route's or tool's own request rate, on top of `rateLimits`. */
export const rateLimitSchema = z.strictObject({
  perPrincipal: z
    .strictObject({ rate: z.number().positive(), burst: z.number().int().min(1).optional() })
    .optional(),
  perIp: z
    .strictObject({ rate: z.number().positive(), burst: z.number().int().min(1).optional() })
    .optional(),
});

/**
 * The cache fields every kind shares (routes add their key, methods and Cache-Control options): RFC 5861
 * stale windows, the scope and the entry size limit.
 */
export const cacheFields = {
  /** Freshness when the upstream does not say. */
  ttl: duration,
  /** RFC 5861: after ttl, serve stale this long while one background refresh runs. */
  staleWhileRevalidate: duration.default(0),
  /** RFC 5861: after ttl, serve stale this long when the upstream fails. */
  staleIfError: duration.default(0),
  /** `principal`: each caller has its own entries (the default); `shared`: the data is the same for everyone. */
  scope: z.enum(['principal', 'shared']).default('principal'),
  /** Larger responses are relayed but not stored. */
  maxEntryBytes: size.default(1024 ** 2),
};

export type RetrySpec = Exclude<z.output<ReturnType<typeof retrySchema>>, false>;
export type BreakerSpec = Exclude<z.output<ReturnType<typeof breakerSchema>>, false>;
export type BulkheadSpec = Exclude<z.output<ReturnType<typeof bulkheadSchema>>, false>;
export type HedgeSpec = z.output<typeof hedgeSchema>;
export type RateLimitSpec = z.output<typeof rateLimitSchema>;
