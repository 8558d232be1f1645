import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

const EMULATOR = fileURLToPath(new URL('../../emulators/mcp-server.ts', import.meta.url));

function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

describe('a remote (streamable HTTP) MCP upstream: a gateway in front of another gateway', () => {
  let inner: RunningGateway;
  let outer: RunningGateway;

  beforeAll(async () => {
    // The inner gateway keeps a single /mcp session, so any other client's session evicts the outer's.
    inner = await startGateway(`
upstreams: {}
mcp:
  maxSessions: 1
  servers:
    emu:
      type: stdio
      command: ${JSON.stringify(process.execPath)}
      args: ["--import", "tsx", ${JSON.stringify(EMULATOR)}]
      pool: { min: 1, max: 1 }
`);
    outer = await startGateway(`
upstreams: {}
mcp:
  separator: "."
  servers:
    remote:
      type: http
      url: ${inner.url}/mcp
      headers: { x-tenant: t1 }
`);
  });

  afterAll(async () => {
    await outer?.close();
    await inner?.close();
  });

  it('lists the remote tools under their namespaced names and calls them over one kept-alive session', async () => {
    const catalogue = await call(`${outer.url}/tools`);
    expect(catalogue.body.tools.map((t: any) => t.name)).toContain('remote.emu__echo');
    const first = await post(`${outer.url}/tools/remote/emu__pid`, {});
    const second = await post(`${outer.url}/tools/remote/emu__pid`, {});
    expect(first.status).toBe(200);
    expect(second.body.structuredContent.pid).toBe(first.body.structuredContent.pid);
  });

  it('re-establishes an expired session and retries the call once', async () => {
    expect((await post(`${outer.url}/tools/remote/emu__echo`, { text: 'before' })).status).toBe(200);
    // A second client takes the inner gateway's only session slot: the outer's session is gone (404).
    const intruder = new Client({ name: 'intruder', version: '1.0.0' });
    await intruder.connect(new StreamableHTTPClientTransport(new URL(`${inner.url}/mcp`)));
    try {
      const after = await post(`${outer.url}/tools/remote/emu__echo`, { text: 'after' });
      expect(after.status).toBe(200);
      expect(after.body.content[0].text).toBe('after');
    } finally {
      await intruder.close();
    }
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
      const response = await post(`${lonely.url}/tools/down/anything`, {});
      expect(response.status).toBe(404);
    } finally {
      await lonely.close();
    }
  });
});
