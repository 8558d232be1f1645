// Proxy entrypoint: turns a request on a configured route into a Call for the route's stack; the Reply streams back.
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { stripHopByHop } from '../pipeline/headers.js';
import type { Body, Call, Headers } from '../pipeline/types.js';
import { authorize } from '../server/auth.js';
import type { Endpoint } from '../server/exchange.js';
import { readBody, tooLarge } from '../server/request.js';
import type { CompiledRoute } from '../server/route-table.js';

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

export interface ProxyOptions {
  /**
   * Whether a peer's forwarding headers are believed (`server.trustedProxies`). Default: nobody's, so a
   * client can never choose the `X-Forwarded-*` an upstream sees.
   */
  isTrustedPeer?: (address: string) => boolean;
}

/**
 * The endpoint behind every proxy route (the router says which one, in `Exchange.proxied`). Request bodies
 * are streamed to the upstream, except for calls that may be retried, whose body is read into memory
 * (bounded by the route's `maxRequestBytes`) so it can be replayed. Response bodies are always streamed.
 */
export function proxyEndpoint(options: ProxyOptions = {}): Endpoint {
  const isTrusted = options.isTrustedPeer ?? (() => false);
  return {
    route: 'proxy',
    async handle(x) {
      const { route, upstreamPath } = x.proxied!;
      authorize(x.caller, 'routes', route.name);
      const idempotent = route.idempotent || IDEMPOTENT_METHODS.has(x.method);
      const call: Call = {
        ctx: x.ctx,
        upstream: route.upstream,
        method: x.method,
        path: upstreamPath,
        headers: forwardHeaders(x.req, x.ctx.id, isTrusted),
        body: await requestBody(x.req, route, idempotent && route.bufferBodies),
        idempotent,
        principal: x.principal,
        signal: x.signal,
      };
      const reply = await route.handler(call);
      return { status: reply.status, headers: stripHopByHop(reply.headers), body: reply.body };
    },
  };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}

/**
 * Request headers for the upstream: hop-by-hop removed, `x-request-id` set, and the forwarding headers
 * (`X-Forwarded-For` / `-Proto` / `-Host`, RFC 7239 `Forwarded`): a trusted proxy's are extended, anyone
 * else's replaced by what the gateway saw, so a client cannot spoof its address, scheme or host upstream.
 */
function forwardHeaders(
  req: IncomingMessage,
  requestId: string,
  isTrusted: (peer: string) => boolean,
): Headers {
  const headers = stripHopByHop(req.headers);
  const remote = req.socket.remoteAddress ?? '';
  const previous = req.headers['x-forwarded-for'];
  if (isTrusted(remote)) {
    headers['x-forwarded-for'] = previous === undefined ? remote : `${headerValue(previous)}, ${remote}`;
    headers['x-forwarded-proto'] ??= 'http';
    if (req.headers.host !== undefined) headers['x-forwarded-host'] ??= req.headers.host;
  } else {
    headers['x-forwarded-for'] = remote;
    headers['x-forwarded-proto'] = 'http';
    if (req.headers.host === undefined) delete headers['x-forwarded-host'];
    else headers['x-forwarded-host'] = req.headers.host;
    delete headers.forwarded;
    delete headers['x-real-ip'];
  }
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
