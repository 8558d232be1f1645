import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const EMULATOR = fileURLToPath(new URL('../../emulators/mcp-server.ts', import.meta.url));

async function connect(args: string[] = []): Promise<{ client: Client; transport: StdioClientTransport }> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['--import', 'tsx', EMULATOR, ...args],
    env: { ...process.env } as Record<string, string>,
    stderr: 'pipe',
  });
  const client = new Client({ name: 'test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

describe('the stdio MCP emulator', () => {
  let client: Client;
  let transport: StdioClientTransport;

  beforeAll(async () => {
    ({ client, transport } = await connect(['--latency', '5ms']));
  });
  afterAll(async () => {
    await client?.close();
  });

  it('lists the quote, business and fault tools with input schemas', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const name of ['get_quote', 'get_quotes', 'list_appointments', 'create_invoice', 'echo', 'sleep']) {
      expect(names).toContain(name);
    }
    const quote = tools.find((t) => t.name === 'get_quote')!;
    expect(quote.inputSchema.properties).toHaveProperty('symbol');
  });

  it('answers quotes with structured content and a per-process call counter', async () => {
    const first = await client.callTool({ name: 'get_quote', arguments: { symbol: 'acme' } });
    const second = await client.callTool({ name: 'get_quote', arguments: { symbol: 'acme' } });
    expect(first.structuredContent).toMatchObject({ symbol: 'ACME', currency: 'USD' });
    expect((second.structuredContent as { n: number }).n).toBeGreaterThan(
      (first.structuredContent as { n: number }).n,
    );
    const many = await client.callTool({ name: 'get_quotes', arguments: { symbols: ['a', 'b'] } });
    expect((many.structuredContent as { quotes: unknown[] }).quotes).toHaveLength(2);
  });

  it('counts one initialize for the connection and reports its pid', async () => {
    const stats = await client.callTool({ name: 'stats', arguments: {} });
    expect(stats.structuredContent).toMatchObject({ pid: transport.pid, initializeCount: 1 });
  });

  it('sends progress notifications when the caller asks for them', async () => {
    const seen: number[] = [];
    const result = await client.callTool(
      { name: 'progress', arguments: { steps: 3, intervalMs: 20 } },
      undefined,
      {
        onprogress: (p) => seen.push(p.progress),
      },
    );
    // The SDK client handles notifications a microtask later than responses: the last one may race the result.
    expect(seen.slice(0, 2)).toEqual([1, 2]);
    expect(result.structuredContent).toMatchObject({ steps: 3 });
  });

  it('stops a sleep when the call is cancelled and keeps serving', async () => {
    const controller = new AbortController();
    const pending = client.callTool({ name: 'sleep', arguments: { ms: 30_000 } }, undefined, {
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error('stop')), 20);
    await expect(pending).rejects.toThrow();
    const echo = await client.callTool({ name: 'echo', arguments: { text: 'still here' } });
    expect(echo.content).toEqual([{ type: 'text', text: 'still here' }]);
  });

  it('returns tool errors as isError results, not protocol errors', async () => {
    const result = await client.callTool({ name: 'fail', arguments: { message: 'nope' } });
    expect(result.isError).toBe(true);
  });

  it('exits mid-call on crash, which closes the connection', async () => {
    const other = await connect();
    const closed = new Promise<void>((resolve) => (other.client.onclose = resolve));
    await expect(other.client.callTool({ name: 'crash', arguments: {} })).rejects.toThrow(/closed/i);
    await closed;
  });
});
