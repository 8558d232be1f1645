// Builds a route's handler from its policies, outermost first.
import type { Handler, Policy, Reply } from './types.js';

/**
 * Composes policies around a transport. `compose([a, b], t)` handles a call as `a(b(t))`:
 * the first policy sees the call first and the reply last.
 */
export function compose<P extends object>(policies: readonly Policy<P>[], transport: Handler<P>): Handler<P> {
  return policies.reduceRight<Handler<P>>((next, policy) => policy(next), transport);
}

/** Frees a reply the caller will not use (a failed attempt, a lost hedge) so its connection returns to the pool. */
export function discard(reply: Reply): void {
  const body = reply.body;
  if (body !== null && !Buffer.isBuffer(body)) body.resume().on('error', () => {});
}

/** Whether a call may be sent again: it has no body, or its body is in memory (a stream is sent once). */
export function replayable(call: object): boolean {
  const body = (call as { body?: unknown }).body;
  return body === undefined || Buffer.isBuffer(body);
}
