// Coalesce policy (single-flight): identical in-flight idempotent calls share one upstream call.
import { bufferReply } from '../pipeline/buffer.js';
import type { Buffered } from '../pipeline/buffer.js';
import { untilAborted } from '../pipeline/until-aborted.js';
import type { Call, Policy } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';

export interface CoalesceOptions {
  /** Route name, for events. */
  route: string;
  /** The key of a call, when the cache policy has not set `call.key` already. */
  key: (call: Call) => string;
  /** Largest body shared between waiters; a larger reply goes to one waiter and the others call alone. */
  maxBytes: number;
}

interface Flight {
  result: Promise<Buffered>;
  waiters: number;
  controller: AbortController;
  /** A too-large (streamed) reply can be relayed once; set when a waiter took it. */
  streamTaken: boolean;
  /** The shared call has finished; nothing is left to abort. */
  settled: boolean;
}

/**
 * While a call for key K is in flight, further idempotent calls for K wait for its reply instead of
 * calling upstream. The shared call belongs to no single client: it runs on its own signal, so one
 * client hanging up does not fail the others, and it is aborted only when every waiter has gone.
 * Its deadline comes from the policies inside this one.
 */
export function coalesce(options: CoalesceOptions): Policy {
  const inFlight = new Map<string, Flight>();

  return (next) => async (call) => {
    if (!call.idempotent) return next(call);
    const key = call.key ?? options.key(call);
    let flight = inFlight.get(key);
    if (flight === undefined) {
      const controller = new AbortController();
      const started: Flight = {
        waiters: 0,
        controller,
        streamTaken: false,
        settled: false,
        result: Promise.resolve() as never,
      };
      started.result = next({ ...call, signal: controller.signal })
        .then((reply) => bufferReply(reply, options.maxBytes))
        .finally(() => {
          started.settled = true;
          inFlight.delete(key);
        });
      inFlight.set(key, started);
      flight = started;
    } else {
      publish(events.coalesced, { route: options.route });
    }

    const shared = flight;
    shared.waiters++;
    const leave = () => {
      if (--shared.waiters === 0 && !shared.settled) shared.controller.abort(call.signal.reason);
    };
    let left = false;
    const onAbort = () => {
      left = true;
      leave();
    };
    call.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const result = await untilAborted(shared.result, call.signal);
      if (result.complete) return result.reply;
      if (!shared.streamTaken) {
        shared.streamTaken = true;
        return result.reply;
      }
      return await next(call); // the shared body was too large to share: this caller fetches its own
    } finally {
      call.signal.removeEventListener('abort', onAbort);
      if (!left) leave();
    }
  };
}
