import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import type { Reply } from '../../src/pipeline/types.js';
import { circuitBreaker } from '../../src/policies/circuit-breaker.js';
import { makeCall, makeReply } from '../helpers/calls.js';
import { recordEvents } from '../helpers/events.js';
import { events } from '../../src/telemetry/events.js';

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('circuit breaker policy', () => {
  it('opens after the threshold of consecutive failures and then rejects without calling upstream', async () => {
    const time = clock();
    let calls = 0;
    const handler = async () => (calls++, makeReply(503));
    const policy = circuitBreaker({
      name: 'b',
      mode: 'consecutive',
      threshold: 3,
      halfOpenAfterMs: 5_000,
      now: time.now,
    })(handler);
    for (let i = 0; i < 3; i++) expect((await policy(makeCall())).status).toBe(503);
    const rejection = await policy(makeCall()).catch((e: unknown) => e);
    expect(rejection).toBeInstanceOf(GatewayError);
    expect(rejection).toMatchObject({ code: 'GW_BREAKER_OPEN', status: 503, retryAfterS: 5 });
    expect(calls).toBe(3);
  });

  it('resets the consecutive count on success', async () => {
    const statuses = [500, 500, 200, 500, 500, 200];
    let i = 0;
    const handler = async () => makeReply(statuses[i++]!);
    const policy = circuitBreaker({ name: 'b', mode: 'consecutive', threshold: 3, halfOpenAfterMs: 1_000 })(
      handler,
    );
    for (const expected of statuses) expect((await policy(makeCall())).status).toBe(expected);
  });

  it('lets exactly one probe through when half-open and closes when it succeeds', async () => {
    const time = clock();
    let healthy = false;
    let calls = 0;
    let release: () => void = () => {};
    const handler = async (): Promise<Reply> => {
      calls++;
      if (!healthy) throw new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'down');
      await new Promise<void>((resolve) => (release = resolve));
      return makeReply(200);
    };
    const policy = circuitBreaker({
      name: 'b',
      mode: 'consecutive',
      threshold: 2,
      halfOpenAfterMs: 1_000,
      now: time.now,
    })(handler);
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_UPSTREAM_UNAVAILABLE' });
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_UPSTREAM_UNAVAILABLE' });
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_BREAKER_OPEN' });

    time.advance(1_000);
    healthy = true;
    const probe = policy(makeCall());
    // While the probe is in flight, others fail fast instead of piling on.
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_BREAKER_OPEN' });
    release();
    expect((await probe).status).toBe(200);
    expect(calls).toBe(3);
    const after = policy(makeCall());
    release();
    expect((await after).status).toBe(200);
  });

  it('reopens when the probe fails', async () => {
    const time = clock();
    let calls = 0;
    const handler = async () => (calls++, makeReply(502));
    const policy = circuitBreaker({
      name: 'b',
      mode: 'consecutive',
      threshold: 1,
      halfOpenAfterMs: 1_000,
      now: time.now,
    })(handler);
    await policy(makeCall());
    time.advance(1_000);
    expect((await policy(makeCall())).status).toBe(502); // the probe
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_BREAKER_OPEN' });
    expect(calls).toBe(2);
  });

  it('does not count a client hanging up as an upstream failure', async () => {
    const handler = async (): Promise<Reply> => {
      throw new GatewayError('GW_CLIENT_CLOSED', 'gone');
    };
    const policy = circuitBreaker({ name: 'b', mode: 'consecutive', threshold: 1, halfOpenAfterMs: 1_000 })(
      handler,
    );
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_CLIENT_CLOSED' });
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_CLIENT_CLOSED' });
  });

  it('does not count a refusal made without reaching the upstream (an MCP server known to be down)', async () => {
    const handler = async (): Promise<Reply> => {
      throw new GatewayError('GW_MCP_SERVER_DOWN', 'MCP server "x" is down: spawn x ENOENT');
    };
    const policy = circuitBreaker({ name: 'b', mode: 'consecutive', threshold: 1, halfOpenAfterMs: 1_000 })(
      handler,
    );
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_MCP_SERVER_DOWN' });
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_MCP_SERVER_DOWN' });
  });

  it('opens in ratio mode once the failure ratio passes the threshold with enough calls', async () => {
    let n = 0;
    const handler = async () => makeReply(n++ % 2 === 0 ? 500 : 200); // 50% failures
    const policy = circuitBreaker({
      name: 'b',
      mode: 'ratio',
      threshold: 0.4,
      windowMs: 10_000,
      minRequests: 10,
      halfOpenAfterMs: 1_000,
    })(handler);
    const outcomes: string[] = [];
    for (let i = 0; i < 30; i++) {
      outcomes.push(
        await policy(makeCall()).then(
          (r) => String(r.status),
          (e: GatewayError) => e.code,
        ),
      );
    }
    expect(outcomes.slice(0, 9)).not.toContain('GW_BREAKER_OPEN');
    expect(outcomes.at(-1)).toBe('GW_BREAKER_OPEN');
  });

  it('publishes every state change and names itself and the wait left in its rejection', async () => {
    const time = clock();
    const states = recordEvents(events.breakerState);
    let status = 500;
    const policy = circuitBreaker({
      name: 'b',
      mode: 'consecutive',
      threshold: 1,
      halfOpenAfterMs: 5_000,
      now: time.now,
    })(async () => makeReply(status));
    await policy(makeCall());
    time.advance(2_000);
    const rejection = await policy(makeCall()).catch((e: unknown) => e);
    expect(rejection).toMatchObject({ message: 'circuit breaker "b" is open', retryAfterS: 3 });
    time.advance(3_000);
    status = 200;
    await policy(makeCall());
    expect(states).toEqual([
      { name: 'b', state: 'open' },
      { name: 'b', state: 'half-open' },
      { name: 'b', state: 'closed' },
    ]);
  });

  it('counts its open time from when it opened, not from when the probe started', async () => {
    const time = clock();
    let release: (() => void) | undefined;
    let first = true;
    const policy = circuitBreaker({
      name: 'b',
      mode: 'consecutive',
      threshold: 1,
      halfOpenAfterMs: 5_000,
      now: time.now,
    })(async () => {
      if (first) return ((first = false), makeReply(500));
      await new Promise<void>((resolve) => (release = resolve));
      return makeReply(200);
    });
    await policy(makeCall());
    time.advance(5_000);
    const probe = policy(makeCall());
    // While the probe runs, others are told to come back in a second, not a whole halfOpenAfter.
    await expect(policy(makeCall())).rejects.toMatchObject({ code: 'GW_BREAKER_OPEN', retryAfterS: 1 });
    release!();
    expect((await probe).status).toBe(200);
  });

  it('does not reopen (and restart its wait) for calls that were already in flight when it opened', async () => {
    const time = clock();
    const gates: Array<() => void> = [];
    const policy = circuitBreaker({
      name: 'b',
      mode: 'consecutive',
      threshold: 2,
      halfOpenAfterMs: 5_000,
      now: time.now,
    })(async () => {
      await new Promise<void>((resolve) => gates.push(resolve));
      return makeReply(500);
    });
    const inFlight = [policy(makeCall()), policy(makeCall()), policy(makeCall())];
    await expect.poll(() => gates.length).toBe(3);
    gates[0]!();
    gates[1]!();
    await Promise.all(inFlight.slice(0, 2)); // two failures: open
    time.advance(3_000);
    gates[2]!();
    await inFlight[2]; // a third failure, from before it opened
    time.advance(2_000);
    // 5 s after opening, the next call is the half-open probe.
    const probe = policy(makeCall());
    await expect.poll(() => gates.length).toBe(4);
    gates[3]!();
    expect((await probe).status).toBe(500);
  });
});
