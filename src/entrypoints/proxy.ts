// Proxy entrypoint: turns an HTTP request into a Call for its route and streams the Reply back.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { GatewayError } from '../errors.js';
import type { Body, Call, Headers, Reply } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import { stripHopByHop } from './headers.js';
import { writeError } from './reply-error.js';
import { readBody, requestContext, tooLarge } from './request.js';
import type { CompiledRoute, RouteTable } from './route-table.js';

export interface ProxyOptions {
  table: RouteTable;
  /** Header whose value identifies the caller (for cache scoping). */
  principalHeader: string;
  /** Adds `x-slipstream-overhead-us` to responses. */
  overheadHeader: boolean;
  /** True once shutdown began: new requests get 503 GW_SHUTTING_DOWN and `Connection: close`. */
  isDraining: () => boolean;
}

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Handles a request if a proxy route matches it; returns false to let other entrypoints have it. */
export type ProxyHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * Builds the proxy request handler. It runs on the raw `node:http` request, before fastify's router:
 * the proxy is the hot path and fastify's per-request objects and stream sending cost ~40% of its
 * throughput (bench/RESULTS.md). Request bodies are streamed to the upstream, except for calls that may
 * be retried, whose body is read into memory (bounded by the route's `maxRequestBytes`) so it can be
 * replayed. Response bodies are always streamed.
 */
export function createProxyHandler(options: ProxyOptions): ProxyHandler {
  const { table, principalHeader, overheadHeader } = options;
  return (req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const match = table.match(method, req.headers.host, path);
    if (match.route === undefined) return false;
    const query = queryAt === -1 ? '' : url.slice(queryAt);
    proxy(match.route, match.upstreamPath + query, path, req, res).catch((error: unknown) =>
      writeError(res, error),
    );
    return true;
  };

  async function proxy(
    route: CompiledRoute,
    upstreamPath: string,
    path: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const clientGone = new AbortController();
    const ctx = requestContext(req.headers, route.name, clientGone);
    publish(events.requestStart, { ctx, method, path, headers: req.headers });
    if (options.isDraining()) {
      res.shouldKeepAlive = false;
      const failure = writeError(
        res,
        new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down'),
        ctx.id,
      );
      publish(events.requestEnd, {
        ctx,
        method,
        path,
        status: failure.status,
        errorCode: failure.code,
        durationMs: 0,
      });
      return;
    }

    res.once('close', () => {
      if (!res.writableFinished)
        clientGone.abort(new GatewayError('GW_CLIENT_CLOSED', 'client closed the request'));
    });

    let status = 0;
    let errorCode: GatewayError['code'] | undefined;
    try {
      const idempotent = route.idempotent || IDEMPOTENT_METHODS.has(method);
      const call: Call = {
        ctx,
        upstream: route.upstream,
        method,
        path: upstreamPath,
        headers: forwardHeaders(req, ctx.id),
        body: await requestBody(req, route, idempotent && route.bufferBodies),
        idempotent,
        principal: headerValue(req.headers[principalHeader]),
        signal: clientGone.signal,
      };
      const result = await route.handler(call);
      status = result.status;
      const headers = stripHopByHop(result.headers);
      headers['x-request-id'] = ctx.id;
      if (overheadHeader) {
        const overheadUs = (performance.now() - ctx.startedAt - ctx.upstreamMs) * 1000;
        headers['x-slipstream-overhead-us'] = String(Math.max(0, Math.round(overheadUs)));
      }
      writeReply(res, result.status, headers, result.body);
    } catch (error) {
      // An unread request body would poison a kept-alive connection: close it after this reply.
      if (!req.readableEnded) res.shouldKeepAlive = false;
      const failure = writeError(res, error, ctx.id);
      status = failure.status;
      errorCode = failure.code;
    } finally {
      const durationMs = performance.now() - ctx.startedAt;
      publish(events.requestEnd, { ctx, method, path, status, errorCode, durationMs });
    }
  }
}

/** Writes status, headers and body; a body stream that fails midway cuts the connection (never a short "complete" body). */
function writeReply(res: ServerResponse, status: number, headers: Headers, body: Reply['body']): void {
  res.writeHead(status, headers as OutgoingHttpHeaders);
  if (body === null || Buffer.isBuffer(body)) {
    res.end(body);
    return;
  }
  // pipe + listeners rather than stream.pipeline(), which builds and aborts an AbortController per call.
  body.on('error', () => res.destroy());
  res.on('close', () => {
    if (!body.readableEnded) body.destroy();
  });
  body.pipe(res);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** Request headers for the upstream: hop-by-hop removed, `x-forwarded-*` and `x-request-id` set. */
function forwardHeaders(req: IncomingMessage, requestId: string): Call['headers'] {
  const headers = stripHopByHop(req.headers);
  const remote = req.socket.remoteAddress ?? '';
  const previous = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = previous === undefined ? remote : `${headerValue(previous)}, ${remote}`;
  headers['x-forwarded-proto'] ??= 'http';
  if (req.headers.host !== undefined) headers['x-forwarded-host'] ??= req.headers.host;
  headers['x-request-id'] = requestId;
  return headers;
}

/**
 * The body to send upstream: undefined when there is none, a Buffer when the call may be retried
 * (so it can be replayed), otherwise the request stream itself behind a size limit.
 */
async function requestBody(req: IncomingMessage, route: CompiledRoute, replayable: boolean): Promise<Body> {
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if ((length === undefined || length === '0') && !chunked) return undefined;
  const limit = route.maxRequestBytes;
  if (length !== undefined && Number(length) > limit) throw tooLarge(limit);
  if (!replayable) return length !== undefined && !chunked ? req : req.pipe(new ByteLimit(limit));
  return readBody(req, limit);
}

/** Passes bytes through until `limit` is exceeded, then fails the stream with GW_PAYLOAD_TOO_LARGE. */
class ByteLimit extends Transform {
  private seen = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) callback(tooLarge(this.limit));
    else callback(null, chunk);
  }
}
