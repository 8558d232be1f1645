import { chmod, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, emulatorServer } from '../helpers/gateway.js';
import { spawnGateway, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';
import { openFeed } from '../helpers/feed.js';
import { scrape, series } from '../helpers/workers.js';

const EMULATOR = fileURLToPath(new URL('../../emulators/mcp-server.ts', import.meta.url));

afterAll(() => stopAll());

/** The gateway's JSON log lines (stdout) that carry `code`. */
function logLines(gw: CliProcess, code: string): Array<Record<string, unknown>> {
  return gw
    .stdout()
    .split('\n')
    .filter((line) => line.includes(`"${code}"`))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A loopback port nothing listens on (bound once, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function post(url: string, body: unknown = {}) {
  return call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** A plain 2026-07-28 `tools/call` (spec 2026-07-28 basic/transports: no session needed); its JSON-RPC answer. */
async function modernToolCall(url: string, name: string, id: number, args: Record<string, unknown> = {}) {
  const rpc = await call(`${url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': name,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: {
        name,
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': {},
          'io.modelcontextprotocol/clientInfo': { name: 'test', version: '1.0.0' },
        },
      },
    }),
  });
  return typeof rpc.body === 'string' ? JSON.parse(rpc.body.replace(/^[\s\S]*?data: /, '')) : rpc.body;
}

describe('an MCP server that cannot be started does not stop the gateway', () => {
  let dir: string;
  let gw: CliProcess;
  /** A command that does not exist yet: written once the test "fixes the config". */
  let later: string;
  /** A command that works at start-up, then goes away while the gateway runs. */
  let flaky: string;
  const script = `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(EMULATOR)}\n`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-down-'));
    later = join(dir, 'server.sh');
    flaky = join(dir, 'flaky.sh');
    await writeFile(flaky, script);
    await chmod(flaky, 0o755);
    const exit3 = `command: ${JSON.stringify(process.execPath)}, args: ["-e", "process.exit(3)"]`;
    gw = await spawnGateway(`
telemetry: { log: { level: info } }
upstreams: {}
mcp:
  servers:
    ok: ${emulatorServer()}
    missing: { type: stdio, command: ${JSON.stringify(later)}, pool: { min: 1, max: 1, startTimeout: 5s } }
    exits: { type: stdio, ${exit3}, pool: { min: 2, max: 2 } }
    stateful: { type: stdio, ${exit3}, stateful: true }
    flaky: { type: stdio, command: ${JSON.stringify(flaky)}, pool: { min: 1, max: 1 }, breaker: { threshold: 2, halfOpenAfter: 60s } }
    remote: { type: http, url: "http://127.0.0.1:${await closedPort()}/mcp", timeout: 2s }
`);
  });

  afterAll(async () => {
    await gw?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts, serves the servers that did start, and logs one GW_MCP_SERVER_DOWN line per broken server', async () => {
    const echo = await post(`${gw.url}/tools/ok/echo`, { text: 'hi' });
    expect(echo.status).toBe(200);
    expect(echo.body.content).toEqual([{ type: 'text', text: 'hi' }]);
    // Let a few retries pass: each server is still reported once, not once per attempt.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const lines = logLines(gw, 'GW_MCP_SERVER_DOWN');
    const of = (server: string) => lines.filter((line) => line.mcpServer === server);
    expect(of('missing')).toHaveLength(1);
    expect(of('missing')[0]).toMatchObject({ level: 50 });
    expect(String(of('missing')[0]!.reason)).toMatch(/ENOENT/);
    expect(String(of('missing')[0]!.reason)).toContain(later);
    for (const server of ['exits', 'stateful']) {
      expect(of(server)).toHaveLength(1);
      expect(String(of(server)[0]!.reason)).toContain('exited before it answered initialize');
    }
    expect(of('remote')).toHaveLength(1);
    expect(String(of('remote')[0]!.reason)).toContain('ECONNREFUSED');
    // A process that dies while starting is a failed start, not also an exit to restart on top.
    expect(gw.stdout()).not.toContain('MCP server process exited; restarting');
    expect(of('ok')).toHaveLength(0);
  });

  it('reports the broken servers as down in the metrics', async () => {
    const metrics = await scrape(String(gw.listening.adminUrl));
    expect(series(metrics, 'slipstream_mcp_server_up{server="ok"}')).toBe(1);
    expect(series(metrics, 'slipstream_mcp_server_up{server="missing"}')).toBe(0);
    expect(series(metrics, 'slipstream_mcp_server_up{server="exits"}')).toBe(0);
    expect(series(metrics, 'slipstream_mcp_server_up{server="stateful"}')).toBe(0);
    expect(series(metrics, 'slipstream_mcp_server_up{server="remote"}')).toBe(0);
  });

  it("answers a /mcp call of a down server's tool with GW_MCP_SERVER_DOWN, not an unknown tool", async () => {
    const body = await modernToolCall(gw.url, 'missing__echo', 7);
    expect(body.id).toBe(7);
    expect(body.error.data.code).toBe('GW_MCP_SERVER_DOWN');
    expect(body.error.message).toContain('"missing" is down');
  });

  it('shows each down server and its reason on the dashboard feed', async () => {
    const feed = await openFeed(String(gw.listening.adminUrl));
    try {
      const { frame } = await feed.next();
      const servers = new Map(frame.state.mcp!.servers.map((row) => [row.server, row]));
      expect(servers.get('ok')?.down).toBeUndefined();
      expect(servers.get('missing')).toMatchObject({ ready: 0, down: expect.stringContaining('ENOENT') });
      expect(servers.get('remote')?.down).toContain('ECONNREFUSED');
    } finally {
      feed.close();
    }
  });

  it('answers calls to a down server with 503 GW_MCP_SERVER_DOWN naming the reason, never a 404', async () => {
    for (const server of ['missing', 'exits', 'stateful', 'remote']) {
      const response = await post(`${gw.url}/tools/${server}/echo`, { text: 'x' });
      expect(response.status).toBe(503);
      expect(response.body.error.code).toBe('GW_MCP_SERVER_DOWN');
      expect(response.body.error.message).toContain(`"${server}"`);
      expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    const unknown = await post(`${gw.url}/tools/nosuch/echo`);
    expect(unknown.status).toBe(404);
  });

  it('keeps retrying the spawn and serves the server once its command exists', async () => {
    await writeFile(later, script);
    await chmod(later, 0o755);
    await until(async () => (await post(`${gw.url}/tools/missing/echo`, { text: 'up' })).status === 200);
    const metrics = await scrape(String(gw.listening.adminUrl));
    expect(series(metrics, 'slipstream_mcp_server_up{server="missing"}')).toBe(1);
    const catalogue = await call(`${gw.url}/tools`);
    expect(catalogue.body.tools.map((t: { name: string }) => t.name)).toContain('missing__echo');
    expect(gw.stdout()).toMatch(/"mcpServer":"missing".*MCP server is up/);
  });

  it('fails calls at once while a running server cannot be restarted, without opening its breaker', async () => {
    const pid = (await post(`${gw.url}/tools/flaky/pid`)).body.structuredContent.pid as number;
    await unlink(flaky);
    process.kill(pid, 'SIGKILL');
    await until(async () => (await post(`${gw.url}/tools/flaky/echo`, { text: 'x' })).status === 503);
    // Far past the breaker's threshold (2): every refusal names the outage, none is GW_BREAKER_OPEN.
    for (let i = 0; i < 5; i++) {
      const refused = await post(`${gw.url}/tools/flaky/echo`, { text: 'x' });
      expect([refused.status, refused.body.error.code]).toEqual([503, 'GW_MCP_SERVER_DOWN']);
      expect(refused.body.error.message).toContain('ENOENT');
    }
    await writeFile(flaky, script);
    await chmod(flaky, 0o755);
    // Served as soon as a process starts: no open breaker holds it back for its 60 s.
    await until(async () => {
      const reply = await post(`${gw.url}/tools/flaky/echo`, { text: 'back' });
      expect(reply.body.error?.code).not.toBe('GW_BREAKER_OPEN');
      return reply.status === 200;
    });
  });
});

describe('a down server with namespacing off', () => {
  let gw: CliProcess;

  beforeAll(async () => {
    gw = await spawnGateway(`
upstreams: {}
mcp:
  namespacing: false
  servers:
    ok: ${emulatorServer()}
    missing: { type: stdio, command: "/nonexistent/slipstream-test-server", pool: { min: 1, max: 1 } }
`);
  });

  afterAll(async () => {
    await gw?.stop();
  });

  it('answers a name no listed tool has with GW_MCP_SERVER_DOWN (it may be the down server\'s), not "unknown tool"', async () => {
    const body = await modernToolCall(gw.url, 'search_files', 8);
    expect(body.id).toBe(8);
    expect(body.error.data.code).toBe('GW_MCP_SERVER_DOWN');
    expect(body.error.message).toContain('no listed tool is named "search_files"');
    expect(body.error.message).toContain('"missing" is down');
    // The servers that are up still serve their bare names.
    const echo = await modernToolCall(gw.url, 'echo', 9, { text: 'still here' });
    expect(echo.error).toBeUndefined();
    expect(echo.result.content).toEqual([{ type: 'text', text: 'still here' }]);
  });
});
