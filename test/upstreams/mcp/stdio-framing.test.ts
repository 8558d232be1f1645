import { fileURLToPath } from 'node:url';
import { ReadBuffer } from '@modelcontextprotocol/client';
import type { JSONRPCMessage } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { mcpSchema } from '../../../src/config/mcp-schema.js';
import type { StdioServerConfig } from '../../../src/config/mcp-schema.js';
import type { McpUpstream } from '../../../src/upstreams/mcp/mcp-upstream.js';
import { StdioReadBuffer, tuneStdioTransport } from '../../../src/upstreams/mcp/stdio-framing.js';
import { stdioPool } from '../../../src/upstreams/mcp/stdio-pool.js';

const MALFORMED = fileURLToPath(new URL('../../fixtures/malformed-mcp-server.ts', import.meta.url));

/** Lines a server could write: every message shape, valid and not. */
const LINES = [
  '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}',
  '{"jsonrpc":"2.0","id":"a","result":{"_meta":{"x":1},"anything":[1,2]}}',
  '{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"no such method","data":{"m":"x"}}}',
  '{"jsonrpc":"2.0","error":{"code":-32700,"message":"parse error"}}',
  '{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{"messages":[]}}',
  '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}',
  '{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}',
  '{"jsonrpc":"2.0","id":4,"result":{},"extra":true}',
  '{"jsonrpc":"2.0","id":5,"result":"not an object"}',
  '{"jsonrpc":"2.0","id":6,"result":{},"error":{"code":1,"message":"both"}}',
  '{"jsonrpc":"2.0","id":7,"method":"x","result":{}}',
  '{"jsonrpc":"1.0","id":8,"result":{}}',
  '{"jsonrpc":"2.0","id":1.5,"result":{}}',
  '{"jsonrpc":"2.0","id":9,"error":{"code":"E","message":"string code"}}',
  '{"jsonrpc":"2.0","method":7}',
  '{"id":10}',
  '[{"jsonrpc":"2.0","method":"a"}]',
  '42',
  'null',
  'not JSON at all',
  '{"jsonrpc":"2.0","id":11,"result":{}}\r',
];

/** Every outcome a read buffer gives for one line: the message, nothing, or the error's class and text. */
function outcome(buffer: { append(chunk: Buffer): void; readMessage(): unknown }, line: string) {
  buffer.append(Buffer.from(`${line}\n`));
  try {
    return { message: buffer.readMessage() };
  } catch (error) {
    return { error: (error as Error).constructor.name, text: String(error) };
  }
}

const opened: McpUpstream[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((u) => u.close()));
});

describe('stdio framing', () => {
  it('accepts, rejects and skips exactly the lines the SDK read buffer does, with the same output and errors', () => {
    const ours = new StdioReadBuffer();
    const sdk = new ReadBuffer();
    const results = LINES.map((line) => [outcome(ours, line), outcome(sdk, line)] as const);
    for (const [mine, theirs] of results) expect(mine).toEqual(theirs);
    // The list holds both kinds, so the comparison covers rejection as well as acceptance.
    expect(results.filter(([mine]) => 'error' in mine).length).toBeGreaterThanOrEqual(10);
    expect(results.filter(([mine]) => mine.message != null).length).toBeGreaterThanOrEqual(8);
  });

  it('keeps reading after a rejected message and splits messages across chunks', () => {
    const buffer = new StdioReadBuffer();
    buffer.append(Buffer.from('{"jsonrpc":"2.0","id":1,"result":"x"}\n{"jsonrpc":"2.0","id":2,'));
    expect(() => buffer.readMessage()).toThrow();
    expect(buffer.readMessage()).toBeNull();
    buffer.append(Buffer.from('"result":{}}\n'));
    expect(buffer.readMessage()).toEqual({ jsonrpc: '2.0', id: 2, result: {} });
  });

  it('refuses to buffer more than its cap', () => {
    const buffer = new StdioReadBuffer(16);
    expect(() => buffer.append(Buffer.alloc(17))).toThrow(/exceeded maximum size of 16 bytes/);
  });

  it('never delivers a malformed response from a server process to the call it names', async () => {
    const config = mcpSchema.parse({
      servers: {
        bad: {
          type: 'stdio',
          command: process.execPath,
          args: ['--import', 'tsx', MALFORMED],
          era: '2025-11-25',
          pool: { min: 1, max: 1 },
        },
      },
    }).servers.bad as StdioServerConfig;
    const upstream = stdioPool('bad', config, pino({ level: 'silent' }));
    opened.push(upstream);
    await upstream.start();
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        upstream.callTool('echo', {}, { signal: AbortSignal.timeout(10_000), idempotent: false }),
      ),
    );
    for (const result of results) expect(result.content).toEqual([{ type: 'text', text: 'good' }]);
  });

  it('sends the messages of one event-loop turn to the process in one write, in order', async () => {
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
      expect(writes).toEqual([5]);
      expect(received).toEqual(sent);
    } finally {
      await transport.close();
    }
  });
});
