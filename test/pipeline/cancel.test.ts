import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { Cancel, carriesOwnCancel, transportSignal } from '../../src/pipeline/cancel.js';
import { callCarrying, makeCall } from '../helpers/calls.js';

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** A loopback server that answers `/ok` at once and never answers anything else. */
async function server(): Promise<string> {
  const http = createServer((req, res) => {
    if (req.url === '/ok') res.end('ok');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  closers.push(async () => {
    http.closeAllConnections();
    await new Promise((resolve) => http.close(resolve));
  });
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

describe('Cancel', () => {
  it('runs each listener once, on the first abort, and never a removed one', () => {
    const cancel = new Cancel();
    const [kept, removed] = [vi.fn(), vi.fn()];
    cancel.once('abort', kept).once('abort', removed).removeListener('abort', removed);
    cancel.abort('first');
    cancel.abort('second');
    expect(kept).toHaveBeenCalledTimes(1);
    expect(removed).not.toHaveBeenCalled();
    expect([cancel.aborted, cancel.reason]).toEqual([true, 'first']);
  });

  it('makes a signal that aborts with it, or is already aborted with its reason', () => {
    const early = new Cancel();
    const signal = early.signal;
    expect(signal.aborted).toBe(false);
    early.abort('gone');
    expect([signal.aborted, signal.reason]).toEqual([true, 'gone']);

    const late = new Cancel();
    late.abort('gone');
    expect([late.signal.aborted, late.signal.reason]).toEqual([true, 'gone']);
    expect(late.signal).toBe(late.signal);
  });

  it('is carried by a call whose signal is still the accessor, and by none given another signal', () => {
    const cancel = new Cancel();
    const own = callCarrying(cancel);
    expect(carriesOwnCancel(own)).toBe(true);
    expect(transportSignal(own)).toBe(cancel);
    const other = new AbortController().signal;
    expect(carriesOwnCancel({ ...own, signal: other })).toBe(false);
    expect(transportSignal({ ...own, signal: other })).toBe(other);
    expect(carriesOwnCancel(makeCall())).toBe(false);
    // A plain copy reads the accessor: the request's signal is made then, and the copy still carries it.
    const copy = { ...own };
    expect(carriesOwnCancel(copy)).toBe(true);
    expect(copy.signal).toBe(cancel.signal);
  });

  it("is carried by a call given the request's signal once it is made (an endpoint passing x.signal on)", () => {
    const cancel = new Cancel();
    const base = makeCall();
    const passed = { ...base, ctx: { ...base.ctx, cancel }, signal: cancel.signal };
    expect(carriesOwnCancel(passed)).toBe(true);
    expect(carriesOwnCancel({ ...passed, signal: new AbortController().signal })).toBe(false);
  });

  it('aborts an undici request it is handed as the signal, with its reason', async () => {
    const pool = new Pool(await server());
    closers.push(() => pool.close());
    const cancel = new Cancel();
    const pending = pool.request({ path: '/hang', method: 'GET', signal: cancel });
    setTimeout(() => cancel.abort(new GatewayError('GW_CLIENT_CLOSED', 'client closed the request')), 20);
    await expect(pending).rejects.toMatchObject({ code: 'GW_CLIENT_CLOSED' });
  });

  it('loses the undici listener once the response body ended', async () => {
    const pool = new Pool(await server());
    closers.push(() => pool.close());
    const cancel = new Cancel();
    const removed = vi.spyOn(cancel, 'removeListener');
    const response = await pool.request({ path: '/ok', method: 'GET', signal: cancel });
    expect(await response.body.text()).toBe('ok');
    await vi.waitFor(() => expect(removed).toHaveBeenCalledWith('abort', expect.any(Function)));
  });
});
