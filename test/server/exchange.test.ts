import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import { written } from '../../src/server/exchange.js';
import type { Endpoint } from '../../src/server/exchange.js';
import { createListener } from '../../src/server/listener.js';
import type { Listener } from '../../src/server/listener.js';
import { Router } from '../../src/server/router.js';
import { events } from '../../src/telemetry/events.js';
import type { RequestEndEvent } from '../../src/telemetry/events.js';
import { call } from '../helpers/gateway.js';

let listener: Listener | undefined;
afterEach(async () => {
  await listener?.close(100);
  listener = undefined;
});

async function serve(endpoints: Record<string, Endpoint>, draining = () => false): Promise<string> {
  listener = createListener({
    router: new Router(
      Object.entries(endpoints).map(([path, endpoint]) => ({ path, exact: true, endpoint })),
    ),
    isDraining: draining,
    overheadHeader: false,
  });
  return listener.listen({ host: '127.0.0.1', port: 0 });
}

function ends(): { list: RequestEndEvent[]; stop: () => void } {
  const list: RequestEndEvent[] = [];
  const on = (m: unknown) => list.push(m as RequestEndEvent);
  events.requestEnd.subscribe(on);
  return { list, stop: () => events.requestEnd.unsubscribe(on) };
}

/** Sends raw bytes and resolves with the whole answer once the server closes the connection. */
function raw(url: string, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1', () => socket.write(bytes));
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('close', () => resolve(text));
    socket.on('error', () => {});
  });
}

describe('the exchange', () => {
  it('publishes exactly one requestEnd with the error code when an endpoint throws', async () => {
    const url = await serve({
      '/boom': {
        route: 'boom',
        handle: async () => {
          throw new GatewayError('GW_UPSTREAM_TIMEOUT', 'slow');
        },
      },
    });
    const recorded = ends();
    try {
      const response = await call(`${url}/boom`);
      expect([response.status, response.body.error.code]).toEqual([504, 'GW_UPSTREAM_TIMEOUT']);
      await expect.poll(() => recorded.list.length).toBe(1);
      expect(recorded.list[0]).toMatchObject({ status: 504, errorCode: 'GW_UPSTREAM_TIMEOUT' });
      expect(recorded.list[0]!.ctx.route).toBe('boom');
    } finally {
      recorded.stop();
    }
  });

  it("writes an error in the endpoint's own shape when it has one", async () => {
    const url = await serve({
      '/rpc': {
        route: 'rpc',
        handle: async () => {
          throw new GatewayError('GW_BAD_REQUEST', 'nope');
        },
        errorReply: (failure) => ({
          status: failure.status,
          headers: { 'content-type': 'application/json' },
          body: Buffer.from(JSON.stringify({ jsonrpc: '2.0', error: { code: failure.rpcCode }, id: 7 })),
        }),
      },
    });
    const response = await call(`${url}/rpc`);
    expect([response.status, response.body]).toEqual([
      400,
      { jsonrpc: '2.0', error: { code: -32600 }, id: 7 },
    ]);
  });

  it('records the status of a response the endpoint wrote itself, with the request id on it', async () => {
    const url = await serve({
      '/self': {
        route: 'self',
        handle: async (x) => {
          x.res.writeHead(202, { 'content-type': 'text/plain' }).end('mine');
          return written(x.res);
        },
      },
    });
    const recorded = ends();
    try {
      const response = await call(`${url}/self`, { headers: { 'x-request-id': 'r-1' } });
      expect([response.status, response.body, response.headers['x-request-id']]).toEqual([
        202,
        'mine',
        'r-1',
      ]);
      await expect.poll(() => recorded.list.map((e) => e.status)).toEqual([202]);
    } finally {
      recorded.stop();
    }
  });

  it('answers 503 GW_SHUTTING_DOWN with Connection: close while draining, without calling the endpoint', async () => {
    let called = 0;
    const url = await serve(
      {
        '/x': {
          route: 'x',
          handle: async () => {
            called++;
            return { status: 200, headers: {}, body: null };
          },
        },
      },
      () => true,
    );
    const text = await raw(url, 'GET /x HTTP/1.1\r\nhost: a\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 503 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(text).toContain('"code":"GW_SHUTTING_DOWN"');
    expect(called).toBe(0);
  });

  it('at the end of the grace ends streams through their onShutdown and cuts the rest', async () => {
    const url = await serve({
      '/stream': {
        route: 'stream',
        handle: async (x) => {
          x.res.writeHead(200, { 'content-type': 'text/event-stream' });
          x.res.write('data: 1\n\n');
          x.onShutdown(() => x.res.end('event: error\ndata: {"error":{"code":"GW_SHUTTING_DOWN"}}\n\n'));
          return written(x.res);
        },
      },
      '/hang': { route: 'hang', handle: () => new Promise(() => {}) },
    });
    const stream = raw(url, 'GET /stream HTTP/1.1\r\nhost: a\r\n\r\n');
    const hung = raw(url, 'GET /hang HTTP/1.1\r\nhost: a\r\n\r\n');
    await expect.poll(() => listener!.exchanges.size).toBe(2);
    const started = performance.now();
    await listener!.close(300);
    listener = undefined;
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(await stream).toContain('event: error\ndata: {"error":{"code":"GW_SHUTTING_DOWN"}}');
    expect(await hung).toBe('');
  });

  it('waits for requests in flight when they finish within the grace', async () => {
    const url = await serve({
      '/slow': {
        route: 'slow',
        handle: () =>
          new Promise((resolve) =>
            setTimeout(() => resolve({ status: 200, headers: {}, body: Buffer.from('done') }), 100),
          ),
      },
    });
    const answer = raw(url, 'GET /slow HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    await expect.poll(() => listener!.exchanges.size).toBe(1);
    await listener!.close(10_000);
    listener = undefined;
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('done');
  });

  it('answers a path no endpoint serves with 404 and a wrong method with 405 and Allow, in the GW shape', async () => {
    listener = createListener({
      router: new Router([
        {
          path: '/only-post',
          exact: true,
          methods: ['POST'],
          endpoint: { route: 'p', handle: async () => ({ status: 204, headers: {}, body: null }) },
        },
      ]),
      isDraining: () => false,
      overheadHeader: false,
    });
    const url = await listener.listen({ host: '127.0.0.1', port: 0 });
    const missing = await call(`${url}/nothing`);
    expect([missing.status, missing.body.error.code]).toEqual([404, 'GW_ROUTE_NOT_FOUND']);
    const wrong = await call(`${url}/only-post`);
    expect([wrong.status, wrong.body.error.code, wrong.headers.allow]).toEqual([
      405,
      'GW_METHOD_NOT_ALLOWED',
      'POST',
    ]);
  });
});

describe("Node's own rejections, in the GW shape", () => {
  it('answers a malformed request line with 400 GW_BAD_REQUEST', async () => {
    const url = await serve({});
    const text = await raw(url, 'NOT A REQUEST\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toMatchObject({
      error: { code: 'GW_BAD_REQUEST' },
    });
  });

  it('answers oversized request headers with 431 GW_HEADERS_TOO_LARGE', async () => {
    const url = await serve({});
    const text = await raw(url, `GET / HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 431 /);
    expect(text).toContain('"code":"GW_HEADERS_TOO_LARGE"');
  });

  it('refuses CONNECT with 400 in the GW shape: Slipstream is no forward proxy', async () => {
    const url = await serve({});
    const text = await raw(url, 'CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 400 /);
    expect(text).toContain('"code":"GW_BAD_REQUEST"');
  });
});
