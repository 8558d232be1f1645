// Bridges a stdio MCP client to a streamable HTTP MCP server (the gateway's /mcp): every JSON-RPC message, both ways.
import { SdkHttpError, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import type { JSONRPCMessage, JSONRPCRequest, Transport } from '@modelcontextprotocol/client';
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

/** How long a replayed `initialize` (a new session after a 404) may take. */
const RENEW_TIMEOUT_MS = 10_000;

/**
 * Probes the server once (a `GET` without a session, which opens nothing: reachability and authentication
 * only), then pipes every JSON-RPC message between `local` and one streamable HTTP session (spec 2025-11-25
 * basic/transports): requests, responses, notifications (progress, cancellation, list changes from the GET
 * stream) and server→client requests, in both directions, unchanged. The session id is kept from the
 * client's `initialize`, and `MCP-Protocol-Version` from its result; 2026-07-28 requests carry their own
 * headers from their `_meta`. A request that cannot be delivered is answered with a JSON-RPC error carrying
 * the `GW_*` code; a session the server lost (404: it restarted) is renewed by replaying the client's
 * `initialize`; credentials refused mid-session end the bridge (exit 4). Resolves with the exit code when
 * the client closes stdin or the bridge gives up.
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
  /** The client's `initialize`, replayed to open a new session when the server lost ours. */
  let handshake: JSONRPCRequest | undefined;
  /** Answers to the bridge's own requests (a replayed `initialize`), kept from the client. */
  const own = new Map<string, (message: JSONRPCMessage) => void>();
  let renewing: Promise<void> | undefined;
  let renewals = 0;

  /**
   * Opens a new session with the client's own `initialize` (once, however many requests met the 404):
   * spec 2025-11-25 basic/transports#session-management, "the client MUST start a new session". Server-side
   * session state (subscriptions, log level) is not carried over.
   */
  const renew = (): Promise<void> => {
    renewing ??= (async () => {
      const id = `slipstream-bridge-${++renewals}`;
      const answered = new Promise<JSONRPCMessage>((resolve, reject) => {
        const timer = setTimeout(() => {
          own.delete(id);
          reject(new Error('the server did not answer a new initialize'));
        }, RENEW_TIMEOUT_MS);
        own.set(id, (message) => {
          clearTimeout(timer);
          resolve(message);
        });
      });
      await remote.send({ ...handshake!, id });
      const answer = await answered;
      if (!('result' in answer)) throw new Error('the server refused a new session');
      await remote.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      logger.warn(
        'the MCP server lost the session (restarted or expired it): opened a new one; ' +
          'its subscriptions and log level start afresh',
      );
    })().finally(() => (renewing = undefined));
    return renewing;
  };

  /** Sends a client message; one that meets a lost session (404) is sent again on a new one. */
  const deliver = async (message: JSONRPCMessage) => {
    try {
      await remote.send(message);
    } catch (error) {
      const lost = error instanceof SdkHttpError && error.status === 404;
      if (!lost || handshake === undefined || isInitialize(message)) throw error;
      await renew();
      await remote.send(message);
    }
  };

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
      // Credentials that stop working will not start again; an outage may pass, so the bridge stays.
      if (failure.code === 'GW_UNAUTHORIZED') end(EXIT_UNAUTHORIZED);
    };

    local.onmessage = (message) => {
      if (isInitialize(message)) {
        handshake = message;
        initializing.add(message.id);
      }
      deliver(message).catch((error: unknown) => undeliverable(message, error));
    };
    remote.onmessage = (message) => {
      const id = 'id' in message ? message.id : undefined;
      const mine = typeof id === 'string' ? own.get(id) : undefined;
      if (mine !== undefined) own.delete(id as string);
      if (id !== undefined && (mine !== undefined || initializing.delete(id)) && 'result' in message) {
        const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
        if (typeof version === 'string') remote.setProtocolVersion(version);
      }
      if (mine !== undefined) return mine(message);
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

function isInitialize(message: JSONRPCMessage): message is JSONRPCRequest {
  return 'method' in message && message.method === 'initialize' && 'id' in message;
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
    if (error.status === 401 || error.status === 403) return unauthorized(undefined, error.status);
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
