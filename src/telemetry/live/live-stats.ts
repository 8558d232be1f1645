// The dashboard's numbers: per-route, per-provider and per-group counts and latency, from events, only while watched.
import { events } from '../events.js';
import type {
  BatchEvent,
  BulkheadRejectEvent,
  CacheLookupEvent,
  CacheResult,
  CoalescedEvent,
  FanoutEndEvent,
  FanoutMemberEvent,
  FanoutOutcome,
  LlmChunkEvent,
  LlmFirstByteEvent,
  LlmStreamEndEvent,
  RateLimitRejectEvent,
  RequestEndEvent,
} from '../events.js';
import type { Subscription } from '../metrics/subscription.js';
import { bucketOf, LogHistogram } from './log-histogram.js';
import type { Percentiles } from './log-histogram.js';
import type { BreakerEntry, ProcessExit } from './state-board.js';

export type { Percentiles };

/** Latency of one thing: this window's and everything since counting began (ms). */
export interface LatencyLive {
  window: Percentiles | undefined;
  total: Percentiles | undefined;
}

/** One route label's counts since counting began (`LiveFrame.since`). */
export interface RouteLive {
  requests: number;
  /** Requests that ended with an error, by GW code (`HTTP_<status>` for an upstream's own 4xx/5xx). */
  errors: Record<string, number>;
  latency: LatencyLive;
  cache: Record<CacheResult, number>;
  coalesced: number;
  /** Calls served by bulk calls, and the bulk calls. */
  batched: { calls: number; bulk: number };
  bulkhead: { queueFull: number; queueTimeout: number };
  rateLimit: { principal: number; ip: number };
}

export interface ProviderLive {
  streams: { complete: number; aborted: number; error: number };
  chunks: number;
  firstByte: LatencyLive;
}

export type MemberLive = Record<FanoutOutcome, number> & { latency: LatencyLive };

export interface GroupLive {
  fanouts: number;
  members: Record<string, MemberLive>;
}

/** Component state read when a frame is made (not from events): pools, sessions, queues, breakers. */
export interface LiveSnapshot {
  breakers: BreakerEntry[];
  mcp:
    | {
        servers: Array<{
          server: string;
          /** Live processes (stdio) or 0 (a remote server: see `ready`). */
          processes: number;
          ready: number;
          inFlight: number;
          restarts: number;
          lastExit: ProcessExit | undefined;
          /** Why the server is down (no process could start, its URL does not answer); undefined while it serves. */
          down: string | undefined;
        }>;
        /** Open `/mcp` sessions by protocol era. */
        sessions: Array<{ era: string; sessions: number }>;
      }
    | undefined;
  llm:
    | {
        /** Streams open now: requests running on each provider's pool. */
        providers: Array<{ name: string; openStreams: number }>;
        transcripts:
          { queueDepth: number; rowsWritten: number; storeErrors: number; dropped: number } | undefined;
      }
    | undefined;
  groups: Array<{ name: string; members: string[] }>;
}

/** What one feed message carries: counters since `since`, this window's percentiles, and the snapshot. */
export interface LiveFrame {
  /** Epoch ms the frame was made. */
  t: number;
  /** Epoch ms counting began (the first feed opened). Counters reset when it changes. */
  since: number;
  /**
   * The process that counted (0 for a single process). With `serve --workers N`, each worker's frames carry
   * its id, so the page can show one worker or add them up.
   */
  worker: number;
  routes: Record<string, RouteLive>;
  providers: Record<string, ProviderLive>;
  groups: Record<string, GroupLive>;
  /** Hashed principals turned away by rate limits, most first (at most 10). */
  rateLimited: Array<{ principal: string; rejections: number }>;
  /** Events counted under `(other)` because a map was full. */
  overflow: number;
  state: LiveSnapshot;
}

export interface LiveStatsOptions {
  /** Reads component state for each frame. */
  snapshot: () => LiveSnapshot;
  /** This process's worker id. Default 0. */
  worker?: number;
  /** Injectable clock (epoch ms). Default `Date.now`. */
  now?: () => number;
}

export interface LiveStats {
  /** Subscribes to the events and starts counting from zero. Idempotent. */
  start(): void;
  /** Unsubscribes and forgets everything: an unwatched gateway pays nothing. Idempotent. */
  stop(): void;
  readonly running: boolean;
  /** The current frame (the window so far); does not end the window. */
  frame(): LiveFrame;
  /** Ends the current window: the next frame's window percentiles start empty. */
  nextWindow(): void;
}

/**
 * Labels kept in all (routes, providers, groups, members together: each holds two 1.7 KB histograms at
 * most, so a few MB in the worst case); past it, a new label's events are counted under `(other)`.
 */
const MAX_LABELS = 1_000;
/** Hashed principals tracked for the rate-limit panel. */
const MAX_PRINCIPALS = 256;
const TOP_PRINCIPALS = 10;
const OTHER = '(other)';

class Latency {
  readonly window = new LogHistogram();
  readonly total = new LogHistogram();
  record(ms: number): void {
    const bucket = bucketOf(ms);
    this.window.add(bucket);
    this.total.add(bucket);
  }
  live(): LatencyLive {
    return { window: this.window.percentiles(), total: this.total.percentiles() };
  }
}

interface RouteState {
  requests: number;
  errors: Map<string, number>;
  latency: Latency;
  cache: Record<CacheResult, number>;
  coalesced: number;
  batched: { calls: number; bulk: number };
  bulkhead: { queueFull: number; queueTimeout: number };
  rateLimit: { principal: number; ip: number };
}

interface ProviderState {
  streams: { complete: number; aborted: number; error: number };
  chunks: number;
  firstByte: Latency;
}

type MemberState = Record<FanoutOutcome, number> & { latency: Latency };

interface GroupState {
  fanouts: number;
  members: Map<string, MemberState>;
}

/**
 * Counts the per-request events a dashboard shows, and only while `start()`ed: until then nothing is
 * subscribed, so (with `publish` checking `hasSubscribers`, and metrics' own handlers unchanged) an
 * unwatched gateway runs exactly the code it runs without a dashboard. The maps hold `MAX_LABELS` labels in
 * all; labels are route, provider, group and member names, never client-chosen strings.
 */
export function liveStats(options: LiveStatsOptions): LiveStats {
  const now = options.now ?? Date.now;
  const worker = options.worker ?? 0;
  let since = 0;
  let overflow = 0;
  let labels = 0;
  let routes = new Map<string, RouteState>();
  let providers = new Map<string, ProviderState>();
  let groups = new Map<string, GroupState>();
  let principals = new Map<string, number>();

  /** The entry for `key`, or the map's shared `(other)` entry once `MAX_LABELS` labels exist. */
  const entry = <V>(map: Map<string, V>, key: string, make: () => V): V => {
    let value = map.get(key);
    if (value !== undefined) return value;
    if (labels >= MAX_LABELS) {
      overflow++;
      key = OTHER;
      value = map.get(key);
      if (value !== undefined) return value;
    }
    labels++;
    value = make();
    map.set(key, value);
    return value;
  };
  const route = (name: string) =>
    entry(routes, name, () => ({
      requests: 0,
      errors: new Map<string, number>(),
      latency: new Latency(),
      cache: { hit: 0, miss: 0, stale: 0, revalidated: 0, bypass: 0 },
      coalesced: 0,
      batched: { calls: 0, bulk: 0 },
      bulkhead: { queueFull: 0, queueTimeout: 0 },
      rateLimit: { principal: 0, ip: 0 },
    }));
  const provider = (name: string) =>
    entry(providers, name, () => ({
      streams: { complete: 0, aborted: 0, error: 0 },
      chunks: 0,
      firstByte: new Latency(),
    }));
  const group = (name: string) =>
    entry(groups, name, (): GroupState => ({ fanouts: 0, members: new Map<string, MemberState>() }));

  const subscriptions: Subscription[] = [
    [
      events.requestEnd,
      (message) => {
        const e = message as RequestEndEvent;
        const r = route(e.ctx.route);
        r.requests++;
        r.latency.record(e.durationMs);
        const code = e.errorCode ?? (e.status >= 400 ? `HTTP_${e.status}` : undefined);
        if (code !== undefined) r.errors.set(code, (r.errors.get(code) ?? 0) + 1);
      },
    ],
    [
      events.cacheLookup,
      (message) => {
        const e = message as CacheLookupEvent;
        route(e.route).cache[e.result]++;
      },
    ],
    [events.coalesced, (message) => route((message as CoalescedEvent).route).coalesced++],
    [
      events.batch,
      (message) => {
        const e = message as BatchEvent;
        const batched = route(e.route).batched;
        batched.calls += e.callers;
        batched.bulk++;
      },
    ],
    [
      events.bulkheadReject,
      (message) => {
        const e = message as BulkheadRejectEvent;
        const bulkhead = route(e.route).bulkhead;
        if (e.reason === 'queue-full') bulkhead.queueFull++;
        else bulkhead.queueTimeout++;
      },
    ],
    [
      events.rateLimitReject,
      (message) => {
        const e = message as RateLimitRejectEvent;
        route(e.route).rateLimit[e.scope]++;
        if (e.principal === undefined) return;
        // A hash, never the raw identity; shortened further for the page.
        const key = e.principal.slice(0, 12);
        if (principals.has(key) || principals.size < MAX_PRINCIPALS) {
          principals.set(key, (principals.get(key) ?? 0) + 1);
        } else {
          principals.set(OTHER, (principals.get(OTHER) ?? 0) + 1);
        }
      },
    ],
    [
      events.llmFirstByte,
      (message) => {
        const e = message as LlmFirstByteEvent;
        provider(e.provider).firstByte.record(e.durationMs);
      },
    ],
    [events.llmChunk, (message) => provider((message as LlmChunkEvent).provider).chunks++],
    [
      events.llmStreamEnd,
      (message) => {
        const e = message as LlmStreamEndEvent;
        provider(e.provider).streams[e.outcome]++;
      },
    ],
    [
      events.fanoutMember,
      (message) => {
        const e = message as FanoutMemberEvent;
        const member = entry(group(e.group).members, e.member, () => ({
          answered: 0,
          failed: 0,
          timedOut: 0,
          skipped: 0,
          cancelled: 0,
          latency: new Latency(),
        }));
        member[e.outcome]++;
        if (e.outcome !== 'skipped') member.latency.record(e.durationMs);
      },
    ],
    [events.fanoutEnd, (message) => group((message as FanoutEndEvent).group).fanouts++],
  ];

  let running = false;
  const reset = () => {
    since = now();
    overflow = 0;
    labels = 0;
    routes = new Map();
    providers = new Map();
    groups = new Map();
    principals = new Map();
  };

  return {
    get running() {
      return running;
    },
    start() {
      if (running) return;
      running = true;
      reset();
      for (const [channel, handler] of subscriptions) channel.subscribe(handler);
    },
    stop() {
      if (!running) return;
      running = false;
      for (const [channel, handler] of subscriptions) channel.unsubscribe(handler);
      reset();
    },
    frame(): LiveFrame {
      return {
        t: now(),
        since,
        worker,
        routes: Object.fromEntries(
          [...routes].map(([name, r]) => [
            name,
            {
              requests: r.requests,
              errors: Object.fromEntries(r.errors),
              latency: r.latency.live(),
              cache: { ...r.cache },
              coalesced: r.coalesced,
              batched: { ...r.batched },
              bulkhead: { ...r.bulkhead },
              rateLimit: { ...r.rateLimit },
            },
          ]),
        ),
        providers: Object.fromEntries(
          [...providers].map(([name, p]) => [
            name,
            { streams: { ...p.streams }, chunks: p.chunks, firstByte: p.firstByte.live() },
          ]),
        ),
        groups: Object.fromEntries(
          [...groups].map(([name, g]) => [
            name,
            {
              fanouts: g.fanouts,
              members: Object.fromEntries(
                [...g.members].map(([member, m]) => [
                  member,
                  {
                    answered: m.answered,
                    failed: m.failed,
                    timedOut: m.timedOut,
                    skipped: m.skipped,
                    cancelled: m.cancelled,
                    latency: m.latency.live(),
                  },
                ]),
              ),
            },
          ]),
        ),
        rateLimited: [...principals]
          .sort((a, b) => b[1] - a[1])
          .slice(0, TOP_PRINCIPALS)
          .map(([principal, rejections]) => ({ principal, rejections })),
        overflow,
        state: options.snapshot(),
      };
    },
    nextWindow() {
      for (const r of routes.values()) r.latency.window.reset();
      for (const p of providers.values()) p.firstByte.window.reset();
      for (const g of groups.values()) for (const m of g.members.values()) m.latency.window.reset();
    },
  };
}
