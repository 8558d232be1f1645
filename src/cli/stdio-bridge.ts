// Bridges a stdio MCP client to a streamable HTTP MCP server (the gateway's /mcp): every JSON-RPC message, both ways.
import { SdkHttpError, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import type { JSONRPCMessage, Transport } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import { request } from 'undici';
import { GatewayError } from '../errors.js';

export interface StdioBridgeOptions {
  /** The server's streamable HTTP endpoint, e.g. `http://127.0.0.1:8080/mcp`. */
  url: URL;
  /** Sent on every request (`authorization: Bearer ...`); never logged. */
  headers: Record<string, string>;
  /** The stdio side (a `StdioServerTransport` over this process's stdin and stdout). */
  local: Transport;
  /** Diagnostics: stderr, since stdout carries the protocol. */
  logger: Logger;
  /** How long the start-up probe waits for the server. Default 5000 ms. */
  probeTimeoutMs?: number;
}

/** How a bridge ended: `0` the client closed stdin; otherwise the exit codes below. */
export type BridgeExit = typeof EXIT_OK | typeof EXIT_UNREACHABLE | typeof EXIT_UNAUTHORIZED;

export const EXIT_OK = 0;
/** The server could not be reached (connection refused, DNS, timeout, 5xx at the probe). */
export const EXIT_UNREACHABLE = 3;
/** The server refused our credentials (401 or 403). */
export const EXIT_UNAUTHORIZED = 4;

/**
 * Probes the server once (a `GET` without a session, which opens nothing: reachability and authentication
 * only), then pipes every JSON-RPC message between `local` and one streamable HTTP session (spec 2025-11-25
 * basic/transports): requests, responses, notifications (progress, cancellation, list changes from the GET
 * stream) and server→client requests, in both directions, unchanged. The session id is kept from the
 * client's `initialize`, and `MCP-Protocol-Version` from its result; 2026-07-28 requests carry their own
 * headers from their `_meta`. A request that cannot be delivered is answered with a JSON-RPC error carrying
 * the `GW_*` code; lost credentials or a server gone away end the bridge with their exit code. Resolves
 * with the exit code when the client closes stdin or the bridge gives up.
 */
export async function runStdioBridge(options: StdioBridgeOptions): Promise<BridgeExit> {
  const { url, headers, local, logger } = options;
  const probe = await probeServer(url, headers, options.probeTimeoutMs ?? 5_000);
  if (probe !== undefined) {
    logger.error({ code: probe.error.code, url: url.origin + url.pathname }, probe.error.message);
    return probe.exit;
  }
  const remote = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
  /** Ids of the client's `initialize` requests: their results carry the protocol version to send. */
  const initializing = new Set<string | number>();

  return new Promise<BridgeExit>((resolve) => {
    let ended = false;
    const end = (exit: BridgeExit) => {
      if (ended) return;
      ended = true;
      // The session ends with the client (spec: clients SHOULD send DELETE); a server refusing it is fine.
      void remote
        .terminateSession()
        .catch(() => {})
        .finally(() => {
          void Promise.allSettled([remote.close(), local.close()]).then(() => resolve(exit));
        });
    };

    const undeliverable = (message: JSONRPCMessage, error: unknown) => {
      const failure = bridgeError(error);
      logger.error({ code: failure.code, method: methodOf(message) }, failure.message);
      if ('method' in message && 'id' in message) {
        void local.send({
          jsonrpc: '2.0',
          id: message.id,
          error: {
            code: failure.rpcCode,
            message: `${failure.code}: ${failure.message}`,
            data: { code: failure.code },
          },
        });
      }
      if (failure.code === 'GW_UNAUTHORIZED') end(EXIT_UNAUTHORIZED);
      else if (failure.code === 'GW_UPSTREAM_UNAVAILABLE') end(EXIT_UNREACHABLE);
    };

    local.onmessage = (message) => {
      if ('method' in message && message.method === 'initialize' && 'id' in message)
        initializing.add(message.id);
      remote.send(message).catch((error: unknown) => undeliverable(message, error));
    };
    remote.onmessage = (message) => {
      if ('id' in message && initializing.delete(message.id as string | number) && 'result' in message) {
        const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
        if (typeof version === 'string') remote.setProtocolVersion(version);
      }
      local.send(message).catch((error: unknown) => logger.error({ err: error }, 'stdout write failed'));
    };
    local.onclose = () => end(EXIT_OK);
    local.onerror = (error) => logger.warn({ err: error }, 'stdio client error');
    // Reconnects of the GET stream are the SDK's; what reaches here is logged, the session goes on.
    remote.onerror = (error) => logger.warn({ err: error }, 'MCP server stream error');
    remote.onclose = () => end(EXIT_OK);

    Promise.all([remote.start(), local.start()]).then(
      () => logger.info({ url: url.origin + url.pathname }, 'bridging stdio to MCP server'),
      (error: unknown) => undeliverable({ jsonrpc: '2.0', method: 'start' }, error),
    );
  });
}

/** The first problem the server shows to a session-less GET: unreachable or refusing our credentials. */
async function probeServer(
  url: URL,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ error: GatewayError; exit: BridgeExit } | undefined> {
  try {
    const response = await request(url, {
      method: 'GET',
      headers: { ...headers, accept: 'text/event-stream' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.body.dump();
    if (response.statusCode === 401 || response.statusCode === 403) {
      return { error: unauthorized(url, response.statusCode), exit: EXIT_UNAUTHORIZED };
    }
    if (response.statusCode >= 500) {
      return { error: unreachable(url, `HTTP ${response.statusCode}`), exit: EXIT_UNREACHABLE };
    }
    return undefined;
  } catch (error) {
    return { error: unreachable(url, describe(error)), exit: EXIT_UNREACHABLE };
  }
}

/** Maps a failed send into the GW error the client is told about. */
function bridgeError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  if (error instanceof UnauthorizedError) return unauthorized(undefined, 401);
  if (error instanceof SdkHttpError) {
    const status = (error.data as { status?: number } | undefined)?.status ?? 0;
    if (status === 401 || status === 403) return unauthorized(undefined, status);
    if (status === 404) {
      return new GatewayError(
        'GW_UPSTREAM_UNAVAILABLE',
        'the MCP session is gone (the server restarted or expired it): restart this bridge to open a new one',
        { cause: error },
      );
    }
    return new GatewayError('GW_UPSTREAM_PROTOCOL', error.message, { cause: error });
  }
  return unreachable(undefined, describe(error));
}

function unauthorized(url: URL | undefined, status: number): GatewayError {
  const where = url === undefined ? 'the MCP server' : url.origin + url.pathname;
  return new GatewayError(
    'GW_UNAUTHORIZED',
    `${where} refused the credentials (HTTP ${status}): check --header 'authorization: Bearer ...'`,
  );
}

function unreachable(url: URL | undefined, reason: string): GatewayError {
  const where = url === undefined ? 'the MCP server' : url.origin + url.pathname;
  return new GatewayError('GW_UPSTREAM_UNAVAILABLE', `${where} cannot be reached: ${reason}`);
}

/** `fetch failed: connect ECONNREFUSED 127.0.0.1:1` rather than the bare `fetch failed`. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown error';
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return error.message + cause;
}

function methodOf(message: JSONRPCMessage): string | undefined {
  return 'method' in message ? message.method : undefined;
}
