import { PassThrough } from 'node:stream';
import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { deadline } from '../../src/policies/deadline.js';
import { Cancel, carriesOwnCancel } from '../../src/pipeline/cancel.js';
import { callCarrying, makeCall, makeReply } from '../helpers/calls.js';

/** A handler that never answers until its signal aborts, like a hung upstream behind undici. */
const hung = (call: Call) =>
  new Promise<Reply>((_resolve, reject) => {
    call.signal.addEventListener('abort', () => reject(new Error('aborted')));
  });

describe('deadline policy', () => {
  it('fails a hung call with GW_UPSTREAM_TIMEOUT when the deadline passes', async () => {
    const started = performance.now();
    await expect(deadline({ timeoutMs: 30 })(hung)(makeCall())).rejects.toMatchObject({
      code: 'GW_UPSTREAM_TIMEOUT',
      status: 504,
    });
    expect(performance.now() - started).toBeGreaterThanOrEqual(29);
  });

  it('passes the client going away through to the upstream call', async () => {
    const controller = new AbortController();
    const pending = deadline({ timeoutMs: 10_000 })(hung)(makeCall({ signal: controller.signal }));
    controller.abort(new Error('client gone'));
    await expect(pending).rejects.toThrow('aborted');
  });

  it('keeps the deadline armed while a streamed body is relayed, and disarms it when the body ends', async () => {
    let seen: AbortSignal | undefined;
    const body = new PassThrough();
    const policy = deadline({ timeoutMs: 40 })(async (call) => {
      seen = call.signal;
      return { status: 200, headers: {}, body };
    });
    await policy(makeCall());
    expect(seen!.aborted).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(seen!.aborted).toBe(true);

    const done = new PassThrough();
    let second: AbortSignal | undefined;
    await deadline({ timeoutMs: 40 })(async (call) => {
      second = call.signal;
      return { status: 200, headers: {}, body: done };
    })(makeCall());
    done.end('all');
    done.resume();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(second!.aborted).toBe(false);
  });

  it('clears its timer once a buffered reply is returned', async () => {
    let seen: AbortSignal | undefined;
    await deadline({ timeoutMs: 20 })(async (call) => ((seen = call.signal), makeReply(200)))(makeCall());
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(seen!.aborted).toBe(false);
  });

  it("arms its timer on the request's own cancellation instead of chaining another", async () => {
    const cancel = new Cancel();
    let seen: AbortSignal | undefined;
    const pending = deadline({ timeoutMs: 20 })((inner) => ((seen = inner.signal), hung(inner)))(
      callCarrying(cancel),
    );
    await expect(pending).rejects.toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
    expect(seen).toBe(cancel.signal);
    expect(cancel.signal.reason).toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
  });

  it('chains a controller of its own for a call that carries some other signal (a coalesced call)', async () => {
    const request = new Cancel();
    const shared = new AbortController();
    // A policy's `{ ...call, signal }`: the spread turns the accessor into a value, then replaces it.
    const call = { ...callCarrying(request), signal: shared.signal };
    let seen: AbortSignal | undefined;
    const pending = deadline({ timeoutMs: 20 })((inner) => ((seen = inner.signal), hung(inner)))(call);
    await expect(pending).rejects.toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
    expect(seen).not.toBe(shared.signal);
    expect([request.aborted, shared.signal.aborted]).toEqual([false, false]);
  });

  it('names its timeout in the error', async () => {
    await expect(deadline({ timeoutMs: 20 })(hung)(makeCall())).rejects.toMatchObject({
      code: 'GW_UPSTREAM_TIMEOUT',
      message: 'no complete response within 20 ms',
    });
  });

  it('passes on a caller signal that was already aborted when the call came in', async () => {
    const shared = new AbortController();
    shared.abort(new Error('gone'));
    let seen: AbortSignal | undefined;
    await deadline({ timeoutMs: 1_000 })(async (call) => ((seen = call.signal), makeReply(200)))(
      makeCall({ signal: shared.signal }),
    );
    expect(seen!.aborted).toBe(true);
  });

  it('leaves no listener on the caller signal once the call is done', async () => {
    const shared = new AbortController();
    await deadline({ timeoutMs: 1_000 })(async () => makeReply(200))(makeCall({ signal: shared.signal }));
    expect(getEventListeners(shared.signal, 'abort')).toHaveLength(0);
    const cancel = new Cancel();
    await deadline({ timeoutMs: 1_000 })(async () => makeReply(200))(callCarrying(cancel));
    expect(getEventListeners(cancel.signal, 'abort')).toHaveLength(0);
  });

  it("aborts a call carrying its request's own cancellation through it, without making an AbortSignal", async () => {
    const cancel = new Cancel();
    const made = vi.spyOn(cancel, 'signal', 'get');
    let carried = false;
    const failure = deadline({ timeoutMs: 30 })(
      (call) =>
        new Promise<Reply>((_resolve, reject) => {
          carried = carriesOwnCancel(call);
          cancel.once('abort', () => reject(new Error('aborted')));
        }),
    )(callCarrying(cancel));
    await expect(failure).rejects.toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
    expect(carried).toBe(true);
    expect(cancel.reason).toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
    expect(made).not.toHaveBeenCalled();
  });

  it('returns a reply without a body as is', async () => {
    const reply = await deadline({ timeoutMs: 1_000 })(async () => ({
      status: 204,
      headers: {},
      body: null,
    }))(makeCall());
    expect(reply).toEqual({ status: 204, headers: {}, body: null });
  });
});
