// One error type for the whole gateway, with stable codes mapped to HTTP status and JSON-RPC codes in one table.

/**
 * Every error code Slipstream can report, with its HTTP status, its JSON-RPC error code, and whether it is
 * the client's own doing (`client`): those never count against an upstream's breaker.
 */
const CODES = {
  GW_BAD_REQUEST: { status: 400, rpc: -32600, client: true },
  GW_UNAUTHORIZED: { status: 401, rpc: -32001, client: true },
  /** Known but not allowed here: outside an API key's allowances, or the dashboard asked for by a non-loopback name. */
  GW_FORBIDDEN: { status: 403, rpc: -32001, client: true },
  GW_ROUTE_NOT_FOUND: { status: 404, rpc: -32601, client: true },
  /** A batched item the bulk answer did not contain: an answer about that item, not a failure. */
  GW_ITEM_NOT_FOUND: { status: 404, rpc: -32602, client: true },
  GW_METHOD_NOT_ALLOWED: { status: 405, rpc: -32601, client: true },
  GW_REQUEST_TIMEOUT: { status: 408, rpc: -32600, client: true },
  GW_PAYLOAD_TOO_LARGE: { status: 413, rpc: -32600, client: true },
  GW_HEADERS_TOO_LARGE: { status: 431, rpc: -32600, client: true },
  /** The caller (or its address) is over its request or token rate; `Retry-After` says when to come back. */
  GW_RATE_LIMITED: { status: 429, rpc: -32003, client: true },
  /**
   * A WebSocket upgrade: Slipstream serves none. 426 at once, so clients that try a WebSocket first
   * (Codex on `/v1/responses`) fall back to HTTP right away instead of retrying the handshake.
   */
  GW_WEBSOCKET_UNSUPPORTED: { status: 426, rpc: -32600, client: true },
  GW_CLIENT_CLOSED: { status: 499, rpc: -32800, client: true },
  GW_INTERNAL: { status: 500, rpc: -32603, client: false },
  GW_UPSTREAM_UNAVAILABLE: { status: 502, rpc: -32002, client: false },
  GW_UPSTREAM_RESPONSE_TOO_LARGE: { status: 502, rpc: -32002, client: false },
  GW_UPSTREAM_AUTH_FAILED: { status: 502, rpc: -32002, client: false },
  GW_UPSTREAM_PROTOCOL: { status: 502, rpc: -32002, client: false },
  GW_BREAKER_OPEN: { status: 503, rpc: -32003, client: false },
  GW_BULKHEAD_FULL: { status: 503, rpc: -32003, client: false },
  GW_SHUTTING_DOWN: { status: 503, rpc: -32003, client: false },
  GW_UPSTREAM_TIMEOUT: { status: 504, rpc: -32004, client: false },
  /** A request said `Cache-Control: only-if-cached` and nothing usable is stored (RFC 9111 §5.2.1.7). */
  GW_NOT_CACHED: { status: 504, rpc: -32004, client: true },
  GW_CONFIG_INVALID: { status: 500, rpc: -32603, client: false },
  /** No such tool; counted against a fan-out member's breaker when its server stopped listing the tool. */
  GW_TOOL_NOT_FOUND: { status: 404, rpc: -32602, client: false },
  GW_TOOL_INVALID_ARGUMENTS: { status: 400, rpc: -32602, client: true },
  GW_MCP_SERVER_CRASHED: { status: 502, rpc: -32002, client: false },
  /**
   * An MCP server is down: its process could not be started (command not found, exited before answering
   * `initialize`) or its URL does not answer; the gateway keeps retrying in the background and says when
   * in `Retry-After`. Refused without reaching the server, so it never counts against a breaker (`local`):
   * the server's own retry loop already is one, and a breaker would keep refusing after the fix.
   */
  GW_MCP_SERVER_DOWN: { status: 503, rpc: -32003, client: false, local: true },
  /** An MCP server rejected the request as the client's fault (`data.rpcCode`: -32602, -32601, -32021...). */
  GW_MCP_REQUEST_REJECTED: { status: 400, rpc: -32602, client: true },
  /** A `/mcp` request whose `Host` or `Origin` is not allowed (`mcp.allowedHosts`; DNS rebinding). */
  GW_MCP_ORIGIN_FORBIDDEN: { status: 403, rpc: -32600, client: true },
  /** No MCP server offers this resource, prompt or completion reference. */
  GW_MCP_NOT_FOUND: { status: 404, rpc: -32602, client: true },
  /** The request needs what no path here can give (a task-only tool, a 2025 server asking a 2026 client). */
  GW_MCP_UNSUPPORTED: { status: 400, rpc: -32601, client: true },
  /**
   * A 2026-07-28 retry's `requestState` was not issued by this gateway process for this caller and this
   * request: tampered with, forged, another caller's, or for another tool, prompt or URI.
   */
  GW_MCP_REQUEST_STATE_INVALID: { status: 400, rpc: -32602, client: true },
  /**
   * A 2026-07-28 retry names a parked call that no longer waits for input: past `mcp.inputWait`, its
   * round already answered, cancelled, finished, or parked by another gateway process.
   */
  GW_MCP_REQUEST_STATE_EXPIRED: { status: 400, rpc: -32602, client: true },
  /** An MCP tool answered `isError` where an answer was needed (a fan-out member). */
  GW_TOOL_ERROR: { status: 502, rpc: -32002, client: false },
  /** The requested LLM model is served by no configured provider (as OpenAI answers an unknown model). */
  GW_LLM_NO_PROVIDER: { status: 404, rpc: -32602, client: true },
  /**
   * Every provider for the model answered 429 (after retries); relayed as 429 with the provider's
   * `Retry-After`, so SDKs raise their rate-limit error (openai `RateLimitError`, LangChain
   * `MODEL_RATE_LIMIT`) instead of a server error.
   */
  GW_UPSTREAM_RATE_LIMITED: { status: 429, rpc: -32003, client: false },
  /** A caller reached its own limit of open `/mcp` sessions (`mcp.maxSessionsPerPrincipal`). */
  GW_TOO_MANY_SESSIONS: { status: 429, rpc: -32003, client: true },
  /** `POST /fanout/<group>` names no configured group. */
  GW_GROUP_NOT_FOUND: { status: 404, rpc: -32601, client: true },
  /** Under `serve --workers`: a worker did not answer the supervisor in time (an admin purge left unconfirmed). */
  GW_WORKER_UNAVAILABLE: { status: 503, rpc: -32003, client: false },
  /** No such job for this caller: unknown, expired, deleted, or another caller's (never told apart). */
  GW_JOB_NOT_FOUND: { status: 404, rpc: -32602, client: true },
  /** The job store holds `jobs.maxJobs` jobs or `jobs.maxBytes` bytes already; sent with `Retry-After`. */
  GW_JOBS_FULL: { status: 503, rpc: -32003, client: false },
  /** The job queue (Redis) cannot be reached: the job was not accepted. */
  GW_JOBS_UNAVAILABLE: { status: 503, rpc: -32003, client: false },
  /**
   * A job of a route that is not idempotent was running on a gateway that stopped (killed or shut down)
   * before it finished: it is not run twice; its outcome upstream is unknown.
   */
  GW_JOB_INTERRUPTED: { status: 503, rpc: -32003, client: false },
} as const satisfies Record<string, { status: number; rpc: number; client: boolean; local?: true }>;

export type ErrorCode = keyof typeof CODES;

export interface GatewayErrorOptions {
  cause?: unknown;
  /** Extra fields safe to show the client (never secrets). */
  data?: Record<string, unknown>;
  /** Seconds the client should wait before retrying; sent as `Retry-After`. */
  retryAfterS?: number;
  /** Response headers the error implies (`WWW-Authenticate`, `RateLimit-*`); never secrets. */
  headers?: Record<string, string>;
}

/**
 * The only error Slipstream throws across module boundaries. `code` is stable and documented;
 * `message` is for humans and may change.
 */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly code: ErrorCode;
  readonly data: Record<string, unknown> | undefined;
  readonly retryAfterS: number | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.data = options.data;
    this.retryAfterS = options.retryAfterS;
    this.headers = options.headers;
  }

  /** HTTP status for this error's code. */
  get status(): number {
    return CODES[this.code].status;
  }

  /** True when the client caused it (a malformed request, a hang-up): never an upstream's failure. */
  get clientFault(): boolean {
    return CODES[this.code].client;
  }

  /** True when the gateway refused without reaching the upstream, as it knows the upstream is down. */
  get local(): boolean {
    return 'local' in CODES[this.code];
  }

  /** JSON-RPC error code for this error's code (used by the MCP entrypoint). */
  get rpcCode(): number {
    return CODES[this.code].rpc;
  }

  /** The JSON body every client gets: `{"error":{"code","message"}}`, never a stack. */
  toJSON(): { error: { code: ErrorCode; message: string; data?: Record<string, unknown> } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.data === undefined ? {} : { data: this.data }),
      },
    };
  }
}

/** Returns `error` as a GatewayError, wrapping anything else as `GW_INTERNAL` (the original kept as `cause`). */
export function toGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  return new GatewayError('GW_INTERNAL', 'internal gateway error', { cause: error });
}

/** Looks up the HTTP status for a code without building an error. */
export function statusOf(code: ErrorCode): number {
  return CODES[code].status;
}
