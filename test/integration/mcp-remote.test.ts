import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';

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
    // The inner gateway closes /mcp sessions idle for 500 ms: the outer's session expires between calls.
    inner = await startGateway(`
upstreams: {}
mcp:
  sessionIdle: 500ms
  servers:
    emu: ${emulatorServer()}
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
    // Idle past the inner gateway's sessionIdle (and its sweep): the outer's session is gone (404).
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    const after = await post(`${outer.url}/tools/remote/emu__echo`, { text: 'after' });
    expect(after.status).toBe(200);
    expect(after.body.content[0].text).toBe('after');
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
