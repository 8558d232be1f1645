// Coalesce policy (single-flight): identical in-flight idempotent calls share one upstream call.
import { bufferReply } from '../pipeline/buffer.js';
import type { Buffered } from '../pipeline/buffer.js';
import { untilAborted } from '../pipeline/until-aborted.js';
import type { Call, HttpRequest, Policy, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';

export interface CoalesceOptions<P extends object = HttpRequest> {
  /** Route name, for events. */
  route: string;
  /** The key of a call, when the cache policy has not set `call.key` already. */
  key: (call: Call<P>) => string;
  /** Largest body shared between waiters; a larger reply goes to one waiter and the others call alone. */
  maxBytes: number;
  /**
   * Whether a reply may be handed to callers other than the one it was fetched for. Default: unless it
   * sets a cookie. A reply that may not goes to one waiter; the others fetch their own.
   */
  shareable?: (reply: Reply) => boolean;
}

/** A reply that sets a cookie belongs to one client (a session, a CSRF token): never hand it to another. */
const withoutCookie = (reply: Reply) => reply.headers['set-cookie'] === undefined;

interface Flight {
  result: Promise<Buffered>;
  waiters: number;
  controller: AbortController;
  /** A reply that cannot be shared (too large to buffer, or not shareable) goes to one waiter: set once taken. */
  taken: boolean;
  /** The shared call has finished; nothing is left to abort. */
  settled: boolean;
}

/**
 * While a call for key K is in flight, further idempotent calls for K wait for its reply instead of
 * calling upstream. The shared call belongs to no single client: it runs on its own signal, so one
 * client hanging up does not fail the others, and it is aborted only when every waiter has gone.
 * Its deadline comes from the policies inside this one.
 */
export function coalesce<P extends object = HttpRequest>(options: CoalesceOptions<P>): Policy<P> {
  const inFlight = new Map<string, Flight>();
  const shareable = options.shareable ?? withoutCookie;

  return (next) => async (call) => {
    if (!call.idempotent) return next(call);
    const key = call.key ?? options.key(call);
    let flight = inFlight.get(key);
    if (flight === undefined) {
      const controller = new AbortController();
      const started: Flight = {
        waiters: 0,
        controller,
        taken: false,
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
      if (result.complete && shareable(result.reply)) return result.reply;
      if (!shared.taken) {
        shared.taken = true;
        return result.reply;
      }
      return await next(call); // too large or not for sharing: this caller fetches its own
    } finally {
      call.signal.removeEventListener('abort', onAbort);
      if (!left) leave();
    }
  };
}
