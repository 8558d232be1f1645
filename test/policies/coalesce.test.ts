import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { coalesce } from '../../src/policies/coalesce.js';
import { events } from '../../src/telemetry/events.js';
import { makeCall, makeReply } from '../helpers/calls.js';
import { recordEvents } from '../helpers/events.js';

/** An upstream whose calls wait until released; `reply` decides each answer. */
function gated(reply: (n: number) => Reply = () => makeReply(200)) {
  const calls: Call[] = [];
  const gates: Array<() => void> = [];
  const handler = async (call: Call): Promise<Reply> => {
    calls.push(call);
    await new Promise<void>((resolve) => gates.push(resolve));
    return reply(calls.length);
  };
  return { handler, calls, open: () => gates.splice(0).forEach((release) => release()) };
}

const byPath = (call: Call) => call.path;

describe('coalesce policy', () => {
  it('shares one upstream call among identical concurrent calls, and says so per waiter', async () => {
    const coalesced = recordEvents(events.coalesced);
    const upstream = gated();
    const policy = coalesce({ route: 'r', key: byPath, maxBytes: 1024 })(upstream.handler);
    const replies = [policy(makeCall()), policy(makeCall()), policy(makeCall())];
    await expect.poll(() => upstream.calls.length).toBe(1);
    upstream.open();
    expect((await Promise.all(replies)).map((r) => r.status)).toEqual([200, 200, 200]);
    expect(upstream.calls).toHaveLength(1);
    expect(coalesced).toEqual([{ route: 'r' }, { route: 'r' }]);
  });

  it('uses the key the cache policy already set on the call', async () => {
    const upstream = gated();
    const policy = coalesce({ route: 'r', key: byPath, maxBytes: 1024 })(upstream.handler);
    const replies = [
      policy(makeCall({ path: '/a', key: 'same' })),
      policy(makeCall({ path: '/b', key: 'same' })),
    ];
    await expect.poll(() => upstream.calls.length).toBe(1);
    upstream.open();
    await Promise.all(replies);
    expect(upstream.calls).toHaveLength(1);
  });

  it('hands a reply that sets a cookie to one caller only; the others fetch their own', async () => {
    const upstream = gated((n) => makeReply(200, n === 1 ? { 'set-cookie': 'session=1' } : {}));
    const policy = coalesce({ route: 'r', key: byPath, maxBytes: 1024 })(upstream.handler);
    const replies = [policy(makeCall()), policy(makeCall())];
    await expect.poll(() => upstream.calls.length).toBe(1);
    upstream.open();
    await expect.poll(() => upstream.calls.length).toBe(2);
    upstream.open();
    const cookies = (await Promise.all(replies)).map((r) => r.headers['set-cookie']);
    expect(cookies.sort()).toEqual(['session=1', undefined]);
  });

  it('keeps the shared call going when one caller leaves, and aborts it when the last one does', async () => {
    const upstream = gated();
    const policy = coalesce({ route: 'r', key: byPath, maxBytes: 1024 })(upstream.handler);
    const first = new AbortController();
    const second = new AbortController();
    const a = policy(makeCall({ signal: first.signal }));
    const b = policy(makeCall({ signal: second.signal }));
    await expect.poll(() => upstream.calls.length).toBe(1);
    first.abort(new Error('a left'));
    await expect(a).rejects.toThrow('a left');
    expect(upstream.calls[0]!.signal.aborted).toBe(false);
    second.abort(new Error('b left'));
    await expect(b).rejects.toThrow('b left');
    expect(upstream.calls[0]!.signal.aborted).toBe(true);
    upstream.open();
  });

  it('leaves no listener on a caller signal once its call is done', async () => {
    const upstream = gated();
    const policy = coalesce({ route: 'r', key: byPath, maxBytes: 1024 })(upstream.handler);
    const signal = new AbortController().signal;
    const reply = policy(makeCall({ signal }));
    await expect.poll(() => upstream.calls.length).toBe(1);
    upstream.open();
    await reply;
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('never shares calls that are not idempotent', async () => {
    const upstream = gated();
    const policy = coalesce({ route: 'r', key: byPath, maxBytes: 1024 })(upstream.handler);
    const replies = [policy(makeCall({ idempotent: false })), policy(makeCall({ idempotent: false }))];
    await expect.poll(() => upstream.calls.length).toBe(2);
    upstream.open();
    await Promise.all(replies);
  });
});
