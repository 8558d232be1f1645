import { Readable } from 'node:stream';
import type * as TimersPromises from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { parseRetryAfterMs, retry } from '../../src/policies/retry.js';
import { RetryBudget } from '../../src/policies/retry-budget.js';
import { makeCall, makeReply } from '../helpers/calls.js';
import { recordEvents } from '../helpers/events.js';
import { events } from '../../src/telemetry/events.js';

// vitest's fake timers replace the global timers but not `node:timers/promises`, which the policy sleeps
// on: this stand-in keeps its contract (resolve after `ms`, reject when the signal aborts) on the global
// setTimeout, so a test that fakes timers controls the backoff too. Real timers run it unchanged.
vi.mock('node:timers/promises', async (importOriginal) => ({
  ...(await importOriginal<typeof TimersPromises>()),
  setTimeout: (ms: number, value?: unknown, options?: { signal?: AbortSignal }) =>
    new Promise((resolve, reject) => {
      const signal = options?.signal;
      if (signal?.aborted) return reject(signal.reason as unknown);
      const timer = setTimeout(() => resolve(value), ms);
      signal?.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          reject(signal.reason as unknown);
        },
        { once: true },
      );
    }),
}));

afterEach(() => {
  vi.useRealTimers();
});

function scripted(outcomes: Array<number | GatewayError>) {
  const calls: Call[] = [];
  const handler = async (call: Call): Promise<Reply> => {
    calls.push(call);
    const next = outcomes[Math.min(calls.length - 1, outcomes.length - 1)]!;
    if (next instanceof GatewayError) throw next;
    return makeReply(next, next === 503 ? {} : {});
  };
  return { calls, handler };
}

const base = {
  route: 'r',
  attempts: 3,
  baseDelayMs: 1,
  maxDelayMs: 50,
  retryOn: [502, 503, 504],
  random: () => 0,
};

describe('retry policy', () => {
  it('retries a retryable status until an attempt succeeds', async () => {
    const upstream = scripted([503, 503, 200]);
    const reply = await retry({ ...base, budget: new RetryBudget() })(upstream.handler)(makeCall());
    expect(reply.status).toBe(200);
    expect(upstream.calls).toHaveLength(3);
  });

  it('returns the last reply when attempts run out', async () => {
    const upstream = scripted([503]);
    const reply = await retry({ ...base, budget: new RetryBudget() })(upstream.handler)(makeCall());
    expect(reply.status).toBe(503);
    expect(upstream.calls).toHaveLength(3);
  });

  it('retries connection failures and timeouts, but not other errors', async () => {
    const unavailable = scripted([new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'refused'), 200]);
    expect(
      (await retry({ ...base, budget: new RetryBudget() })(unavailable.handler)(makeCall())).status,
    ).toBe(200);
    expect(unavailable.calls).toHaveLength(2);

    const tooLarge = scripted([new GatewayError('GW_UPSTREAM_RESPONSE_TOO_LARGE', 'big'), 200]);
    await expect(
      retry({ ...base, budget: new RetryBudget() })(tooLarge.handler)(makeCall()),
    ).rejects.toMatchObject({
      code: 'GW_UPSTREAM_RESPONSE_TOO_LARGE',
    });
    expect(tooLarge.calls).toHaveLength(1);
  });

  it('never retries a call that is not idempotent', async () => {
    const upstream = scripted([503, 200]);
    const reply = await retry({ ...base, budget: new RetryBudget() })(upstream.handler)(
      makeCall({ method: 'POST', idempotent: false }),
    );
    expect(reply.status).toBe(503);
    expect(upstream.calls).toHaveLength(1);
  });

  it('never retries a call whose body is a stream that cannot be replayed', async () => {
    const upstream = scripted([503, 200]);
    const reply = await retry({ ...base, budget: new RetryBudget() })(upstream.handler)(
      makeCall({ method: 'PUT', body: Readable.from(['x']) }),
    );
    expect(reply.status).toBe(503);
    expect(upstream.calls).toHaveLength(1);
  });

  it('waits at least the upstream Retry-After before retrying', async () => {
    let attempts = 0;
    const times: number[] = [];
    const handler = async (): Promise<Reply> => {
      times.push(performance.now());
      return ++attempts === 1 ? makeReply(503, { 'retry-after': '0' }) : makeReply(200);
    };
    // Retry-After of 0 s plus a 40 ms backoff floor: the wait is the larger of the two.
    const policy = retry({
      ...base,
      baseDelayMs: 40,
      maxDelayMs: 40,
      random: () => 1,
      budget: new RetryBudget(),
    });
    expect((await policy(handler)(makeCall())).status).toBe(200);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(39);
  });

  it('waits a Retry-After of 1 s below maxDelay (2 s) even when the backoff is shorter', async () => {
    vi.useFakeTimers();
    const upstream = scripted([503, 200]);
    const handler = async (call: Call) => {
      const reply = await upstream.handler(call);
      return reply.status === 503 ? makeReply(503, { 'retry-after': '1' }) : reply;
    };
    // random 0: the backoff alone would retry at once.
    const policy = retry({ ...base, maxDelayMs: 2_000, random: () => 0, budget: new RetryBudget() });
    const pending = policy(handler)(makeCall());
    await vi.advanceTimersByTimeAsync(999);
    expect(upstream.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect((await pending).status).toBe(200);
    expect(upstream.calls).toHaveLength(2);
  });

  it('hands a Retry-After longer than maxDelay back to the client instead of waiting', async () => {
    const upstream = scripted([503]);
    const handler = async (call: Call) => {
      await upstream.handler(call);
      return makeReply(503, { 'retry-after': '30' });
    };
    const reply = await retry({ ...base, budget: new RetryBudget() })(handler)(makeCall());
    expect(reply.headers['retry-after']).toBe('30');
    expect(upstream.calls).toHaveLength(1);
  });

  it('stops retrying when the budget has no room', async () => {
    const budget = new RetryBudget({ ratio: 0, minConcurrent: 0 });
    const upstream = scripted([503, 200]);
    const reply = await retry({ ...base, budget })(upstream.handler)(makeCall());
    expect(reply.status).toBe(503);
    expect(upstream.calls).toHaveLength(1);
    expect(budget.activeRequests).toBe(0);
  });

  it('bounds concurrent retries to max(minConcurrent, ratio x active requests)', async () => {
    const budget = new RetryBudget({ ratio: 0.2, minConcurrent: 3 });
    let inFlight = 0;
    let peak = 0;
    let first = 0;
    // Every first attempt fails; the retries park until released so they overlap.
    const gates: Array<() => void> = [];
    const handler = async (call: Call): Promise<Reply> => {
      void call;
      if (first < 50) {
        first++;
        return makeReply(503);
      }
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise<void>((resolve) => gates.push(resolve));
      inFlight--;
      return makeReply(200);
    };
    const policy = retry({ ...base, attempts: 2, budget })(handler);
    let settled = 0;
    const results = Array.from({ length: 50 }, () =>
      policy(makeCall()).finally(() => {
        settled++;
      }),
    );
    // Every call has either been refused a retry (settled with its 503) or holds a parked retry.
    await expect.poll(() => settled + gates.length).toBe(50);
    expect(peak).toBe(10); // 20% of 50 active requests
    expect(budget.activeRetries).toBe(10);
    gates.forEach((open) => open());
    const statuses = (await Promise.all(results)).map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(budget.activeRetries).toBe(0);
    expect(budget.activeRequests).toBe(0);
  });

  it('stops waiting when the deadline fires during backoff', async () => {
    const controller = new AbortController();
    const upstream = scripted([503, 200]);
    const policy = retry({
      ...base,
      baseDelayMs: 5_000,
      maxDelayMs: 5_000,
      random: () => 1,
      budget: new RetryBudget(),
    });
    const pending = policy(upstream.handler)(makeCall({ signal: controller.signal }));
    setTimeout(() => controller.abort(new GatewayError('GW_UPSTREAM_TIMEOUT', 'deadline')), 10);
    await expect(pending).rejects.toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
    expect(upstream.calls).toHaveLength(1);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfterMs('3')).toBe(3000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfterMs('soon')).toBeUndefined();
    expect(parseRetryAfterMs(undefined)).toBeUndefined();
  });

  it('backs off exponentially from baseDelay, capped at maxDelay', async () => {
    vi.useFakeTimers();
    const upstream = scripted([503, 503, 503, 503, 200]);
    // random 1: the full backoff, 10, 20, then 40 capped to 30 ms.
    const policy = retry({
      ...base,
      attempts: 5,
      baseDelayMs: 10,
      maxDelayMs: 30,
      random: () => 1,
      budget: new RetryBudget(),
    });
    const pending = policy(upstream.handler)(makeCall());
    const callsAfter = async (ms: number) => {
      await vi.advanceTimersByTimeAsync(ms);
      return upstream.calls.length;
    };
    expect(await callsAfter(0)).toBe(1);
    expect([await callsAfter(9), await callsAfter(1)]).toEqual([1, 2]);
    expect([await callsAfter(19), await callsAfter(1)]).toEqual([2, 3]);
    expect([await callsAfter(29), await callsAfter(1)]).toEqual([3, 4]);
    expect([await callsAfter(29), await callsAfter(1)]).toEqual([4, 5]);
    expect((await pending).status).toBe(200);
  });

  it('waits a Retry-After exactly as long as maxDelay instead of handing it back', async () => {
    vi.useFakeTimers();
    const upstream = scripted([503, 200]);
    const handler = async (call: Call) => {
      const reply = await upstream.handler(call);
      return reply.status === 503 ? makeReply(503, { 'retry-after': '2' }) : reply;
    };
    const pending = retry({ ...base, maxDelayMs: 2_000, budget: new RetryBudget() })(handler)(makeCall());
    await vi.advanceTimersByTimeAsync(2_000);
    expect((await pending).status).toBe(200);
    expect(upstream.calls).toHaveLength(2);
  });

  it('retries an attempt that timed out', async () => {
    const upstream = scripted([new GatewayError('GW_UPSTREAM_TIMEOUT', 'slow'), 200]);
    const reply = await retry({ ...base, budget: new RetryBudget() })(upstream.handler)(makeCall());
    expect(reply.status).toBe(200);
    expect(upstream.calls).toHaveLength(2);
  });

  it('frees the body of a reply it retries past, so its connection goes back to the pool', async () => {
    const bodies: Readable[] = [];
    let n = 0;
    const handler = async (): Promise<Reply> => {
      if (n++ > 0) return makeReply(200);
      const body = Readable.from(['x']);
      bodies.push(body);
      return { status: 503, headers: {}, body };
    };
    expect((await retry({ ...base, budget: new RetryBudget() })(handler)(makeCall())).status).toBe(200);
    expect(bodies[0]!.readableFlowing).toBe(true);
  });

  it('publishes each retry with its attempt number, delay and reason, and a spent budget', async () => {
    const retries = recordEvents(events.retry);
    const exhausted = recordEvents(events.retryBudgetExhausted);
    const upstream = scripted([503, 502, 200]);
    await retry({ ...base, random: () => 0, budget: new RetryBudget() })(upstream.handler)(
      makeCall({ upstream: 'emu' }),
    );
    expect(retries).toEqual([
      { route: 'r', upstream: 'emu', attempt: 2, delayMs: 0, reason: '503' },
      { route: 'r', upstream: 'emu', attempt: 3, delayMs: 0, reason: '502' },
    ]);
    const none = new RetryBudget({ ratio: 0, minConcurrent: 0 });
    await retry({ ...base, budget: none })(scripted([503]).handler)(makeCall({ upstream: 'emu' }));
    expect(exhausted).toEqual([{ route: 'r', upstream: 'emu' }]);
  });

  it('does not count a call with a single attempt against the budget', async () => {
    const budget = new RetryBudget();
    let seen = -1;
    const handler = async () => ((seen = budget.activeRequests), makeReply(503));
    await retry({ ...base, attempts: 1, budget })(handler)(makeCall());
    expect(seen).toBe(0);
  });

  it('reports a client that left during backoff as GW_CLIENT_CLOSED when no deadline caused it', async () => {
    const controller = new AbortController();
    const policy = retry({
      ...base,
      baseDelayMs: 5_000,
      maxDelayMs: 5_000,
      random: () => 1,
      budget: new RetryBudget(),
    });
    const pending = policy(scripted([503]).handler)(makeCall({ signal: controller.signal }));
    setTimeout(() => controller.abort(new Error('socket closed')), 10);
    await expect(pending).rejects.toMatchObject({
      code: 'GW_CLIENT_CLOSED',
      message: 'client closed the request',
    });
  });

  it('rejects Retry-After values that are not whole seconds or a date', () => {
    expect(parseRetryAfterMs('x5')).toBeUndefined();
    expect(parseRetryAfterMs('5x')).toBeUndefined();
    expect(parseRetryAfterMs(['7', '9'])).toBe(7_000);
  });
});

describe('retry budget', () => {
  it('defaults to 20% of active requests with a floor of 3 retries in flight', () => {
    const budget = new RetryBudget();
    const grant = () => {
      let granted = 0;
      while (budget.tryAcquireRetry()) granted++;
      for (let i = 0; i < granted; i++) budget.releaseRetry();
      return granted;
    };
    expect(grant()).toBe(3);
    budget.activeRequests = 50;
    expect(grant()).toBe(10);
  });
});
