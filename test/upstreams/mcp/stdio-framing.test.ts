import { fileURLToPath } from 'node:url';
import type { JSONRPCMessage } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterEach, describe, expect, it } from 'vitest';
import type { McpUpstream } from '../../../src/upstreams/mcp/mcp-upstream.js';
import { resultSchemaFor } from '../../../src/upstreams/mcp/mcp-client.js';
import { tuneStdioTransport } from '../../../src/upstreams/mcp/stdio-framing.js';
import { startStdioPool } from '../../helpers/mcp-pools.js';

const MALFORMED = fileURLToPath(new URL('../../fixtures/malformed-mcp-server.ts', import.meta.url));

const opened: McpUpstream[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((u) => u.close()));
});

/** A started one-process pool of the malformed fixture (2025 era unless told), closed after the test. */
function malformedPool(era: '2025-11-25' | '2026-07-28' = '2025-11-25'): Promise<McpUpstream> {
  const server = { type: 'stdio', command: process.execPath, args: ['--import', 'tsx', MALFORMED] };
  return startStdioPool('bad', { ...server, era, pool: { min: 1, max: 1 } }, opened);
}

describe('stdio framing', () => {
  it('never delivers a malformed response from a server process to the call it names', async () => {
    const upstream = await malformedPool();
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        upstream.callTool('echo', {}, { signal: AbortSignal.timeout(10_000), idempotent: false }),
      ),
    );
    for (const result of results) expect(result.content).toEqual([{ type: 'text', text: 'good' }]);
  });

  it("sends a turn's first message at once and the turn's others in one write, in order", async () => {
    // `cat` in Node: every line comes back, so the transport reads what the child was sent.
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['-e', 'process.stdin.pipe(process.stdout)'],
    });
    tuneStdioTransport(transport);
    const received: JSONRPCMessage[] = [];
    transport.onmessage = (message) => received.push(message);
    await transport.start();
    try {
      const stdin = (transport as unknown as { _process: { stdin: Record<string, unknown> } })._process.stdin;
      const writes: number[] = [];
      for (const method of ['_write', '_writev'] as const) {
        const original = stdin[method] as (...args: unknown[]) => void;
        stdin[method] = function (this: unknown, chunks: unknown, ...rest: unknown[]) {
          writes.push(method === '_writev' ? (chunks as unknown[]).length : 1);
          return original.call(this, chunks, ...rest);
        };
      }
      const sent = Array.from({ length: 5 }, (_, id) => ({ jsonrpc: '2.0' as const, id, method: 'ping' }));
      await Promise.all(sent.map((message) => transport.send(message)));
      const until = Date.now() + 5_000;
      while (received.length < sent.length && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(writes).toEqual([1, 4]);
      expect(received).toEqual(sent);
    } finally {
      await transport.close();
    }
  });

  it('still refuses a result that is not a CallToolResult (the result check the SDK would make, made once per era)', async () => {
    const upstream = await malformedPool();
    const call = () =>
      upstream.callTool('invalid', {}, { signal: AbortSignal.timeout(10_000), idempotent: false });
    await expect(call()).rejects.toMatchObject({ code: 'GW_UPSTREAM_PROTOCOL' });
    await expect(call()).rejects.toMatchObject({ code: 'GW_UPSTREAM_PROTOCOL' });
  });

  it('still refuses it on 2026-07-28, where the SDK decoder makes the check and the result check passes through', async () => {
    const upstream = await malformedPool('2026-07-28');
    expect(upstream.info()?.era).toBe('modern');
    const call = (name: string) =>
      upstream.callTool(name, {}, { signal: AbortSignal.timeout(10_000), idempotent: false });
    await expect(call('invalid')).rejects.toMatchObject({ code: 'GW_UPSTREAM_PROTOCOL' });
    // A well-formed result after three malformed lines still comes through, as on 2025 connections.
    await expect(call('echo')).resolves.toMatchObject({ content: [{ type: 'text', text: 'good' }] });
  });
});

describe('resultSchemaFor', () => {
  it("is the SDK codec's own result check, built once per era and method", async () => {
    const client = new Client({ name: 't', version: '1' });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', 'tsx', MALFORMED],
    });
    await client.connect(transport);
    try {
      const schema = resultSchemaFor(client, 'tools/call');
      expect(schema).toBeDefined();
      expect(resultSchemaFor(client, 'tools/call')).toBe(schema);
      const check = (value: unknown) => schema!['~standard'].validate(value) as { issues?: unknown[] };
      expect(check({ content: [{ type: 'text', text: 'ok' }] }).issues).toBeUndefined();
      expect(check({ content: 'not an array' }).issues).toHaveLength(1);
      // A method the era does not define: the SDK keeps its own refusal.
      expect(resultSchemaFor(client, 'server/discover')).toBeUndefined();
    } finally {
      await client.close();
    }
  });
});
