// HTTP upstream transport: one undici Pool per origin, keep-alive, timeouts, streamed bodies, upstream auth.
import { Pool, errors as undiciErrors } from 'undici';
import type { UpstreamConfig } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import { transportSignal } from '../pipeline/cancel.js';
import { discard } from '../pipeline/compose.js';
import type { Call, Handler, Headers, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import type { UpstreamConnectionStats } from '../telemetry/metrics.js';
import { OAuth2TokenProvider } from './oauth2.js';
import type { Upstream } from './upstream.js';

export interface HttpUpstream {
  readonly name: string;
  /** Sends a call and resolves with response headers and a streamed body. Throws GatewayError. */
  readonly handler: Handler;
  /** Opens `pool.warm` connections ahead of traffic. Never throws: a cold upstream is not fatal. */
  warm(): Promise<void>;
  stats(): UpstreamConnectionStats;
  /** Waits for in-flight requests, then closes every connection. */
  close(): Promise<void>;
}

/** An HTTP upstream in the gateway's lifecycle list (`start` warms the pool). */
export function asUpstream(upstream: HttpUpstream): Upstream {
  return {
    name: upstream.name,
    start: () => upstream.warm(),
    stats: () => [upstream.stats()],
    close: () => upstream.close(),
  };
}

/** Concurrent streams per HTTP/2 connection. */
const H2_STREAMS = 100;

/**
 * Builds the transport for one upstream. Requests are streamed both ways (never buffered whole),
 * connections are pooled and kept alive, and failures come back as GatewayErrors with stable codes:
 * `GW_UPSTREAM_TIMEOUT` (connect or first-byte timeout), `GW_UPSTREAM_UNAVAILABLE` (refused, reset),
 * `GW_UPSTREAM_RESPONSE_TOO_LARGE`, `GW_UPSTREAM_AUTH_FAILED`. With OAuth2, a 401 renews the token and
 * the call is sent once more when its body can be replayed.
 */
export function httpUpstream(name: string, config: UpstreamConfig): HttpUpstream {
  const url = new URL(config.url);
  const basePath = url.pathname.replace(/\/$/, '');
  const pool = new Pool(url.origin, {
    connections: config.pool.connections,
    // undici caps concurrent HTTP/2 streams per connection at `pipelining` too (1 would serialise every
    // stream), so HTTP/2 pools allow 100, the streams a Node h2 server accepts by default.
    pipelining: config.pool.http2 ? Math.max(config.pool.pipelining, H2_STREAMS) : config.pool.pipelining,
    keepAliveTimeout: config.pool.keepAlive,
    keepAliveMaxTimeout: Math.max(config.pool.keepAlive, 600_000),
    connectTimeout: config.timeouts.connect,
    headersTimeout: config.timeouts.firstByte,
    bodyTimeout: config.timeouts.idle,
    maxResponseSize: config.maxResponseBytes,
    allowH2: config.pool.http2,
    ...(config.tls === undefined
      ? {}
      : {
          connect: {
            ca: config.tls.ca,
            rejectUnauthorized: config.tls.rejectUnauthorized,
            servername: config.tls.servername,
          },
        }),
  });
  const staticHeaders = Object.entries(config.headers).map(([k, v]) => [k.toLowerCase(), v] as const);
  const tokens = config.auth === undefined ? undefined : new OAuth2TokenProvider(name, config.auth);

  /** The caller's headers plus the upstream's own: static headers and the bearer token win. */
  const outgoing = (callHeaders: Headers, token: string | undefined): Headers => {
    // Nothing to add and nobody to add a header (tracing): send the call's own headers, uncopied.
    if (staticHeaders.length === 0 && token === undefined && !events.attemptStart.hasSubscribers) {
      return callHeaders;
    }
    const headers: Headers = { ...callHeaders };
    for (const [key, value] of staticHeaders) headers[key] = value;
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return headers;
  };

  const send = async (call: Call, token: string | undefined): Promise<Reply> => {
    const headers = outgoing(call.headers, token);
    const attempt = { call, headers };
    publish(events.attemptStart, attempt);
    call.ctx.attempts++;
    // The request's cheap cancellation while the call carries it (no AbortSignal per request).
    const signal = transportSignal(call);
    const started = performance.now();
    try {
      const response = await pool.request({
        path: basePath + call.path,
        method: call.method,
        headers,
        body: call.body,
        signal,
      });
      const durationMs = performance.now() - started;
      call.ctx.upstreamMs += durationMs;
      publish(events.attemptEnd, { call, status: response.statusCode, errorCode: undefined, durationMs });
      return { status: response.statusCode, headers: response.headers, body: response.body };
    } catch (error) {
      const failure = upstreamError(error, name, signal, config);
      const durationMs = performance.now() - started;
      call.ctx.upstreamMs += durationMs;
      publish(events.attemptEnd, { call, status: undefined, errorCode: failure.code, durationMs });
      throw failure;
    }
  };

  const handler: Handler =
    tokens === undefined
      ? (call) => send(call, undefined)
      : async (call) => {
          const token = await tokens.token();
          const reply = await send(call, token);
          const replayable = call.body === undefined || Buffer.isBuffer(call.body);
          if (reply.status !== 401 || !replayable) return reply;
          discard(reply);
          return send(call, await tokens.renew(token));
        };

  return {
    name,
    handler,
    async warm() {
      // The token first, so warm-up requests are authorised like real ones.
      const token = await tokens?.token().catch(() => undefined);
      const headers = outgoing({}, token);
      const count = Math.min(config.pool.warm, config.pool.connections);
      const warmups = Array.from({ length: count }, () =>
        pool
          .request({
            path: basePath || '/',
            // Not HEAD: undici closes the connection after a HEAD (a body may follow it), undoing the warm-up.
            method: 'OPTIONS',
            headers,
            signal: AbortSignal.timeout(config.timeouts.connect),
          })
          .then((r) => r.body.dump())
          .catch(() => {}),
      );
      await Promise.all(warmups);
    },
    stats() {
      const s = pool.stats;
      return {
        upstream: name,
        connected: s.connected,
        free: s.free,
        pending: s.pending,
        queued: s.queued,
        running: s.running,
      };
    },
    close: () => pool.close(),
  };
}

/** Maps undici and socket errors onto gateway codes, naming the upstream but never its credentials. */
function upstreamError(
  error: unknown,
  upstream: string,
  signal: { readonly aborted: boolean; readonly reason: unknown },
  config: UpstreamConfig,
): GatewayError {
  if (error instanceof GatewayError) return error;
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    return reason instanceof GatewayError
      ? reason
      : new GatewayError('GW_CLIENT_CLOSED', 'client closed the request');
  }
  const code = (error as { code?: string }).code;
  const where = `upstream "${upstream}"`;
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new GatewayError(
        'GW_UPSTREAM_TIMEOUT',
        `${where}: no connection within ${config.timeouts.connect} ms`,
        { cause: error },
      );
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new GatewayError(
        'GW_UPSTREAM_TIMEOUT',
        `${where}: no response within ${config.timeouts.firstByte} ms`,
        { cause: error },
      );
    case 'UND_ERR_BODY_TIMEOUT':
      return new GatewayError(
        'GW_UPSTREAM_TIMEOUT',
        `${where}: response stalled for ${config.timeouts.idle} ms`,
        { cause: error },
      );
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      return new GatewayError(
        'GW_UPSTREAM_RESPONSE_TOO_LARGE',
        `${where}: response exceeds ${config.maxResponseBytes} bytes`,
        { cause: error },
      );
    default:
      if (error instanceof undiciErrors.RequestContentLengthMismatchError) {
        return new GatewayError('GW_BAD_REQUEST', 'request body does not match its content-length', {
          cause: error,
        });
      }
      return new GatewayError('GW_UPSTREAM_UNAVAILABLE', `${where}: ${describe(code, error)}`, {
        cause: error,
      });
  }
}

function describe(code: string | undefined, error: unknown): string {
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'connection reset';
  return error instanceof Error ? error.message : 'request failed';
}
