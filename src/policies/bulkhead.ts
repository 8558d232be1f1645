// Bulkhead policy: caps concurrent calls on a route, with a bounded wait queue.
import { GatewayError } from '../errors.js';
import type { AnyPolicy } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';

export interface BulkheadOptions {
  /** Route name, for events. */
  route: string;
  /** Calls allowed in flight at once. */
  maxConcurrent: number;
  /** Calls allowed to wait for a slot; more are rejected at once. */
  queue: number;
  /** Longest wait for a slot, in ms. */
  queueTimeoutMs: number;
}

interface Waiter {
  grant: () => void;
}

/**
 * Lets `maxConcurrent` calls run; up to `queue` more wait in FIFO order for at most `queueTimeoutMs`. A call
 * holds its slot until its reply body ends: a stream counts for its whole life.
 * A call that cannot run or wait is rejected with `GW_BULKHEAD_FULL` (503, `Retry-After: 1`) so overload
 * sheds load at the gateway instead of piling it onto a struggling upstream. A waiter whose deadline or
 * client goes away leaves the queue at once.
 */
export function bulkhead(options: BulkheadOptions): AnyPolicy {
  const { maxConcurrent, queue, queueTimeoutMs, route } = options;
  let active = 0;
  const waiting = new Set<Waiter>(); // insertion-ordered, O(1) removal when a waiter gives up

  const release = () => {
    const first = waiting.values().next();
    if (first.done === true) active--;
    else {
      waiting.delete(first.value);
      first.value.grant(); // the slot passes straight to the next waiter
    }
  };

  const acquire = (signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          cleanup();
          resolve();
        },
      };
      const giveUp = (error: unknown) => {
        waiting.delete(waiter);
        cleanup();
        reject(error);
      };
      const timer = setTimeout(() => {
        publish(events.bulkheadReject, { route, reason: 'queue-timeout' });
        giveUp(full(`no free slot within ${queueTimeoutMs} ms`));
      }, queueTimeoutMs);
      const onAbort = () => giveUp(signal.reason);
      const cleanup = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      waiting.add(waiter);
    });

  return (next) => async (call) => {
    if (active < maxConcurrent) active++;
    else if (waiting.size < queue && !call.signal.aborted) await acquire(call.signal);
    else {
      publish(events.bulkheadReject, { route, reason: 'queue-full' });
      throw full(`${maxConcurrent} calls in flight and ${queue} waiting`);
    }
    let streaming = false;
    try {
      const reply = await next(call);
      const body = reply.body;
      // A streamed body (an LLM stream, a large download) still holds its upstream connection: so does the slot.
      if (body !== null && !Buffer.isBuffer(body) && !body.readableEnded && !body.destroyed) {
        streaming = true;
        body.once('close', release);
      }
      return reply;
    } finally {
      if (!streaming) release();
    }
  };
}

function full(detail: string): GatewayError {
  return new GatewayError('GW_BULKHEAD_FULL', `route is at capacity: ${detail}`, { retryAfterS: 1 });
}
