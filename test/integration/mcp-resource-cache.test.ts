import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { McpServer, createMcpHandler } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webRequest, writeWebResponse } from '../../src/entrypoints/mcp/web.js';
import { emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

const KEY_A = 'key-alice-0123456789abcdef';
const KEY_B = 'key-bob-0123456789abcdef';

/** The URI clients see for `uri` of `server` (all three servers list the emulator's resources: a clash). */
const exposed = (server: string, uri: string) => `slipstream://${server}/${encodeURIComponent(uri)}`;

async function modernClient(url: string, key: string): Promise<Client> {
  const client = new Client(
    { name: 'cache-test', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return client;
}

const textOf = (result: { contents: ReadonlyArray<object> }) =>
  String((result.contents[0] as { text?: unknown } | undefined)?.text);

describe('/mcp caches resources/read results as their SEP-2549 hints say', () => {
  let gw: RunningGateway;
  let alice: Client;
  let bob: Client;
  /** How many reads reached `server` (the emulator's own counter, read through a tool: never cached). */
  const readsOf = async (server: string): Promise<number> => {
    const result = await alice.callTool({ name: `${server}__stats`, arguments: {} });
    return (result.structuredContent as { reads: number }).reads;
  };
  /** A read the client's own response cache cannot answer: every call reaches the gateway. */
  const read = (client: Client, uri: string) => client.readResource({ uri }, { cacheMode: 'bypass' });

  beforeAll(async () => {
    gw = await startGateway(`
auth:
  apiKeys:
    keys:
      - { name: alice, key: "${KEY_A}" }
      - { name: bob, key: "${KEY_B}" }
upstreams: {}
mcp:
  servers:
    fresh: ${emulatorServer({ extra: 'era: 2026-07-28' })}
    old: ${emulatorServer({ extra: 'era: 2025-11-25' })}
    kept: ${emulatorServer({ extra: 'era: 2025-11-25, resourceCache: { ttl: 60s, scope: shared }' })}
`);
    [alice, bob] = await Promise.all([modernClient(gw.url, KEY_A), modernClient(gw.url, KEY_B)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([alice?.close(), bob?.close()]);
    await gw?.close();
  });

  it('answers a repeated read within its ttlMs from the cache, for every caller when the hint is public', async () => {
    const uri = exposed('fresh', 'emulator://watched');
    const before = await readsOf('fresh');
    const first = await read(alice, uri);
    const again = await read(alice, uri);
    const other = await read(bob, uri);
    expect(await readsOf('fresh')).toBe(before + 1);
    expect(textOf(again)).toBe(textOf(first));
    expect(textOf(other)).toBe(textOf(first));
    // What the client may keep is what is left of the server's minute.
    expect((again as { ttlMs?: number }).ttlMs).toBeGreaterThan(0);
    expect((again as { ttlMs?: number }).ttlMs).toBeLessThanOrEqual(60_000);
  });

  it('keeps a private result for its own principal only', async () => {
    const uri = exposed('fresh', 'emulator://stats');
    const before = await readsOf('fresh');
    const aliceFirst = textOf(await read(alice, uri));
    const aliceAgain = textOf(await read(alice, uri));
    const bobFirst = textOf(await read(bob, uri));
    const bobAgain = textOf(await read(bob, uri));
    expect(aliceAgain).toBe(aliceFirst);
    expect(bobAgain).toBe(bobFirst);
    // Bob's read reached the server (its counter moved): he never got Alice's entry.
    expect(JSON.parse(bobFirst).reads).toBe(JSON.parse(aliceFirst).reads + 1);
    expect(await readsOf('fresh')).toBe(before + 2);
  });

  it('stores neither a ttlMs 0 result nor a 2025 server’s unhinted one, unless the server’s config sets a policy', async () => {
    const reads = { fresh: await readsOf('fresh'), old: await readsOf('old'), kept: await readsOf('kept') };
    for (let i = 0; i < 2; i++) {
      await read(alice, 'quote://ACME'); // the template's result says ttlMs: 0 (routed to the first server: fresh)
      await read(alice, exposed('old', 'emulator://watched'));
      await read(alice, exposed('kept', 'emulator://watched'));
    }
    expect(await readsOf('fresh')).toBe(reads.fresh + 2);
    expect(await readsOf('old')).toBe(reads.old + 2);
    expect(await readsOf('kept')).toBe(reads.kept + 1);
  });

  it('drops the cached read when the server announces the resource updated, so the next read is the new one', async () => {
    const uri = exposed('fresh', 'emulator://watched');
    const heard: string[] = [];
    alice.setNotificationHandler('notifications/resources/updated', (notification) => {
      heard.push(notification.params.uri);
    });
    // The gateway hears a 2026-07-28 server's updates for URIs someone listens to.
    const listening = await alice.listen({ resourceSubscriptions: [uri] });
    try {
      const before = textOf(await read(alice, uri));
      expect(textOf(await read(alice, uri))).toBe(before);
      await alice.callTool({ name: 'fresh__touch_resource', arguments: {} });
      await expect.poll(() => heard, { timeout: 10_000 }).toContain(uri);
      const after = textOf(await read(alice, uri));
      expect(after).not.toBe(before);
      expect(Number(after.split(' ')[1])).toBe(Number(before.split(' ')[1]) + 1);
      // And the new contents are cached in turn.
      const reads = await readsOf('fresh');
      expect(textOf(await read(bob, uri))).toBe(after);
      expect(await readsOf('fresh')).toBe(reads);
    } finally {
      await listening.close();
    }
  });
});

/**
 * A 2026-07-28 HTTP server whose tool list carries a 1.5 s hint and changes without any `list_changed`
 * (it announces none: `listChanged: false`), counting the `tools/list` requests it answers.
 */
async function silentListServer() {
  const state = { names: ['first'], lists: 0 };
  const handler = createMcpHandler(
    () => {
      const server = new McpServer(
        { name: 'silent', version: '1.0.0' },
        {
          capabilities: { tools: { listChanged: false } },
          cacheHints: { 'tools/list': { ttlMs: 1_500, cacheScope: 'public' } },
        },
      );
      for (const name of state.names)
        server.registerTool(name, { description: name }, () => ({ content: [] }));
      return server;
    },
    { legacy: 'reject' },
  );
  const http = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const parsedBody: unknown =
        chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString());
      if ((parsedBody as { method?: string } | undefined)?.method === 'tools/list') state.lists++;
      handler
        .fetch(webRequest(req, AbortSignal.timeout(10_000)), { parsedBody })
        .then((response) => writeWebResponse(response, res))
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    state,
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    async close() {
      await handler.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

describe('/mcp lists past their server’s SEP-2549 ttlMs', () => {
  it('reloads a 2026-07-28 server’s list on the first list after its ttlMs, with no list_changed from it', async () => {
    const upstream = await silentListServer();
    const gw = await startGateway(`
upstreams: {}
mcp:
  servers:
    silent: { type: http, url: ${upstream.url}, era: 2026-07-28 }
`);
    const client = new Client(
      { name: 'ttl', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    try {
      await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`)));
      const names = async () =>
        (await client.listTools(undefined, { cacheMode: 'bypass' })).tools.map((tool) => tool.name);
      expect(await names()).toEqual(['silent__first']);
      const loaded = upstream.state.lists;
      upstream.state.names.push('second');
      await new Promise((resolve) => setTimeout(resolve, 1_600));
      expect(await names()).toEqual(['silent__first', 'silent__second']);
      expect(upstream.state.lists).toBe(loaded + 1);
      // Fresh again: held for another ttlMs.
      expect(await names()).toEqual(['silent__first', 'silent__second']);
      expect(upstream.state.lists).toBe(loaded + 1);
    } finally {
      await client.close();
      await gw.close();
      await upstream.close();
    }
  });
});
