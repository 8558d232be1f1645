// Pieces every emulator server shares: JSON replies, rate flags, listening on loopback with counted sockets.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';

/** Sends `body` as JSON with an exact `content-length` (extra headers win). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | string[]> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * Reads a request body of at most `maxBytes`: `done` gets it, or `undefined` when the client sent more
 * (the rest is still read, so the connection stays usable for the 413).
 */
export function collectBody(
  req: IncomingMessage,
  maxBytes: number,
  done: (body: Buffer | undefined) => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= maxBytes) chunks.push(chunk);
  });
  req.on('end', () => done(size > maxBytes ? undefined : Buffer.concat(chunks, size)));
}

/** Answers `POST /__emulator/config`: applies the JSON patch in `body`, or 400 with the reason it was refused. */
export function answerConfig<Patch>(
  res: ServerResponse,
  body: string,
  configure: (patch: Patch) => void,
): void {
  try {
    configure(JSON.parse(body || '{}') as Patch);
    sendJson(res, 200, { ok: true });
  } catch (error) {
    sendJson(res, 400, { error: (error as Error).message });
  }
}

/** A numeric CLI flag within [min, max], an integer when `integer`; throws a message naming `--name` otherwise. */
export function numberFlag(text: string, name: string, min: number, max: number, integer = false): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new Error(
      `--${name} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${text}"`,
    );
  }
  return value;
}

/** A fraction flag (0..1); throws a message naming it otherwise. */
export function rate(value: number, name: string): number {
  if (!(value >= 0 && value <= 1)) throw new Error(`${name} must be between 0 and 1, got ${value}`);
  return value;
}

/** Connection counters an emulator serves at `/__emulator/stats`. */
export interface ConnectionCounters {
  connections: number;
  openConnections: number;
}

/**
 * Counts every accepted connection into `counters` and keeps it in `sockets` (so close() can cut it),
 * then listens. `event` is `secureConnection` for TLS servers. Resolves with the bound port and a host
 * fit for a URL (IPv6 bracketed).
 */
export async function listenCounting(
  server: Server | Http2SecureServer,
  options: { host?: string; port?: number; event?: 'connection' | 'secureConnection' },
  counters: ConnectionCounters,
  sockets: Set<Socket>,
): Promise<{ port: number; host: string }> {
  // node:http and node:http2 servers share this much of the net.Server API.
  const net = server as Server;
  net.on(options.event ?? 'connection', (socket: Socket) => {
    counters.connections++;
    counters.openConnections++;
    sockets.add(socket);
    socket.once('close', () => {
      counters.openConnections--;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    net.once('error', reject);
    net.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  const { port, address } = net.address() as AddressInfo;
  return { port, host: address.includes(':') ? `[${address}]` : address };
}
