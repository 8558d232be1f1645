// What every MCP upstream (stdio pool, remote session) offers the gateway, and how its failures map to GatewayErrors.
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult, Progress, Tool } from '@modelcontextprotocol/sdk/types.js';
import { GatewayError } from '../../errors.js';

export interface ToolCallOptions {
  /** Aborting it cancels the call upstream (`notifications/cancelled`). */
  signal: AbortSignal;
  /** Receives the upstream's progress notifications for this call. */
  onProgress?: (progress: Progress) => void;
  /** The tool may run twice: a call lost to a crashed process is sent once more. */
  idempotent: boolean;
  /** The client session the call belongs to (stateful servers give each its own process). */
  session?: string;
}

/** An MCP tool call's payload (`Call<ToolRequest>`): what the tool stack and its transport carry. */
export interface ToolRequest {
  /** The tool's name on its server. */
  readonly tool: string;
  readonly arguments: Record<string, unknown>;
  /** The client's `cache-control` (no-cache forces a refresh, no-store bypasses the cache). */
  readonly cacheControl: string | undefined;
  /** Receives the upstream's progress notifications for this call. */
  readonly onProgress?: (progress: Progress) => void;
  /** The client session (an /mcp session id, or one per principal for REST); stateful servers key on it. */
  readonly session?: string;
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
}

export interface McpUpstream {
  readonly name: string;
  /** Starts and initializes the pool (or session) and loads `tools/list`. Throws when none can start. */
  start(): Promise<void>;
  /** The last `tools/list` result; refreshed on `notifications/tools/list_changed`. */
  tools(): readonly Tool[];
  /** Calls `listener` after the tool list was refreshed. */
  onToolsChanged(listener: () => void): void;
  /** Calls a tool. Throws GatewayError (`GW_MCP_SERVER_CRASHED`, `GW_UPSTREAM_*`); `isError` results resolve. */
  callTool(name: string, args: Record<string, unknown>, options: ToolCallOptions): Promise<CallToolResult>;
  stats(): McpUpstreamStats;
  /** The client session ended: a stateful server's process for it is closed. */
  endSession?(session: string): void;
  close(): Promise<void>;
}

/** Longest timer Node accepts: the SDK's own per-request timeout is disabled, our deadline governs. */
export const NO_SDK_TIMEOUT_MS = 2_147_483_647;

/**
 * Maps what an SDK request threw into a GatewayError. The caller's abort reason wins (deadline or client
 * gone); a closed connection means the process died; any other JSON-RPC error is the upstream's fault.
 */
export function upstreamFailure(server: string, error: unknown, signal: AbortSignal): GatewayError {
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    return reason instanceof GatewayError
      ? reason
      : new GatewayError('GW_CLIENT_CLOSED', 'client closed the request');
  }
  if (error instanceof GatewayError) return error;
  if (error instanceof McpError) {
    if (error.code === (ErrorCode.ConnectionClosed as number)) {
      return new GatewayError('GW_MCP_SERVER_CRASHED', `MCP server "${server}" exited during the call`, {
        cause: error,
      });
    }
    if (error.code === (ErrorCode.RequestTimeout as number)) {
      return new GatewayError('GW_UPSTREAM_TIMEOUT', `MCP server "${server}" timed out`, { cause: error });
    }
    return new GatewayError('GW_UPSTREAM_PROTOCOL', `MCP server "${server}": ${error.message}`, {
      cause: error,
      data: { rpcCode: error.code },
    });
  }
  return new GatewayError('GW_UPSTREAM_UNAVAILABLE', `MCP server "${server}": ${String(error)}`, {
    cause: error,
  });
}
