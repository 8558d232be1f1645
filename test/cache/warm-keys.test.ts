import { describe, expect, it } from 'vitest';
import { warmKeys } from '../../src/cache/warm-keys.js';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { events } from '../../src/telemetry/events.js';
import type { WarmRefreshEvent } from '../../src/telemetry/events.js';

function recorder() {
  const seen: WarmRefreshEvent[] = [];
  const listener = (m: unknown) => seen.push(m as WarmRefreshEvent);
  events.warmRefresh.subscribe(listener);
  return { seen, stop: () => events.warmRefresh.unsubscribe(listener) };
}

const request = (path: string) => ({
  method: 'GET',
  path,
  upstreamPath: `/v2${path}`,
  headers: { accept: 'application/json' },
  body: undefined,
});

describe('warm keys', () => {
  it('sends every request through the stack on schedule, with no-cache, until closed', async () => {
    const calls: Call[] = [];
    const warm = warmKeys({
      route: 'market',
      upstream: 'up',
      handler: async (call) => {
        calls.push(call);
        return { status: 200, headers: {}, body: Buffer.from('{}') } satisfies Reply;
      },
      requests: [request('/movers'), request('/sectors')],
      everyMs: 20,
      jitter: 0.5,
      timeoutMs: 1_000,
    });
    await warm.start();
    await expect.poll(() => calls.filter((c) => c.path === '/v2/sectors').length).toBeGreaterThanOrEqual(3);
    await warm.close();
    const after = calls.length;
    expect(
      calls.every(
        (c) => c.headers['cache-control'] === 'no-cache' && c.headers.accept === 'application/json',
      ),
    ).toBe(true);
    expect(calls.some((c) => c.path === '/v2/movers')).toBe(true);
    await new Promise((r) => setTimeout(r, 60));
    expect(calls.length).toBe(after);
  });

  it('counts a failed refresh and keeps to the schedule after it', async () => {
    const events = recorder();
    let n = 0;
    const warm = warmKeys({
      route: 'market',
      upstream: 'up',
      handler: async () => {
        n++;
        if (n === 1) throw new Error('connection refused');
        return { status: n === 2 ? 503 : 200, headers: {}, body: null };
      },
      requests: [request('/movers')],
      everyMs: 10,
      jitter: 0,
      timeoutMs: 1_000,
    });
    try {
      await warm.start();
      await expect.poll(() => events.seen.length).toBeGreaterThanOrEqual(3);
      expect(events.seen.slice(0, 3).map((e) => [e.outcome, e.status])).toEqual([
        ['failed', 0],
        ['failed', 503],
        ['refreshed', 200],
      ]);
      expect(events.seen[0]).toMatchObject({ route: 'market', path: '/movers' });
    } finally {
      await warm.close();
      events.stop();
    }
  });

  it('aborts a refresh in flight when closed', async () => {
    let aborted = false;
    let started = false;
    const warm = warmKeys({
      route: 'r',
      upstream: 'up',
      handler: (call) =>
        new Promise((_, reject) => {
          started = true;
          call.signal.addEventListener('abort', () => {
            aborted = true;
            reject(call.signal.reason as Error);
          });
        }),
      requests: [request('/slow')],
      everyMs: 10,
      jitter: 0,
      timeoutMs: 60_000,
    });
    await warm.start();
    await expect.poll(() => started).toBe(true);
    await warm.close();
    expect(aborted).toBe(true);
  });
});
