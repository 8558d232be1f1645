// Proxy entrypoint: turns a request on a configured route into a Call for the route's stack; the Reply streams back.
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { GatewayError } from '../errors.js';
import { stripHopByHop } from '../pipeline/headers.js';
import { jobView } from '../jobs/job.js';
import type { Jobs } from '../jobs/jobs.js';
import { withUpstreamTags } from '../server/coded-etag.js';
import type { Body, Call, Headers, Reply } from '../pipeline/types.js';
import { authorize } from '../server/auth.js';
import type { Endpoint, Exchange } from '../server/exchange.js';
import { readBody, tooLarge } from '../server/request.js';
import type { CompiledRoute } from '../server/route-table.js';

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

export interface ProxyOptions {
  /**
   * Whether a peer's forwarding headers are believed (`server.trustedProxies`). Default: nobody's, so a
   * client can never choose the `X-Forwarded-*` an upstream sees.
   */
  isTrustedPeer?: (address: string) => boolean;
  /** Runs the requests of `async` routes as background jobs. Required when a route is `async`. */
  jobs?: Jobs;
}

/** The header naming a job's webhook URL (checked against `jobs.webhooks.allow`); never forwarded. */
const CALLBACK_HEADER = 'x-slipstream-callback';

/**
 * The endpoint behind every proxy route (the router says which one, in `Exchange.proxied`). Request bodies
 * are streamed to the upstream, except for calls that may be retried, whose body is read into memory
 * (bounded by the route's `maxRequestBytes`) so it can be replayed. Response bodies are always streamed.
 */
export function proxyEndpoint(options: ProxyOptions = {}): Endpoint {
  const isTrusted = options.isTrustedPeer ?? (() => false);
  const jobs = options.jobs;
  return {
    route: 'proxy',
    async handle(x) {
      const { route, upstreamPath } = x.proxied!;
      authorize(x.caller, 'routes', route.name);
      const idempotent = route.idempotent || IDEMPOTENT_METHODS.has(x.method);
      const headers = forwardHeaders(x.req, x.ctx.id, isTrusted);
      if (route.acceptEncoding !== undefined) headers['accept-encoding'] = route.acceptEncoding;
      // The client may hold a representation the gateway re-coded ("v1-gzip"): the upstream knows "v1".
      if (headers['if-none-match'] !== undefined)
        headers['if-none-match'] = withUpstreamTags(headers['if-none-match']);
      if (headers['if-match'] !== undefined) headers['if-match'] = withUpstreamTags(headers['if-match']);
      const preferred = route.async === 'prefer' && prefersAsync(headers.prefer);
      if (route.async === 'always' || preferred) {
        if (jobs === undefined) throw new GatewayError('GW_INTERNAL', 'an async route needs the job service');
        return submitJob(jobs, x, headers, idempotent, preferred);
      }
      const call: Call = {
        ctx: x.ctx,
        upstream: route.upstream,
        method: x.method,
        path: upstreamPath,
        headers,
        body: await requestBody(x.req, route, idempotent && route.bufferBodies),
        idempotent,
        principal: x.principal,
        // An accessor, so the request's AbortSignal is made only if a policy asks for it: the deadline
        // and the transport use the request's `Cancel` itself (`carriesOwnCancel`).
        get signal() {
          return x.signal;
        },
      };
      const reply = await route.handler(call);
      return route.coder(
        { status: reply.status, headers: stripHopByHop(reply.headers), body: reply.body },
        { method: x.method, headers: x.req.headers },
      );
    },
  };
}

/**
 * Answers 202 with the job's monitor in `Location` (RFC 7240 §4.1, RFC 9110 §15.3.3) once the job is
 * stored: its request (body read in full, bounded by the route's `maxRequestBytes`) is replayed through
 * the route's stack in the background, by this instance or (Redis) any replica.
 */
async function submitJob(
  jobs: Jobs,
  x: Exchange,
  headers: Headers,
  idempotent: boolean,
  preferred: boolean,
): Promise<Reply> {
  const { route, upstreamPath } = x.proxied!;
  const callback = headerValue(headers[CALLBACK_HEADER]);
  delete headers[CALLBACK_HEADER];
  const prefer = withoutAsync(headers.prefer);
  if (prefer === undefined) delete headers.prefer;
  else headers.prefer = prefer;
  const length = x.req.headers['content-length'];
  const hasBody =
    (length !== undefined && length !== '0') || x.req.headers['transfer-encoding'] !== undefined;
  const job = await jobs.submit({
    route: route.name,
    idempotent,
    callback,
    request: {
      method: x.method,
      path: upstreamPath,
      headers,
      body: hasBody ? await readBody(x.req, route.maxRequestBytes) : undefined,
      principal: x.principal,
      requestId: x.ctx.id,
    },
  });
  const location = jobs.location(job.id);
  const body = Buffer.from(JSON.stringify({ job: jobView(job, location) }));
  return {
    status: 202,
    headers: {
      location,
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(body.length),
      'retry-after': '1',
      'cache-control': 'no-store',
      'x-slipstream-job-status': 'queued',
      ...(preferred ? { 'preference-applied': 'respond-async' } : {}),
      vary: 'Prefer',
    },
    body,
  };
}

/** Whether a `Prefer` field asks for `respond-async` (RFC 7240 §2, §4.1: tokens are case-insensitive). */
function prefersAsync(prefer: string | string[] | undefined): boolean {
  if (prefer === undefined) return false;
  const text = Array.isArray(prefer) ? prefer.join(',') : prefer;
  return text
    .split(',')
    .some((p) => p.split(';')[0]!.split('=')[0]!.trim().toLowerCase() === 'respond-async');
}

/** The `Prefer` field without `respond-async` and `wait` (the gateway answered them); undefined when empty. */
function withoutAsync(prefer: string | string[] | undefined): string | undefined {
  if (prefer === undefined) return undefined;
  const text = Array.isArray(prefer) ? prefer.join(',') : prefer;
  const kept = text.split(',').filter((p) => {
    const name = p.split(';')[0]!.split('=')[0]!.trim().toLowerCase();
    return name !== '' && name !== 'respond-async' && name !== 'wait';
  });
  return kept.length === 0 ? undefined : kept.map((p) => p.trim()).join(', ');
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
