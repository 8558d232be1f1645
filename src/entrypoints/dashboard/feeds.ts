// The dashboard's live feeds: one frame a second to each open page, over server-sent events, bounded every way.
import { GatewayError } from '../../errors.js';
import type { LiveStats } from '../../telemetry/live/live-stats.js';

/** Where a feed's messages go: the response of a `GET /dashboard/events` (headers already sent). */
export interface FeedSink {
  write(chunk: string): boolean;
  end(chunk?: string): unknown;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  readonly writableEnded: boolean;
}

export interface FeedHubOptions {
  live: LiveStats;
  /** Feeds open at once; one more is refused with 503 `GW_BULKHEAD_FULL`. */
  maxFeeds: number;
  /** Frames kept for a reader that does not keep up; past it the oldest is dropped and counted. Default 8. */
  maxQueuedFrames?: number;
  /** Between frames, in ms. Default 1,000. */
  intervalMs?: number;
  /** Injectable clock (epoch ms) for the session ends. Default `Date.now`. */
  now?: () => number;
}

export interface FeedHub {
  /** Feeds open now. */
  readonly size: number;
  /** Throws 503 `GW_BULKHEAD_FULL` when `maxFeeds` are open (call before sending the response headers). */
  admit(): void;
  /**
   * Starts a feed on `sink`: the reconnection delay, a first frame at once, then one frame each interval.
   * With `until` (epoch ms, a cookie session's end), the feed sends an `expired` event then and ends.
   * Returns the function that ends it.
   */
  open(sink: FeedSink, until?: number): () => void;
}

/** Headers of a feed response (WHATWG HTML §9.2 server-sent events). */
export const FEED_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  // Proxies that buffer (nginx) would hold frames back.
  'x-accel-buffering': 'no',
} as const;

/** A browser whose feed broke (a restarted gateway) reconnects after this long (the SSE `retry` field). */
const RECONNECT_MS = 3_000;

interface Feed {
  readonly sink: FeedSink;
  seq: number;
  dropped: number;
  /** Frames waiting for `drain`, oldest first; at most `maxQueuedFrames`. */
  readonly queue: string[];
  blocked: boolean;
  expiry: NodeJS.Timeout | undefined;
}

/**
 * Feeds the dashboard. Events are counted only while at least one feed is open: the first feed starts
 * `live` (subscribing to the channels) and the last one to close stops it (unsubscribing). Frames are
 * made once a second for all feeds (per-second aggregation, never a message per event), serialized once,
 * and written to each feed; a feed whose reader does not keep up queues at most `maxQueuedFrames` and then
 * drops its oldest frames, counting them in every later frame (`dropped`). Counters in a frame are totals,
 * so a dropped frame loses one chart point, never a count.
 */
export function feedHub(options: FeedHubOptions): FeedHub {
  const { live, maxFeeds } = options;
  const maxQueued = options.maxQueuedFrames ?? 8;
  const intervalMs = options.intervalMs ?? 1_000;
  const now = options.now ?? Date.now;
  const feeds = new Set<Feed>();
  let timer: NodeJS.Timeout | undefined;

  const message = (feed: Feed, frame: string) =>
    `id: ${++feed.seq}\ndata: {"seq":${feed.seq},"dropped":${feed.dropped},"frame":${frame}}\n\n`;

  const send = (feed: Feed, frame: string) => {
    if (feed.sink.writableEnded) return;
    if (feed.blocked) {
      feed.queue.push(message(feed, frame));
      if (feed.queue.length > maxQueued) {
        feed.queue.shift();
        feed.dropped++;
      }
      return;
    }
    if (!feed.sink.write(message(feed, frame))) wait(feed);
  };
  const wait = (feed: Feed) => {
    feed.blocked = true;
    feed.sink.once('drain', () => {
      feed.blocked = false;
      while (feed.queue.length > 0) {
        if (!feed.sink.write(feed.queue.shift()!)) return wait(feed);
      }
    });
  };

  const tick = () => {
    const frame = JSON.stringify(live.frame());
    live.nextWindow();
    for (const feed of feeds) send(feed, frame);
  };

  const remove = (feed: Feed) => {
    if (!feeds.delete(feed)) return;
    clearTimeout(feed.expiry);
    if (feeds.size === 0) {
      clearInterval(timer);
      timer = undefined;
      live.stop();
    }
  };

  return {
    get size() {
      return feeds.size;
    },
    admit() {
      if (feeds.size >= maxFeeds) {
        throw new GatewayError(
          'GW_BULKHEAD_FULL',
          `${maxFeeds} dashboard feeds are open (admin.dashboard.maxFeeds); close one`,
          { retryAfterS: 5 },
        );
      }
    },
    open(sink, until) {
      const feed: Feed = { sink, seq: 0, dropped: 0, queue: [], blocked: false, expiry: undefined };
      feeds.add(feed);
      sink.once('close', () => remove(feed));
      if (!live.running) live.start();
      if (timer === undefined) {
        timer = setInterval(tick, intervalMs);
        timer.unref();
      }
      if (!sink.write(`retry: ${RECONNECT_MS}\n\n`)) wait(feed);
      send(feed, JSON.stringify(live.frame()));
      const end = () => {
        remove(feed);
        if (!sink.writableEnded) sink.end();
      };
      if (until !== undefined) {
        feed.expiry = setTimeout(
          () => {
            if (!sink.writableEnded) sink.write('event: expired\ndata: {}\n\n');
            end();
          },
          Math.max(0, Math.min(until - now(), 2 ** 31 - 1)),
        );
        feed.expiry.unref();
      }
      return end;
    },
  };
}
