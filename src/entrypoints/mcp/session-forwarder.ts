// Relays a `/mcp` request for another replica's session to that replica, its SSE response streamed back.
import { once } from 'node:events';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { stripHopByHop } from '../../pipeline/headers.js';
import type { Reply } from '../../pipeline/types.js';
import { written } from '../../server/exchange.js';
import type { Exchange, Outcome } from '../../server/exchange.js';

/**
 * Marks a request one process sent another: `1` from another replica (the owner's machine may still pass
 * it to the worker that owns the session), `worker` from a sibling worker (served or 404, never passed on).
 */
export const FORWARDED_HEADER = 'x-slipstream-forwarded';

/** Where a session lives when it is not here (see `SessionOwner`). */
export type RemoteOwner = { replica: string } | { worker: number };

export interface SessionForwarderOptions {
  /** Every other replica's address (`host:port`), each reached over plain HTTP on its data plane. */
  replicas: readonly string[];
  /** Under `serve --workers N`: the Unix socket of each sibling worker, by worker number. */
  siblings?: ReadonlyMap<number, string>;
  /** Longest wait for a connection to the owner; past it the owner counts as gone (404). Default 1 s. */
  connectTimeoutMs?: number;
}

export interface SessionForwarder {
  /**
   * Sends `x`'s request (its body already read: `body`) to `owner` and streams the answer back. An owner
   * that cannot be reached, or is draining, gets `gone()` (the 404 a client answers by opening a new session).
   */
  forward(x: Exchange, owner: RemoteOwner, body: Buffer | undefined, gone: () => Reply): Promise<Outcome>;
  /** Shutdown, first step: ends the relayed standalone SSE streams (GET), as the owner does with its own. */
  drain(): void;
  close(): Promise<void>;
}

/**
 * One kept-alive undici Pool per replica and per sibling worker, built at start-up. Pools have no
 * connection cap of their own: every forwarded request holds one client connection on this process,
 * which `server.limits.maxConnections` bounds, and a cap would queue calls behind long-lived GET streams.
 * There is no header or body timeout either: a GET stream may stay silent for as long as its session
 * lives, and the owner enforces each tool call's deadline; the client going away aborts the hop.
 */
export function sessionForwarder(options: SessionForwarderOptions): SessionForwarder {
  const pool = (origin: string, socketPath?: string) =>
    new Pool(origin, {
      connections: null,
      keepAliveTimeout: 30_000,
      connectTimeout: options.connectTimeoutMs ?? 1_000,
      headersTimeout: 0,
      bodyTimeout: 0,
      ...(socketPath === undefined ? {} : { socketPath }),
    });
  const replicas = new Map(options.replicas.map((address) => [address, pool(`http://${address}`)]));
  const siblings = new Map(
    [...(options.siblings ?? [])].map(([index, path]) => [index, pool('http://localhost', path)]),
  );
  /** Standalone GET streams being relayed, ended by `drain()`: the owner's body, by client response. */
  const streams = new Map<Exchange['res'], Dispatcher.ResponseData['body']>();
  let draining = false;

  const send = async (
    x: Exchange,
    pool: Pool,
    mark: string,
    body: Buffer | undefined,
  ): Promise<Dispatcher.ResponseData | undefined> => {
    try {
      return await pool.request({
        method: x.method,
        path: `${x.path}${x.query}`,
        headers: forwardedHeaders(x, mark),
        body,
        signal: x.signal,
      });
    } catch (error) {
      if (x.signal.aborted) throw x.signal.reason ?? error;
      // Refused, reset or timed out before an answer: the owner crashed or drained away.
      return undefined;
    }
  };

  return {
    async forward(x, owner, body, gone) {
      const to = 'replica' in owner ? replicas.get(owner.replica) : siblings.get(owner.worker);
      if (to === undefined) return gone();
      const answer = await send(x, to, 'replica' in owner ? '1' : 'worker', body);
      if (answer === undefined) return gone();
      const unavailable = await unavailableBody(answer);
      // The owner is draining (a kept-alive connection still reaches it): tell the client at once that
      // the session is gone, so it opens a new one on a replica that stays.
      if (unavailable?.includes('"GW_SHUTTING_DOWN"') === true) return gone();
      x.res.writeHead(answer.statusCode, stripHopByHop(answer.headers));
      if (unavailable !== undefined) {
        x.res.end(unavailable);
        return written(x.res);
      }
      // A stream's head goes out at once, as the owner sent it (a GET stream may stay silent for long).
      if (String(answer.headers['content-type']).startsWith('text/event-stream')) x.res.flushHeaders();
      if (x.method === 'GET') streams.set(x.res, answer.body);
      try {
        // Frame by frame as the owner writes them (progress notifications, the GET stream's messages).
        for await (const chunk of answer.body) {
          if (!x.res.write(chunk)) await once(x.res, 'drain', { signal: x.signal });
        }
        x.res.end();
      } catch {
        // Drained here: the stream ends as the owner's own drain ends it. Otherwise the owner died
        // mid-stream or the client left: the client sees the stream cut, as it would from the owner.
        if (draining && streams.has(x.res)) x.res.end();
        else x.res.destroy();
      } finally {
        streams.delete(x.res);
      }
      return written(x.res);
    },
    drain() {
      draining = true;
      for (const body of streams.values()) body.destroy();
    },
    async close() {
      await Promise.all([...replicas.values(), ...siblings.values()].map((p) => p.destroy()));
    },
  };
}

/**
 * The whole body of a 503 with a small declared length (the owner's own error reply), else undefined: a
 * 503 `GW_SHUTTING_DOWN` says the owner is draining and its sessions are about to close.
 */
async function unavailableBody(answer: Dispatcher.ResponseData): Promise<string | undefined> {
  if (answer.statusCode !== 503 || Number(answer.headers['content-length'] ?? Infinity) > 4_096)
    return undefined;
  return answer.body.text();
}

/**
 * The client's headers for the owner: hop-by-hop ones dropped, its `Host` kept (the owner checks it as
 * this replica did, spec 2025-11-25 basic/transports#security-warning), the request id shared, and the
 * client's address added to `X-Forwarded-For`.
 */
function forwardedHeaders(x: Exchange, mark: string): Record<string, string | string[]> {
  const headers = stripHopByHop(x.req.headers) as Record<string, string | string[]>;
  delete headers['content-length'];
  if (x.req.headers.host !== undefined) headers.host = x.req.headers.host;
  const remote = x.req.socket.remoteAddress ?? '';
  const previous = x.req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = previous === undefined ? remote : `${String(previous)}, ${remote}`;
  headers['x-request-id'] = x.ctx.id;
  headers[FORWARDED_HEADER] = mark;
  return headers;
}
