// Named diagnostics_channel events: policies and entrypoints publish, telemetry subscribes (as undici does).
import dc from 'node:diagnostics_channel';
import type { ErrorCode } from '../errors.js';
import type { Call, Headers, RequestContext } from '../pipeline/types.js';

/** A client request entered the gateway. Published before routing policies run. */
export interface RequestStartEvent {
  ctx: RequestContext;
  method: string;
  /** The path the client asked for (without query string). */
  path: string;
  /** Incoming headers (read-only for subscribers; tracing extracts `traceparent`). */
  headers: Headers;
}

/** A client request finished (reply headers sent, or failed before that). */
export interface RequestEndEvent {
  ctx: RequestContext;
  method: string;
  path: string;
  status: number;
  errorCode: ErrorCode | undefined;
  /** Milliseconds from receipt to reply headers. */
  durationMs: number;
}

/** An attempt is about to be sent upstream. Subscribers may add headers (tracing adds `traceparent`). */
export interface AttemptStartEvent {
  call: Call;
  /** The headers that will be sent; mutable by subscribers. */
  headers: Headers;
}

/** An upstream attempt got response headers or failed. */
export interface AttemptEndEvent {
  call: Call;
  status: number | undefined;
  errorCode: ErrorCode | undefined;
  durationMs: number;
}

export interface RetryEvent {
  route: string;
  upstream: string;
  /** The attempt number about to be made (2 for the first retry). */
  attempt: number;
  delayMs: number;
  /** HTTP status or error code that caused the retry. */
  reason: string;
}

export interface RetryBudgetExhaustedEvent {
  route: string;
  upstream: string;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerStateEvent {
  name: string;
  state: BreakerState;
}

export interface BulkheadRejectEvent {
  route: string;
  /** Why: the queue is full, or the wait in the queue ran out. */
  reason: 'queue-full' | 'queue-timeout';
}

export interface TokenRefreshEvent {
  upstream: string;
  ok: boolean;
  durationMs: number;
  /** Why the refresh ran: none cached yet, close to expiry, or the upstream answered 401. */
  trigger: 'initial' | 'expiring' | 'unauthorized';
}

export type CacheResult = 'hit' | 'miss' | 'stale' | 'bypass';

export interface CacheLookupEvent {
  route: string;
  result: CacheResult;
}

export interface CoalescedEvent {
  route: string;
}

export interface CacheStoreErrorEvent {
  route: string;
  operation: 'get' | 'set';
  error: unknown;
}

/** Every channel Slipstream publishes on. Publishers check `hasSubscribers` so an unobserved event costs nothing. */
export const events = {
  requestStart: dc.channel('slipstream:request:start'),
  requestEnd: dc.channel('slipstream:request:end'),
  attemptStart: dc.channel('slipstream:upstream:attempt:start'),
  attemptEnd: dc.channel('slipstream:upstream:attempt:end'),
  retry: dc.channel('slipstream:retry'),
  retryBudgetExhausted: dc.channel('slipstream:retry:budget-exhausted'),
  breakerState: dc.channel('slipstream:breaker:state'),
  bulkheadReject: dc.channel('slipstream:bulkhead:reject'),
  tokenRefresh: dc.channel('slipstream:auth:token-refresh'),
  cacheLookup: dc.channel('slipstream:cache:lookup'),
  cacheStoreError: dc.channel('slipstream:cache:store-error'),
  coalesced: dc.channel('slipstream:coalesce:waiter'),
} as const;

/** Publishes `message` on `channel` only when someone listens. */
export function publish<T extends object>(channel: dc.Channel, message: T): void {
  if (channel.hasSubscribers) channel.publish(message);
}
