// A listener: one node:http server, its router and its exchanges, Node's own errors in the GW shape, and its drain.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo, ListenOptions, Socket } from 'node:net';
import { GatewayError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import { Exchanges } from './exchange.js';
import type { Endpoint, ExchangeOptions } from './exchange.js';
import { errorReply as defaultErrorReply } from './reply.js';
import type { Router } from './router.js';

export interface ListenerOptions extends ExchangeOptions {
  router: Router;
  /** Serves the requests that reach a proxy route (`Exchange.proxied` says which). */
  proxy?: Endpoint;
}

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

/** Builds (but does not bind) a listener. */
export function createListener(options: ListenerOptions): Listener {
  const { router, proxy } = options;
  const exchanges = new Exchanges(options);
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const query = queryAt === -1 ? '' : url.slice(queryAt);
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
  });
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
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await exchanges.drain(graceMs);
      server.closeAllConnections();
      await closed;
    },
  };
}
