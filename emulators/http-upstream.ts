// A small, real, configurable slow HTTP upstream: latency, errors, hangs, body size, OAuth2; counts connections.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { createSecureServer } from 'node:http2';
import type { Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { parseLatency } from './latency.js';
import type { LatencySampler } from './latency.js';
import { answerConfig, listenCounting, rate, sendJson } from './http-kit.js';

export interface OAuthOptions {
  clientId: string;
  clientSecret: string;
  /** Token lifetime in seconds. Default 3600. */
  tokenTtlS?: number;
}

export interface HttpEmulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Latency spec for work requests (see `parseLatency`). Default "0ms". */
  latency?: string;
  /** Fraction (0..1) of work requests answered with `errorStatus`. Default 0. */
  errorRate?: number;
  /** Default 503. */
  errorStatus?: number;
  /** When set, error replies carry `Retry-After` with this many seconds. */
  retryAfterS?: number;
  /** Fraction (0..1) of work requests never answered. Default 0. */
  hangRate?: number;
  /** Approximate size of a success body. Default 64. */
  bodyBytes?: number;
  /** Enables `POST /oauth/token` and requires a valid Bearer token on work requests. */
  oauth?: OAuthOptions;
  /** Latency spec for the token endpoint. Default "0ms". */
  tokenLatency?: string;
  /** Serve HTTPS with this PEM certificate and key; HTTP/2 is offered by ALPN, with HTTP/1.1 as fallback. */
  tls?: { cert: string; key: string };
  /** Injectable random source for tests. Default `Math.random`. */
  random?: () => number;
}

/** Counters served at `GET /__emulator/stats`. */
export interface EmulatorStats {
  /** TCP connections accepted since start or reset (includes the one used to read stats). */
  connections: number;
  openConnections: number;
  /** Work requests (not control or token requests). */
  requests: number;
  inFlight: number;
  maxInFlight: number;
  errors: number;
  hangs: number;
  tokensIssued: number;
  /** 401 replies sent for a missing, expired or revoked token. */
  unauthorized: number;
  /** Work requests received over HTTP/2 (TLS emulators only). */
  http2Requests: number;
  /** Work requests carrying `If-None-Match` or `If-Modified-Since`. */
  conditional: number;
  /** 304 replies sent because such a condition matched. */
  notModified: number;
}

/** Fields `POST /__emulator/config` may change while running. */
export type EmulatorPatch = Partial<
  Pick<
    HttpEmulatorOptions,
    'latency' | 'errorRate' | 'errorStatus' | 'retryAfterS' | 'hangRate' | 'bodyBytes'
  > & {
    tokenTtlS: number;
  }
>;

export interface RunningEmulator {
  readonly url: string;
  readonly port: number;
  stats(): EmulatorStats;
  reset(): void;
  configure(patch: EmulatorPatch): void;
  /** Ends hung requests, closes every socket and stops listening. */
  close(): Promise<void>;
}

interface State {
  latency: LatencySampler;
  latencyIsZero: boolean;
  errorRate: number;
  errorStatus: number;
  retryAfterS: number | undefined;
  hangRate: number;
  bodyBytes: number;
  tokenTtlS: number;
}

/**
 * Starts the emulator. Work requests (any path outside `/__emulator/` and `/oauth/`) wait the sampled
 * latency, then error, hang or answer 200 with a JSON body of about `bodyBytes`. Request headers may override
 * per request: `x-emulate-latency`, `x-emulate-status`, `x-emulate-hang: 1`, `x-emulate-body-bytes`,
 * `x-emulate-retry-after`, `x-emulate-cache-control`, `x-emulate-set-cookie`. `?echo=headers` adds the request headers to the reply.
 * `x-emulate-reply-<name>: <value>` adds header `<name>` to the reply (a JSON array value sends one line per
 * element). A 200 whose `ETag` / `Last-Modified` (set that way) matches the request's `If-None-Match` /
 * `If-Modified-Since` becomes a bodiless 304 (RFC 9110 §13.1). `x-emulate-gzip: 1` negotiates the content
 * coding: gzip when the request's `Accept-Encoding` allows it, identity otherwise, with `Vary: Accept-Encoding`.
 */
export async function startHttpEmulator(options: HttpEmulatorOptions = {}): Promise<RunningEmulator> {
  const random = options.random ?? Math.random;
  const state: State = {
    latency: parseLatency(options.latency ?? '0ms'),
    latencyIsZero: (options.latency ?? '0ms').match(/^0+(\.0+)?(ms|s|us)?$/) !== null,
    errorRate: rate(options.errorRate ?? 0, 'errorRate'),
    errorStatus: options.errorStatus ?? 503,
    retryAfterS: options.retryAfterS,
    hangRate: rate(options.hangRate ?? 0, 'hangRate'),
    bodyBytes: options.bodyBytes ?? 64,
    tokenTtlS: options.oauth?.tokenTtlS ?? 3600,
  };
  const tokenLatency = parseLatency(options.tokenLatency ?? '0ms');
  const zero = (): EmulatorStats => ({
    connections: 0,
    openConnections: 0,
    requests: 0,
    inFlight: 0,
    maxInFlight: 0,
    errors: 0,
    hangs: 0,
    tokensIssued: 0,
    unauthorized: 0,
    http2Requests: 0,
    conditional: 0,
    notModified: 0,
  });
  const stats = zero();
  const sockets = new Set<Socket>();
  const hung = new Set<ServerResponse>();
  /** token -> expiry (epoch ms); revoked tokens are deleted. */
  const tokens = new Map<string, number>();
  const padCache = new Map<number, string>();
  const pad = (bytes: number) => {
    let text = padCache.get(bytes);
    if (text === undefined) {
      text = 'x'.repeat(Math.max(0, bytes - 60));
      if (padCache.size < 64) padCache.set(bytes, text);
    }
    return text;
  };

  const work = (req: IncomingMessage, res: ServerResponse, bodyBytes: number) => {
    const n = ++stats.requests;
    if (req.httpVersionMajor === 2) stats.http2Requests++;
    const header = (name: string) => {
      const value = req.headers[name];
      return typeof value === 'string' ? value : undefined;
    };
    if (options.oauth !== undefined && !authorized(req.headers.authorization)) {
      stats.unauthorized++;
      sendJson(res, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
      return;
    }
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        stats.inFlight--;
      }
    };
    res.once('close', finish);

    const latencyHeader = header('x-emulate-latency');
    const delayMs =
      latencyHeader !== undefined
        ? parseLatency(latencyHeader)(random)
        : state.latencyIsZero
          ? 0
          : state.latency(random);
    const respond = () => {
      if (header('x-emulate-hang') === '1' || (state.hangRate > 0 && random() < state.hangRate)) {
        stats.hangs++;
        hung.add(res);
        res.once('close', () => hung.delete(res));
        return;
      }
      const forcedStatus = header('x-emulate-status');
      if (forcedStatus !== undefined || (state.errorRate > 0 && random() < state.errorRate)) {
        stats.errors++;
        const retryAfter = header('x-emulate-retry-after') ?? state.retryAfterS;
        const extra = replyHeaders(req.headers);
        if (retryAfter !== undefined) extra['retry-after'] = String(retryAfter);
        sendJson(
          res,
          forcedStatus !== undefined ? Number(forcedStatus) : state.errorStatus,
          { ok: false, n },
          extra,
        );
        finish();
        return;
      }
      const size = Number(header('x-emulate-body-bytes') ?? state.bodyBytes);
      const url = req.url ?? '/';
      const reply: Record<string, unknown> = { ok: true, n, method: req.method, path: url, bodyBytes };
      if (url.includes('echo=headers')) reply.headers = req.headers;
      reply.pad = pad(size);
      const extra = replyHeaders(req.headers);
      const cacheControl = header('x-emulate-cache-control');
      const setCookie = header('x-emulate-set-cookie');
      if (cacheControl !== undefined) extra['cache-control'] = cacheControl;
      if (setCookie !== undefined) extra['set-cookie'] = setCookie;
      const conditional =
        req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined;
      if (conditional) stats.conditional++;
      if (conditional && notModified(req.headers, extra)) {
        stats.notModified++;
        res.writeHead(304, extra);
        res.end();
      } else if (header('x-emulate-gzip') === '1') {
        extra.vary = 'Accept-Encoding';
        const text = Buffer.from(JSON.stringify(reply));
        const gzip = /\bgzip\b/i.test(header('accept-encoding') ?? '');
        if (gzip) extra['content-encoding'] = 'gzip';
        const body = gzip ? gzipSync(text) : text;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, ...extra });
        res.end(body);
      } else {
        sendJson(res, 200, reply, extra);
      }
      finish();
    };
    if (delayMs <= 0) respond();
    else {
      const timer = setTimeout(respond, delayMs);
      res.once('close', () => clearTimeout(timer));
    }
  };

  const authorized = (authorization: string | undefined) => {
    if (authorization?.startsWith('Bearer ') !== true) return false;
    const expiresAt = tokens.get(authorization.slice(7));
    return expiresAt !== undefined && Date.now() < expiresAt;
  };

  const issueToken = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const oauth = options.oauth!;
    const form = new URLSearchParams(body);
    let clientId = form.get('client_id');
    let clientSecret = form.get('client_secret');
    const basic = req.headers.authorization;
    if (basic?.startsWith('Basic ') === true) {
      const decoded = Buffer.from(basic.slice(6), 'base64').toString();
      const colon = decoded.indexOf(':');
      clientId = decodeURIComponent(decoded.slice(0, colon));
      clientSecret = decodeURIComponent(decoded.slice(colon + 1));
    }
    const delayMs = tokenLatency(random);
    setTimeout(() => {
      if (form.get('grant_type') !== 'client_credentials') {
        sendJson(res, 400, { error: 'unsupported_grant_type' });
      } else if (clientId !== oauth.clientId || clientSecret !== oauth.clientSecret) {
        sendJson(res, 401, { error: 'invalid_client' });
      } else {
        const token = randomBytes(16).toString('hex');
        tokens.set(token, Date.now() + state.tokenTtlS * 1000);
        stats.tokensIssued++;
        const scope = form.get('scope');
        sendJson(res, 200, {
          access_token: token,
          token_type: 'Bearer',
          expires_in: state.tokenTtlS,
          ...(scope === null ? {} : { scope }),
        });
      }
    }, delayMs);
  };

  const control = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/__emulator/stats') return sendJson(res, 200, stats);
    if (req.method === 'POST' && path === '/__emulator/reset') {
      Object.assign(stats, { ...zero(), openConnections: stats.openConnections, inFlight: stats.inFlight });
      return sendJson(res, 200, { ok: true });
    }
    if (req.method === 'POST' && path === '/__emulator/revoke') {
      tokens.clear();
      return sendJson(res, 200, { ok: true });
    }
    if (req.method === 'POST' && path === '/__emulator/config') return answerConfig(res, body, configure);
    return sendJson(res, 404, { error: `no emulator endpoint ${req.method} ${path}` });
  };

  const configure = (patch: EmulatorPatch) => {
    if (patch.latency !== undefined) {
      state.latency = parseLatency(patch.latency);
      state.latencyIsZero = /^0+(\.0+)?(ms|s|us)?$/.test(patch.latency);
    }
    if (patch.errorRate !== undefined) state.errorRate = rate(patch.errorRate, 'errorRate');
    if (patch.hangRate !== undefined) state.hangRate = rate(patch.hangRate, 'hangRate');
    if (patch.errorStatus !== undefined) state.errorStatus = patch.errorStatus;
    if (patch.retryAfterS !== undefined) state.retryAfterS = patch.retryAfterS;
    if (patch.bodyBytes !== undefined) state.bodyBytes = patch.bodyBytes;
    if (patch.tokenTtlS !== undefined) state.tokenTtlS = patch.tokenTtlS;
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const isControl = url.startsWith('/__emulator/');
    const isToken = url.startsWith('/oauth/token') && options.oauth !== undefined;
    // Fast path: a bodiless work request needs no body read.
    if (
      !isControl &&
      !isToken &&
      req.headers['content-length'] === undefined &&
      req.headers['transfer-encoding'] === undefined
    ) {
      req.resume();
      work(req, res, 0);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (isControl || isToken) chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      if (isControl) control(req, res, body);
      else if (isToken) issueToken(req, res, body);
      else work(req, res, size);
    });
  };
  // The HTTP/2 compatibility API hands over request/response objects shaped like node:http's.
  const server =
    options.tls === undefined
      ? createServer({ keepAliveTimeout: 30_000 }, onRequest)
      : createSecureServer({ ...options.tls, allowHTTP1: true }, onRequest as never);
  const { port, host } = await listenCounting(
    server,
    {
      host: options.host,
      port: options.port,
      event: options.tls === undefined ? 'connection' : 'secureConnection',
    },
    stats,
    sockets,
  );

  return {
    url: `${options.tls === undefined ? 'http' : 'https'}://${host}:${port}`,
    port,
    stats: () => ({ ...stats }),
    reset: () =>
      Object.assign(stats, { ...zero(), openConnections: stats.openConnections, inFlight: stats.inFlight }),
    configure,
    close: () =>
      new Promise<void>((resolve) => {
        // Sockets are destroyed just below; this only ends hung HTTP/1.1 responses early.
        for (const res of hung) res.destroy?.();
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

const REPLY_PREFIX = 'x-emulate-reply-';

/** The reply headers a request asks for with `x-emulate-reply-<name>`; a JSON array value is several lines. */
function replyHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (!name.startsWith(REPLY_PREFIX) || typeof value !== 'string') continue;
    let lines: string | string[] = value;
    if (value.startsWith('[')) {
      try {
        lines = (JSON.parse(value) as unknown[]).map(String);
      } catch {
        // not JSON: the value as sent
      }
    }
    out[name.slice(REPLY_PREFIX.length)] = lines;
  }
  return out;
}

/**
 * Whether a conditional GET matches the reply's validators (RFC 9110 §13.1): `If-None-Match` by weak
 * comparison (`*` matches anything), else `If-Modified-Since` against `Last-Modified`.
 */
function notModified(request: IncomingHttpHeaders, reply: OutgoingHttpHeaders): boolean {
  const ifNoneMatch = request['if-none-match'];
  if (ifNoneMatch !== undefined) {
    const etag = reply.etag;
    if (typeof etag !== 'string') return false;
    const weak = (tag: string) => tag.trim().replace(/^W\//, '');
    return ifNoneMatch.split(',').some((tag) => tag.trim() === '*' || weak(tag) === weak(etag));
  }
  const since = Date.parse(request['if-modified-since'] ?? '');
  const modified = typeof reply['last-modified'] === 'string' ? Date.parse(reply['last-modified']) : NaN;
  return modified <= since;
}
