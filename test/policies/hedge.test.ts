import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { hedge } from '../../src/policies/hedge.js';
import { makeCall, makeReply } from '../helpers/calls.js';

describe('hedge policy', () => {
  it('sends a second attempt after the delay and returns whichever answers first', async () => {
    const signals: AbortSignal[] = [];
    const handler = (call: Call) => {
      signals.push(call.signal);
      const delay = signals.length === 1 ? 200 : 5; // the first attempt is the slow one
      const status = signals.length === 1 ? 201 : 202;
      return new Promise<Reply>((resolve) => setTimeout(() => resolve(makeReply(status)), delay));
    };
    const reply = await hedge({ delay: 10, minDelayMs: 0 })(handler)(makeCall());
    expect(reply.status).toBe(202);
    expect(signals).toHaveLength(2);
    expect(signals[0]!.aborted).toBe(true); // the loser is cancelled
  });

  it('does not hedge when the first attempt answers within the delay', async () => {
    let attempts = 0;
    const handler = async () => (attempts++, makeReply(200));
    await hedge({ delay: 50, minDelayMs: 0 })(handler)(makeCall());
    await new Promise((resolve) => setTimeout(resolve, 70));
    expect(attempts).toBe(1);
  });

  it('never hedges a call that is not idempotent', async () => {
    let attempts = 0;
    const handler = () => (
      attempts++,
      new Promise<Reply>((resolve) => setTimeout(() => resolve(makeReply(200)), 30))
    );
    await hedge({ delay: 1, minDelayMs: 0 })(handler)(makeCall({ method: 'POST', idempotent: false }));
    expect(attempts).toBe(1);
  });

  it('fails only when every attempt has failed', async () => {
    let attempts = 0;
    const handler = async (): Promise<Reply> => {
      attempts++;
      throw new Error(`attempt ${attempts} failed`);
    };
    await expect(hedge({ delay: 1_000, minDelayMs: 0 })(handler)(makeCall())).rejects.toThrow(
      'attempt 2 failed',
    );
    expect(attempts).toBe(2);
  });

  it("learns the route's p95 and hedges only calls slower than it", async () => {
    const policy = hedge({ delay: 'p95', minDelayMs: 5 });
    const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    // 64 samples, the slowest first: 4 at 200 ms, then 60 at once. The p95 (61st of 64, sorted) is ~200 ms.
    for (let i = 0; i < 64; i++) {
      await policy(async () => (i < 4 ? await wait(200) : undefined, makeReply(200)))(makeCall());
    }
    // Answered in 20 ms: well under the learned p95, so no second attempt.
    let attempts = 0;
    await policy(async () => (attempts++, await wait(20), makeReply(200)))(makeCall());
    expect(attempts).toBe(1);
    // A first attempt that never answers is hedged once the p95 has passed.
    attempts = 0;
    const reply = await policy((call) => {
      attempts++;
      if (attempts === 1)
        return new Promise<Reply>((_resolve, reject) =>
          call.signal.addEventListener('abort', () => reject(new Error('lost'))),
        );
      return Promise.resolve(makeReply(202));
    })(makeCall());
    expect([reply.status, attempts]).toEqual([202, 2]);
  });

  it('never hedges a call whose body is a stream that cannot be replayed', async () => {
    let attempts = 0;
    const handler = () => (
      attempts++,
      new Promise<Reply>((resolve) => setTimeout(() => resolve(makeReply(200)), 30))
    );
    await hedge({ delay: 1, minDelayMs: 0 })(handler)(
      makeCall({ method: 'PUT', body: Readable.from(['x']) }),
    );
    expect(attempts).toBe(1);
  });

  it('cancels the loser with a clear reason, discards its late reply, and leaves the winner alone', async () => {
    const signals: AbortSignal[] = [];
    const loserBody = Readable.from(['late']);
    let releaseLoser: (() => void) | undefined;
    const handler = (call: Call) => {
      signals.push(call.signal);
      if (signals.length === 1) {
        // The slow first attempt ignores its abort and answers after the winner.
        return new Promise<Reply>((resolve) => {
          releaseLoser = () => resolve({ status: 200, headers: {}, body: loserBody });
        });
      }
      return Promise.resolve(makeReply(202));
    };
    const reply = await hedge({ delay: 5, minDelayMs: 0 })(handler)(makeCall());
    expect(reply.status).toBe(202);
    expect(signals[0]!.reason).toMatchObject({
      code: 'GW_CLIENT_CLOSED',
      message: 'hedged attempt lost the race',
    });
    releaseLoser!();
    await expect.poll(() => loserBody.readableFlowing).toBe(true);
    expect(signals[1]!.aborted).toBe(false);
  });

  it('hedges at once when the first attempt fails, without waiting out the delay', async () => {
    let attempts = 0;
    const handler = async (): Promise<Reply> => {
      if (++attempts === 1) throw new Error('refused');
      return makeReply(200);
    };
    const pending = hedge({ delay: 60_000, minDelayMs: 0 })(handler)(makeCall());
    await expect.poll(() => attempts).toBe(2);
    expect((await pending).status).toBe(200);
  });

  it('waits for the hedged attempt when the first one fails after it started', async () => {
    let fail: (() => void) | undefined;
    let attempts = 0;
    const handler = (): Promise<Reply> => {
      attempts++;
      if (attempts === 1)
        return new Promise<Reply>((_resolve, reject) => (fail = () => reject(new Error('late failure'))));
      return new Promise<Reply>((resolve) => (succeed = () => resolve(makeReply(202))));
    };
    let succeed: (() => void) | undefined;
    const pending = hedge({ delay: 5, minDelayMs: 0 })(handler)(makeCall());
    await expect.poll(() => attempts).toBe(2);
    fail!();
    await new Promise((resolve) => setImmediate(resolve));
    succeed!();
    expect((await pending).status).toBe(202);
  });

  it('starts no hedge after a call that already failed because its caller left', async () => {
    let attempts = 0;
    const controller = new AbortController();
    controller.abort(new Error('gone'));
    const handler = async (): Promise<Reply> => {
      attempts++;
      throw new Error('aborted');
    };
    await expect(
      hedge({ delay: 10, minDelayMs: 0 })(handler)(makeCall({ signal: controller.signal })),
    ).rejects.toThrow('aborted');
    await new Promise((resolve) => setTimeout(resolve, 40)); // past the hedge delay
    expect(attempts).toBe(1);
  });

  it('hedges after the configured delay, whatever its p95 floor', async () => {
    let attempts = 0;
    const handler = (call: Call) => {
      attempts++;
      if (attempts === 1)
        return new Promise<Reply>((_resolve, reject) =>
          call.signal.addEventListener('abort', () => reject(new Error('lost'))),
        );
      return Promise.resolve(makeReply(202));
    };
    const reply = await hedge({ delay: 5, minDelayMs: 60_000 })(handler)(makeCall());
    expect([reply.status, attempts]).toEqual([202, 2]);
  });
});
