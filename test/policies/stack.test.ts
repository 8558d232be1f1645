import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import type { Handler, Policy } from '../../src/pipeline/types.js';
import { buildStack } from '../../src/policies/stack.js';
import { makeCall, makeReply } from '../helpers/calls.js';

const retry = { attempts: 5, baseDelay: 0, maxDelay: 0, on: [503], budget: { ratio: 1, minConcurrent: 10 } };

describe('the one stack builder', () => {
  it('puts retry outside the breaker: once the breaker opens, the remaining retries stop at once', async () => {
    let calls = 0;
    const transport: Handler = async () => (calls++, makeReply(503));
    const stack = buildStack(
      { name: 's', retry, breaker: { mode: 'consecutive', threshold: 2, halfOpenAfter: 60_000 } },
      transport,
    );
    await expect(stack.handler(makeCall())).rejects.toMatchObject({ code: 'GW_BREAKER_OPEN' });
    expect(calls).toBe(2);
    expect(stack.breaker?.state).toBe('open');
  });

  it('counts time spent queueing in the bulkhead against the deadline', async () => {
    const hung: Handler = (call) =>
      new Promise((_resolve, reject) =>
        call.signal.addEventListener('abort', () => reject(call.signal.reason as Error)),
      );
    const stack = buildStack(
      { name: 's', timeoutMs: 50, bulkhead: { maxConcurrent: 1, queue: 10, queueTimeout: 60_000 } },
      hung,
    );
    const first = stack.handler(makeCall()).catch((error: unknown) => error);
    const queued = stack.handler(makeCall());
    await expect(queued).rejects.toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
    expect(await first).toMatchObject({ code: 'GW_UPSTREAM_TIMEOUT' });
  });

  it('runs the kind-specific front policies first, in their order, before everything else', async () => {
    const seen: string[] = [];
    const tag =
      (name: string): Policy =>
      (next) =>
      async (call) => {
        seen.push(`${name}:${call.signal === outer.signal ? 'caller' : 'own'}`);
        return next(call);
      };
    const outer = new AbortController();
    const stack = buildStack(
      { name: 's', front: [tag('cache'), tag('batch')], timeoutMs: 1_000 },
      async (call) => {
        seen.push(`transport:${call.signal === outer.signal ? 'caller' : 'own'}`);
        return makeReply(200);
      },
    );
    await stack.handler(makeCall({ signal: outer.signal }));
    // The deadline sits after the front: the front sees the caller's signal, the transport the deadline's.
    expect(seen).toEqual(['cache:caller', 'batch:caller', 'transport:own']);
  });

  it('adds no retry for one attempt and no breaker when it is off', async () => {
    let calls = 0;
    const stack = buildStack({ name: 's', retry: { ...retry, attempts: 1 }, breaker: false }, async () => {
      calls++;
      throw new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'down');
    });
    for (let i = 0; i < 10; i++)
      await expect(stack.handler(makeCall())).rejects.toMatchObject({ code: 'GW_UPSTREAM_UNAVAILABLE' });
    expect(calls).toBe(10);
    expect(stack.breaker).toBeUndefined();
  });

  it("never opens the breaker for the client's own faults", async () => {
    const stack = buildStack(
      { name: 's', breaker: { mode: 'consecutive', threshold: 1, halfOpenAfter: 60_000 } },
      async () => {
        throw new GatewayError('GW_BAD_REQUEST', 'request body does not match its content-length');
      },
    );
    for (let i = 0; i < 3; i++)
      await expect(stack.handler(makeCall())).rejects.toMatchObject({ code: 'GW_BAD_REQUEST' });
    expect(stack.breaker?.state).toBe('closed');
  });
});
