// A real stdio MCP server with the quote (seed 003) and business-API (seed 000) tools, plus fault-injection tools.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { parseLatency } from './latency.js';
import type { LatencySampler } from './latency.js';

export interface McpEmulatorOptions {
  /** Latency spec (see `parseLatency`) for the quote and business tools. Default "0ms". */
  latency?: string;
  /** Injectable random source. Default `Math.random`. */
  random?: () => number;
}

/** What the `stats` tool returns. */
export interface McpEmulatorStats {
  pid: number;
  /** `initialize` handshakes completed by this process (1 for a pooled, pre-warmed child). */
  initializeCount: number;
  /** Tool calls handled so far, `stats` included. */
  calls: number;
  /** `sleep` calls running now (a cancelled one stops at once). */
  sleeping: number;
}

/** Largest `sleep` and `progress` run, so a test typo cannot park a child for hours. */
const MAX_SLEEP_MS = 60_000;
const MAX_STEPS = 1_000;

/**
 * Builds the emulator's MCP server (not yet connected). Tools:
 * - `get_quote {symbol}`, `get_quotes {symbols[]}` (seed 003), `list_appointments {date}`,
 *   `create_invoice {customer, amount}` (seed 000): wait the sampled latency, then answer with
 *   `structuredContent`; every answer carries `n`, this process's call counter, so callers can tell a
 *   cached result from a fresh one;
 * - `echo {text}` (no latency: the floor for benchmarks), `sleep {ms}` (honours cancellation),
 *   `crash` (exits mid-call), `hang` (never answers), `pid`, `progress {steps, intervalMs}` (progress
 *   notifications when the caller sent a progress token), `fail {message}` (an `isError` result),
 *   `add_tool {name}` (registers a tool, so the server sends `notifications/tools/list_changed`), `stats`.
 */
export function createMcpEmulator(options: McpEmulatorOptions = {}): McpServer {
  const random = options.random ?? Math.random;
  const latencySpec = options.latency ?? '0ms';
  const latency: LatencySampler | undefined = /^0+(\.0+)?(ms|s|us)?$/.test(latencySpec)
    ? undefined
    : parseLatency(latencySpec);
  const stats: McpEmulatorStats = { pid: process.pid, initializeCount: 0, calls: 0, sleeping: 0 };
  const server = new McpServer(
    { name: 'slipstream-mcp-emulator', version: '1.0.0' },
    { capabilities: { tools: { listChanged: true } } },
  );
  server.server.oninitialized = () => {
    stats.initializeCount++;
  };

  const wait = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (ms <= 0) return resolve();
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(new Error('cancelled'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  const slow = (signal: AbortSignal) => wait(latency === undefined ? 0 : latency(random), signal);
  const structured = (value: Record<string, unknown>): CallToolResult => ({
    content: [{ type: 'text', text: JSON.stringify(value) }],
    structuredContent: value,
  });
  const count = () => ++stats.calls;

  const quote = (symbol: string, n: number) => {
    let hash = 0;
    for (const char of symbol) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
    return { symbol: symbol.toUpperCase(), price: 10 + (hash % 99_000) / 100, currency: 'USD', n };
  };

  server.registerTool(
    'get_quote',
    {
      description: 'Latest quote for one ticker symbol.',
      inputSchema: { symbol: z.string().min(1).max(16) },
      annotations: { readOnlyHint: true },
    },
    async ({ symbol }, extra) => {
      const n = count();
      await slow(extra.signal);
      return structured(quote(symbol, n));
    },
  );
  server.registerTool(
    'get_quotes',
    {
      description: 'Latest quotes for several ticker symbols in one call.',
      inputSchema: { symbols: z.array(z.string().min(1).max(16)).min(1).max(100) },
      annotations: { readOnlyHint: true },
    },
    async ({ symbols }, extra) => {
      const n = count();
      await slow(extra.signal);
      return structured({ quotes: symbols.map((s) => quote(s, n)), n });
    },
  );
  server.registerTool(
    'list_appointments',
    {
      description: 'Appointments on one day (YYYY-MM-DD).',
      inputSchema: { date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected YYYY-MM-DD') },
      annotations: { readOnlyHint: true },
    },
    async ({ date }, extra) => {
      const n = count();
      await slow(extra.signal);
      const appointments = ['09:00', '11:30', '15:00'].map((time, i) => ({
        id: `${date}-${i + 1}`,
        start: `${date}T${time}:00Z`,
        customer: `customer-${i + 1}`,
      }));
      return structured({ date, appointments, n });
    },
  );
  server.registerTool(
    'create_invoice',
    {
      description: 'Creates an invoice (not idempotent).',
      inputSchema: { customer: z.string().min(1), amount: z.number().positive() },
    },
    async ({ customer, amount }, extra) => {
      const n = count();
      await slow(extra.signal);
      return structured({ invoiceId: `inv-${process.pid}-${n}`, customer, amount, status: 'open', n });
    },
  );

  server.registerTool(
    'echo',
    { description: 'Returns its text (no latency).', inputSchema: { text: z.string() } },
    ({ text }) => {
      count();
      return { content: [{ type: 'text', text }] };
    },
  );
  server.registerTool(
    'sleep',
    {
      description: 'Waits ms milliseconds; stops early when the call is cancelled.',
      inputSchema: { ms: z.number().int().min(0).max(MAX_SLEEP_MS) },
    },
    async ({ ms }, extra) => {
      const n = count();
      stats.sleeping++;
      try {
        await wait(ms, extra.signal);
      } finally {
        stats.sleeping--;
      }
      return structured({ slept: ms, pid: process.pid, n });
    },
  );
  server.registerTool('crash', { description: 'Exits the process in the middle of the call.' }, () => {
    count();
    process.exit(1);
  });
  server.registerTool('hang', { description: 'Never answers.' }, () => {
    count();
    return new Promise<CallToolResult>(() => {});
  });
  server.registerTool('pid', { description: 'The process id of this server.' }, () => {
    const n = count();
    return structured({ pid: process.pid, n });
  });
  server.registerTool(
    'progress',
    {
      description: 'Sends `steps` progress notifications, intervalMs apart, then answers.',
      inputSchema: {
        steps: z.number().int().min(1).max(MAX_STEPS),
        intervalMs: z.number().int().min(0).max(1_000).default(5),
      },
    },
    async ({ steps, intervalMs }, extra) => {
      const n = count();
      const token = extra._meta?.progressToken;
      for (let step = 1; step <= steps; step++) {
        await wait(intervalMs, extra.signal);
        if (token !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: step, total: steps, message: `step ${step}` },
          });
        }
      }
      return structured({ steps, n });
    },
  );
  server.registerTool(
    'fail',
    { description: 'Answers with a tool error (isError).', inputSchema: { message: z.string() } },
    ({ message }) => {
      count();
      return { content: [{ type: 'text', text: message }], isError: true };
    },
  );
  server.registerTool(
    'add_tool',
    {
      description: 'Registers an echo tool under a new name (the server announces tools/list_changed).',
      inputSchema: { name: z.string().regex(/^[a-z][a-z0-9_]{0,30}$/) },
    },
    ({ name }) => {
      count();
      server.registerTool(name, { description: `echo registered at run time` }, () => ({
        content: [{ type: 'text', text: name }],
      }));
      return { content: [{ type: 'text', text: `added ${name}` }] };
    },
  );
  server.registerTool('stats', { description: 'Counters of this process.' }, () => {
    count();
    return structured({ ...stats });
  });
  return server;
}

/** Serves the emulator on stdin/stdout until stdin closes. Diagnostics go to stderr (stdout is the protocol). */
export async function runMcpEmulator(options: McpEmulatorOptions = {}): Promise<void> {
  const server = createMcpEmulator(options);
  const transport = new StdioServerTransport();
  // The client closing our stdin is the MCP stdio shutdown signal (spec 2025-06-18, lifecycle/shutdown).
  process.stdin.once('end', () => {
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
  await server.connect(transport);
  process.stderr.write(`mcp emulator ready (pid ${process.pid})\n`);
}

// Runnable directly (`node --import tsx emulators/mcp-server.ts --latency 5ms`), which starts faster than the CLI.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { latency: { type: 'string' } } });
  const latency = values.latency ?? process.env.MCP_EMULATOR_LATENCY ?? '0ms';
  parseLatency(latency);
  runMcpEmulator({ latency }).catch((error: unknown) => {
    process.stderr.write(`mcp emulator: ${String(error)}\n`);
    process.exit(1);
  });
}
