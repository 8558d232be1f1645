// Every entrypoint runs in the one exchange: request events, draining 503, 499 on a hang-up, the GW error shape.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startHttpEmulator } from '../../emulators/http-upstream.js';
import type { RunningEmulator } from '../../emulators/http-upstream.js';
import { startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import { startSpecialists } from '../../emulators/specialists.js';
import type { RunningSpecialists } from '../../emulators/specialists.js';
import { events } from '../../src/telemetry/events.js';
import type { RequestEndEvent, RequestStartEvent } from '../../src/telemetry/events.js';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

let upstream: RunningEmulator;
let llm: RunningLlmEmulator;
let team: RunningSpecialists;
const dir = mkdtempSync(join(tmpdir(), 'slipstream-exchange-'));

beforeAll(async () => {
  [upstream, llm, team] = await Promise.all([
    startHttpEmulator(),
    startLlmEmulator({ tokens: 3 }),
    startSpecialists({ members: 2, latency: '1ms' }),
  ]);
});
afterAll(async () => {
  await Promise.all([upstream?.close(), llm?.close(), team?.close()]);
});

/** One gateway with every entrypoint configured. */
function everything(): Promise<RunningGateway> {
  return startGateway(`
server: { listen: "127.0.0.1:0", principalHeader: x-user, shutdownGrace: 5s }
auth: { trust: header }
upstreams:
  emu: { url: "${upstream.url}" }
routes:
  - { name: api, match: { prefix: /api }, upstream: emu }
mcp:
  servers:
    emu: ${emulatorServer()}
llm:
  providers:
    emu: { baseUrl: "${llm.url}/v1", models: { fast: emu-small, embed: emu-embed } }
    claude: { type: anthropic, baseUrl: "${llm.url}/v1", models: { sonnet: claude-emu } }
  transcripts: { sqlite: { path: "${join(dir, `t-${Math.random()}.db`)}" } }
groups:
  team: { members: [${team.members.map((m) => `{ name: ${m.name}, url: "${m.url}" }`).join(', ')}] }
`);
}

interface Case {
  /** The route label the request is counted under. */
  route: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** A request this entrypoint rejects, and the code it rejects it with. */
  bad: { method: string; path: string; body?: string; code: string; status: number };
  /** Whether the entrypoint reads a request body (a hang-up mid-upload is then a 499). */
  readsBody: boolean;
}

const chatBody = JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] });
const CASES: Record<string, Case> = {
  proxy: {
    route: 'api',
    method: 'POST',
    path: '/api/x',
    body: '{}',
    bad: { method: 'GET', path: '/nowhere', code: 'GW_ROUTE_NOT_FOUND', status: 404 },
    readsBody: false,
  },
  tools: {
    route: 'mcp:emu__echo',
    method: 'POST',
    path: '/tools/emu/echo',
    body: '{"text":"hi"}',
    // A path of the wrong shape is still a request: it gets events and the GW shape like any other.
    bad: { method: 'POST', path: '/tools/x', body: '{}', code: 'GW_TOOL_NOT_FOUND', status: 404 },
    readsBody: true,
  },
  mcp: {
    route: 'mcp',
    method: 'POST',
    path: '/mcp',
    headers: { accept: 'application/json, text/event-stream' },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } },
    }),
    bad: { method: 'POST', path: '/mcp', body: '{nope', code: 'GW_BAD_REQUEST', status: 400 },
    readsBody: true,
  },
  fanout: {
    route: 'fanout:team',
    method: 'POST',
    path: '/fanout/team',
    body: '{"q":1}',
    bad: { method: 'POST', path: '/fanout/none', body: '{}', code: 'GW_GROUP_NOT_FOUND', status: 404 },
    readsBody: true,
  },
  chat: {
    route: 'chat',
    method: 'POST',
    path: '/v1/chat/completions',
    body: chatBody,
    bad: {
      method: 'POST',
      path: '/v1/chat/completions',
      body: '{"model":"constructor","messages":[]}',
      code: 'GW_LLM_NO_PROVIDER',
      status: 404,
    },
    readsBody: true,
  },
  responses: {
    route: 'responses',
    method: 'POST',
    path: '/v1/responses',
    body: JSON.stringify({ model: 'fast', input: 'hi' }),
    bad: {
      method: 'POST',
      path: '/v1/responses',
      body: '{"model":"fast","input":7}',
      code: 'GW_BAD_REQUEST',
      status: 400,
    },
    readsBody: true,
  },
  messages: {
    route: 'messages',
    method: 'POST',
    path: '/v1/messages',
    headers: { 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'sonnet', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
    bad: {
      method: 'POST',
      path: '/v1/messages',
      body: '{"model":"constructor","messages":[]}',
      code: 'GW_LLM_NO_PROVIDER',
      status: 404,
    },
    readsBody: true,
  },
  countTokens: {
    route: 'count-tokens',
    method: 'POST',
    path: '/v1/messages/count_tokens',
    headers: { 'anthropic-version': '2023-06-01' },
    body: JSON.stringify({ model: 'sonnet', messages: [{ role: 'user', content: 'hi' }] }),
    bad: { method: 'GET', path: '/v1/messages/count_tokens', code: 'GW_METHOD_NOT_ALLOWED', status: 405 },
    readsBody: true,
  },
  embeddings: {
    route: 'embeddings',
    method: 'POST',
    path: '/v1/embeddings',
    body: JSON.stringify({ model: 'embed', input: 'hi' }),
    bad: {
      method: 'POST',
      path: '/v1/embeddings',
      body: '{"model":"embed","input":[]}',
      code: 'GW_BAD_REQUEST',
      status: 400,
    },
    readsBody: true,
  },
  models: {
    route: 'models',
    method: 'GET',
    path: '/v1/models',
    bad: { method: 'GET', path: '/v1/models/nope', code: 'GW_LLM_NO_PROVIDER', status: 404 },
    readsBody: false,
  },
  sessions: {
    route: 'sessions',
    method: 'GET',
    path: '/v1/sessions/s1',
    headers: { 'x-user': 'alice' },
    bad: { method: 'GET', path: '/v1/sessions/%E0%A4', code: 'GW_BAD_REQUEST', status: 400 },
    readsBody: false,
  },
};

/** Records request events while a test runs. */
function recordEvents() {
  const starts: RequestStartEvent[] = [];
  const ends: RequestEndEvent[] = [];
  const onStart = (m: unknown) => starts.push(m as RequestStartEvent);
  const onEnd = (m: unknown) => ends.push(m as RequestEndEvent);
  events.requestStart.subscribe(onStart);
  events.requestEnd.subscribe(onEnd);
  return {
    starts,
    ends,
    stop() {
      events.requestStart.unsubscribe(onStart);
      events.requestEnd.unsubscribe(onEnd);
    },
  };
}

/** Writes raw requests on one socket and resolves with everything the server sent until it closed. */
function rawSocket(port: number) {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
  socket.on('error', () => {});
  return { socket, closed, text: () => received };
}

function head(c: { method: string; path: string; headers?: Record<string, string>; body?: string }): string {
  const lines = [`${c.method} ${c.path} HTTP/1.1`, 'host: 127.0.0.1', 'content-type: application/json'];
  for (const [k, v] of Object.entries(c.headers ?? {})) lines.push(`${k}: ${v}`);
  lines.push(`content-length: ${Buffer.byteLength(c.body ?? '')}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

describe.each(Object.entries(CASES))('the %s entrypoint, in the exchange', (_name, c) => {
  let gw: RunningGateway | undefined;
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
  });

  it('publishes requestStart and requestEnd once, under its route label, and echoes x-request-id', async () => {
    gw = await everything();
    const recorded = recordEvents();
    try {
      const response = await call(`${gw.url}${c.path}`, {
        method: c.method,
        headers: { 'content-type': 'application/json', 'x-request-id': `rid-${c.route}`, ...c.headers },
        ...(c.body === undefined ? {} : { body: c.body }),
      });
      expect(response.status).toBe(200);
      expect(response.headers['x-request-id']).toBe(`rid-${c.route}`);
      await expect.poll(() => recorded.ends.length).toBe(1);
      expect(recorded.starts.map((e) => [e.ctx.id, e.method, e.path])).toEqual([
        [`rid-${c.route}`, c.method, c.path],
      ]);
      expect(recorded.ends.map((e) => [e.ctx.route, e.status])).toEqual([[c.route, 200]]);
    } finally {
      recorded.stop();
    }
  });

  it('answers its bad request in the GW error shape, with the request id', async () => {
    gw = await everything();
    const recorded = recordEvents();
    try {
      const response = await call(`${gw.url}${c.bad.path}`, {
        method: c.bad.method,
        headers: { 'content-type': 'application/json', 'x-request-id': 'bad-1' },
        ...(c.bad.body === undefined ? {} : { body: c.bad.body }),
      });
      expect([response.status, response.body.error.code]).toEqual([c.bad.status, c.bad.code]);
      expect(typeof response.body.error.message).toBe('string');
      expect(response.headers['x-request-id']).toBe('bad-1');
      await expect
        .poll(() => recorded.ends.map((e) => [e.status, e.errorCode]))
        .toEqual([[c.bad.status, c.bad.code]]);
    } finally {
      recorded.stop();
    }
  });

  it('answers 503 GW_SHUTTING_DOWN with Connection: close once the gateway drains', async () => {
    gw = await everything();
    const port = Number(new URL(gw.url).port);
    // A stream that started before the drain keeps the connection busy (not idle), so it survives the
    // start of the drain; its headers went out kept-alive (a reply not yet begun would say
    // Connection: close), so the next request on that connection reaches the exchange while it drains.
    const conn = rawSocket(port);
    const stream = JSON.stringify({
      model: 'fast',
      stream: true,
      messages: [{ role: 'user', content: 'hi' }],
    });
    const slow = { 'x-emulate-tokens': '6', 'x-emulate-gap': '100ms' };
    conn.socket.write(
      head({ method: 'POST', path: '/v1/chat/completions', headers: slow, body: stream }) + stream,
    );
    await expect.poll(() => conn.text()).toMatch(/^HTTP\/1\.1 200 /);
    const closing = gw.close();
    gw = undefined;
    conn.socket.write(head(c) + (c.body ?? ''));
    const text = await conn.closed;
    await closing;
    const second = text.slice(text.indexOf('HTTP/1.1', 1));
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    expect(second.toLowerCase()).toContain('connection: close');
    expect(second).toContain('"code":"GW_SHUTTING_DOWN"');
  });

  it.runIf(c.readsBody)('reports a client that hangs up mid-upload as 499 GW_CLIENT_CLOSED', async () => {
    gw = await everything();
    const recorded = recordEvents();
    try {
      const conn = rawSocket(Number(new URL(gw.url).port));
      const partial = head({ ...c, body: `${c.body ?? ''}${' '.repeat(64)}` });
      conn.socket.write(partial + (c.body ?? '').slice(0, 1));
      await expect.poll(() => recorded.starts.length).toBe(1);
      conn.socket.destroy();
      await expect
        .poll(() => recorded.ends.map((e) => [e.status, e.errorCode]))
        .toEqual([[499, 'GW_CLIENT_CLOSED']]);
    } finally {
      recorded.stop();
    }
  });
});
