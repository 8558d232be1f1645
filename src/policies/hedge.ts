// Hedge policy: for idempotent reads, a second attempt after a delay; the first answer wins.
import { GatewayError } from '../errors.js';
import type { AnyPolicy, Call, Handler, Reply } from '../pipeline/types.js';
import { discard, replayable } from '../pipeline/compose.js';

export interface HedgeOptions {
  /** Delay before the hedged attempt in ms, or `'p95'` for the observed 95th percentile of this route. */
  delay: number | 'p95';
  /** Lower bound for the p95-based delay, in ms. */
  minDelayMs: number;
}

/** Latency samples kept for the p95 estimate (a ring; the estimate is refreshed every REFRESH samples). */
const SAMPLES = 512;
const REFRESH = 64;

/**
 * Sends a second copy of an idempotent call whose first attempt has not answered after `delay`
 * ("The Tail at Scale", Dean & Barroso 2013). Whichever attempt produces a reply first wins; the other
 * is aborted and its reply discarded. Calls with a streamed (non-replayable) body are never hedged.
 */
export function hedge(options: HedgeOptions): AnyPolicy {
  const samples = new Float64Array(SAMPLES);
  let recorded = 0;
  let p95 = options.minDelayMs;
  const record = (ms: number) => {
    samples[recorded++ % SAMPLES] = ms;
    if (recorded % REFRESH === 0) {
      const sorted = samples.slice(0, Math.min(recorded, SAMPLES)).sort();
      p95 = Math.max(options.minDelayMs, sorted[Math.floor(sorted.length * 0.95)] ?? 0);
    }
  };

  return (next) => async (call) => {
    if (!call.idempotent || !replayable(call)) return next(call);
    const delayMs = options.delay === 'p95' ? p95 : options.delay;
    const started = performance.now();
    const reply = await race(next, call, delayMs);
    record(performance.now() - started);
    return reply;
  };
}

function race<P extends object>(next: Handler<P>, call: Call<P>, delayMs: number): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const attempts: AbortController[] = [];
    let settled = false;
    let failures = 0;
    let lastError: unknown;

    const launch = () => {
      const controller = new AbortController();
      attempts.push(controller);
      const signal = AbortSignal.any([call.signal, controller.signal]);
      next({ ...call, signal }).then(
        (reply) => {
          if (settled) return discard(reply);
          settled = true;
          clearTimeout(timer);
          for (const other of attempts) if (other !== controller) other.abort(lost());
          resolve(reply);
        },
        (error: unknown) => {
          lastError = error;
          failures++;
          // A failed first attempt hedges at once rather than waiting out the delay.
          if (!settled && attempts.length === 1 && !call.signal.aborted) {
            clearTimeout(timer);
            launch();
          } else if (!settled && failures === attempts.length) {
            settled = true;
            reject(lastError);
          }
        },
      );
    };

    launch();
    // Callbacks that clear it run asynchronously, after this line.
    const timer = setTimeout(() => {
      if (!settled && attempts.length === 1) launch();
    }, delayMs);
  });
}

function lost(): GatewayError {
  return new GatewayError('GW_CLIENT_CLOSED', 'hedged attempt lost the race');
}
