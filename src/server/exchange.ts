// The exchange: the one envelope every request runs in (context, events, draining, client hang-up, error reply).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, toGatewayError } from '../errors.js';
import { Cancel } from '../pipeline/cancel.js';
import type { ErrorCode } from '../errors.js';
import type { Headers, Reply, RequestContext } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';
import { errorReply, writeReply } from './reply.js';
import { parseJson } from '../pipeline/json.js';
import { admit, bucketOf } from '../policies/rate-limit.js';
import type { Bucket, BucketStore } from '../policies/rate-limit.js';
import type { Authenticator, Caller } from './auth.js';
import { readBody, requestContext } from './request.js';
import type { CompiledRoute } from './route-table.js';

/** What an endpoint sees of one request. */
export interface Exchange {
  readonly req: IncomingMessage;
  /** For endpoints that write the response themselves (a relayed stream, the MCP SDK's transport). */
  readonly res: ServerResponse;
  readonly ctx: RequestContext;
  readonly method: string;
  /** The request path, without the query string. */
  readonly path: string;
  /** `''` or the query string with its `?`. */
  readonly query: string;
  /** The path under the endpoint's prefix (`/quotes/get_quote` under `/tools`). */
  readonly rest: string;
  /** The proxy route and the rewritten upstream path, for the proxy endpoint. */
  readonly proxied: { route: CompiledRoute; upstreamPath: string } | undefined;
  /**
   * Who is asking, verified (an API key's principal, a JWT's claim, or the trusted header), or undefined
   * for an anonymous caller. Every cache scope, coalescing key, session limit and transcript owner uses it.
   */
  readonly principal: string | undefined;
  /** The verified caller, with its key's allowances and limits. */
  readonly caller: Caller | undefined;
  /** Aborts with `GW_CLIENT_CLOSED` when the client goes away before the response is complete. */
  readonly signal: AbortSignal;
  /** Reads the body, at most `limit` bytes: `GW_PAYLOAD_TOO_LARGE` beyond, `GW_CLIENT_CLOSED` on a hang-up. */
  body(limit: number): Promise<Buffer>;
  /** Reads and parses a JSON body (see `body` and `parse`). */
  json(limit: number): Promise<unknown>;
  /** Parses JSON the client sent: `GW_BAD_REQUEST` when not UTF-8, deeper than `server.limits.maxJsonDepth`, or not JSON. */
  parse(body: Buffer): unknown;
  /**
   * Registers what to do if the gateway's shutdown grace ends while this exchange still streams (end the
   * stream with the wire format's own error event). Without one, the connection is cut.
   */
  onShutdown(end: () => void): void;
}

/** The endpoint wrote (or is writing) the response itself; the exchange only records how it went. */
export interface Written {
  readonly written: true;
  readonly status: number;
  readonly errorCode?: ErrorCode;
}

/** What an endpoint returns: a Reply for the exchange to write, or word that it wrote one. */
export type Outcome = Reply | Written;

/** Marks a response the endpoint wrote itself; `status` defaults to what `res` carries. */
export function written(res: ServerResponse, errorCode?: ErrorCode): Written {
  return errorCode === undefined
    ? { written: true, status: res.statusCode }
    : { written: true, status: res.statusCode, errorCode };
}

/** One protocol surface behind the router: REST tools, MCP, an LLM wire format, fan-out, admin, the proxy. */
export interface Endpoint {
  /** Metrics route label (never client-chosen). */
  readonly route: string;
  /** Anyone may call it, even with `auth` configured (protected-resource metadata, say). */
  readonly public?: boolean;
  /** The path of an OAuth protected resource (RFC 9728): its 401 names the resource metadata. */
  readonly protectedResource?: string;
  /** A finer label from the path under the prefix (a tool, a group), known before the request starts. */
  label?(rest: string): string;
  handle(x: Exchange): Promise<Outcome>;
  /** This surface's error shape (JSON-RPC, a provider's format). Default: `{"error":{"code","message"}}`. */
  errorReply?(failure: GatewayError, x: Exchange): Reply;
}

/** The request limits every caller gets at admission (`rateLimits`). */
export interface AdmissionLimits {
  store: BucketStore;
  perPrincipal: Bucket | undefined;
  perIp: Bucket | undefined;
}

export interface ExchangeOptions {
  /** True once shutdown began: new requests get 503 `GW_SHUTTING_DOWN` and `Connection: close`. */
  isDraining: () => boolean;
  /** Who is calling. Default: nobody is identified (every caller anonymous). */
  auth?: Authenticator;
  /** Request rate limits checked after authentication, before the endpoint reads anything. */
  rateLimits?: AdmissionLimits;
  /** Adds `x-slipstream-overhead-us` (gateway time minus upstream time) to replies the exchange writes. */
  overheadHeader: boolean;
  /** Deepest JSON nesting `Exchange.parse` accepts. Default 64. */
  maxJsonDepth?: number;
  /**
   * Publish `requestStart` / `requestEnd` (metrics, logs, traces). Default true; the admin listener turns
   * it off, so scrapes and health checks never show up as traffic.
   */
  events?: boolean;
  /** Value of `x-slipstream-worker` on every response (the worker serving it); unset: no such header. */
  workerHeader?: string;
}

/**
 * Runs requests through endpoints. For each: a request context and id, `requestStart` / `requestEnd`
 * events (exactly once each), the draining check, an abort signal that fires when the client goes away
 * (reported as 499), the reply written with `x-request-id`, and any error in the endpoint's shape (the GW
 * JSON shape by default). An unread request body closes the connection after an error reply, so it cannot
 * poison a kept-alive connection. Tracks every exchange in flight, streams included, for the drain.
 */
export class Exchanges {
  private readonly active = new Set<OneExchange>();
  private idle: (() => void) | undefined;

  private readonly events: boolean;

  constructor(private readonly options: ExchangeOptions) {
    this.events = options.events ?? true;
  }

  /** Requests in flight (streams included). */
  get size(): number {
    return this.active.size;
  }

  /** Serves one request on `endpoint`; never rejects. */
  serve(
    req: IncomingMessage,
    res: ServerResponse,
    endpoint: Endpoint,
    target: { path: string; query: string; rest: string; proxied?: Exchange['proxied'] },
  ): void {
    const route =
      target.proxied?.route.name ??
      (endpoint.label === undefined ? endpoint.route : endpoint.label(target.rest));
    const x = new OneExchange(req, res, route, target, this.options);
    this.active.add(x);
    res.once('close', () => {
      if (!res.writableFinished) {
        x.cancel.abort(new GatewayError('GW_CLIENT_CLOSED', 'client closed the request'));
      }
      this.active.delete(x);
      if (this.active.size === 0) this.idle?.();
    });
    if (this.events)
      publish(events.requestStart, { ctx: x.ctx, method: x.method, path: x.path, headers: req.headers });
    this.run(x, endpoint).catch(() => res.destroy());
  }

  /** Authenticates the caller and checks its admission limits; throws 401 / 429. */
  private async admit(x: OneExchange, endpoint: Endpoint): Promise<void> {
    const { auth, rateLimits: limits } = this.options;
    if (auth !== undefined) {
      const caller = await auth.authenticate(x.req.headers);
      const open = endpoint.public === true || x.proxied?.route.public === true;
      if (caller === undefined && auth.required && !open) {
        throw auth.missing(
          endpoint.protectedResource === undefined || !auth.oauth
            ? undefined
            : resourceMetadataUrl(x.req.headers.host, endpoint.protectedResource),
        );
      }
      x.caller = caller;
      x.principal = caller?.id;
    }
    if (limits !== undefined) {
      await admit(limits.store, {
        route: x.ctx.route,
        principal: x.principal,
        ip: x.ctx.clientIp,
        perPrincipal: bucketOf(x.caller?.limits?.requests) ?? limits.perPrincipal,
        perIp: limits.perIp,
      });
    }
  }

  private async run(x: OneExchange, endpoint: Endpoint): Promise<void> {
    const { req, ctx } = x;
    const res = x.response;
    let status = 0;
    let errorCode: ErrorCode | undefined;
    try {
      if (this.options.isDraining()) {
        throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
      }
      if (this.options.auth !== undefined || this.options.rateLimits !== undefined)
        await this.admit(x, endpoint);
      const outcome = await endpoint.handle(x);
      if ('written' in outcome) {
        status = outcome.status;
        errorCode = outcome.errorCode;
      } else {
        status = outcome.status;
        this.write(x, outcome);
      }
    } catch (error) {
      const failure = toGatewayError(x.cancel.aborted ? (x.cancel.reason ?? error) : error);
      status = failure.status;
      errorCode = failure.code;
      // An unread request body would poison a kept-alive connection: close it after this reply.
      if (!req.readableEnded || this.options.isDraining()) res.shouldKeepAlive = false;
      if (res.headersSent || res.destroyed) res.destroy();
      else this.write(x, endpoint.errorReply?.(failure, x) ?? errorReply(failure));
    } finally {
      if (this.events)
        publish(events.requestEnd, {
          ctx,
          method: x.method,
          path: x.path,
          status,
          errorCode,
          durationMs: performance.now() - ctx.startedAt,
        });
    }
  }

  private write(x: OneExchange, reply: Reply): void {
    // The exchange's own fields go in the `writeHead` object: fields set earlier with `setHeader` would
    // make Node merge the two field by field (a measurable share of a proxied request's cost).
    const headers: Headers = { ...reply.headers, 'x-request-id': x.ctx.id };
    if (this.options.workerHeader !== undefined) headers['x-slipstream-worker'] = this.options.workerHeader;
    if (this.options.overheadHeader) {
      const overheadUs = (performance.now() - x.ctx.startedAt - x.ctx.upstreamMs) * 1000;
      headers['x-slipstream-overhead-us'] = String(Math.max(0, Math.round(overheadUs)));
    }
    writeReply(x.response, reply.status, headers, reply.body);
  }

  /**
   * Waits up to `graceMs` for every exchange in flight to finish (their replies close their connections);
   * then ends what still runs (an exchange's `onShutdown`, else its connection is cut). Call after the
   * listener stopped accepting.
   */
  async drain(graceMs: number): Promise<void> {
    // Replies still to be sent say `Connection: close`: a client or load balancer then sends its next
    // request down another connection (to another replica) instead of this one, which would meet a 503.
    for (const active of this.active)
      if (!active.response.headersSent) active.response.shouldKeepAlive = false;
    if (this.active.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (this.idle = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
      this.idle = undefined;
    }
    const ending: Array<Promise<void>> = [];
    for (const active of [...this.active]) {
      if (active.shutdown === undefined) {
        active.response.destroy();
        continue;
      }
      active.shutdown();
      ending.push(flushed(active.response));
    }
    // The final events must reach the socket before the listener closes every connection.
    await Promise.all(ending);
  }
}

/** Most time given to an ended stream's last bytes to leave before its connection is cut. */
const FLUSH_MS = 1_000;

function flushed(res: Exchange['res']): Promise<void> {
  if (res.writableFinished || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, FLUSH_MS);
    function done() {
      clearTimeout(timer);
      resolve();
    }
    res.once('finish', done);
    res.once('close', done);
  });
}

/**
 * One request's exchange. A class, so a request in flight holds one object with its methods on the
 * prototype rather than an object and a closure per method (fewer young objects for each scavenge).
 */
class OneExchange implements Exchange {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  readonly rest: string;
  readonly proxied: Exchange['proxied'];
  /** The request's cancellation (also `ctx.cancel`); `signal` is made from it on first use. */
  readonly cancel = new Cancel();
  readonly ctx: RequestContext;
  principal: string | undefined = undefined;
  caller: Caller | undefined = undefined;
  /** Set by `onShutdown`. */
  shutdown: (() => void) | undefined = undefined;
  private fieldsSet = false;

  constructor(
    readonly req: IncomingMessage,
    /** The response, without the side effect of `res`. */
    readonly response: ServerResponse,
    route: string,
    target: { path: string; query: string; rest: string; proxied?: Exchange['proxied'] },
    private readonly options: Pick<ExchangeOptions, 'maxJsonDepth' | 'workerHeader'>,
  ) {
    this.ctx = requestContext(req.headers, route, this.cancel, req.socket.remoteAddress);
    this.method = req.method ?? 'GET';
    this.path = target.path;
    this.query = target.query;
    this.rest = target.rest;
    this.proxied = target.proxied;
  }

  get signal(): AbortSignal {
    return this.cancel.signal;
  }

  /** An endpoint that writes the response itself gets it with the exchange's own fields already set. */
  get res(): ServerResponse {
    if (!this.fieldsSet) {
      this.fieldsSet = true;
      this.response.setHeader('x-request-id', this.ctx.id);
      if (this.options.workerHeader !== undefined)
        this.response.setHeader('x-slipstream-worker', this.options.workerHeader);
    }
    return this.response;
  }

  body(limit: number): Promise<Buffer> {
    return readBody(this.req, limit);
  }

  async json(limit: number): Promise<unknown> {
    return parseJson(await readBody(this.req, limit), this.options.maxJsonDepth);
  }

  parse(body: Buffer): unknown {
    return parseJson(body, this.options.maxJsonDepth);
  }

  onShutdown(end: () => void): void {
    this.shutdown = end;
  }
}

/** RFC 9728 §3.1: the metadata of resource `/mcp` lives at `/.well-known/oauth-protected-resource/mcp`. */
function resourceMetadataUrl(host: string | undefined, resource: string): string {
  return `http://${host ?? 'localhost'}/.well-known/oauth-protected-resource${resource}`;
}
