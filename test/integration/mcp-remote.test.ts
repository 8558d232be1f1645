import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/services.js';

function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

/** One request the recording proxy passed on to the inner gateway's /mcp. */
interface Exchange {
  method: string;
  /** The JSON-RPC method of a POST body (`initialize`, `tools/call`...), if any. */
  rpc: string | undefined;
  /** The `Mcp-Session-Id` the request carried, and the one the answer assigned. */
  session: string | undefined;
  assigned: string | undefined;
  tenant: string | undefined;
  status: number;
  /** True once the answer's body has ended (an SSE stream ends when its session closes). */
  ended: boolean;
}

/**
 * A transparent HTTP proxy in front of `target` that records every exchange: what the outer gateway's
 * MCP client really sends to the inner gateway (sessions opened, 404s, headers).
 */
async function recordingProxy(target: string) {
  const exchanges: Exchange[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let rpc: string | undefined;
      try {
        rpc = (JSON.parse(body.toString()) as { method?: string }).method;
      } catch {
        // not JSON (a GET or DELETE)
      }
      const header = (name: string) => req.headers[name] as string | undefined;
      const exchange: Exchange = {
        method: req.method ?? '',
        rpc,
        session: header('mcp-session-id'),
        assigned: undefined,
        tenant: header('x-tenant'),
        status: 0,
        ended: false,
      };
      exchanges.push(exchange);
      const upstream = httpRequest(
        new URL(req.url ?? '/', target),
        { method: req.method, headers: req.headers },
        (answer) => {
          exchange.status = answer.statusCode ?? 0;
          exchange.assigned = answer.headers['mcp-session-id'] as string | undefined;
          res.writeHead(exchange.status, answer.headers);
          answer.on('end', () => (exchange.ended = true));
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      res.on('close', () => upstream.destroy());
      upstream.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exchanges,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a remote (streamable HTTP) MCP upstream: a gateway in front of another gateway', () => {
  let inner: RunningGateway;
  let outer: RunningGateway;
  let wire: Awaited<ReturnType<typeof recordingProxy>>;

  beforeAll(async () => {
    // The inner gateway closes /mcp sessions idle for 500 ms: the outer's session expires between calls.
    inner = await startGateway(`
upstreams: {}
mcp:
  sessionIdle: 500ms
  servers:
    emu: ${emulatorServer()}
`);
    wire = await recordingProxy(inner.url);
    outer = await startGateway(`
upstreams: {}
mcp:
  separator: "."
  servers:
    remote:
      type: http
      url: ${wire.url}/mcp
      headers: { x-tenant: t1 }
      # The inner gateway speaks both eras; these tests are about 2025 sessions expiring.
      era: 2025-11-25
`);
  });

  afterAll(async () => {
    await outer?.close();
    await wire?.close();
    await inner?.close();
  });

  it('lists the remote tools under their namespaced names and calls them over one kept-alive session', async () => {
    const catalogue = await call(`${outer.url}/tools`);
    expect(catalogue.body.tools.map((t: any) => t.name)).toContain('remote.emu__echo');
    const first = await post(`${outer.url}/tools/remote/emu__pid`, {});
    const second = await post(`${outer.url}/tools/remote/emu__pid`, {});
    expect(first.status).toBe(200);
    expect(second.body.structuredContent.pid).toBe(first.body.structuredContent.pid);
    // One session on the inner gateway, opened once, carried by every call; the static header on every request.
    const opened = wire.exchanges.filter((e) => e.rpc === 'initialize');
    expect(opened).toHaveLength(1);
    const calls = wire.exchanges.filter((e) => e.rpc === 'tools/call');
    expect(calls).toHaveLength(2);
    expect(calls.map((e) => e.session)).toEqual([opened[0]!.assigned, opened[0]!.assigned]);
    expect(new Set(wire.exchanges.map((e) => e.tenant))).toEqual(new Set(['t1']));
  });

  /** Waits until the inner gateway has closed the outer's current session (its SSE stream ends). */
  const expired = async (): Promise<string> => {
    const session = wire.exchanges.filter((e) => e.rpc === 'initialize').at(-1)!.assigned!;
    await expect
      .poll(() => wire.exchanges.some((e) => e.method === 'GET' && e.session === session && e.ended), {
        timeout: 10_000,
      })
      .toBe(true);
    return session;
  };

  it('re-establishes an expired session and retries the call once', async () => {
    expect((await post(`${outer.url}/tools/remote/emu__echo`, { text: 'before' })).status).toBe(200);
    // Idle past the inner gateway's sessionIdle (and its sweep): the outer's session is gone (404).
    const stale = await expired();
    const from = wire.exchanges.length;
    const after = await post(`${outer.url}/tools/remote/emu__echo`, { text: 'after' });
    expect(after.status).toBe(200);
    expect(after.body.content[0].text).toBe('after');
    // On the wire: the call on the stale session got 404, one new session was opened, the call went once more.
    const since = wire.exchanges.slice(from);
    const opened = since.filter((e) => e.rpc === 'initialize');
    expect(opened).toHaveLength(1);
    const fresh = opened[0]!.assigned;
    expect(fresh).not.toBe(stale);
    expect(since.filter((e) => e.rpc === 'tools/call').map((e) => [e.session, e.status])).toEqual([
      [stale, 404],
      [fresh, 200],
    ]);
  });

  it('opens one new session for all the callers that found the old one expired', async () => {
    const stale = await expired();
    const from = wire.exchanges.length;
    const results = await Promise.all(
      ['a', 'b', 'c'].map((text) => post(`${outer.url}/tools/remote/emu__echo`, { text })),
    );
    expect(results.map((r) => [r.status, r.body.content[0].text])).toEqual([
      [200, 'a'],
      [200, 'b'],
      [200, 'c'],
    ]);
    const since = wire.exchanges.slice(from);
    expect(since.filter((e) => e.rpc === 'initialize')).toHaveLength(1);
    const calls = since.filter((e) => e.rpc === 'tools/call');
    expect(calls.filter((e) => e.status === 200)).toHaveLength(3);
    expect(calls.filter((e) => e.status !== 200).every((e) => e.session === stale && e.status === 404)).toBe(
      true,
    );
  });

  it('maps remote tool-call errors to gateway errors', async () => {
    const invalid = await post(`${outer.url}/tools/remote/emu__get_quote`, { symbol: 1 });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('GW_TOOL_INVALID_ARGUMENTS');
  });

  it('starts while a remote server is down, without its tools', async () => {
    const lonely = await startGateway(`
upstreams: {}
mcp:
  servers:
    down: { type: http, url: "http://127.0.0.1:1/mcp", timeout: 1s }
`);
    try {
      expect((await call(`${lonely.url}/tools`)).body.tools).toEqual([]);
      // Its tools are not known yet, but the server is: a call says it is down, not that the tool is missing.
      const response = await post(`${lonely.url}/tools/down/anything`, {});
      expect(response.status).toBe(503);
      expect(response.body.error.code).toBe('GW_MCP_SERVER_DOWN');
    } finally {
      await lonely.close();
    }
  });

  it('keeps retrying a remote server that was down at start-up, and serves its tools once it answers', async () => {
    const port = await freePort();
    const waiting = await startGateway(`
upstreams: {}
mcp:
  servers:
    late: { type: http, url: "http://127.0.0.1:${port}/mcp", timeout: 1s }
`);
    let late: RunningGateway | undefined;
    try {
      expect((await call(`${waiting.url}/tools`)).body.tools).toEqual([]);
      // The server comes up after the gateway started: no restart, no request needed to find it.
      late = await startGateway(`
server: { listen: "127.0.0.1:${port}" }
upstreams: {}
mcp:
  servers:
    emu: ${emulatorServer()}
`);
      await expect
        .poll(async () => (await call(`${waiting.url}/tools`)).body.tools.map((t: any) => t.name), {
          timeout: 10_000,
        })
        .toContain('late__emu__echo');
      const echo = await post(`${waiting.url}/tools/late/emu__echo`, { text: 'found you' });
      expect([echo.status, echo.body.content[0].text]).toEqual([200, 'found you']);
    } finally {
      await waiting.close();
      await late?.close();
    }
  });
});
