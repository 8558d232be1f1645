// Proxy entrypoint: turns an HTTP request into a Call for its route and streams the Reply back.
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';
import type { Body, Call, RequestContext } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import { stripHopByHop } from './headers.js';
import { sendError } from './reply-error.js';
import type { CompiledRoute, RouteTable } from './route-table.js';

export interface ProxyOptions {
  table: RouteTable;
  /** Header whose value identifies the caller (for cache scoping). */
  principalHeader: string;
  /** Adds `x-slipstream-overhead-us` to responses. */
  overheadHeader: boolean;
}

const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

let requestCounter = 0;
const idPrefix = `${process.pid.toString(36)}-${Date.now().toString(36)}-`;

/**
 * Registers the catch-all proxy route. Request bodies are streamed to the upstream, except for calls
 * that may be retried, whose body is read into memory (bounded by the route's `maxRequestBytes`) so it
 * can be replayed. Response bodies are always streamed.
 */
export function registerProxy(app: FastifyInstance, options: ProxyOptions): void {
  const { table, principalHeader, overheadHeader } = options;

  // Leave bodies unread: the proxy streams them itself. Encapsulated to this plugin's routes.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.route({
    method: [...ALL_METHODS],
    url: '/*',
    handler: async (request, reply) => {
      const raw = request.raw;
      const method = raw.method ?? 'GET';
      const url = raw.url ?? '/';
      const queryAt = url.indexOf('?');
      const path = queryAt === -1 ? url : url.slice(0, queryAt);
      const match = table.match(method, raw.headers.host, path);
      if (match.route === undefined) {
        const error = match.methodMismatch
          ? new GatewayError('GW_METHOD_NOT_ALLOWED', `method ${method} is not allowed on ${path}`)
          : new GatewayError('GW_ROUTE_NOT_FOUND', `no route matches ${method} ${path}`);
        return sendError(reply, error);
      }
      const { route, upstreamPath } = match;

      const incomingId = raw.headers['x-request-id'];
      const ctx: RequestContext = {
        id:
          typeof incomingId === 'string' && incomingId.length <= 128
            ? incomingId
            : idPrefix + (++requestCounter).toString(36),
        route: route.name,
        startedAt: performance.now(),
        upstreamMs: 0,
        attempts: 0,
      };
      publish(events.requestStart, { ctx, method, path, headers: raw.headers });

      const clientGone = new AbortController();
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished)
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
          path: queryAt === -1 ? upstreamPath : upstreamPath + url.slice(queryAt),
          headers: forwardHeaders(raw, ctx.id),
          body: await requestBody(raw, route, idempotent && route.retries),
          idempotent,
          principal: headerValue(raw.headers[principalHeader]),
          signal: clientGone.signal,
        };
        const result = await route.handler(call);
        status = result.status;
        reply.code(result.status);
        reply.headers(stripHopByHop(result.headers));
        reply.header('x-request-id', ctx.id);
        if (overheadHeader) {
          const overheadUs = Math.max(
            0,
            Math.round((performance.now() - ctx.startedAt - ctx.upstreamMs) * 1000),
          );
          reply.header('x-slipstream-overhead-us', overheadUs);
        }
        return reply.send(result.body);
      } catch (error) {
        const failure = sendError(reply, error, ctx.id);
        status = failure.status;
        errorCode = failure.code;
        return reply;
      } finally {
        publish(events.requestEnd, {
          ctx,
          method,
          path,
          status,
          errorCode,
          durationMs: performance.now() - ctx.startedAt,
        });
      }
    },
  });
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/** Request headers for the upstream: hop-by-hop removed, `x-forwarded-*` and `x-request-id` set. */
function forwardHeaders(raw: IncomingMessage, requestId: string): Call['headers'] {
  const headers = stripHopByHop(raw.headers);
  const remote = raw.socket.remoteAddress ?? '';
  const previous = raw.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = previous === undefined ? remote : `${headerValue(previous)}, ${remote}`;
  headers['x-forwarded-proto'] ??= 'http';
  if (raw.headers.host !== undefined) headers['x-forwarded-host'] ??= raw.headers.host;
  headers['x-request-id'] = requestId;
  return headers;
}

/**
 * The body to send upstream: undefined when there is none, a Buffer when the call may be retried
 * (so it can be replayed), otherwise the request stream itself behind a size limit.
 */
async function requestBody(raw: IncomingMessage, route: CompiledRoute, replayable: boolean): Promise<Body> {
  const length = raw.headers['content-length'];
  const chunked = raw.headers['transfer-encoding'] !== undefined;
  if ((length === undefined || length === '0') && !chunked) return undefined;
  const limit = route.maxRequestBytes;
  if (length !== undefined && Number(length) > limit) throw tooLarge(limit);
  if (!replayable) return length !== undefined && !chunked ? raw : raw.pipe(new ByteLimit(limit));

  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of raw) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

function tooLarge(limit: number): GatewayError {
  return new GatewayError('GW_PAYLOAD_TOO_LARGE', `request body exceeds ${limit} bytes`, {
    data: { maxBytes: limit },
  });
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
