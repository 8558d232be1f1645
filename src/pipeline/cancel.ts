// A request's cancellation without an AbortController per request: a real AbortSignal only when one is asked for.
type Listener = () => void;

/** What these functions read of a call (its envelope, `CallEnvelope` in types.ts, which refers to this file). */
interface Carrier {
  readonly ctx: { readonly cancel?: Cancel };
  readonly signal: AbortSignal;
}

/**
 * One request's cancellation: its state, its listeners, and a real `AbortSignal` made on first use.
 *
 * Node's `AbortController` builds its signal as an `EventTarget` with a prototype swap, and undici adds and
 * removes an `EventTarget` listener per request: 13 us per proxied request on the profile, the largest
 * single cost Slipstream added over the bare Node proxy (bench/RESULTS.md, 2026-12-01 evening). Most
 * requests are never cancelled, and on the proxy path nothing but the upstream transport listens. So a
 * request keeps its cancellation here; `signal` makes the AbortSignal for the code that needs one (already
 * aborted, with the reason, when the request was). The class is also an EventEmitter-shaped signal, which
 * undici's `request({ signal })` accepts (`aborted`, `reason`, `once` / `removeListener` of `'abort'`).
 */
export class Cancel {
  private controller: AbortController | undefined = undefined;
  private listeners: Listener[] | undefined = undefined;
  private abortedWith: { reason: unknown } | undefined = undefined;

  get aborted(): boolean {
    return this.abortedWith !== undefined;
  }

  get reason(): unknown {
    return this.abortedWith?.reason;
  }

  /** The request's AbortSignal, made now if nobody asked for it before. */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortedWith !== undefined) this.controller.abort(this.abortedWith.reason);
    }
    return this.controller.signal;
  }

  /** Whether `signal` is this request's signal (made already: this never makes it). */
  isSignal(signal: unknown): boolean {
    return this.controller !== undefined && this.controller.signal === signal;
  }

  /** Aborts the request once: its signal (if made) and every listener, with `reason`. */
  abort(reason: unknown): void {
    if (this.abortedWith !== undefined) return;
    this.abortedWith = { reason };
    this.controller?.abort(reason);
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener();
  }

  /** The EventEmitter face (`event` is always `'abort'`): runs `listener` once, on abort. */
  once(_event: 'abort', listener: Listener): this {
    (this.listeners ??= []).push(listener);
    return this;
  }

  on(event: 'abort', listener: Listener): this {
    return this.once(event, listener);
  }

  addListener(event: 'abort', listener: Listener): this {
    return this.once(event, listener);
  }

  removeListener(_event: 'abort', listener: Listener): this {
    const at = this.listeners?.indexOf(listener) ?? -1;
    if (at !== -1) this.listeners!.splice(at, 1);
    return this;
  }

  off(event: 'abort', listener: Listener): this {
    return this.removeListener(event, listener);
  }
}

/**
 * Whether `call` carries its request's own cancellation: its `signal` is still the accessor the entrypoint
 * defined (the proxy's: the signal is not made yet), or is the request's signal itself (an endpoint that
 * passed `x.signal` on). A policy that gives a call another signal builds a new object (`{ ...call, signal }`)
 * whose value is that other signal, so such calls never pass this test and keep the signal they were given.
 */
export function carriesOwnCancel(call: Carrier): boolean {
  const cancel = call.ctx.cancel;
  if (cancel === undefined) return false;
  const property = Object.getOwnPropertyDescriptor(call, 'signal');
  return property?.get !== undefined || cancel.isSignal(property?.value);
}

/**
 * What to hand a transport that accepts an EventEmitter-shaped signal (undici): the request's `Cancel` when
 * the call carries it, else the call's own signal.
 */
export function transportSignal(call: Carrier): AbortSignal | Cancel {
  return carriesOwnCancel(call) ? call.ctx.cancel! : call.signal;
}
