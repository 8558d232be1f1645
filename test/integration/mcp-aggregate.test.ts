import { fileURLToPath } from 'node:url';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import type { LoggingMessageNotification } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConformanceHttp } from '../fixtures/mcp-conformance-server.js';
import type { ConformanceHttpServer } from '../fixtures/mcp-conformance-server.js';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/mcp-conformance-server.ts', import.meta.url));

/** The conformance fixture over stdio, refusing 2026-07-28 as a 2025-era server does. */
const LEGACY_STDIO = `{ type: stdio, command: ${JSON.stringify(process.execPath)}, args: ${JSON.stringify(['--import', 'tsx', FIXTURE, '--stdio'])}, env: { MCP_FIXTURE_LEGACY_ONLY: "1" }, pool: { min: 1, max: 2 } }`;

/** A v1 SDK (1.32) client, 2025-11-25, answering sampling and elicitation as `name`. */
async function v1Client(url: string, name: string): Promise<Client> {
  const client = new Client({ name, version: '1.0.0' }, { capabilities: { sampling: {}, elicitation: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, () => ({
    role: 'assistant',
    content: { type: 'text', text: `sampled by ${name}` },
    model: 'test-model',
  }));
  client.setRequestHandler(ElicitRequestSchema, () => ({
    action: 'accept',
    content: { username: name, email: `${name}@example.com` },
  }));
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`)));
  return client;
}

/** A v2 SDK (2.4) client in `mode` (`legacy` = 2025-11-25 sessions, or pinned to 2026-07-28). */
async function v2Client(url: string, mode: 'legacy' | { pin: string }, name = 'v2'): Promise<ClientV2> {
  const client = new ClientV2(
    { name, version: '1.0.0' },
    { capabilities: { sampling: {} }, versionNegotiation: { mode } },
  );
  client.setRequestHandler('sampling/createMessage', () => ({
    role: 'assistant',
    content: { type: 'text', text: `sampled by ${name}` },
    model: 'test-model',
  }));
  await client.connect(new TransportV2(new URL(`${url}/mcp`)));
  return client;
}

const textOf = (result: object) =>
  ((result as { content: Array<{ type: string; text?: string }> }).content ?? [])
    .map((item) => item.text ?? item.type)
    .join('');

describe('/mcp aggregates two MCP servers of different eras (a 2026-07-28 HTTP one and a 2025-era stdio one)', () => {
  let fixture: ConformanceHttpServer;
  let gw: RunningGateway;
  const open: Array<{ close(): Promise<void> }> = [];
  const keep = <T extends { close(): Promise<void> }>(client: T): T => {
    open.push(client);
    return client;
  };

  beforeAll(async () => {
    fixture = await startConformanceHttp();
    gw = await startGateway(`
upstreams: {}
mcp:
  servers:
    modern: { type: http, url: ${fixture.url} }
    legacy: ${LEGACY_STDIO}
`);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(open.map((client) => client.close()));
    await gw?.close();
    await fixture?.close();
  });

  it('advertises what the aggregate has and lists both servers in config order', async () => {
    const client = keep(await v1Client(gw.url, 'a'));
    expect(client.getServerCapabilities()).toMatchObject({
      tools: { listChanged: true },
      resources: { subscribe: true, listChanged: true },
      prompts: { listChanged: true },
      completions: {},
      logging: {},
    });
    const { tools } = await client.listTools();
    const names = tools.map((tool) => tool.name);
    expect(names.indexOf('modern__test_simple_text')).toBeGreaterThanOrEqual(0);
    expect(names.indexOf('legacy__test_simple_text')).toBeGreaterThan(
      names.indexOf('modern__test_simple_text'),
    );
    const { prompts } = await client.listPrompts();
    expect(prompts.map((prompt) => prompt.name)).toEqual(
      expect.arrayContaining(['modern__test_simple_prompt', 'legacy__test_simple_prompt']),
    );
  });

  it('exposes a URI both servers list under each server’s clash prefix, and reads each from its owner', async () => {
    const client = keep(await v1Client(gw.url, 'a'));
    const { resources } = await client.listResources();
    const uris = resources.map((resource) => resource.uri);
    const modernUri = `slipstream://modern/${encodeURIComponent('test://static-text')}`;
    const legacyUri = `slipstream://legacy/${encodeURIComponent('test://static-text')}`;
    expect(uris).toEqual(expect.arrayContaining([modernUri, legacyUri]));
    expect(uris).not.toContain('test://static-text');
    for (const uri of [modernUri, legacyUri]) {
      const read = await client.readResource({ uri });
      expect(read.contents).toEqual([
        { uri, mimeType: 'text/plain', text: 'This is the content of the static text resource.' },
      ]);
    }
    // A templated URI no server lists goes to the first server whose template matches it.
    const templated = await client.readResource({ uri: 'test://template/42/data' });
    expect(JSON.parse((templated.contents[0] as { text: string }).text)).toMatchObject({ id: '42' });
    await expect(client.readResource({ uri: 'nowhere://x' })).rejects.toThrow(/Resource not found/);
  });

  it('routes prompts/get and completion/complete to the server owning the prompt', async () => {
    const client = keep(await v1Client(gw.url, 'a'));
    const prompt = await client.getPrompt({
      name: 'legacy__test_prompt_with_arguments',
      arguments: { arg1: 'one', arg2: 'two' },
    });
    expect(JSON.stringify(prompt.messages)).toContain('one');
    const completion = await client.complete({
      ref: { type: 'ref/prompt', name: 'legacy__test_prompt_with_arguments' },
      argument: { name: 'arg1', value: 'par' },
    });
    expect(completion.completion.values).toEqual(expect.arrayContaining(['paris', 'park']));
    await expect(
      client.complete({ ref: { type: 'ref/prompt', name: 'nope' }, argument: { name: 'a', value: '' } }),
    ).rejects.toThrow(/no MCP server completes/);
  });

  it('fans logging/setLevel out and relays the log lines each server sends during a call to its caller', async () => {
    const client = keep(await v1Client(gw.url, 'a'));
    await client.setLoggingLevel('info');
    const lines: LoggingMessageNotification['params'][] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
      lines.push(notification.params);
    });
    for (const server of ['legacy', 'modern']) {
      lines.length = 0;
      await client.callTool({ name: `${server}__test_tool_with_logging`, arguments: {} });
      expect(lines.map((line) => line.data)).toEqual([
        'Tool execution started',
        'Tool processing data',
        'Tool execution completed',
      ]);
    }
  });

  it('relays sampling and elicitation to the client whose call caused them, from either era', async () => {
    const [a, b] = [keep(await v1Client(gw.url, 'a')), keep(await v1Client(gw.url, 'b'))];
    const calls = [a, b].flatMap((client) =>
      ['legacy', 'modern'].map((server) =>
        client.callTool({ name: `${server}__test_sampling`, arguments: { prompt: 'hello' } }),
      ),
    );
    const texts = (await Promise.all(calls)).map(textOf);
    expect(texts).toEqual([
      'LLM response: sampled by a',
      'LLM response: sampled by a',
      'LLM response: sampled by b',
      'LLM response: sampled by b',
    ]);
    const elicited = await b.callTool({ name: 'legacy__test_elicitation', arguments: { message: 'who?' } });
    expect(textOf(elicited)).toContain('"username":"b"');
  });

  it('serves a 2026-07-28 client the tools, resources and prompts of the 2025-era server (era translation)', async () => {
    const client = keep(await v2Client(gw.url, { pin: '2026-07-28' }));
    expect(client.getProtocolEra()).toBe('modern');
    const result = await client.callTool({ name: 'legacy__test_simple_text', arguments: {} });
    expect(textOf(result)).toBe('This is a simple text response for testing.');
    const read = await client.readResource({
      uri: `slipstream://legacy/${encodeURIComponent('test://static-text')}`,
    });
    expect(read.contents).toHaveLength(1);
    const prompt = await client.getPrompt({ name: 'legacy__test_simple_prompt' });
    expect(prompt.messages).toHaveLength(1);
    // A 2026-07-28 server's envelope (its serverInfo) stays on its hop: the client talks to Slipstream.
    const direct = await client.callTool({ name: 'modern__test_simple_text', arguments: {} });
    expect(JSON.stringify(direct)).not.toContain('slipstream-conformance-fixture');
    // The 2026-07-28 server asks its 2026 client for input itself (an input_required round, relayed).
    const sampled = await client.callTool({ name: 'modern__test_sampling', arguments: { prompt: 'hi' } });
    expect(textOf(sampled)).toBe('LLM response: sampled by v2');
  });

  it('serves a 2025 client the 2026-07-28 server, its input rounds turned into requests on the session', async () => {
    const client = keep(await v2Client(gw.url, 'legacy', 'old'));
    expect(client.getProtocolEra()).toBe('legacy');
    const sampled = await client.callTool({ name: 'modern__test_sampling', arguments: { prompt: 'hi' } });
    expect(textOf(sampled)).toBe('LLM response: sampled by old');
  });

  it('relays a resource update to a 2026-07-28 listen stream and to the 2025 session subscribed to it', async () => {
    const watched = `slipstream://legacy/${encodeURIComponent('test://watched-resource')}`;
    const trigger = () => bystander.callTool({ name: 'legacy__test_trigger_resource_update', arguments: {} });
    const bystander = keep(await v1Client(gw.url, 'b'));
    const overheard: string[] = [];
    bystander.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => {
      overheard.push(notification.params.uri);
    });
    // (The fixture announces updates whether or not it was subscribed: this proves the relaying only.)
    const modern = keep(await v2Client(gw.url, { pin: '2026-07-28' }));
    const heard: string[] = [];
    modern.setNotificationHandler('notifications/resources/updated', (notification) => {
      heard.push(notification.params.uri);
    });
    const listening = await modern.listen({ resourceSubscriptions: [watched] });
    await expect
      .poll(async () => {
        await trigger();
        return heard.length;
      })
      .toBeGreaterThan(0);
    expect(new Set(heard)).toEqual(new Set([watched]));
    await listening.close();

    const subscribed = keep(await v1Client(gw.url, 'a'));
    const updates: string[] = [];
    subscribed.setNotificationHandler(ResourceUpdatedNotificationSchema, (notification) => {
      updates.push(notification.params.uri);
    });
    await subscribed.subscribeResource({ uri: watched });
    await trigger();
    await expect.poll(() => updates).toEqual([watched]);
    expect(overheard).toEqual([]);
    await subscribed.unsubscribeResource({ uri: watched });
  });

  it('forwards the request _meta, traceparent included, to the server', async () => {
    const client = keep(await v1Client(gw.url, 'a'));
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const result = await client.callTool({
      name: 'legacy__test_echo_meta',
      arguments: {},
      _meta: { traceparent, 'example.com/tag': 'x' },
    });
    expect(JSON.parse(textOf(result))).toMatchObject({ traceparent, 'example.com/tag': 'x' });
  });

  it('emits a cache hint on aggregated 2026-07-28 lists: the shortest TTL, private when a part is', async () => {
    const client = keep(await v2Client(gw.url, { pin: '2026-07-28' }));
    // The 2025-era server sends no hint: nothing says its list may be kept.
    const listed = await client.listTools(undefined, { cacheMode: 'bypass' });
    expect(listed).toMatchObject({ ttlMs: 0, cacheScope: 'private' });
    const alone = await startGateway(`
upstreams: {}
mcp:
  servers:
    modern: { type: http, url: ${fixture.url} }
`);
    try {
      const only = await v2Client(alone.url, { pin: '2026-07-28' });
      // The fixture's own hint (a minute, public) passes through.
      expect(await only.listTools(undefined, { cacheMode: 'bypass' })).toMatchObject({
        ttlMs: 60_000,
        cacheScope: 'public',
      });
      await only.close();
    } finally {
      await alone.close();
    }
  });

  it('refuses a foreign Host or Origin with 403 (DNS rebinding), before any session exists', async () => {
    const initialize = (headers: Record<string, string>) =>
      call(`${gw.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 7,
          method: 'initialize',
          params: {
            protocolVersion: '2025-11-25',
            capabilities: {},
            clientInfo: { name: 'x', version: '1' },
          },
        }),
      });
    const origin = await initialize({ origin: 'http://evil.example.com' });
    expect([origin.status, origin.body.error.code]).toEqual([403, 'GW_MCP_ORIGIN_FORBIDDEN']);
    const host = await initialize({ host: 'evil.example.com' });
    expect([host.status, host.body.error.code]).toEqual([403, 'GW_MCP_ORIGIN_FORBIDDEN']);
    const local = await initialize({ origin: 'http://localhost:3000' });
    expect(local.status).toBe(200);
  });

  it('answers a quiet tool as plain JSON once a streamed call showed no log lines, never a tool that logs', async () => {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const opened = await call(`${gw.url}/mcp`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-11-25',
          capabilities: {},
          clientInfo: { name: 'raw', version: '1' },
        },
      }),
    });
    const session = { ...headers, 'mcp-session-id': opened.headers['mcp-session-id'] as string };
    await call(`${gw.url}/mcp`, {
      method: 'POST',
      headers: session,
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    const kinds: string[] = [];
    for (const [id, tool] of [
      // Called nowhere else in this file: its first call is this one.
      [2, 'modern__test_image_content'],
      [3, 'modern__test_image_content'],
      [4, 'modern__test_tool_with_logging'],
      [5, 'modern__test_tool_with_logging'],
    ] as const) {
      const answer = await call(`${gw.url}/mcp`, {
        method: 'POST',
        headers: session,
        body: JSON.stringify({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: { name: tool, arguments: {} },
        }),
      });
      const type = String(answer.headers['content-type']);
      kinds.push(type.startsWith('application/json') ? 'json' : 'sse');
      if (tool.endsWith('logging')) expect(String(answer.body)).toContain('Tool processing data');
    }
    expect(kinds).toEqual(['sse', 'json', 'sse', 'sse']);
  });

  it('answers a request without a session with its own id, not "id": null', async () => {
    const response = await call(`${gw.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'req-9', method: 'tools/list' }),
    });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({ id: 'req-9', error: { code: -32600 } });
  });
});

describe('mcp.allowedHosts', () => {
  it('admits the configured host names besides loopback, and still refuses others', async () => {
    const fixture = await startConformanceHttp();
    const gw = await startGateway(`
upstreams: {}
mcp:
  allowedHosts: [gw.example.com]
  servers:
    modern: { type: http, url: ${fixture.url} }
`);
    const list = (headers: Record<string, string>) =>
      call(`${gw.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: {} }),
      });
    try {
      const admitted = await list({ host: 'gw.example.com', origin: 'https://gw.example.com' });
      expect(admitted.status).not.toBe(403);
      const refused = await list({ host: 'other.example.com' });
      expect([refused.status, refused.body.error.code]).toEqual([403, 'GW_MCP_ORIGIN_FORBIDDEN']);
    } finally {
      await gw.close();
      await fixture.close();
    }
  });
});

describe('tools that must run as tasks', () => {
  it('lists them as not callable and refuses a call with a precise -32601', async () => {
    const server = fileURLToPath(new URL('../fixtures/mcp-task-server.ts', import.meta.url));
    const gw = await startGateway(`
upstreams: {}
mcp:
  servers:
    tasks: { type: stdio, command: ${JSON.stringify(process.execPath)}, args: ${JSON.stringify(['--import', 'tsx', server])}, pool: { min: 1, max: 1 } }
`);
    const client = await v1Client(gw.url, 'a');
    try {
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name)).toEqual(['tasks__plain']);
      await expect(client.callTool({ name: 'tasks__background', arguments: {} })).rejects.toThrow(
        /-32601.*requires task-augmented execution \(execution.taskSupport: "required"\), which Slipstream does not relay/,
      );
      expect(textOf(await client.callTool({ name: 'tasks__plain', arguments: {} }))).toBe('called plain');
    } finally {
      await client.close();
      await gw.close();
    }
  });
});

describe('namespacing off', () => {
  it('refuses to start when two servers expose one tool name, naming the place in the config file', async () => {
    const fixture = await startConformanceHttp();
    try {
      await expect(
        startGateway(`
upstreams: {}
mcp:
  namespacing: false
  servers:
    first: { type: http, url: ${fixture.url} }
    second: { type: http, url: ${fixture.url} }
`),
      ).rejects.toThrow(
        /^test\.yaml:\d+:\d+ mcp\.servers\.second: tool "test_simple_text" is exposed by servers "first" and "second" with namespacing off/,
      );
    } finally {
      await fixture.close();
    }
  });

  it('keeps one server prefixed while the other exposes its own names', async () => {
    const fixture = await startConformanceHttp();
    const gw = await startGateway(`
upstreams: {}
mcp:
  namespacing: false
  servers:
    plain: { type: http, url: ${fixture.url} }
    prefixed: { type: http, url: ${fixture.url}, namespace: true }
`);
    try {
      const catalogue = await call(`${gw.url}/tools`);
      const names = catalogue.body.tools.map((tool: { name: string }) => tool.name);
      expect(names).toEqual(expect.arrayContaining(['test_simple_text', 'prefixed__test_simple_text']));
    } finally {
      await gw.close();
      await fixture.close();
    }
  });
});
