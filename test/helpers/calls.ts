// Builds Calls and Replies for policy unit tests.
import type { Call, Reply } from '../../src/pipeline/types.js';
import type { Cancel } from '../../src/pipeline/cancel.js';

export function makeCall(overrides: Partial<Call> = {}): Call {
  return {
    ctx: { id: 't', route: 'test', startedAt: performance.now(), upstreamMs: 0, attempts: 0 },
    upstream: 'up',
    method: 'GET',
    path: '/',
    headers: {},
    body: undefined,
    idempotent: true,
    principal: undefined,
    signal: new AbortController().signal,
    ...overrides,
  };
}

export function makeReply(status: number, headers: Reply['headers'] = {}): Reply {
  return { status, headers, body: Buffer.from(String(status)) };
}

/**
 * A call carrying its request's own cancellation, as the proxy endpoint builds one: `ctx.cancel` set and
 * `signal` an accessor onto it (made only when read).
 */
export function callCarrying(cancel: Cancel, overrides: Partial<Call> = {}): Call {
  const call = makeCall(overrides);
  const own = { ...call, ctx: { ...call.ctx, cancel } };
  Object.defineProperty(own, 'signal', { get: () => cancel.signal, enumerable: true, configurable: true });
  return own;
}
