import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  Client as ClientV2,
  StreamableHTTPClientTransport as TransportV2,
} from '@modelcontextprotocol/client';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

async function connect(url: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp`));
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

async function pidOf(client: Client): Promise<number> {
  const result = await client.callTool({ name: 'emu__pid', arguments: {} });
  return (result.structuredContent as { pid: number }).pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a stateful stdio MCP server: one process per client session', () => {
  let gw: RunningGateway;

  beforeAll(async () => {
    gw = await startGateway(`
# The caller's identity is the principal header, believed as is (these tests are about scoping, not auth).
auth: { trust: header }
upstreams: {}
mcp:
  servers:
    emu: ${emulatorServer({ pool: '{ max: 2 }', extra: 'stateful: true' })}
`);
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('gives each /mcp session its own process, kept for the session and stopped when it ends', async () => {
    const a = await connect(gw.url);
    const b = await connect(gw.url);
    const pidA = await pidOf(a.client);
    expect(await pidOf(a.client)).toBe(pidA);
    const pidB = await pidOf(b.client);
    expect(pidB).not.toBe(pidA);
    const stats = await a.client.callTool({ name: 'emu__stats', arguments: {} });
    expect(stats.structuredContent).toMatchObject({ pid: pidA, initializeCount: 1 });

    await a.transport.terminateSession();
    await a.client.close();
    const until = Date.now() + 5_000;
    while (alive(pidA) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(alive(pidA)).toBe(false);
    expect(alive(pidB)).toBe(true);
    await b.client.close();
  });

  it('keeps one process per principal for 2026-07-28 requests, which have no session', async () => {
    const pinned = async (principal: string) => {
      const client = new ClientV2(
        { name: 'test', version: '1.0.0' },
        { versionNegotiation: { mode: { pin: '2026-07-28' } } },
      );
      await client.connect(
        new TransportV2(new URL(`${gw.url}/mcp`), { requestInit: { headers: { authorization: principal } } }),
      );
      return client;
    };
    const pid = async (client: ClientV2) =>
      ((await client.callTool({ name: 'emu__pid', arguments: {} })).structuredContent as { pid: number }).pid;
    const [carol, dave] = [await pinned('carol'), await pinned('dave')];
    try {
      const first = await pid(carol);
      expect(await pid(carol)).toBe(first);
      expect(await pid(dave)).not.toBe(first);
    } finally {
      await Promise.all([carol.close(), dave.close()]);
    }
  });

  it('keeps one process per principal for REST callers', async () => {
    const ask = (principal: string) =>
      call(`${gw.url}/tools/emu/pid`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: principal },
        body: '{}',
      }).then((r) => r.body.structuredContent.pid as number);
    const alice = await ask('alice');
    expect(await ask('alice')).toBe(alice);
    expect(await ask('bob')).not.toBe(alice);
  });
});
