// A listener: one node:http server, its router and its exchanges, Node's own errors in the GW shape, and its drain.
import { chmodSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo, ListenOptions, Server as NetServer, Socket } from 'node:net';
import { GatewayError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import { Exchanges } from './exchange.js';
import type { Endpoint, ExchangeOptions } from './exchange.js';
import { errorReply as defaultErrorReply } from './reply.js';
import type { Router } from './router.js';
import { parseTarget } from './target.js';
import type { Target } from './target.js';

/** What one listener lets its clients hold (`server.limits`). */
export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

export interface ListenerOptions extends ExchangeOptions {
  router: Router;
  /** Serves the requests that reach a proxy route (`Exchange.proxied` says which). */
  proxy?: Endpoint;
  /** Default: the `server.limits` defaults. */
  limits?: ConnectionLimits;
  /** Peers exempt from the per-address cap (trusted proxies: every client arrives through them). */
  isTrustedPeer?: (address: string) => boolean;
}

const DEFAULT_LIMITS: ConnectionLimits = {
  maxConnections: 10_000,
  maxConnectionsPerIp: 256,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
};

export interface Listener {
  readonly server: Server;
  readonly exchanges: Exchanges;
  /**
   * Binds `host:port`; resolves with the listener's URL (`http://127.0.0.1:8080`). With `reusePort` (a
   * runtime that honours it, see `cluster/reuse-port.ts`) the socket is this process's own, one of several
   * bound to the port (`SO_REUSEPORT`): the kernel spreads connections over them, no cluster primary in between.
   */
  listen(address: { host: string; port: number; reusePort?: boolean }): Promise<string>;
  /**
   * Also serves on the Unix socket `path` (mode 0600), the same router and limits: how a `--workers`
   * worker reaches a sibling (the `/mcp` session it owns). Closed with the listener.
   */
  listenLocal(path: string): Promise<void>;
  /**
   * Stops accepting, lets requests in flight finish for up to `graceMs`, ends what still runs (streams get
   * their format's error event), then closes every connection.
   */
  close(graceMs: number): Promise<void>;
}

/** Answers a request no endpoint or route matched: 405 with `Allow` when only the method was wrong, else 404. */
function unmatched(allow: readonly string[] | undefined): Endpoint {
  return {
    route: 'unmatched',
    async handle(x) {
      if (allow === undefined) {
        throw new GatewayError('GW_ROUTE_NOT_FOUND', `no route matches ${x.method} ${x.path}`);
      }
      throw new GatewayError('GW_METHOD_NOT_ALLOWED', `method ${x.method} is not allowed on ${x.path}`, {
        data: { allow },
      });
    },
    errorReply: (failure) => {
      const reply = defaultErrorReply(failure);
      return allow === undefined
        ? reply
        : { ...reply, headers: { ...reply.headers, allow: allow.join(', ') } };
    },
  };
}

/** How many Host fields a request carries (Node keeps only the first in `req.headers`). */
function hostCount(raw: string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/** Answers a request whose target cannot be routed (see `parseTarget`) with that error. */
function refuse(error: unknown): Endpoint {
  return {
    route: 'unmatched',
    handle: async () => {
      throw error;
    },
  };
}

/**
 * Slipstream relays no WebSocket. The answer is 426 and the connection closes after it (the exchange
 * closes connections whose request it did not read): Codex, which opens `/v1/responses` with a WebSocket
 * first, switches to HTTP + SSE on a 426 at once, while any other failure costs it seconds of handshake
 * retries. (RFC 9110 §15.5.22 has a 426 name a protocol to upgrade *to*; here it means "not this
 * upgrade", as OpenAI's clients read it, so no `Upgrade` field is sent.)
 */
const WEBSOCKET_UNSUPPORTED = new GatewayError(
  'GW_WEBSOCKET_UNSUPPORTED',
  'WebSocket is not supported here: use plain HTTP (POST /v1/responses streams over SSE)',
);

/** Whether an `Upgrade` field asks for a WebSocket (RFC 6455 §4.1; the token is case-insensitive). */
function isWebSocketUpgrade(upgrade: string | undefined): boolean {
  return upgrade !== undefined && /\bwebsocket\b/i.test(upgrade);
}

/** Node's own rejections of malformed requests (RFC 9112 parse errors, oversized heads, timeouts). */
const CLIENT_ERRORS: Record<string, { status: number; code: ErrorCode; message: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: 'GW_HEADERS_TOO_LARGE',
    message: 'request header fields are too large',
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    status: 408,
    code: 'GW_REQUEST_TIMEOUT',
    message: 'the request did not arrive in time',
  },
};
const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

/** Writes a whole raw HTTP/1.1 error response on a socket Node will not serve, then closes it. */
function rawError(socket: Socket, status: number, code: ErrorCode, message: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(new GatewayError(code, message).toJSON());
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * Closes a new connection at once when its peer address already holds `max`: one client (a slowloris
 * flood, a leaky pool) cannot take the descriptors every other client needs. The map holds only peers
 * with connections open, so it is bounded by `maxConnections`.
 */
function limitPerPeer(server: Server, max: number, exempt: (address: string) => boolean): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    // A Unix socket's peer is a sibling worker of this user (`listenLocal`), not a client address.
    const peer = socket.remoteAddress;
    if (peer === undefined || exempt(peer)) return;
    const count = open.get(peer) ?? 0;
    if (count >= max) {
      socket.destroy();
      return;
    }
    open.set(peer, count + 1);
    socket.once('close', () => {
      const left = open.get(peer)! - 1;
      if (left === 0) open.delete(peer);
      else open.set(peer, left);
    });
  });
}

/** Builds (but does not bind) a listener. */
export function createListener(options: ListenerOptions): Listener {
  const { router, proxy } = options;
  const exchanges = new Exchanges(options);
  const limits = options.limits ?? DEFAULT_LIMITS;
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above on this interval (30 s by default): slow clients are cut near time.
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
    },
    (req, res) => {
      let target: Target;
      try {
        target = parseTarget(req.url ?? '/');
        if (hostCount(req.rawHeaders) > 1) {
          // RFC 9112 §3.2: a request with more than one Host field must be answered 400.
          throw new GatewayError('GW_BAD_REQUEST', 'the request has more than one Host header');
        }
      } catch (error) {
        exchanges.serve(req, res, refuse(error), { path: '(invalid target)', query: '', rest: '' });
        return;
      }
      const { path, query } = target;
      // Without an 'upgrade' listener Node hands an upgrade request to this handler (RFC 9110 §7.8).
      if (isWebSocketUpgrade(req.headers.upgrade)) {
        exchanges.serve(req, res, refuse(WEBSOCKET_UNSUPPORTED), { path, query, rest: path });
        return;
      }
      const match = router.match(req.method ?? 'GET', req.headers.host, path);
      if (match.kind === 'endpoint') {
        exchanges.serve(req, res, match.endpoint, { path, query, rest: match.rest });
      } else if (match.kind === 'proxy' && proxy !== undefined) {
        exchanges.serve(req, res, proxy, {
          path,
          query,
          rest: path,
          proxied: { route: match.route, upstreamPath: match.upstreamPath + query },
        });
      } else {
        exchanges.serve(req, res, unmatched(match.kind === 'none' ? match.allow : undefined), {
          path,
          query,
          rest: path,
        });
      }
    },
  );
  server.maxConnections = limits.maxConnections;
  limitPerPeer(server, limits.maxConnectionsPerIp, options.isTrustedPeer ?? (() => false));
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    const known = CLIENT_ERRORS[error.code ?? ''];
    if (error.code === 'ECONNRESET') socket.destroy();
    else if (known !== undefined) rawError(socket, known.status, known.code, known.message);
    else rawError(socket, 400, 'GW_BAD_REQUEST', `malformed HTTP request (${error.code ?? 'parse error'})`);
  });
  // RFC 9110 §9.3.6: CONNECT asks for a tunnel; Slipstream is not a forward proxy.
  server.on('connect', (_req, socket: Socket) => {
    rawError(socket, 400, 'GW_BAD_REQUEST', 'CONNECT is not supported: Slipstream is not a forward proxy');
  });

  /** The Unix socket listener of `listenLocal`, if any. */
  let local: NetServer | undefined;
  return {
    server,
    exchanges,
    listen: (address) =>
      new Promise<string>((resolve, reject) => {
        server.once('error', reject);
        // `exclusive`: a cluster worker binds its own socket instead of sharing the primary's handle.
        // @types/node 20 does not know `reusePort` (Node 22.12+); Node 20 ignores it.
        const reuse = address.reusePort === true ? { reusePort: true, exclusive: true } : {};
        const options: ListenOptions = { port: address.port, host: address.host, ...reuse };
        server.listen(options, () => {
          server.off('error', reject);
          const bound = server.address() as AddressInfo;
          const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
          resolve(`http://${host}:${bound.port}`);
        });
      }),
    listenLocal: (path) =>
      new Promise<void>((resolve, reject) => {
        // A crashed predecessor in this slot left its socket file behind (the directory is ours alone).
        rmSync(path, { force: true });
        local = createNetServer((socket) => server.emit('connection', socket));
        local.once('error', reject);
        local.listen(path, () => {
          local!.off('error', reject);
          chmodSync(path, 0o600);
          resolve();
        });
      }),
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      local?.close();
      await exchanges.drain(graceMs);
      server.closeAllConnections();
      await closed;
    },
  };
}
