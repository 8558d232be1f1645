import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { GatewayError } from '../../src/errors.js';
import { decodeSegment, readBody } from '../../src/server/request.js';

/** Starts a server that reads each body with `readBody` and reports what happened. */
async function bodyServer(limit: number) {
  const outcomes: Array<Buffer | GatewayError> = [];
  let notify: () => void = () => {};
  const server = createServer((req, res) => {
    readBody(req, limit).then(
      (body) => {
        outcomes.push(body);
        res.end('ok');
        notify();
      },
      (error: GatewayError) => {
        outcomes.push(error);
        res.destroy();
        notify();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const next = () => new Promise<void>((resolve) => (notify = resolve));
  return { port, outcomes, next, close: () => new Promise((r) => server.close(r)) };
}

/** Sends a raw request head and `body`, then hangs up when `hangUp`. */
function send(port: number, head: string, body: string, hangUp: boolean): void {
  const socket = connect(port, '127.0.0.1', () => {
    socket.write(`${head}\r\n\r\n${body}`);
    if (hangUp) setTimeout(() => socket.destroy(), 20);
  });
  socket.on('error', () => {});
}

describe('reading a request body', () => {
  it('reports a client that hangs up mid-upload as GW_CLIENT_CLOSED, not as our failure', async () => {
    const server = await bodyServer(1024);
    try {
      const done = server.next();
      send(server.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500', 'only part', true);
      await done;
      expect(server.outcomes[0]).toMatchObject({ code: 'GW_CLIENT_CLOSED', status: 499 });
    } finally {
      await server.close();
    }
  });

  it('rejects a body over the limit, declared or streamed, with 413', async () => {
    const server = await bodyServer(16);
    try {
      let done = server.next();
      send(server.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17', 'x'.repeat(17), false);
      await done;
      done = server.next();
      send(
        server.port,
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked',
        '20\r\n' + 'y'.repeat(32) + '\r\n0\r\n\r\n',
        false,
      );
      await done;
      expect(server.outcomes.map((o) => (o as GatewayError).code)).toEqual([
        'GW_PAYLOAD_TOO_LARGE',
        'GW_PAYLOAD_TOO_LARGE',
      ]);
    } finally {
      await server.close();
    }
  });

  it('decodes a path segment, and refuses a malformed %-encoding instead of throwing', () => {
    expect(decodeSegment('a%20b')).toBe('a b');
    expect(decodeSegment('%E0%A4%A')).toBeUndefined();
  });
});
