// The pipeline's vocabulary: a Call goes in, a Reply comes out, Policies wrap Handlers.
import type { Readable } from 'node:stream';
import type { Cancel } from './cancel.js';

/** Header map as undici and node:http both accept it. */
export type Headers = Record<string, string | string[] | undefined>;

/** A request body: nothing, bytes already in memory (replayable), or a stream (sent once). */
export type Body = Buffer | Readable | undefined;

/**
 * Per-client-request state shared by every attempt of one call (retries and hedges derive new Calls,
 * but keep the same context). Telemetry keys spans and timings on it.
 */
export interface RequestContext {
  /** Request id, echoed as `x-request-id`. */
  readonly id: string;
  /** Metrics label of what the request reached (a route, `mcp:server__tool`, `chat`...): never client-chosen. */
  route: string;
  /** `performance.now()` when the gateway received the request. */
  readonly startedAt: number;
  /** Milliseconds spent waiting for upstream response headers, summed over attempts. */
  upstreamMs: number;
  /** Attempts sent upstream so far (1 + retries + hedges). */
  attempts: number;
  /** The client's address (the connection's peer), for per-address limits. */
  readonly clientIp?: string;
  /**
   * The request's own cancellation, when the entrypoint made one (see `Cancel`). A call that still carries
   * it unmade (`carriesOwnCancel`) is aborted through it directly: the deadline policy arms its timer on
   * it and the HTTP transport hands it to undici, so a proxied request never builds an AbortSignal.
   */
  readonly cancel?: Cancel;
}

/** What every call carries, whatever its kind. */
export interface CallEnvelope {
  readonly ctx: RequestContext;
  /** Name of the upstream the transport will send to. */
  readonly upstream: string;
  /** True when this call may be sent more than once (idempotent method, or route/tool marked idempotent). */
  readonly idempotent: boolean;
  /** Who is asking, for cache scoping; undefined when the caller is anonymous. */
  readonly principal: string | undefined;
  /** Aborts when the deadline passes or the client goes away. Every hop must honour it. */
  readonly signal: AbortSignal;
  /** Cache / coalescing key, set by the cache policy (or the caller) so inner policies need not compute it again. */
  readonly key?: string;
}

/** An HTTP request to an upstream: proxy routes, LLM providers and HTTP fan-out members send these. */
export interface HttpRequest {
  readonly method: string;
  /** Upstream path including the query string, already rewritten. */
  readonly path: string;
  /** Outgoing headers, hop-by-hop headers already removed. */
  readonly headers: Headers;
  readonly body: Body;
}

/**
 * One call travelling through a policy stack to a transport: the envelope every policy reads, plus the
 * payload of its kind (`P`: an HTTP request by default; an MCP tool call is `Call<ToolRequest>`).
 */
export type Call<P extends object = HttpRequest> = CallEnvelope & Readonly<P>;

/** What comes back from upstream: status, headers, and a body that is streamed, never buffered whole. */
export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  /** Stream for proxied bodies; Buffer for bodies the gateway produced or cached. */
  readonly body: Readable | Buffer | null;
  /**
   * The body's decoded value when the transport produced it (an MCP tool's `CallToolResult`), so a
   * consumer need not parse the bytes again. Absent on replies served from a cache.
   */
  readonly decoded?: unknown;
}

export type Handler<P extends object = HttpRequest> = (call: Call<P>) => Promise<Reply>;

/** Wraps a handler with one concern (retry, breaker...). Composed once at start-up, never per request. */
export type Policy<P extends object = HttpRequest> = (next: Handler<P>) => Handler<P>;

/** A policy that works for calls of every kind (deadline, bulkhead, breaker...). */
export type AnyPolicy = <P extends object = HttpRequest>(next: Handler<P>) => Handler<P>;
