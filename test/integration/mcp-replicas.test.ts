import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { emulatorServer } from '../helpers/gateway.js';
import { spawnGateway, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { startWorkers } from '../helpers/workers.js';
import type { Supervised } from '../helpers/workers.js';

const SECRET = randomBytes(24).toString('hex');
const ID = /^s1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$/;

/** A loopback HTTP server that counts the connections it accepts and answers 418 (a replica that must stay unasked). */
async function listener(): Promise<{ server: Server; port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer((_req, res) => res.writeHead(418).end());
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, connections: () => connections };
}

/** A port free right now (the two replicas must know each other's address before either starts). */
async function freePort(): Promise<number> {
  const { server, port } = await listener();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** An id signed with the replicas' secret, as the spec of the format says, naming `owner` (built here, not by the gateway). */
function signedId(owner: string): string {
  const signed = `s1.${Buffer.from(owner).toString('base64url')}.${randomBytes(16).toString('base64url')}`;
  const mac = createHmac('sha256', SECRET).update(signed).digest().subarray(0, 16).toString('base64url');
  return `${signed}.${mac}`;
}

const clients: Client[] = [];
/** The real SDK client: a new session on `url`, or (with `sessionId`) one already open, used as is. */
async function mcpClient(url: string, sessionId?: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { sessionId });
  const client = new Client({ name: 'replicas-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return client;
}

function sessionOf(client: Client): string {
  return (client.transport as StreamableHTTPClientTransport).sessionId!;
}

const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
};

/** One raw JSON-RPC message to `/mcp` (for the parts the SDK client does not expose: GET, DELETE, bad ids). */
function post(url: string, sessionId: string, message: unknown, extra: Record<string, string> = {}) {
  return request(`${url}/mcp`, {
    method: 'POST',
    headers: { ...HEADERS, 'mcp-session-id': sessionId, ...extra },
    body: JSON.stringify(message),
  });
}

/** A session opened by hand (initialize, then initialized), with no standalone GET stream of its own yet. */
async function rawSession(url: string, alone = false): Promise<string> {
  // `alone`: on a connection of its own, so the supervisor of `--workers` hands it to the next worker.
  const init = await request(`${url}/mcp`, {
    method: 'POST',
    headers: HEADERS,
    ...(alone ? { reset: true, dispatcher: new Agent() } : {}),
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
  await init.body.text();
  const id = String(init.headers['mcp-session-id']);
  const initialized = await post(url, id, { jsonrpc: '2.0', method: 'notifications/initialized' });
  await initialized.body.text();
  expect(initialized.statusCode).toBe(202);
  return id;
}

const pingOf = (n: number) => ({ jsonrpc: '2.0', id: n, method: 'ping' });

/** The standalone SSE stream (GET) of session `id`, asked of the gateway at `url`. */
function standaloneStream(url: string, id: string) {
  return request(`${url}/mcp`, {
    method: 'GET',
    headers: { accept: 'text/event-stream', 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' },
    headersTimeout: 5_000,
  });
}

/** How a stream's body ends: `end`, or `error: ...`. */
function endOf(stream: Dispatcher.ResponseData): Promise<string> {
  return new Promise<string>((resolve) => {
    stream.body.once('end', () => resolve('end'));
    stream.body.once('error', (error) => resolve(`error: ${String(error)}`));
    stream.body.resume();
  });
}

describe('legacy /mcp sessions through any replica (signed ids, forwarded to the owner)', () => {
  let a: CliProcess;
  let b: CliProcess;
  /** Listed as a replica: a valid id naming it is forwarded there (the positive control). */
  let trap: Awaited<ReturnType<typeof listener>>;
  /** Not listed: nothing may ever reach it, whatever id names it. */
  let stranger: Awaited<ReturnType<typeof listener>>;
  let ownerA: string;
  let portA: number;
  let config: (port: number) => string;
  const env = { MCP_SESSION_SECRET: SECRET };

  beforeAll(async () => {
    trap = await listener();
    stranger = await listener();
    portA = await freePort();
    const portB = await freePort();
    ownerA = `127.0.0.1:${portA}`;
    const replicas = [ownerA, `127.0.0.1:${portB}`, `127.0.0.1:${trap.port}`];
    config = (port: number) => `
server:
  listen: "127.0.0.1:${port}"
  advertise: "127.0.0.1:${port}"
  replicas: ${JSON.stringify(replicas)}
telemetry: { log: { level: warn } }
upstreams: {}
mcp:
  sessionSecret: \${MCP_SESSION_SECRET}
  servers:
    emu: ${emulatorServer({ pool: '{ min: 1, max: 1 }', extra: 'timeout: 5s' })}
`;
    [a, b] = await Promise.all([spawnGateway(config(portA), { env }), spawnGateway(config(portB), { env })]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
    await stopAll();
    trap?.server.close();
    stranger?.server.close();
  });

  it('issues visible-ASCII ids that name the replica that opened them', async () => {
    const client = await mcpClient(a.url);
    const match = ID.exec(sessionOf(client));
    expect(match).not.toBeNull();
    expect(Buffer.from(match![1]!, 'base64url').toString()).toBe(ownerA);
  });

  it("serves tools/call through B on A's session, A's stdio process answering", async () => {
    const onA = await mcpClient(a.url);
    const throughB = await mcpClient(b.url, sessionOf(onA));
    const ownB = await mcpClient(b.url);
    const pid = async (client: Client) =>
      ((await client.callTool({ name: 'emu__pid', arguments: {} })).structuredContent as { pid: number }).pid;
    const pidA = await pid(onA);
    expect(await pid(throughB)).toBe(pidA);
    // B's own sessions use B's own process: the one above really went to A.
    expect(await pid(ownB)).not.toBe(pidA);
    const echo = await throughB.callTool({ name: 'emu__echo', arguments: { text: 'via B' } });
    expect(echo.content).toEqual([{ type: 'text', text: 'via B' }]);
  });

  it('streams progress notifications of a call made through B as A sends them', async () => {
    const onA = await mcpClient(a.url);
    const throughB = await mcpClient(b.url, sessionOf(onA));
    const seen: number[] = [];
    const result = await throughB.callTool(
      { name: 'emu__progress', arguments: { steps: 3, intervalMs: 30 } },
      undefined,
      { onprogress: (p) => seen.push(p.progress) },
    );
    expect(seen).toEqual([1, 2, 3]);
    expect(result.structuredContent).toMatchObject({ steps: 3 });
  });

  it("relays A's standalone SSE stream (GET) through B: a tools/list_changed reaches it", async () => {
    const id = await rawSession(a.url);
    // The head comes at once, before any event: the stream is open (nothing is written on it until a change).
    const stream = await standaloneStream(b.url, id);
    expect(stream.statusCode).toBe(200);
    expect(stream.headers['content-type']).toContain('text/event-stream');
    let text = '';
    const changed = new Promise<void>((resolve, reject) => {
      stream.body.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('notifications/tools/list_changed')) resolve();
      });
      stream.body.once('end', () => reject(new Error(`stream ended: ${text}`)));
    });
    // A second GET on the same session is refused by its owner (one standalone stream per session).
    const second = await request(`${b.url}/mcp`, {
      method: 'GET',
      headers: { accept: 'text/event-stream', 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' },
    });
    await second.body.text();
    expect(second.statusCode).toBe(409);
    const add = await post(b.url, id, {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'emu__add_tool', arguments: { name: 'late_tool' } },
    });
    await add.body.text();
    expect(add.statusCode).toBe(200);
    await changed;
    stream.body.destroy();
  });

  it('ends the session on DELETE through B: A then answers 404 for it', async () => {
    const id = await rawSession(a.url);
    const ping = await post(a.url, id, pingOf(3));
    await ping.body.text();
    expect(ping.statusCode).toBe(200);
    const deleted = await request(`${b.url}/mcp`, {
      method: 'DELETE',
      headers: { 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' },
    });
    await deleted.body.text();
    expect(deleted.statusCode).toBe(200);
    const after = await post(a.url, id, pingOf(4));
    expect(after.statusCode).toBe(404);
    expect(await after.body.json()).toMatchObject({ error: { code: -32001 }, id: 4 });
  });

  it('forwards a validly signed id to the configured replica it names (the control for the next test)', async () => {
    const before = trap.connections();
    const reply = await post(b.url, signedId(`127.0.0.1:${trap.port}`), pingOf(5));
    await reply.body.text();
    expect(reply.statusCode).toBe(418);
    expect(trap.connections()).toBeGreaterThan(before);
  });

  it('answers 404 at once for a tampered, forged or foreign id, contacting no one', async () => {
    const before = { trap: trap.connections(), stranger: stranger.connections() };
    const good = signedId(`127.0.0.1:${trap.port}`);
    const other = good.at(-2) === 'A' ? 'B' : 'A';
    const ids = [
      // One character of the MAC changed.
      `${good.slice(0, -2)}${other}${good.at(-1)}`,
      // The owner swapped for another configured replica, the MAC kept.
      good.replace(/^s1\.[^.]+/, `s1.${Buffer.from(ownerA).toString('base64url')}`),
      // Signed with another key.
      signedId(`127.0.0.1:${trap.port}`).replace(/\.[^.]+$/, `.${randomBytes(16).toString('base64url')}`),
      // Another version.
      good.replace(/^s1\./, 's2.'),
      // Validly signed, but naming an address that is not a replica.
      signedId(`127.0.0.1:${stranger.port}`),
      'not-an-id',
    ];
    for (const [n, id] of ids.entries()) {
      const reply = await post(b.url, id, pingOf(10 + n));
      expect(reply.statusCode, id).toBe(404);
      expect(await reply.body.json()).toMatchObject({ error: { code: -32001 }, id: 10 + n });
    }
    expect(trap.connections()).toBe(before.trap);
    expect(stranger.connections()).toBe(before.stranger);
  });

  it('never forwards a request that was forwarded already: the receiver answers for itself (404)', async () => {
    const before = trap.connections();
    const onA = await mcpClient(a.url);
    for (const id of [sessionOf(onA), signedId(`127.0.0.1:${trap.port}`)]) {
      const reply = await post(b.url, id, pingOf(20), { 'x-slipstream-forwarded': '1' });
      await reply.body.text();
      expect(reply.statusCode).toBe(404);
    }
    expect(trap.connections()).toBe(before);
    // The same session through B without the mark is forwarded and served.
    const served = await post(b.url, sessionOf(onA), pingOf(21));
    expect(served.statusCode).toBe(200);
    await served.body.text();
  });

  it('answers 404 through B once A is killed, so the client initializes again', async () => {
    const id = await rawSession(a.url);
    const alive = await post(b.url, id, pingOf(30));
    await alive.body.text();
    expect(alive.statusCode).toBe(200);
    await a.stop('SIGKILL');
    const gone = await post(b.url, id, pingOf(31));
    expect(gone.statusCode).toBe(404);
    expect(await gone.body.json()).toMatchObject({ error: { code: -32001 }, id: 31 });
    // B itself still serves: a new session there works.
    const fresh = await mcpClient(b.url);
    expect(ID.exec(sessionOf(fresh))).not.toBeNull();
  });

  it("ends the relayed GET stream when A drains, and answers 404 for A's sessions while A finishes its calls", async () => {
    // A new process at A's address: the old one's sessions are unknown to it.
    a = await spawnGateway(config(portA), { env });
    const onA = await mcpClient(a.url);
    const id = await rawSession(a.url);
    const stream = await standaloneStream(b.url, id);
    expect(stream.statusCode).toBe(200);
    const ended = endOf(stream);
    // A call in flight keeps A draining (up to its grace) after SIGTERM.
    const sleeping = onA.callTool({ name: 'emu__sleep', arguments: { ms: 1_500 } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const exited = a.stop('SIGTERM');
    expect(await ended).toBe('end');
    const gone = await post(b.url, id, pingOf(40));
    expect(gone.statusCode).toBe(404);
    await gone.body.text();
    expect((await sleeping).structuredContent).toMatchObject({ slept: 1_500 });
    expect(await exited).toBe(0);
  });

  it('ends the GET streams B relays when B drains, A keeping the session', async () => {
    a = await spawnGateway(config(portA), { env });
    const id = await rawSession(a.url);
    const stream = await standaloneStream(b.url, id);
    expect(stream.statusCode).toBe(200);
    const ended = endOf(stream);
    // Within the grace (10 s): B does not wait for a stream that would never end by itself.
    const started = Date.now();
    expect(await b.stop('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(await ended).toBe('end');
    const onA = await post(a.url, id, pingOf(50));
    await onA.body.text();
    expect(onA.statusCode).toBe(200);
  });
});

describe('legacy /mcp sessions through any worker of serve --workers 2 (no secret configured)', () => {
  let gw: Supervised;

  beforeAll(async () => {
    gw = await startWorkers(`
upstreams: {}
mcp:
  servers:
    emu: ${emulatorServer({ pool: '{ min: 2, max: 2 }', extra: 'timeout: 5s' })}
`);
  });

  afterAll(() => gw?.process.stop());

  /** One POST on a connection of its own: the supervisor hands connections to the workers in turn. */
  const alone = async (id: string, message: unknown) => {
    const response = await request(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { ...HEADERS, 'mcp-session-id': id },
      body: JSON.stringify(message),
      reset: true,
      dispatcher: new Agent(),
    });
    return {
      status: response.statusCode,
      worker: response.headers['x-slipstream-worker'],
      body: await response.body.text(),
    };
  };

  it('serves a session from whichever worker a connection reaches, the owner answering', async () => {
    const id = await rawSession(gw.url);
    const match = ID.exec(id);
    expect(match).not.toBeNull();
    const owner = Buffer.from(match![1]!, 'base64url').toString();
    expect(owner).toMatch(/^\/[12]$/);
    const replies = [];
    for (let n = 0; n < 8; n++) {
      replies.push(
        await alone(id, {
          jsonrpc: '2.0',
          id: 100 + n,
          method: 'tools/call',
          params: { name: 'emu__pid', arguments: {} },
        }),
      );
    }
    expect(replies.map((r) => r.status)).toEqual(Array(8).fill(200));
    // Every answer came from the owning worker (its header and its one stdio process).
    expect(new Set(replies.map((r) => r.worker))).toEqual(new Set([owner.slice(1)]));
    const pids = new Set(replies.map((r) => /"pid\\?":(\d+)/.exec(r.body)?.[1]));
    expect([...pids]).toEqual([expect.stringMatching(/^\d+$/)]);
  });

  it('streams progress and the standalone GET through the other worker, and ends the session there', async () => {
    const id = await rawSession(gw.url);
    for (let n = 0; n < 2; n++) {
      const progress = await request(`${gw.url}/mcp`, {
        method: 'POST',
        headers: { ...HEADERS, 'mcp-session-id': id },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 200 + n,
          method: 'tools/call',
          params: {
            name: 'emu__progress',
            arguments: { steps: 2, intervalMs: 10 },
            _meta: { progressToken: n },
          },
        }),
        reset: true,
        dispatcher: new Agent(),
      });
      const text = await progress.body.text();
      expect(progress.statusCode).toBe(200);
      expect(text.match(/notifications\/progress/g)).toHaveLength(2);
    }
    // One standalone stream per session, whichever workers the two GETs reach: the second is refused (409).
    const streams = [];
    for (let n = 0; n < 2; n++) {
      streams.push(
        await request(`${gw.url}/mcp`, {
          method: 'GET',
          headers: {
            accept: 'text/event-stream',
            'mcp-session-id': id,
            'mcp-protocol-version': '2025-11-25',
          },
          headersTimeout: 5_000,
          reset: true,
          dispatcher: new Agent(),
        }),
      );
    }
    expect(streams.map((s) => s.statusCode)).toEqual([200, 409]);
    await streams[1]!.body.text();
    streams[0]!.body.on('error', () => {}).destroy();
    const tampered = await alone(
      `${id.slice(0, -2)}${id.at(-2) === 'A' ? 'B' : 'A'}${id.at(-1)}`,
      pingOf(300),
    );
    expect(tampered.status).toBe(404);
    for (let n = 0; n < 2; n++) {
      const deleted = await request(`${gw.url}/mcp`, {
        method: 'DELETE',
        headers: { 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' },
        reset: true,
        dispatcher: new Agent(),
      });
      await deleted.body.text();
      // The first DELETE ends it, wherever it lands; the second finds no session.
      expect(deleted.statusCode).toBe(n === 0 ? 200 : 404);
    }
  });
});

describe('a session of one worker of replica A used through replica B (two hops)', () => {
  let a: Supervised;
  let b: CliProcess;

  beforeAll(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const replicas = [`127.0.0.1:${portA}`, `127.0.0.1:${portB}`];
    const config = (port: number) => `
server:
  listen: "127.0.0.1:${port}"
  advertise: "127.0.0.1:${port}"
  replicas: ${JSON.stringify(replicas)}
  workerHeader: true
telemetry: { log: { level: warn } }
upstreams: {}
mcp:
  sessionSecret: "${SECRET}"
  servers:
    emu: ${emulatorServer({ pool: '{ min: 2, max: 2 }', extra: 'timeout: 5s' })}
`;
    [a, b] = await Promise.all([startWorkers(config(portA)), spawnGateway(config(portB))]);
  });

  afterAll(async () => {
    await a?.process.stop();
    await b?.stop();
  });

  it("reaches the owning worker through B whichever of A's workers B's connection lands on", async () => {
    // A session of each worker: the supervisor hands connections to the workers in turn.
    const byOwner = new Map<string, string>();
    for (let tries = 0; tries < 8 && byOwner.size < 2; tries++) {
      const id = await rawSession(a.url, true);
      byOwner.set(Buffer.from(ID.exec(id)![1]!, 'base64url').toString(), id);
    }
    const owners = [...byOwner.keys()].sort();
    expect(owners).toEqual([`${a.url.slice(7)}/1`, `${a.url.slice(7)}/2`]);
    const ids = owners.map((owner) => byOwner.get(owner)!);
    for (const [n, id] of ids.entries()) {
      for (let k = 0; k < 3; k++) {
        const reply = await post(b.url, id, {
          jsonrpc: '2.0',
          id: 400 + k,
          method: 'tools/call',
          params: { name: 'emu__echo', arguments: { text: `via B ${k}` } },
        });
        const text = await reply.body.text();
        expect(reply.statusCode).toBe(200);
        expect(text).toContain(`via B ${k}`);
        // Answered by the worker the id names.
        expect(reply.headers['x-slipstream-worker']).toBe(owners[n]!.split('/')[1]);
      }
    }
  });
});
