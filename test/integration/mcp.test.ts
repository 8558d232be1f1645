import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

const EMULATOR = fileURLToPath(new URL('../../emulators/mcp-server.ts', import.meta.url));

async function mcpClient(url: string, principal?: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
    requestInit: principal === undefined ? undefined : { headers: { authorization: principal } },
  });
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** A bare `initialize` on /mcp, as a new client (with `principal` as its authorization) sends it. */
function initialize(url: string, principal?: string) {
  return post(
    `${url}/mcp`,
    {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    },
    {
      accept: 'application/json, text/event-stream',
      ...(principal === undefined ? {} : { authorization: principal }),
    },
  );
}

describe('MCP through the gateway: /mcp and /tools on a real stdio pool', () => {
  let gw: RunningGateway;
  const clients: Client[] = [];
  const connect = async (principal?: string) => {
    const client = await mcpClient(gw.url, principal);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
mcp:
  maxRequestBytes: 2048
  servers:
    emu:
      type: stdio
      command: ${JSON.stringify(process.execPath)}
      args: ["--import", "tsx", ${JSON.stringify(EMULATOR)}, "--latency", "10ms"]
      pool: { min: 2, max: 2 }
      timeout: 5s
      tools:
        get_quote: { cache: { ttl: 30s } }
        list_appointments: { cache: { ttl: 30s, scope: shared } }
        sleep: { coalesce: true }
`);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gw?.close();
  });

  it('lets the real SDK client list namespaced tools with their schemas and call them', async () => {
    const client = await connect();
    const { tools } = await client.listTools();
    const quote = tools.find((t) => t.name === 'emu__get_quote');
    expect(quote?.inputSchema.properties).toHaveProperty('symbol');
    expect(tools.map((t) => t.name)).toContain('emu__create_invoice');
    const result = await client.callTool({ name: 'emu__echo', arguments: { text: 'hi' } });
    expect(result.content).toEqual([{ type: 'text', text: 'hi' }]);
  });

  it('serves the REST catalogue and REST tool calls', async () => {
    const catalogue = await call(`${gw.url}/tools`);
    expect(catalogue.status).toBe(200);
    const row = catalogue.body.tools.find((t: any) => t.name === 'emu__list_appointments');
    expect(row).toMatchObject({
      server: 'emu',
      tool: 'list_appointments',
      path: '/tools/emu/list_appointments',
    });
    expect(row.inputSchema.properties).toHaveProperty('date');

    const response = await post(`${gw.url}/tools/emu/create_invoice`, { customer: 'acme', amount: 12.5 });
    expect(response.status).toBe(200);
    expect(response.body.structuredContent).toMatchObject({ customer: 'acme', amount: 12.5, status: 'open' });
    expect(response.body.content[0].type).toBe('text');
  });

  it('returns tool errors (isError) as 200 results', async () => {
    const response = await post(`${gw.url}/tools/emu/fail`, { message: 'no such customer' });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      isError: true,
      content: [{ type: 'text', text: 'no such customer' }],
    });
  });

  it('answers unknown tools and bad arguments with clear errors on REST', async () => {
    const unknown = await post(`${gw.url}/tools/emu/nope`, {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('GW_TOOL_NOT_FOUND');
    const unknownServer = await post(`${gw.url}/tools/other/echo`, {});
    expect(unknownServer.status).toBe(404);
    const badEncoding = await post(`${gw.url}/tools/emu/%E0%A4%A`, {});
    expect([badEncoding.status, badEncoding.body.error.code]).toEqual([400, 'GW_BAD_REQUEST']);

    const invalid = await post(`${gw.url}/tools/emu/get_quote`, { symbol: 42 });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('GW_TOOL_INVALID_ARGUMENTS');
    expect(invalid.body.error.message).toMatch(/symbol/);

    const malformed = await post(`${gw.url}/tools/emu/echo`, '{"text": ');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('GW_BAD_REQUEST');
    const notObject = await post(`${gw.url}/tools/emu/echo`, '[1]');
    expect(notObject.status).toBe(400);

    const huge = await post(`${gw.url}/tools/emu/echo`, { text: 'x'.repeat(5_000) });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('GW_PAYLOAD_TOO_LARGE');
  });

  it('answers an unknown tool with -32602, and bad arguments with an isError result the model can read', async () => {
    const client = await connect();
    await expect(client.callTool({ name: 'emu__nope', arguments: {} })).rejects.toThrow(
      /unknown tool "emu__nope"/,
    );
    // Spec 2025-11-25 server/tools#error-handling: input validation errors are tool execution errors.
    const invalid = await client.callTool({ name: 'emu__get_quote', arguments: { symbol: 42 } });
    expect(invalid).toEqual({
      isError: true,
      content: [
        { type: 'text', text: 'invalid arguments for tool "emu__get_quote": data/symbol must be string' },
      ],
    });
  });

  it('caches tool results per principal through REST', async () => {
    const args = { symbol: 'rest1' };
    const first = await post(`${gw.url}/tools/emu/get_quote`, args, { authorization: 'alice' });
    const second = await post(`${gw.url}/tools/emu/get_quote`, args, { authorization: 'alice' });
    expect(first.headers['x-slipstream-cache']).toBe('miss');
    expect(second.headers['x-slipstream-cache']).toBe('hit');
    expect(second.body.structuredContent.n).toBe(first.body.structuredContent.n);
    const other = await post(`${gw.url}/tools/emu/get_quote`, args, { authorization: 'bob' });
    expect(other.headers['x-slipstream-cache']).toBe('miss');
    expect(other.body.structuredContent.n).not.toBe(first.body.structuredContent.n);
  });

  it('caches tool results through /mcp, shared with REST for shared-scope tools', async () => {
    const client = await connect('carol');
    const a = await client.callTool({ name: 'emu__get_quote', arguments: { symbol: 'mcp1' } });
    const b = await client.callTool({ name: 'emu__get_quote', arguments: { symbol: 'mcp1' } });
    expect((b.structuredContent as any).n).toBe((a.structuredContent as any).n);

    const viaMcp = await client.callTool({
      name: 'emu__list_appointments',
      arguments: { date: '2026-01-02' },
    });
    const viaRest = await post(
      `${gw.url}/tools/emu/list_appointments`,
      { date: '2026-01-02' },
      { authorization: 'dave' },
    );
    expect(viaRest.headers['x-slipstream-cache']).toBe('hit');
    expect(viaRest.body.structuredContent.n).toBe((viaMcp.structuredContent as any).n);
  });

  it('coalesces identical concurrent calls into one upstream call, through REST and /mcp', async () => {
    const client = await connect();
    const args = { ms: 200 };
    const results = await Promise.all([
      ...Array.from({ length: 5 }, () => post(`${gw.url}/tools/emu/sleep`, args).then((r) => r.body)),
      ...Array.from({ length: 5 }, () => client.callTool({ name: 'emu__sleep', arguments: args })),
    ]);
    const counters = new Set(results.map((r: any) => `${r.structuredContent.pid}/${r.structuredContent.n}`));
    expect(counters.size).toBe(1);
  });

  it('relays progress notifications to the /mcp caller', async () => {
    const client = await connect();
    const seen: number[] = [];
    const result = await client.callTool(
      { name: 'emu__progress', arguments: { steps: 3, intervalMs: 30 } },
      undefined,
      {
        onprogress: (p) => seen.push(p.progress),
      },
    );
    expect(result.structuredContent).toMatchObject({ steps: 3 });
    expect(seen.slice(0, 2)).toEqual([1, 2]);
  });

  it('propagates cancellation from the /mcp caller to the upstream process', async () => {
    const client = await connect();
    const controller = new AbortController();
    const pending = client.callTool({ name: 'emu__sleep', arguments: { ms: 20_000 } }, undefined, {
      signal: controller.signal,
    });
    // `sleeping` summed over both pool processes. Calls go to the process with the fewest in flight, so
    // three concurrent probes reach both even while one process holds the sleeper; a round that missed
    // one process is not an answer.
    const sleepers = async () => {
      const stats = await Promise.all([1, 2, 3].map(() => post(`${gw.url}/tools/emu/stats`, {})));
      const byPid = new Map<number, number>();
      for (const s of stats) byPid.set(s.body.structuredContent.pid, s.body.structuredContent.sleeping);
      return byPid.size === 2 ? [...byPid.values()].reduce((a, b) => a + b, 0) : undefined;
    };
    await expect.poll(sleepers, { timeout: 5_000 }).toBe(1);
    controller.abort(new Error('user cancelled'));
    await expect(pending).rejects.toThrow();
    await expect.poll(sleepers, { timeout: 5_000 }).toBe(0);
  });

  it('fails a call whose server process dies with GW_MCP_SERVER_CRASHED, then serves the next one', async () => {
    const crashed = await post(`${gw.url}/tools/emu/crash`, {});
    expect(crashed.status).toBe(502);
    expect(crashed.body.error.code).toBe('GW_MCP_SERVER_CRASHED');
    const next = await post(`${gw.url}/tools/emu/echo`, { text: 'after' });
    expect(next.status).toBe(200);
    expect(next.body.content[0].text).toBe('after');
  });
});

describe('/mcp sessions', () => {
  it('closes a session left idle, and the next request on it gets 404 session-not-found', async () => {
    const gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
mcp:
  sessionIdle: 100ms
  servers:
    emu: ${emulatorServer()}
`);
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`));
    const client = new Client({ name: 'test', version: '1.0.0' });
    try {
      await client.connect(transport);
      const sessionId = transport.sessionId!;
      await new Promise((resolve) => setTimeout(resolve, 400));
      const response = await post(
        `${gw.url}/mcp`,
        { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        { 'mcp-session-id': sessionId, accept: 'application/json, text/event-stream' },
      );
      expect(response.status).toBe(404);
    } finally {
      await client.close();
      await gw.close();
    }
  });
});

describe('the /mcp session limit', () => {
  it('refuses a new session with 503 while every open one is in use, instead of closing one', async () => {
    const gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
mcp:
  maxSessions: 2
  servers:
    emu: ${emulatorServer()}
`);
    const clients: Client[] = [];
    try {
      clients.push(await mcpClient(gw.url), await mcpClient(gw.url));
      const refused = await initialize(gw.url);
      expect([refused.status, refused.body.error.code]).toEqual([503, 'GW_BULKHEAD_FULL']);
      // Both sessions still work.
      for (const client of clients) {
        const result = await client.callTool({ name: 'emu__echo', arguments: { text: 'still here' } });
        expect(result.isError).not.toBe(true);
      }
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await gw.close();
    }
  });

  it('closes the least recently used session once it has been idle for evictableAfter, to admit a new one', async () => {
    const gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
mcp:
  maxSessions: 2
  evictableAfter: 200ms
  servers:
    emu: ${emulatorServer()}
`);
    const clients: Client[] = [];
    try {
      const a = await mcpClient(gw.url);
      const b = await mcpClient(gw.url);
      clients.push(a, b);
      const bSession = (b.transport as StreamableHTTPClientTransport).sessionId!;
      // Both idle past evictableAfter; then A is used again, so B is the least recently used.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await a.callTool({ name: 'emu__echo', arguments: { text: 'a' } })).isError).not.toBe(true);
      const admitted = await initialize(gw.url);
      expect(admitted.status).toBe(200);
      expect(admitted.headers['mcp-session-id']).toEqual(expect.any(String));
      const evicted = await post(
        `${gw.url}/mcp`,
        { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        { 'mcp-session-id': bSession, accept: 'application/json, text/event-stream' },
      );
      expect(evicted.status).toBe(404);
      expect((await a.callTool({ name: 'emu__echo', arguments: { text: 'a' } })).isError).not.toBe(true);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await gw.close();
    }
  });

  it("closes a caller's own idle session past evictableAfter, not another caller's", async () => {
    const gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
mcp:
  maxSessionsPerPrincipal: 1
  evictableAfter: 200ms
  servers:
    emu: ${emulatorServer()}
`);
    const clients: Client[] = [];
    try {
      // Bob's session is the older one: the least recently used of all, but not alice's to close.
      const bob = await mcpClient(gw.url, 'Bearer bob');
      const alice = await mcpClient(gw.url, 'Bearer alice');
      clients.push(bob, alice);
      const aliceSession = (alice.transport as StreamableHTTPClientTransport).sessionId!;
      expect((await initialize(gw.url, 'Bearer alice')).status).toBe(429); // hers is not idle yet
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect((await initialize(gw.url, 'Bearer alice')).status).toBe(200);
      const evicted = await post(
        `${gw.url}/mcp`,
        { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        { 'mcp-session-id': aliceSession, accept: 'application/json, text/event-stream' },
      );
      expect(evicted.status).toBe(404);
      // Bob's session, as idle as hers was, is untouched.
      expect((await bob.callTool({ name: 'emu__echo', arguments: { text: 'b' } })).isError).not.toBe(true);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await gw.close();
    }
  });

  it("caps one caller's sessions with 429 while others still get theirs", async () => {
    const gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
mcp:
  maxSessionsPerPrincipal: 2
  servers:
    emu: ${emulatorServer()}
`);
    const clients: Client[] = [];
    try {
      clients.push(await mcpClient(gw.url, 'Bearer alice'), await mcpClient(gw.url, 'Bearer alice'));
      const refused = await initialize(gw.url, 'Bearer alice');
      expect([refused.status, refused.body.error.code]).toEqual([429, 'GW_TOO_MANY_SESSIONS']);
      // Another caller, and anonymous callers, are not held by alice's limit.
      clients.push(await mcpClient(gw.url, 'Bearer bob'), await mcpClient(gw.url));
      // Alice ends one session (DELETE): she may open another.
      await (clients[0]!.transport as StreamableHTTPClientTransport).terminateSession();
      await expect.poll(async () => (await initialize(gw.url, 'Bearer alice')).status).toBe(200);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await gw.close();
    }
  });
});

describe('per-tool policies on /tools', () => {
  let gw: RunningGateway;
  const stats = async () => (await post(`${gw.url}/tools/emu/stats`, {})).body.structuredContent;

  beforeAll(async () => {
    gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
mcp:
  servers:
    emu: ${emulatorServer({ extra: 'breaker: { threshold: 2, halfOpenAfter: 60s }, tools: { hang: { timeout: 150ms }, sleep: { concurrency: 2 } }' })}
`);
  });
  afterAll(() => gw?.close());

  it("opens one tool's breaker after its failures, failing it fast while the server's other tools still answer", async () => {
    for (let i = 0; i < 2; i++) {
      const timedOut = await post(`${gw.url}/tools/emu/hang`, {});
      expect([timedOut.status, timedOut.body.error.code]).toEqual([504, 'GW_UPSTREAM_TIMEOUT']);
    }
    const before = (await stats()).calls;
    const open = await post(`${gw.url}/tools/emu/hang`, {});
    expect([open.status, open.body.error.code]).toEqual([503, 'GW_BREAKER_OPEN']);
    // Failed fast: the open breaker never sent the call (only the stats probe itself reached the process).
    expect((await stats()).calls).toBe(before + 1);
    const echo = await post(`${gw.url}/tools/emu/echo`, { text: 'still here' });
    expect([echo.status, echo.body.content[0].text]).toEqual([200, 'still here']);
  });

  it('keeps tool errors (isError) out of the breaker', async () => {
    for (let i = 0; i < 4; i++) {
      const failed = await post(`${gw.url}/tools/emu/fail`, { message: 'nope' });
      expect([failed.status, failed.body.isError]).toEqual([200, true]);
    }
  });

  it('runs at most `concurrency` calls of a tool at once; the others wait up to 1 s, then get 503', async () => {
    const calls = Array.from({ length: 4 }, () => post(`${gw.url}/tools/emu/sleep`, { ms: 2_000 }));
    await expect.poll(async () => (await stats()).sleeping).toBe(2);
    const results = await Promise.all(calls);
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 503, 503]);
    expect(results.filter((r) => r.status === 503).map((r) => r.body.error.code)).toEqual([
      'GW_BULKHEAD_FULL',
      'GW_BULKHEAD_FULL',
    ]);
  });
});
