// Deadline policy: one total deadline per call, covering queueing, retries and the streamed response body.
import { GatewayError } from '../errors.js';
import { carriesOwnCancel } from '../pipeline/cancel.js';
import type { AnyPolicy } from '../pipeline/types.js';

export interface DeadlineOptions {
  /** Total time allowed for the call, from entering this policy until the response body ends. */
  timeoutMs: number;
}

/**
 * Aborts the call's signal when `timeoutMs` passes (reason: `GW_UPSTREAM_TIMEOUT`) or when the caller's own
 * signal aborts (client gone). The timer stays armed while a streamed body is relayed and is cleared when
 * the body ends, so a response that trickles forever is cut at the deadline too.
 */
export function deadline(options: DeadlineOptions): AnyPolicy {
  const { timeoutMs } = options;
  return (next) => async (call) => {
    // The request's own cancellation is aborted directly. A call with some other signal (a coalesced
    // call's) gets a controller chained to that signal.
    const cancel = carriesOwnCancel(call) ? call.ctx.cancel : undefined;
    const chained = cancel === undefined ? new AbortController() : undefined;
    const onParentAbort = () => chained?.abort(call.signal.reason);
    if (chained !== undefined) {
      if (call.signal.aborted) onParentAbort();
      else call.signal.addEventListener('abort', onParentAbort, { once: true });
    }
    const timer = setTimeout(() => {
      (cancel ?? chained!).abort(
        new GatewayError('GW_UPSTREAM_TIMEOUT', `no complete response within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      if (chained !== undefined) call.signal.removeEventListener('abort', onParentAbort);
    };
    let streaming = false;
    try {
      const reply = await next(chained === undefined ? call : { ...call, signal: chained.signal });
      const body = reply.body;
      if (body !== null && !Buffer.isBuffer(body) && !body.readableEnded) {
        streaming = true;
        // 'close' follows both end and destroy (autoDestroy), at a fraction of stream.finished()'s cost.
        body.once('close', cleanup);
      }
      return reply;
    } catch (error) {
      // The transport may surface a generic abort; report the deadline that caused it.
      const state = cancel ?? chained!.signal;
      if (state.aborted && state.reason instanceof GatewayError) throw state.reason;
      throw error;
    } finally {
      if (!streaming) cleanup();
    }
  };
}
