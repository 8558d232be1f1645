// Retry policy: exponential backoff with full jitter, Retry-After, idempotent calls only, inside a budget.
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError } from '../errors.js';
import { discard, replayable } from '../pipeline/compose.js';
import type { AnyPolicy, CallEnvelope, Headers, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import type { RetryBudget } from './retry-budget.js';

export interface RetryOptions {
  /** Route name, for events. */
  route: string;
  /** Total attempts including the first. */
  attempts: number;
  /** Backoff base in ms: retry n waits a random time in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))]. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Upstream statuses worth another attempt (e.g. 429, 502, 503, 504). */
  retryOn: readonly number[];
  /** Shared by every route on the same upstream. */
  budget: RetryBudget;
  /** Injectable for deterministic tests. Default `Math.random`. */
  random?: () => number;
}

/** Errors that say "this attempt failed, another may not": connection failures and per-attempt timeouts. */
const RETRYABLE_CODES = new Set(['GW_UPSTREAM_UNAVAILABLE', 'GW_UPSTREAM_TIMEOUT']);

/**
 * Retries failed attempts of idempotent calls (the call's `idempotent` flag) whose body can be replayed.
 * Full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog) spreads retries of many clients.
 * An upstream `Retry-After` (RFC 9110 §10.2.3) is honoured: the wait is at least that long, and when it
 * is longer than `maxDelayMs` the reply is returned as is so the client can wait instead.
 * Retries stop when the budget is spent, when the call's deadline fires, or when attempts run out;
 * the caller then gets the last reply or error, never a worse one.
 */
export function retry(options: RetryOptions): AnyPolicy {
  const { attempts, baseDelayMs, maxDelayMs, budget, route } = options;
  const retryOn = new Set(options.retryOn);
  const random = options.random ?? Math.random;

  return (next) => async (call) => {
    if (attempts <= 1 || !call.idempotent || !replayable(call)) return next(call);

    budget.activeRequests++;
    let holdsRetrySlot = false;
    try {
      for (let attempt = 1; ; attempt++) {
        let reply: Reply | undefined;
        let failure: unknown;
        try {
          reply = await next(call);
        } catch (error) {
          failure = error;
        } finally {
          if (holdsRetrySlot) budget.releaseRetry();
          holdsRetrySlot = false;
        }

        const reason = reply !== undefined ? retryableStatus(reply, retryOn) : retryableError(failure);
        if (reason === undefined || attempt >= attempts || call.signal.aborted) return settle(reply, failure);

        const backoffMs = random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
        const retryAfterMs =
          reply === undefined ? undefined : parseRetryAfterMs(reply.headers['retry-after']);
        if (retryAfterMs !== undefined && retryAfterMs > maxDelayMs) return settle(reply, failure);
        if (!budget.tryAcquireRetry()) {
          publish(events.retryBudgetExhausted, { route, upstream: call.upstream });
          return settle(reply, failure);
        }
        holdsRetrySlot = true;
        if (reply !== undefined) discard(reply);
        const delayMs = Math.max(backoffMs, retryAfterMs ?? 0);
        publish(events.retry, { route, upstream: call.upstream, attempt: attempt + 1, delayMs, reason });
        try {
          await sleep(delayMs, undefined, { signal: call.signal });
        } catch {
          budget.releaseRetry();
          holdsRetrySlot = false;
          throw deadlineError(call);
        }
      }
    } finally {
      budget.activeRequests--;
    }
  };
}

function settle(reply: Reply | undefined, failure: unknown): Reply {
  if (reply !== undefined) return reply;
  throw failure;
}

function retryableStatus(reply: Reply, retryOn: ReadonlySet<number>): string | undefined {
  return retryOn.has(reply.status) ? String(reply.status) : undefined;
}

function retryableError(error: unknown): string | undefined {
  return error instanceof GatewayError && RETRYABLE_CODES.has(error.code) ? error.code : undefined;
}

function deadlineError(call: CallEnvelope): unknown {
  const reason: unknown = call.signal.reason;
  return reason instanceof GatewayError
    ? reason
    : new GatewayError('GW_CLIENT_CLOSED', 'client closed the request');
}

/** Parses `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3) into milliseconds from now. */
export function parseRetryAfterMs(value: Headers[string], now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text === '') return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
