// Coalesce policy (single-flight): identical in-flight idempotent calls share one upstream call.
import { bufferReply } from '../pipeline/buffer.js';
import type { Buffered } from '../pipeline/buffer.js';
import { discard } from '../pipeline/compose.js';
import { untilAborted } from '../pipeline/until-aborted.js';
import type { Call, HttpRequest, Policy, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';

export interface CoalesceOptions<P extends object = HttpRequest> {
  /** Route name, for events. */
  route: string;
  /** The key of a call, when the cache policy has not set `call.key` already. */
  key: (call: Call<P>) => string;
  /** Largest body shared between waiters; a larger reply goes to the caller it was fetched for alone. */
  maxBytes: number;
  /**
   * Whether a reply fetched for `leader` (the call that started the flight) may also go to `waiter`.
   * Default: unless it sets a cookie. A waiter it may not go to fetches its own.
   */
  shareable?: (reply: Reply, waiter: Call<P>, leader: Call<P>) => boolean;
  /**
   * For a waiter a reply may not go to: the key of a narrower flight it may share instead (the cache's
   * Vary variant of the waiter), or undefined to fetch alone. Asked once per call.
   */
  regroup?: (reply: Reply, waiter: Call<P>) => string | undefined;
}

/** A reply that sets a cookie belongs to one client (a session, a CSRF token): never hand it to another. */
const withoutCookie = (reply: Reply) => reply.headers['set-cookie'] === undefined;

interface Flight<P extends object> {
  result: Promise<Buffered>;
  /** The call the flight was started for: its reply is always its own. */
  leader: Call<P>;
  waiters: number;
  controller: AbortController;
  /** The shared call has finished; nothing is left to abort. */
  settled: boolean;
}

/**
 * While a call for key K is in flight, further idempotent calls for K wait for its reply instead of
 * calling upstream. The shared call belongs to no single client: it runs on its own signal, so one
 * client hanging up does not fail the others, and it is aborted only when every waiter has gone.
 * Its deadline comes from the policies inside this one. A reply the others may not have (too large to
 * buffer, or not `shareable`) goes to the leader alone, and is discarded if the leader has left.
 */
export function coalesce<P extends object = HttpRequest>(options: CoalesceOptions<P>): Policy<P> {
  const inFlight = new Map<string, Flight<P>>();
  const shareable = options.shareable ?? withoutCookie;

  return (next) => {
    const handle = async (call: Call<P>, regrouped: boolean): Promise<Reply> => {
      if (!call.idempotent) return next(call);
      const key = call.key ?? options.key(call);
      let flight = inFlight.get(key);
      if (flight === undefined) {
        const controller = new AbortController();
        const started: Flight<P> = {
          leader: call,
          waiters: 0,
          controller,
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
      const leading = shared.leader === call;
      shared.waiters++;
      const leave = () => {
        if (--shared.waiters === 0 && !shared.settled) shared.controller.abort(call.signal.reason);
      };
      let left = false;
      const onAbort = () => {
        left = true;
        // Nobody else may read a streaming reply: free its connection once it comes.
        if (leading) {
          shared.result.then(
            (r) => {
              if (!r.complete) discard(r.reply);
            },
            () => {},
          );
        }
        leave();
      };
      call.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const result = await untilAborted(shared.result, call.signal);
        if (leading || (result.complete && shareable(result.reply, call, shared.leader))) return result.reply;
        const narrower = regrouped ? undefined : options.regroup?.(result.reply, call);
        if (narrower !== undefined && narrower !== key) return await handle({ ...call, key: narrower }, true);
        return await next(call); // too large or not for sharing: this caller fetches its own
      } finally {
        call.signal.removeEventListener('abort', onAbort);
        if (!left) leave();
      }
    };
    return (call) => handle(call, false);
  };
}
