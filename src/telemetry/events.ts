// Named diagnostics_channel events: policies and entrypoints publish, telemetry subscribes (as undici does).
import dc from 'node:diagnostics_channel';
import type { ErrorCode } from '../errors.js';
import type { Call, Headers, RequestContext } from '../pipeline/types.js';

/** A client request entered the gateway. Published before routing policies run. */
export interface RequestStartEvent {
  ctx: RequestContext;
  method: string;
  /** The path the client asked for (without query string). */
  path: string;
  /** Incoming headers (read-only for subscribers; tracing extracts `traceparent`). */
  headers: Headers;
}

/** A client request finished (reply headers sent, or failed before that). */
export interface RequestEndEvent {
  ctx: RequestContext;
  method: string;
  path: string;
  status: number;
  errorCode: ErrorCode | undefined;
  /** Milliseconds from receipt to reply headers. */
  durationMs: number;
}

/** An attempt is about to be sent upstream. Subscribers may add headers (tracing adds `traceparent`). */
export interface AttemptStartEvent {
  call: Call;
  /** The headers that will be sent; mutable by subscribers. */
  headers: Headers;
}

/** An upstream attempt got response headers or failed. */
export interface AttemptEndEvent {
  call: Call;
  status: number | undefined;
  errorCode: ErrorCode | undefined;
  durationMs: number;
}

export interface RetryEvent {
  route: string;
  upstream: string;
  /** The attempt number about to be made (2 for the first retry). */
  attempt: number;
  delayMs: number;
  /** HTTP status or error code that caused the retry. */
  reason: string;
}

export interface RetryBudgetExhaustedEvent {
  route: string;
  upstream: string;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerStateEvent {
  name: string;
  state: BreakerState;
}

/**
 * A rate limit turned a call away. `principal` is the caller's identity hashed (never the raw value), absent
 * for anonymous callers and for limits by client address; `scope` says which kind of limit it was.
 */
export interface RateLimitRejectEvent {
  route: string;
  principal?: string;
  scope: 'principal' | 'ip';
}

export interface BulkheadRejectEvent {
  route: string;
  /** Why: the queue is full, or the wait in the queue ran out. */
  reason: 'queue-full' | 'queue-timeout';
}

export interface TokenRefreshEvent {
  upstream: string;
  ok: boolean;
  durationMs: number;
  /** Why the refresh ran: none cached yet, close to expiry, or the upstream answered 401. */
  trigger: 'initial' | 'expiring' | 'unauthorized';
}

/**
 * `hit` fresh from the cache; `stale` served stale (stale-while-revalidate, stale-if-error, a client's
 * max-stale); `revalidated` stored but stale, confirmed by the upstream with a 304; `miss` fetched;
 * `bypass` not cacheable (method, `no-store`, range or origin-only precondition, credentials without a principal).
 */
export type CacheResult = 'hit' | 'miss' | 'stale' | 'revalidated' | 'bypass';

export interface CacheLookupEvent {
  route: string;
  result: CacheResult;
}

export interface CoalescedEvent {
  route: string;
}

export interface CacheStoreErrorEvent {
  route: string;
  operation: 'get' | 'set' | 'invalidate';
  error: unknown;
}

/** A shared cache tier (Redis) went down or came back. */
export interface CacheTierEvent {
  tier: 'redis';
  /** The tier's address, password removed. */
  target: string;
  up: boolean;
  error?: unknown;
}

/** One operation on a shared cache tier failed while the tier counted as up (a timeout, say). */
export interface CacheTierErrorEvent {
  tier: 'redis';
  operation: 'get' | 'set' | 'purge' | 'invalidate';
  error: unknown;
}

/**
 * Why a cache entry was refreshed off the request path: `stale` (stale-while-revalidate, RFC 5861),
 * `ahead` (a hit past the route's `refreshAhead` share of its freshness lifetime).
 */
export type RefreshTrigger = 'stale' | 'ahead';

/**
 * A background refresh ended: `refreshed` (stored, or confirmed by a 304), `peer` (another instance had
 * already stored a newer entry), `failed` (the old entry stays), or `skipped` (the refresher was full or
 * closing).
 */
export interface CacheRefreshEvent {
  route: string;
  trigger: RefreshTrigger;
  outcome: 'refreshed' | 'peer' | 'failed' | 'skipped';
  durationMs: number;
}

/** One warm key's scheduled refresh ended (`failed`: the last good entry stays). */
export interface WarmRefreshEvent {
  route: string;
  /** The client path of the warm request, from the config (a bounded label). */
  path: string;
  outcome: 'refreshed' | 'failed';
  /** The status the refresh got (0 when it threw). */
  status: number;
  durationMs: number;
}

/** The in-process cache evicted an entry to make room (not an expiry). */
export interface CacheEvictEvent {
  store: 'memory';
}

/** A batch of single-item calls went upstream as one bulk call. */
export interface BatchEvent {
  route: string;
  /** Callers served by the bulk call. */
  callers: number;
  /** Distinct items asked for (callers asking for the same item share it). */
  items: number;
}

/** How one member of a fan-out ended: answered, failed, ran out of time, was skipped (breaker open) or cancelled (quorum met). */
export type FanoutOutcome = 'answered' | 'failed' | 'timedOut' | 'skipped' | 'cancelled';

/** One member of a fan-out settled. */
export interface FanoutMemberEvent {
  group: string;
  member: string;
  outcome: FanoutOutcome;
  /** From the start of the fan-out to this member's answer (0 when skipped). */
  durationMs: number;
}

/** A discovered member left its group: its metric label sets go with it (no unbounded label growth). */
export interface FanoutMemberRemovedEvent {
  group: string;
  member: string;
  /** The member's upstream and breaker name (`fanout:<group>/<member>`). */
  upstream: string;
}

/** A fan-out finished: every member settled or was cancelled. */
export interface FanoutEndEvent {
  group: string;
  durationMs: number;
  answered: number;
  members: number;
}

/** A group's member list was fetched from its discovery endpoint (or the fetch failed and the last list was kept). */
export interface DiscoveryRefreshEvent {
  group: string;
  ok: boolean;
  durationMs: number;
  /** Members listed (the kept list's size when the refresh failed). */
  members: number;
  error?: unknown;
}

/** An LLM stream sent its first byte to the client (the provider's first chunk). */
export interface LlmFirstByteEvent {
  provider: string;
  /** The wire format (`chat-completions`, `responses`, `messages`, `count-tokens`, `embeddings`). */
  format: string;
  /** From receiving the request to writing the first chunk to the client. */
  durationMs: number;
}

/** One upstream chunk was relayed to the client. */
export interface LlmChunkEvent {
  provider: string;
  format: string;
  /** Since the previous chunk of the same stream (the first chunk: since the request). */
  gapMs: number;
}

/** An LLM request ended: streamed to the end, cut by the client, or failed (before or after the first byte). */
export interface LlmStreamEndEvent {
  /** The provider that answered (for a failure before the first byte: the last one tried). */
  provider: string;
  format: string;
  outcome: 'complete' | 'aborted' | 'error';
  chunks: number;
  bytes: number;
  durationMs: number;
  /** Tokens the provider reported in the reply's usage; undefined when it reported none. */
  usage: { inputTokens?: number; outputTokens?: number } | undefined;
}

/** A model's provider failed before the first byte and the next fallback is tried. */
export interface LlmFallbackEvent {
  from: string;
  to: string;
  /** HTTP status or error code that caused it. */
  reason: string;
}

/** The transcript writer committed one batch (one transaction). */
export interface TranscriptFlushEvent {
  rows: number;
  chars: number;
  durationMs: number;
  /** Rows still waiting after this batch. */
  queueDepth: number;
}

/** A transcript batch failed; its rows stay queued and are retried after `retryInMs`. */
export interface TranscriptStoreErrorEvent {
  error: unknown;
  queueDepth: number;
  retryInMs: number;
}

/** Transcript rows were queued for the store (published once per flush, not per chunk). */
export interface TranscriptQueuedEvent {
  rows: number;
  /** Rows waiting after this, the batch being written included. */
  queueDepth: number;
}

/**
 * Transcript rows were given up on: `queue-full` when the queue overflowed while the store was failing,
 * `shutdown` when they were not written by the shutdown deadline (or arrived after it).
 */
export interface TranscriptDropEvent {
  rows: number;
  reason: 'queue-full' | 'shutdown';
}

/** A pooled MCP stdio process started (initialized), exited unexpectedly, or was recycled for not answering. */
export interface McpProcessEvent {
  server: string;
  event: 'started' | 'exited' | 'recycled';
  pid: number | undefined;
  /** Why an exited or recycled process ended, in the gateway's words (never the child's own output). */
  reason?: string;
}

/**
 * An MCP server went down (no process could start, or its URL did not answer) or came up (its first
 * successful start included). Published on changes only, never once per retry.
 */
export interface McpServerStateEvent {
  server: string;
  up: boolean;
  /** Why it is down, in the gateway's words (the spawn or connect error). */
  reason?: string;
}

/** Rate-limit buckets moved between Redis (shared, cluster-wide) and this process (Redis down or slow). */
export interface RateLimitStoreEvent {
  shared: boolean;
  error?: unknown;
}

/**
 * A reply was re-coded for a client (compressed, decoded, or both), or a remembered re-coding was sent
 * again. For a stream, published when it ends.
 */
export interface ContentCodingEvent {
  /** Route label. */
  route: string;
  /** The coding the reply had (`identity` when none). */
  from: string;
  /** The coding the client got. */
  to: string;
  /** Size of the identity (uncompressed) body. */
  identityBytes: number;
  /** Bytes of body sent to the client. */
  sentBytes: number;
  /** Time spent re-coding (0 when remembered); for a stream, its whole life. */
  durationMs: number;
  /** True when the re-coded bytes were remembered from an earlier reply with the same body (a cache hit). */
  remembered: boolean;
}

/** A job was accepted (202) and queued. */
export interface JobQueuedEvent {
  route: string;
}

/** A worker in this instance started a job (`attempt` > 1: a re-run after its worker died). */
export interface JobStartedEvent {
  route: string;
  attempt: number;
  /** From submit to this start. */
  queuedMs: number;
}

/** A job ended in this instance: done, failed (interrupted included) or cancelled. */
export interface JobFinishedEvent {
  route: string;
  status: 'done' | 'failed' | 'cancelled';
  /** The error code of a failed job. */
  errorCode: string | undefined;
  /** From submit to the end. */
  durationMs: number;
}

/** One webhook delivery attempt: delivered, retrying (it failed and will be tried again), failed (given up), dropped (too many pending). */
export interface WebhookDeliveryEvent {
  route: string;
  outcome: 'delivered' | 'retrying' | 'failed' | 'dropped';
  attempt: number;
  /** HTTP status of the receiver's answer, 0 when none came. */
  status: number;
}

/** Every channel Slipstream publishes on. Publishers check `hasSubscribers` so an unobserved event costs nothing. */
export const events = {
  requestStart: dc.channel('slipstream:request:start'),
  requestEnd: dc.channel('slipstream:request:end'),
  attemptStart: dc.channel('slipstream:upstream:attempt:start'),
  attemptEnd: dc.channel('slipstream:upstream:attempt:end'),
  retry: dc.channel('slipstream:retry'),
  retryBudgetExhausted: dc.channel('slipstream:retry:budget-exhausted'),
  breakerState: dc.channel('slipstream:breaker:state'),
  bulkheadReject: dc.channel('slipstream:bulkhead:reject'),
  rateLimitReject: dc.channel('slipstream:rate-limit:reject'),
  tokenRefresh: dc.channel('slipstream:auth:token-refresh'),
  cacheLookup: dc.channel('slipstream:cache:lookup'),
  cacheStoreError: dc.channel('slipstream:cache:store-error'),
  coalesced: dc.channel('slipstream:coalesce:waiter'),
  cacheTier: dc.channel('slipstream:cache:tier'),
  cacheTierError: dc.channel('slipstream:cache:tier-error'),
  cacheEvict: dc.channel('slipstream:cache:evict'),
  cacheRefresh: dc.channel('slipstream:cache:refresh'),
  warmRefresh: dc.channel('slipstream:cache:warm'),
  batch: dc.channel('slipstream:batch'),
  fanoutMember: dc.channel('slipstream:fanout:member'),
  fanoutMemberRemoved: dc.channel('slipstream:fanout:member-removed'),
  fanoutEnd: dc.channel('slipstream:fanout:end'),
  discoveryRefresh: dc.channel('slipstream:fanout:discovery'),
  llmFirstByte: dc.channel('slipstream:llm:first-byte'),
  llmChunk: dc.channel('slipstream:llm:chunk'),
  llmStreamEnd: dc.channel('slipstream:llm:stream-end'),
  llmFallback: dc.channel('slipstream:llm:fallback'),
  transcriptQueued: dc.channel('slipstream:transcript:queued'),
  transcriptFlush: dc.channel('slipstream:transcript:flush'),
  transcriptStoreError: dc.channel('slipstream:transcript:store-error'),
  transcriptDrop: dc.channel('slipstream:transcript:drop'),
  mcpProcess: dc.channel('slipstream:mcp:process'),
  mcpServerState: dc.channel('slipstream:mcp:server-state'),
  rateLimitStore: dc.channel('slipstream:rate-limit:store'),
  contentCoding: dc.channel('slipstream:compression:coded'),
  jobQueued: dc.channel('slipstream:jobs:queued'),
  jobStarted: dc.channel('slipstream:jobs:started'),
  jobFinished: dc.channel('slipstream:jobs:finished'),
  webhookDelivery: dc.channel('slipstream:jobs:webhook'),
} as const;

/** Publishes `message` on `channel` only when someone listens. */
export function publish<T extends object>(channel: dc.Channel, message: T): void {
  if (channel.hasSubscribers) channel.publish(message);
}
