import { PassThrough } from 'node:stream';
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { Reply } from '../../src/pipeline/types.js';
import { bulkhead } from '../../src/policies/bulkhead.js';
import { makeCall, makeReply } from '../helpers/calls.js';
import { recordEvents } from '../helpers/events.js';
import { events } from '../../src/telemetry/events.js';

function gated() {
  const gates: Array<() => void> = [];
  let started = 0;
  const handler = async (): Promise<Reply> => {
    started++;
    await new Promise<void>((resolve) => gates.push(resolve));
    return makeReply(200);
  };
  return { handler, gates, started: () => started };
}

describe('bulkhead policy', () => {
  it('runs maxConcurrent calls, queues the next ones and rejects past the queue', async () => {
    const upstream = gated();
    const policy = bulkhead({ route: 'r', maxConcurrent: 2, queue: 1, queueTimeoutMs: 1_000 })(
      upstream.handler,
    );
    const running = [policy(makeCall()), policy(makeCall())];
    const queued = policy(makeCall());
    await expect(policy(makeCall())).rejects.toMatchObject({
      code: 'GW_BULKHEAD_FULL',
      status: 503,
      retryAfterS: 1,
    });
    expect(upstream.started()).toBe(2);
    upstream.gates.shift()!();
    await running[0];
    await new Promise((resolve) => setImmediate(resolve));
    expect(upstream.started()).toBe(3); // the queued call took the freed slot
    upstream.gates.forEach((open) => open());
    await new Promise((resolve) => setImmediate(resolve));
    upstream.gates.forEach((open) => open());
    await Promise.all([running[1], queued]);
  });

  it('rejects a queued call whose wait exceeds queueTimeout', async () => {
    const upstream = gated();
    const policy = bulkhead({ route: 'r', maxConcurrent: 1, queue: 5, queueTimeoutMs: 20 })(upstream.handler);
    const first = policy(makeCall());
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_BULKHEAD_FULL' });
    upstream.gates[0]!();
    await first;
  });

  it('drops a waiter from the queue as soon as its caller goes away', async () => {
    const upstream = gated();
    const policy = bulkhead({ route: 'r', maxConcurrent: 1, queue: 1, queueTimeoutMs: 5_000 })(
      upstream.handler,
    );
    const first = policy(makeCall());
    const controller = new AbortController();
    const waiter = policy(makeCall({ signal: controller.signal }));
    controller.abort(new Error('client gone'));
    await expect(waiter).rejects.toThrow('client gone');
    // The queue slot is free again: another caller may wait.
    const next = policy(makeCall());
    upstream.gates[0]!();
    await first;
    await new Promise((resolve) => setImmediate(resolve));
    expect(upstream.started()).toBe(2);
    upstream.gates[1]!();
    await next;
  });

  it('holds the slot of a streamed reply until its body ends (a stream counts for its whole life)', async () => {
    const body = new PassThrough();
    let calls = 0;
    const policy = bulkhead({ route: 'r', maxConcurrent: 1, queue: 0, queueTimeoutMs: 1_000 })(async () => {
      calls++;
      return calls === 1 ? { status: 200, headers: {}, body } : makeReply(200);
    });
    const streaming = await policy(makeCall());
    expect(streaming.body).toBe(body);
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_BULKHEAD_FULL' });
    body.end('done');
    body.resume();
    await expect
      .poll(
        async () =>
          await policy(makeCall()).then(
            (r) => r.status,
            () => 0,
          ),
      )
      .toBe(200);
  });

  it('gives a freed slot back when nobody waits, so the next calls run at once', async () => {
    const policy = bulkhead({ route: 'r', maxConcurrent: 1, queue: 0, queueTimeoutMs: 1_000 })(async () =>
      makeReply(200),
    );
    for (let i = 0; i < 3; i++) expect((await policy(makeCall())).status).toBe(200);
  });

  it('says why it rejected, in the error and in its events', async () => {
    const rejects = recordEvents(events.bulkheadReject);
    const upstream = gated();
    const policy = bulkhead({ route: 'r', maxConcurrent: 1, queue: 1, queueTimeoutMs: 20 })(upstream.handler);
    const running = policy(makeCall());
    await expect(policy(makeCall())).rejects.toMatchObject({
      message: 'route is at capacity: no free slot within 20 ms',
    });
    const waiting = policy(makeCall());
    await expect(policy(makeCall())).rejects.toMatchObject({
      message: 'route is at capacity: 1 calls in flight and 1 waiting',
    });
    expect(rejects).toEqual([
      { route: 'r', reason: 'queue-timeout' },
      { route: 'r', reason: 'queue-full' },
    ]);
    upstream.gates[0]!();
    await running;
    await expect.poll(() => upstream.gates.length).toBe(2);
    upstream.gates[1]!();
    await waiting;
  });

  it('disarms a waiter that got its slot: no late timeout, no listener left on its signal', async () => {
    const rejects = recordEvents(events.bulkheadReject);
    const upstream = gated();
    const policy = bulkhead({ route: 'r', maxConcurrent: 1, queue: 1, queueTimeoutMs: 30 })(upstream.handler);
    const running = policy(makeCall());
    const signal = new AbortController().signal;
    const queued = policy(makeCall({ signal }));
    upstream.gates[0]!();
    await running;
    await expect.poll(() => upstream.gates.length).toBe(2);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 60)); // past its queue timeout
    upstream.gates[1]!();
    expect((await queued).status).toBe(200);
    expect(rejects).toEqual([]);
  });
});
