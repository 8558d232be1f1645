// What every MCP upstream (stdio pool, remote session) offers the gateway, and how its failures map to GatewayErrors.
import { ProtocolError, SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import type {
  CallToolResult,
  ClientCapabilities,
  Progress,
  Prompt,
  Resource,
  ResourceTemplateType as ResourceTemplate,
  ServerCapabilities,
  Tool,
} from '@modelcontextprotocol/client';
import { GatewayError } from '../../errors.js';
import type { McpServerDown } from './outage.js';

/** The protocol era an upstream speaks: 2025-11-25 sessions (`legacy`) or 2026-07-28 stateless (`modern`). */
export type McpEra = 'legacy' | 'modern';

/** The cached lists an upstream keeps, refreshed on the matching `list_changed` notification. */
export type McpListKind = 'tools' | 'resources' | 'resourceTemplates' | 'prompts';

/** A SEP-2549 cache hint from a 2026-07-28 result: how long it stays fresh, and who may share it. */
export interface McpCacheHint {
  ttlMs: number;
  cacheScope: 'public' | 'private';
}

/** A request the upstream server sent to its client (`sampling/createMessage`, `elicitation/create`, `roots/list`). */
export interface McpServerRequest {
  method: string;
  params?: Record<string, unknown>;
}

/**
 * Answers a server→client request on behalf of the downstream client that caused it: resolves with the
 * result to send upstream, rejects to send an error. `signal` aborts when the upstream call ends first.
 */
export type McpServerRequestHandler = (
  request: McpServerRequest,
  signal: AbortSignal,
) => Promise<Record<string, unknown>>;

/** A notification the upstream sent during one call (`notifications/message` log lines). */
export interface McpNotification {
  method: string;
  params?: Record<string, unknown>;
}

/** Options of one client→server request (a tool call or any other method). */
export interface McpRequestOptions {
  /** Aborting it cancels the request upstream (`notifications/cancelled`). */
  signal: AbortSignal;
  /**
   * `_meta` sent with the request (W3C `traceparent` / `tracestate`, `io.modelcontextprotocol/logLevel`,
   * anything the downstream client sent). `progressToken` is the transport's own: use `onProgress`.
   */
  meta?: Record<string, unknown>;
  /** Receives the upstream's progress notifications for this request. */
  onProgress?: (progress: Progress) => void;
  /**
   * Receives the log lines (`notifications/message`) the server sends while this request runs. A request
   * with a listener runs alone among such requests on its process or session: on stdio and on 2025
   * sessions nothing on the wire ties a log line to a request, so that is the only way to give each
   * client its own lines.
   */
  onNotification?: (notification: McpNotification) => void;
  /**
   * Answers the server's sampling / elicitation / roots requests caused by this request (2025: real
   * requests, attributed like log lines; 2026-07-28: `input_required` rounds, which carry the request by
   * construction). Without a handler such requests are refused (JSON-RPC -32601).
   */
  onServerRequest?: McpServerRequestHandler;
  /**
   * What the downstream client declared. A 2026-07-28 request carries exactly this in its `_meta`; on 2025
   * sessions (which declared the configured union once) a server request for a capability missing here is
   * refused. Default: none.
   */
  clientCapabilities?: ClientCapabilities;
  /** The client session the call belongs to (stateful servers give each its own process). */
  session?: string;
  /**
   * Params added to the request as they are: a 2026-07-28 client's retry of an `input_required` round
   * (`inputResponses`, `requestState`, spec 2026-07-28 basic/patterns/mrtr), relayed to the server that asked.
   */
  extraParams?: Record<string, unknown>;
}

/**
 * An MCP tool call's payload (`Call<ToolRequest>`): what the tool stack and its transport carry — the
 * tool, its arguments, the request's cache directives, and the per-call options the upstream takes
 * (`_meta`, progress, log lines, server→client requests, the client's capabilities, its session).
 */
export interface ToolRequest extends Omit<McpRequestOptions, 'signal'> {
  /** The tool's name on its server. */
  readonly tool: string;
  readonly arguments: Record<string, unknown>;
  /** The client's `cache-control` (no-cache forces a refresh, no-store bypasses the cache). */
  readonly cacheControl: string | undefined;
}

export interface ToolCallOptions extends McpRequestOptions {
  /** The tool may run twice: a call lost to a crashed process is sent once more. */
  idempotent: boolean;
}

/** Counters for one MCP upstream, for tests, metrics and the admin API. */
export interface McpUpstreamStats {
  server: string;
  /** Processes (stdio) or sessions (http) ready to take calls. */
  ready: number;
  inFlight: number;
  /** Processes started / sessions opened since start, the pre-warmed ones included. */
  started: number;
  /** Processes that exited unexpectedly or were recycled / sessions re-established. */
  restarts: number;
  /** Pids of the live processes (stdio only). */
  pids: number[];
  /** The era the server speaks, once known. */
  era: McpEra | undefined;
  /** Set while the server is down (no process could start, or its URL does not answer): why, and when it is retried. */
  down?: McpServerDown;
}

/** What the server told us about itself: capabilities, instructions, era. */
export interface McpServerInfo {
  era: McpEra;
  capabilities: ServerCapabilities;
  instructions: string | undefined;
  /** The `server/discover` result (2026-07-28) or `initialize` result's protocol version (2025). */
  protocolVersion: string | undefined;
}

export interface McpUpstream {
  readonly name: string;
  /** Starts and connects the pool (or session) and loads its lists. Throws when none can start. */
  start(): Promise<void>;
  /** The server's capabilities, instructions and era, once connected (undefined before). */
  info(): McpServerInfo | undefined;
  /** The last `tools/list` result; refreshed on `notifications/tools/list_changed`. */
  tools(): readonly Tool[];
  resources(): readonly Resource[];
  resourceTemplates(): readonly ResourceTemplate[];
  prompts(): readonly Prompt[];
  /**
   * The cache hint (SEP-2549 `ttlMs`, `cacheScope`) the server sent with its last `kind` list; undefined
   * for 2025-era servers, which send none.
   */
  listCacheHint(kind: McpListKind): McpCacheHint | undefined;
  /** Calls `listener` after the tool list was refreshed. */
  onToolsChanged(listener: () => void): void;
  /** Calls `listener` after any cached list was refreshed, with its kind. */
  onListChanged(listener: (kind: McpListKind) => void): void;
  /** Calls `listener` on each `notifications/resources/updated` (for a URI some client subscribed to). */
  onResourceUpdated(listener: (uri: string) => void): void;
  /**
   * Reloads the lists whose SEP-2549 `ttlMs` has passed since they were loaded (2026-07-28 servers that
   * sent one), resolving once they are in; a changed list is announced as by `list_changed`. Never throws.
   */
  refreshExpiredLists(): Promise<void>;
  /** Calls a tool. Throws GatewayError (`GW_MCP_SERVER_CRASHED`, `GW_UPSTREAM_*`); `isError` results resolve. */
  callTool(name: string, args: Record<string, unknown>, options: ToolCallOptions): Promise<CallToolResult>;
  /**
   * Sends any other client→server request (`resources/read`, `prompts/get`, `completion/complete`,
   * `logging/setLevel`, `resources/subscribe`...) and resolves with its result. Session-state methods
   * (`logging/setLevel`, `resources/subscribe`, `resources/unsubscribe`) reach every process of a pool
   * and are replayed to processes started later. Throws GatewayError; a request the server rejected as
   * the client's fault is `GW_MCP_REQUEST_REJECTED` with the server's `data.rpcCode`.
   */
  request(
    method: string,
    params: Record<string, unknown> | undefined,
    options: McpRequestOptions,
  ): Promise<Record<string, unknown>>;
  stats(): McpUpstreamStats;
  /** The client session ended: a stateful server's process for it is closed. */
  endSession?(session: string): void;
  close(): Promise<void>;
}

/** Longest timer Node accepts: the SDK's own per-request timeout is disabled, our deadline governs. */
export const NO_SDK_TIMEOUT_MS = 2_147_483_647;

/** JSON-RPC codes with which a server says the request itself was wrong (never the upstream's failure). */
const CLIENT_FAULT_RPC_CODES = new Set([-32602, -32601, -32021, -32042, -32002]);

/**
 * Maps what an SDK request threw into a GatewayError. The caller's abort reason wins (deadline or client
 * gone); a closed connection means the process died; a JSON-RPC error that blames the request
 * (-32602, -32601, -32021, -32002) is `GW_MCP_REQUEST_REJECTED` carrying the server's code, message and
 * data; any other is the upstream's fault.
 */
export function upstreamFailure(server: string, error: unknown, signal: AbortSignal): GatewayError {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    return reason instanceof GatewayError
      ? reason
      : new GatewayError('GW_CLIENT_CLOSED', 'client closed the request');
  }
  if (error instanceof GatewayError) return error;
  if (error instanceof SdkError) {
    if (error.code === SdkErrorCode.ConnectionClosed || error.code === SdkErrorCode.NotConnected) {
      return new GatewayError('GW_MCP_SERVER_CRASHED', `MCP server "${server}" exited during the call`, {
        cause: error,
      });
    }
    if (error.code === SdkErrorCode.RequestTimeout) {
      return new GatewayError('GW_UPSTREAM_TIMEOUT', `MCP server "${server}" timed out`, { cause: error });
    }
    return new GatewayError('GW_UPSTREAM_PROTOCOL', `MCP server "${server}": ${error.message}`, {
      cause: error,
    });
  }
  if (error instanceof ProtocolError) {
    const data: Record<string, unknown> = { rpcCode: error.code };
    if (error.data !== undefined) data.rpcData = error.data;
    if (CLIENT_FAULT_RPC_CODES.has(error.code)) {
      return new GatewayError('GW_MCP_REQUEST_REJECTED', `MCP server "${server}": ${error.message}`, {
        cause: error,
        data,
      });
    }
    return new GatewayError('GW_UPSTREAM_PROTOCOL', `MCP server "${server}": ${error.message}`, {
      cause: error,
      data,
    });
  }
  return new GatewayError('GW_UPSTREAM_UNAVAILABLE', `MCP server "${server}": ${String(error)}`, {
    cause: error,
  });
}
