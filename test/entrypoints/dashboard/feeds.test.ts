import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GatewayError } from '../../../src/errors.js';
import { feedHub } from '../../../src/entrypoints/dashboard/feeds.js';
import type { FeedSink } from '../../../src/entrypoints/dashboard/feeds.js';
import { events } from '../../../src/telemetry/events.js';
import { liveStats } from '../../../src/telemetry/live/live-stats.js';
import type { LiveFrame, LiveStats } from '../../../src/telemetry/live/live-stats.js';

/** A response whose reader keeps up while `accepting`, and stops taking bytes (write → false) otherwise. */
class Sink extends EventEmitter implements FeedSink {
  readonly chunks: string[] = [];
  accepting = true;
  writableEnded = false;
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return this.accepting;
  }
  end(): void {
    this.writableEnded = true;
    this.emit('close');
  }
  /** The frame messages written, parsed. */
  frames(): Array<{ seq: number; dropped: number; frame: LiveFrame }> {
    return this.chunks
      .filter((c) => c.startsWith('id: '))
      .map((c) => JSON.parse(c.slice(c.indexOf('data: ') + 6)) as never);
  }
}

function requestEnd(route: string): void {
  events.requestEnd.publish({
    ctx: { id: 'x', route, startedAt: 0, upstreamMs: 0, attempts: 1 },
    method: 'GET',
    path: '/',
    status: 200,
    errorCode: undefined,
    durationMs: 1,
  });
}

describe('feedHub', () => {
  let live: LiveStats;
  beforeEach(() => {
    vi.useFakeTimers();
    live = liveStats({ snapshot: () => ({ breakers: [], mcp: undefined, llm: undefined, groups: [] }) });
  });
  afterEach(() => {
    live.stop();
    vi.useRealTimers();
  });

  it('counts events only while at least one feed is open', () => {
    const hub = feedHub({ live, maxFeeds: 4 });
    expect(events.requestEnd.hasSubscribers).toBe(false);
    const a = new Sink();
    const b = new Sink();
    hub.open(a);
    const endB = hub.open(b);
    expect(events.requestEnd.hasSubscribers).toBe(true);
    a.end();
    expect(events.requestEnd.hasSubscribers).toBe(true);
    endB();
    expect(b.writableEnded).toBe(true);
    expect(hub.size).toBe(0);
    expect(live.running).toBe(false);
    expect(events.requestEnd.hasSubscribers).toBe(false);
  });

  it('refuses one feed more than maxFeeds with 503 GW_BULKHEAD_FULL, and admits again once one closes', () => {
    const hub = feedHub({ live, maxFeeds: 2 });
    hub.admit();
    const first = new Sink();
    hub.open(first);
    hub.admit();
    hub.open(new Sink());
    let refused: unknown;
    try {
      hub.admit();
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(GatewayError);
    expect((refused as GatewayError).code).toBe('GW_BULKHEAD_FULL');
    expect((refused as GatewayError).status).toBe(503);
    first.end();
    expect(() => hub.admit()).not.toThrow();
  });

  it('sends the reconnection delay and a frame at once, then one frame per second however many events came', () => {
    const hub = feedHub({ live, maxFeeds: 1 });
    const sink = new Sink();
    hub.open(sink);
    expect(sink.chunks[0]).toBe('retry: 3000\n\n');
    expect(sink.frames()).toHaveLength(1);
    for (let i = 0; i < 1_000; i++) requestEnd('api');
    vi.advanceTimersByTime(1_000);
    const frames = sink.frames();
    expect(frames).toHaveLength(2);
    expect(frames.map((f) => f.seq)).toEqual([1, 2]);
    expect(frames[1]!.frame.routes.api!.requests).toBe(1_000);
    // Standard SSE framing: an id line, one data line, a blank line (WHATWG HTML §9.2.6).
    expect(sink.chunks.at(-1)).toMatch(/^id: 2\ndata: \{[^\n]*\}\n\n$/);
    vi.advanceTimersByTime(2_000);
    expect(sink.frames()).toHaveLength(4);
  });

  it('queues at most maxQueuedFrames for a reader that does not keep up, drops the oldest and counts them', () => {
    const hub = feedHub({ live, maxFeeds: 1, maxQueuedFrames: 3 });
    const sink = new Sink();
    sink.accepting = false;
    hub.open(sink);
    const written = sink.chunks.length;
    requestEnd('api');
    vi.advanceTimersByTime(10_000);
    // Eleven frames (the first and ten more) came while the reader was stuck: none was written, three
    // wait, eight were dropped.
    expect(sink.chunks.length).toBe(written);
    sink.accepting = true;
    sink.emit('drain');
    expect(sink.chunks.length).toBe(written + 3);
    vi.advanceTimersByTime(1_000);
    const last = sink.frames().at(-1)!;
    expect(last.dropped).toBe(8);
    // Totals, not deltas: the request counted before the drops is still there.
    expect(last.frame.routes.api!.requests).toBe(1);
  });

  it('ends a cookie session’s feed when the session ends, with an expired event', () => {
    let clock = 50_000;
    const hub = feedHub({ live, maxFeeds: 1, now: () => clock });
    const sink = new Sink();
    hub.open(sink, 55_000);
    clock += 4_999;
    vi.advanceTimersByTime(4_999);
    expect(sink.writableEnded).toBe(false);
    vi.advanceTimersByTime(1);
    expect(sink.chunks.at(-1)).toBe('event: expired\ndata: {}\n\n');
    expect(sink.writableEnded).toBe(true);
    expect(hub.size).toBe(0);
    expect(live.running).toBe(false);
  });
});
