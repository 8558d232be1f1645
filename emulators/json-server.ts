// The shared frame of the seed emulators: a loopback JSON server that counts connections and can be reset.
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { collectBody, sendJson } from './http-kit.js';

/** A request as the emulator's handler sees it: method, path, query and the JSON body (if any). */
export interface JsonRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  headers: IncomingMessage['headers'];
}

/** The handler's answer; `undefined` leaves the request hanging (a hung upstream). */
export interface JsonResponse {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface JsonServerOptions {
  host?: string;
  port?: number;
  /** Answers a work request (anything outside `/__emulator/`). May wait (latency) and may hang. */
  handle: (request: JsonRequest, signal: AbortSignal) => Promise<JsonResponse | undefined>;
  /** Counters of the emulator's own, served with the connection counters at `GET /__emulator/stats`. */
  stats: () => Record<string, number>;
  /** Zeroes the emulator's own counters (`POST /__emulator/reset`). */
  reset: () => void;
  /** Largest request body read. Default 1 MiB. */
  maxBodyBytes?: number;
}

export interface RunningJsonServer {
  readonly url: string;
  readonly port: number;
  /** The emulator's counters plus `connections` (accepted since start or reset) and `openConnections`. */
  stats(): Record<string, number>;
  reset(): void;
  close(): Promise<void>;
}

/** Starts the server on loopback (port 0 = any free port). */
export async function startJsonServer(options: JsonServerOptions): Promise<RunningJsonServer> {
  const maxBodyBytes = options.maxBodyBytes ?? 1024 ** 2;
  const sockets = new Set<Socket>();
  let connections = 0;
  const stats = () => ({ ...options.stats(), connections, openConnections: sockets.size });
  const reset = () => {
    connections = 0;
    options.reset();
  };

  const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    collectBody(req, maxBodyBytes, (raw) => {
      if (raw === undefined) return send(res, { status: 413, body: { error: 'body too large' } });
      const url = new URL(req.url ?? '/', 'http://emulator');
      if (url.pathname === '/__emulator/stats') return send(res, { status: 200, body: stats() });
      if (url.pathname === '/__emulator/reset') {
        reset();
        return send(res, { status: 200, body: { ok: true } });
      }
      let body: unknown;
      try {
        body = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
      } catch {
        return send(res, { status: 400, body: { error: 'body is not JSON' } });
      }
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      const request = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        body,
        headers: req.headers,
      };
      options.handle(request, gone.signal).then(
        (response) => {
          if (response !== undefined && !res.destroyed) send(res, response);
        },
        (error: unknown) => send(res, { status: 500, body: { error: String(error) } }),
      );
    });
  });
  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    stats,
    reset,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function send(res: ServerResponse, response: JsonResponse): void {
  sendJson(res, response.status, response.body, response.headers);
}

/** Waits `ms`, or resolves early (with false) when `signal` aborts: a client that left stops the work. */
export function delay(ms: number, signal: AbortSignal): Promise<boolean> {
  if (ms <= 0) return Promise.resolve(!signal.aborted);
  return new Promise((resolve) => {
    const done = (completed: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(completed);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
