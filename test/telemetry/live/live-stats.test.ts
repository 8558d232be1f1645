import { afterEach, describe, expect, it } from 'vitest';
import { events } from '../../../src/telemetry/events.js';
import type { RequestEndEvent } from '../../../src/telemetry/events.js';
import { liveStats } from '../../../src/telemetry/live/live-stats.js';
import type { LiveSnapshot, LiveStats } from '../../../src/telemetry/live/live-stats.js';

const EMPTY: LiveSnapshot = { breakers: [], mcp: undefined, llm: undefined, groups: [] };

function requestEnd(route: string, status: number, durationMs: number, errorCode?: string): void {
  const event: RequestEndEvent = {
    ctx: { id: 'x', route, startedAt: 0, upstreamMs: 0, attempts: 1 },
    method: 'GET',
    path: '/',
    status,
    errorCode: errorCode as RequestEndEvent['errorCode'],
    durationMs,
  };
  events.requestEnd.publish(event);
}

describe('liveStats', () => {
  let live: LiveStats | undefined;
  afterEach(() => live?.stop());

  it('subscribes to no channel until started, and to none again once stopped', () => {
    let clock = 1_000;
    live = liveStats({ snapshot: () => EMPTY, now: () => clock });
    const channels = [events.requestEnd, events.cacheLookup, events.llmChunk, events.fanoutMember];
    expect(channels.map((c) => c.hasSubscribers)).toEqual([false, false, false, false]);
    requestEnd('api', 200, 1);
    live.start();
    expect(channels.map((c) => c.hasSubscribers)).toEqual([true, true, true, true]);
    expect(live.frame().routes).toEqual({});
    expect(live.frame().since).toBe(1_000);
    requestEnd('api', 200, 1);
    live.stop();
    expect(channels.map((c) => c.hasSubscribers)).toEqual([false, false, false, false]);
    requestEnd('api', 200, 1);
    clock = 5_000;
    live.start();
    // Counting starts again from zero, from the new start.
    expect(live.frame().since).toBe(5_000);
    expect(live.frame().routes).toEqual({});
  });

  it('counts requests and errors per route, GW codes as such and plain upstream statuses as HTTP_<status>', () => {
    live = liveStats({ snapshot: () => EMPTY });
    live.start();
    for (let i = 0; i < 8; i++) requestEnd('api', 200, 10);
    requestEnd('api', 503, 20);
    requestEnd('api', 502, 30, 'GW_UPSTREAM_UNAVAILABLE');
    requestEnd('other', 404, 1, 'GW_ROUTE_NOT_FOUND');
    const frame = live.frame();
    expect(frame.routes.api!.requests).toBe(10);
    expect(frame.routes.api!.errors).toEqual({ HTTP_503: 1, GW_UPSTREAM_UNAVAILABLE: 1 });
    expect(frame.routes.other!.errors).toEqual({ GW_ROUTE_NOT_FOUND: 1 });
    expect(frame.routes.api!.latency.total).toMatchObject({ n: 10 });
    expect(frame.routes.api!.latency.total!.p50).toBeGreaterThanOrEqual(10 * 0.9995);
    expect(frame.routes.api!.latency.total!.p50).toBeLessThanOrEqual(10 * 1.05);
    expect(frame.routes.api!.latency.total!.p99).toBeGreaterThanOrEqual(30);
  });

  it('starts each window empty while the totals since the start keep counting', () => {
    live = liveStats({ snapshot: () => EMPTY });
    live.start();
    requestEnd('api', 200, 100);
    expect(live.frame().routes.api!.latency.window).toMatchObject({ n: 1 });
    live.nextWindow();
    const quiet = live.frame();
    expect(quiet.routes.api!.latency.window).toBeUndefined();
    expect(quiet.routes.api!.latency.total).toMatchObject({ n: 1 });
    requestEnd('api', 200, 1);
    expect(live.frame().routes.api!.latency.window).toMatchObject({ n: 1 });
    expect(live.frame().routes.api!.latency.window!.p99).toBeLessThan(2);
  });

  it('counts cache results, coalesced waiters, batches, bulkhead and rate-limit rejections under their route', () => {
    live = liveStats({ snapshot: () => EMPTY });
    live.start();
    events.cacheLookup.publish({ route: 'q', result: 'hit' });
    events.cacheLookup.publish({ route: 'q', result: 'hit' });
    events.cacheLookup.publish({ route: 'q', result: 'stale' });
    events.cacheLookup.publish({ route: 'q', result: 'miss' });
    events.coalesced.publish({ route: 'q' });
    events.batch.publish({ route: 'q', callers: 7, items: 5 });
    events.batch.publish({ route: 'q', callers: 3, items: 3 });
    events.bulkheadReject.publish({ route: 'q', reason: 'queue-full' });
    events.bulkheadReject.publish({ route: 'q', reason: 'queue-timeout' });
    events.rateLimitReject.publish({ route: 'q', scope: 'principal', principal: 'a'.repeat(64) });
    events.rateLimitReject.publish({ route: 'q', scope: 'principal', principal: 'a'.repeat(64) });
    events.rateLimitReject.publish({ route: 'q', scope: 'principal', principal: 'b'.repeat(64) });
    events.rateLimitReject.publish({ route: 'q', scope: 'ip' });
    const { routes, rateLimited } = live.frame();
    expect(routes.q).toMatchObject({
      requests: 0,
      cache: { hit: 2, stale: 1, miss: 1, bypass: 0 },
      coalesced: 1,
      batched: { calls: 10, bulk: 2 },
      bulkhead: { queueFull: 1, queueTimeout: 1 },
      rateLimit: { principal: 3, ip: 1 },
    });
    // Hashes, shortened; most rejected first.
    expect(rateLimited).toEqual([
      { principal: 'a'.repeat(12), rejections: 2 },
      { principal: 'b'.repeat(12), rejections: 1 },
    ]);
  });

  it('counts LLM streams and first bytes per provider, and fan-out outcomes per member', () => {
    live = liveStats({ snapshot: () => EMPTY });
    live.start();
    events.llmFirstByte.publish({ provider: 'emu', durationMs: 40 });
    for (let i = 0; i < 5; i++) events.llmChunk.publish({ provider: 'emu', gapMs: 1 });
    events.llmStreamEnd.publish({
      provider: 'emu',
      outcome: 'complete',
      chunks: 5,
      bytes: 9,
      durationMs: 50,
    });
    events.llmStreamEnd.publish({ provider: 'emu', outcome: 'aborted', chunks: 0, bytes: 0, durationMs: 5 });
    events.fanoutMember.publish({ group: 'team', member: 'a', outcome: 'answered', durationMs: 12 });
    events.fanoutMember.publish({ group: 'team', member: 'b', outcome: 'timedOut', durationMs: 300 });
    events.fanoutMember.publish({ group: 'team', member: 'b', outcome: 'skipped', durationMs: 0 });
    events.fanoutEnd.publish({ group: 'team', durationMs: 300, answered: 1, members: 2 });
    const frame = live.frame();
    expect(frame.providers.emu).toMatchObject({
      streams: { complete: 1, aborted: 1, error: 0 },
      chunks: 5,
      firstByte: { total: { n: 1 } },
    });
    expect(frame.groups.team!.fanouts).toBe(1);
    expect(frame.groups.team!.members.a).toMatchObject({ answered: 1, latency: { total: { n: 1 } } });
    // A skipped member waited for nothing: its 0 ms is no latency.
    expect(frame.groups.team!.members.b).toMatchObject({
      timedOut: 1,
      skipped: 1,
      latency: { total: { n: 1 } },
    });
  });

  it('keeps at most 1,000 labels in all maps together and counts the rest under (other)', () => {
    live = liveStats({ snapshot: () => EMPTY });
    live.start();
    for (let i = 0; i < 990; i++) requestEnd(`route-${i}`, 200, 1);
    for (let i = 0; i < 30; i++) {
      events.fanoutMember.publish({ group: 'team', member: `m-${i}`, outcome: 'answered', durationMs: 1 });
    }
    const frame = live.frame();
    expect(Object.keys(frame.routes)).toHaveLength(990);
    // The group and nine members fit; the other 21 members share one (other) entry (the 1,001st label).
    expect(Object.keys(frame.groups.team!.members)).toHaveLength(10);
    expect(frame.groups.team!.members['(other)']!.answered).toBe(21);
    expect(frame.overflow).toBe(21);
    requestEnd('late', 200, 1);
    expect(frame.routes.late).toBeUndefined();
    expect(live.frame().routes['(other)']!.requests).toBe(1);
  });

  it('adds the components’ snapshot and its worker id to every frame', () => {
    let depth = 0;
    live = liveStats({
      worker: 3,
      snapshot: () => ({
        ...EMPTY,
        llm: {
          providers: [],
          transcripts: { queueDepth: depth, rowsWritten: 0, storeErrors: 0, dropped: 0 },
        },
      }),
    });
    live.start();
    expect(live.frame().worker).toBe(3);
    depth = 7;
    expect(live.frame().state.llm!.transcripts!.queueDepth).toBe(7);
  });
});
