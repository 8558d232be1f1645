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
});
