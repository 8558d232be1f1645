// Circuit breaker policy: fails fast while an upstream is down, probes it once, closes when it recovers.
import { CircuitState, ConsecutiveBreaker, SamplingBreaker } from 'cockatiel';
import type { IBreaker } from 'cockatiel';
import { GatewayError, toGatewayError } from '../errors.js';
import type { AnyPolicy, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import type { BreakerState } from '../telemetry/events.js';

export type CircuitBreakerOptions = {
  /** Name in events and metrics (the route name). */
  name: string;
  /** How long the breaker stays open before one probe call is let through. */
  halfOpenAfterMs: number;
  /** Injectable clock (ms) for tests. Default `Date.now`. */
  now?: () => number;
} & (
  | { mode: 'consecutive'; /** Consecutive failures that open it. */ threshold: number }
  | {
      mode: 'ratio';
      /** Failure ratio (0..1) over the window that opens it. */
      threshold: number;
      windowMs: number;
      /** Calls needed in the window before the ratio counts. */
      minRequests: number;
    }
);

/**
 * The policy, with its state readable and observable (as undici's and cockatiel's breakers are), so that
 * a component that must follow it (a fan-out group skipping open members) asks the breaker itself.
 */
export type CircuitBreaker = AnyPolicy & {
  readonly state: BreakerState;
  /** Calls `listener` after every transition; returns the function that stops it. */
  onStateChange(listener: (state: BreakerState) => void): () => void;
};

/**
 * A failure for the breaker: the upstream erred or answered 5xx. The client's own faults (a hang-up, a
 * malformed body: `GatewayError.clientFault`) are not the upstream's and never open it, nor are refusals the
 * gateway made without reaching it (`GatewayError.local`: an MCP server known to be down).
 */
function isFailure(reply: Reply | undefined, error: unknown): boolean {
  if (reply !== undefined) return reply.status >= 500;
  const failure = toGatewayError(error);
  return !failure.clientFault && !failure.local;
}

/**
 * Counts failures with cockatiel's `ConsecutiveBreaker` or `SamplingBreaker` and runs the state machine itself,
 * so that every rejection is immediate: while open, and while the single half-open probe is in flight,
 * calls fail in microseconds with `GW_BREAKER_OPEN` (503) and a `Retry-After` for the remaining open time.
 */
export function circuitBreaker(options: CircuitBreakerOptions): CircuitBreaker {
  const now = options.now ?? Date.now;
  const counter: IBreaker =
    options.mode === 'consecutive'
      ? new ConsecutiveBreaker(options.threshold)
      : new SamplingBreaker({
          threshold: options.threshold,
          duration: options.windowMs,
          minimumRps: options.minRequests / (options.windowMs / 1000),
        });
  let state: BreakerState = 'closed';
  let openedAt = 0;
  const listeners = new Set<(state: BreakerState) => void>();

  const transition = (next: BreakerState) => {
    state = next;
    if (next === 'open') openedAt = now();
    publish(events.breakerState, { name: options.name, state: next });
    for (const listener of listeners) listener(next);
  };
  const reject = () => {
    const remainingMs = Math.max(0, options.halfOpenAfterMs - (now() - openedAt));
    return new GatewayError('GW_BREAKER_OPEN', `circuit breaker "${options.name}" is open`, {
      retryAfterS: Math.max(1, Math.ceil(remainingMs / 1000)),
    });
  };

  const policy: AnyPolicy = (next) => async (call) => {
    if (state === 'half-open') throw reject();
    let probing = false;
    if (state === 'open') {
      if (now() - openedAt < options.halfOpenAfterMs) throw reject();
      transition('half-open');
      probing = true;
    }
    let reply: Reply | undefined;
    let failure: unknown;
    try {
      reply = await next(call);
      return reply;
    } catch (error) {
      failure = error;
      throw error;
    } finally {
      const failed = isFailure(reply, failure);
      if (probing) {
        if (failed) transition('open');
        else {
          counter.success(CircuitState.HalfOpen);
          transition('closed');
        }
      } else if (failed) {
        if (counter.failure(CircuitState.Closed) && state === 'closed') transition('open');
      } else counter.success(CircuitState.Closed);
    }
  };
  return Object.defineProperties(policy, {
    state: { get: () => state, enumerable: true },
    onStateChange: {
      value: (listener: (state: BreakerState) => void) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    },
  }) as CircuitBreaker;
}
