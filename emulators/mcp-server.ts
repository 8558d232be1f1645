// A real stdio MCP server (both eras) with the quote (seed 003) and business-API (seed 000) tools, fault tools and the rest of MCP.
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  McpServer,
  ResourceTemplate,
  completable,
  inputRequired,
  inputResponse,
} from '@modelcontextprotocol/server';
import type { CallToolResult, McpRequestContext, McpServerFactory } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
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
  /**
   * Connections opened by this process: `initialize` handshakes (2025-11-25) plus 2026-07-28 connections
   * (1 for a pooled, pre-warmed child).
   */
  initializeCount: number;
  /** Tool calls handled so far, `stats` included. */
  calls: number;
  /** `sleep` calls running now (a cancelled one stops at once). */
  sleeping: number;
  /** `ask_llm` / `ask_user` / `list_roots` calls cancelled by their client while it was asked for input. */
  cancelled: number;
  /** `resources/read` requests answered (so callers can tell a cached read from one that reached us). */
  reads: number;
}

/** Largest `sleep` and `progress` run, so a test typo cannot park a child for hours. */
const MAX_SLEEP_MS = 60_000;
const MAX_STEPS = 1_000;
/** Most tools or resources added at run time (`add_tool`, `add_resource`). */
const MAX_ADDED = 100;
/** Symbols the `quote://{symbol}` template and the `quote_brief` prompt complete. */
const KNOWN_SYMBOLS = ['AAPL', 'ACME', 'AMZN', 'GOOG', 'MSFT', 'NVDA', 'TSLA'];

/**
 * Builds the emulator's server factory (one instance per stdio connection, sharing this process's counters
 * and run-time additions). Tools:
 * - `get_quote {symbol}`, `get_quotes {symbols[]}` (seed 003), `list_appointments {date}`,
 *   `create_invoice {customer, amount}` (seed 000): wait the sampled latency, then answer with
 *   `structuredContent`; every answer carries `n`, this process's call counter, so callers can tell a
 *   cached result from a fresh one;
 * - `echo {text}` (no latency: the floor for benchmarks), `sleep {ms}` (honours cancellation),
 *   `crash` (exits mid-call), `hang` (never answers), `pid`, `progress {steps, intervalMs}` (progress
 *   notifications when the caller sent a progress token), `fail {message}` (an `isError` result),
 *   `add_tool {name}` (registers a tool, so the server sends `notifications/tools/list_changed`), `stats`;
 * - `log {count, level, intervalMs}` (log notifications during the call), `ask_llm {prompt}` (sampling),
 *   `ask_user {question}` (elicitation), `list_roots` (roots), written once as `input_required` results:
 *   2026-07-28 clients get them as rounds, 2025 sessions as real requests (the SDK's legacy shim);
 * - `touch_resource` (bumps `emulator://watched`, sending `notifications/resources/updated`),
 *   `add_resource {name}` (`notifications/resources/list_changed`), `long_report` (`execution.taskSupport:
 *   required`, 2025-11-25 only: it must be run as a task, so a direct call is refused).
 * Resources: `emulator://stats` (cache hint: a minute, private), `emulator://watched` (subscribable; a minute,
 * public), template `quote://{symbol}` (symbols complete; no hint); `stats.reads` counts the reads. Prompts: `quote_brief {symbol}` (symbol completes), `daily_summary`. Logging.
 */
export function createMcpEmulator(options: McpEmulatorOptions = {}): McpServerFactory {
  const random = options.random ?? Math.random;
  const latencySpec = options.latency ?? '0ms';
  const latency: LatencySampler | undefined = /^0+(\.0+)?(ms|s|us)?$/.test(latencySpec)
    ? undefined
    : parseLatency(latencySpec);
  const stats: McpEmulatorStats = {
    pid: process.pid,
    initializeCount: 0,
    calls: 0,
    sleeping: 0,
    cancelled: 0,
    reads: 0,
  };
  const addedTools: string[] = [];
  const addedResources: string[] = [];
  let watchedVersion = 1;

  return (ctx: McpRequestContext) => {
    const server = new McpServer(
      { name: 'slipstream-mcp-emulator', version: '1.0.0' },
      {
        capabilities: {
          tools: { listChanged: true },
          resources: { subscribe: true, listChanged: true },
          prompts: { listChanged: true },
          completions: {},
          logging: {},
        },
      },
    );
    if (ctx.era === 'modern') stats.initializeCount++;
    else
      server.server.oninitialized = () => {
        stats.initializeCount++;
      };
    const count = () => ++stats.calls;
    const env: Env = { server, stats, count, latency, random, bumpWatched: () => ++watchedVersion };
    registerBusinessTools(env);
    registerFaultTools(env, addedTools);
    registerInteractiveTools(env);
    registerResources(env, addedResources, () => watchedVersion);
    registerPrompts(server);
    for (const name of addedTools) addEchoTool(server, name);
    for (const name of addedResources) addExtraResource(server, name);
    if (ctx.era === 'legacy') {
      // 2025-11-25 subscriptions (2026-07-28 clients use subscriptions/listen, served by the SDK).
      server.server.setRequestHandler('resources/subscribe', () => ({}));
      server.server.setRequestHandler('resources/unsubscribe', () => ({}));
    }
    return server;
  };
}

interface Env {
  server: McpServer;
  stats: McpEmulatorStats;
  count: () => number;
  latency: LatencySampler | undefined;
  random: () => number;
  bumpWatched: () => number;
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
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
}

const structured = (value: Record<string, unknown>): CallToolResult => ({
  content: [{ type: 'text', text: JSON.stringify(value) }],
  structuredContent: value,
});
const text = (value: string): CallToolResult => ({ content: [{ type: 'text', text: value }] });

function quote(symbol: string, n: number) {
  let hash = 0;
  for (const char of symbol) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return { symbol: symbol.toUpperCase(), price: 10 + (hash % 99_000) / 100, currency: 'USD', n };
}

function registerBusinessTools({ server, count, latency, random }: Env): void {
  const slow = (signal: AbortSignal) => wait(latency === undefined ? 0 : latency(random), signal);
  server.registerTool(
    'get_quote',
    {
      description: 'Latest quote for one ticker symbol.',
      inputSchema: z.object({ symbol: z.string().min(1).max(16) }),
      annotations: { readOnlyHint: true },
    },
    async ({ symbol }, ctx) => {
      const n = count();
      await slow(ctx.mcpReq.signal);
      return structured(quote(symbol, n));
    },
  );
  server.registerTool(
    'get_quotes',
    {
      description: 'Latest quotes for several ticker symbols in one call.',
      inputSchema: z.object({ symbols: z.array(z.string().min(1).max(16)).min(1).max(100) }),
      annotations: { readOnlyHint: true },
    },
    async ({ symbols }, ctx) => {
      const n = count();
      await slow(ctx.mcpReq.signal);
      return structured({ quotes: symbols.map((s) => quote(s, n)), n });
    },
  );
  server.registerTool(
    'list_appointments',
    {
      description: 'Appointments on one day (YYYY-MM-DD).',
      inputSchema: z.object({ date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected YYYY-MM-DD') }),
      annotations: { readOnlyHint: true },
    },
    async ({ date }, ctx) => {
      const n = count();
      await slow(ctx.mcpReq.signal);
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
      inputSchema: z.object({ customer: z.string().min(1), amount: z.number().positive() }),
    },
    async ({ customer, amount }, ctx) => {
      const n = count();
      await slow(ctx.mcpReq.signal);
      return structured({ invoiceId: `inv-${process.pid}-${n}`, customer, amount, status: 'open', n });
    },
  );
}

function registerFaultTools({ server, stats, count }: Env, addedTools: string[]): void {
  server.registerTool(
    'echo',
    { description: 'Returns its text (no latency).', inputSchema: z.object({ text: z.string() }) },
    ({ text: value }) => {
      count();
      return text(value);
    },
  );
  server.registerTool(
    'sleep',
    {
      description: 'Waits ms milliseconds; stops early when the call is cancelled.',
      inputSchema: z.object({ ms: z.number().int().min(0).max(MAX_SLEEP_MS) }),
    },
    async ({ ms }, ctx) => {
      const n = count();
      stats.sleeping++;
      try {
        await wait(ms, ctx.mcpReq.signal);
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
      inputSchema: z.object({
        steps: z.number().int().min(1).max(MAX_STEPS),
        intervalMs: z.number().int().min(0).max(1_000).default(5),
      }),
    },
    async ({ steps, intervalMs }, ctx) => {
      const n = count();
      const token = ctx.mcpReq._meta?.progressToken;
      for (let step = 1; step <= steps; step++) {
        await wait(intervalMs, ctx.mcpReq.signal);
        if (token !== undefined) {
          await ctx.mcpReq.notify({
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
    { description: 'Answers with a tool error (isError).', inputSchema: z.object({ message: z.string() }) },
    ({ message }): CallToolResult => {
      count();
      return { content: [{ type: 'text', text: message }], isError: true };
    },
  );
  server.registerTool(
    'add_tool',
    {
      description: 'Registers an echo tool under a new name (the server announces tools/list_changed).',
      inputSchema: z.object({ name: z.string().regex(/^[a-z][a-z0-9_]{0,30}$/) }),
    },
    ({ name }) => {
      count();
      if (addedTools.length < MAX_ADDED && !addedTools.includes(name)) addedTools.push(name);
      addEchoTool(server, name);
      return text(`added ${name}`);
    },
  );
  server.registerTool('stats', { description: 'Counters of this process.' }, () => {
    count();
    return structured({ ...stats });
  });
  const report = server.registerTool(
    'long_report',
    { description: 'A long report that must run as a task (execution.taskSupport: required).' },
    (): CallToolResult => {
      count();
      // Spec 2025-11-25 server/tools: a taskSupport "required" tool is invoked as a task, never directly.
      return { isError: true, content: [{ type: 'text', text: 'long_report must be invoked as a task' }] };
    },
  );
  report.execution = { taskSupport: 'required' };
}

function registerInteractiveTools({ server, count, stats }: Env): void {
  /** Counts the call if its client cancels it while asked (on 2025 sessions it waits for the answer). */
  const watch = (ctx: { mcpReq: { signal: AbortSignal } }) =>
    ctx.mcpReq.signal.addEventListener('abort', () => stats.cancelled++, { once: true });
  const levels = ['debug', 'info', 'notice', 'warning', 'error'] as const;
  server.registerTool(
    'log',
    {
      description: 'Sends `count` log notifications at `level`, intervalMs apart, during the call.',
      inputSchema: z.object({
        count: z.number().int().min(1).max(MAX_STEPS),
        level: z.enum(levels).default('info'),
        intervalMs: z.number().int().min(0).max(1_000).default(5),
      }),
    },
    async ({ count: lines, level, intervalMs }, ctx) => {
      const n = count();
      for (let line = 1; line <= lines; line++) {
        await ctx.mcpReq.log(level, `log line ${line} of ${lines}`, 'emulator');
        if (line < lines) await wait(intervalMs, ctx.mcpReq.signal);
      }
      return structured({ lines, n });
    },
  );
  server.registerTool(
    'ask_llm',
    {
      description: 'Asks the client to sample an LLM answer to `prompt` (sampling).',
      inputSchema: z.object({ prompt: z.string().min(1) }),
    },
    ({ prompt }, ctx) => {
      const reply = inputResponse(ctx.mcpReq.inputResponses, 'answer');
      if (reply.kind !== 'sampling') {
        watch(ctx);
        return inputRequired({
          inputRequests: {
            answer: inputRequired.createMessage({
              messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
              maxTokens: 200,
            }),
          },
        });
      }
      count();
      const content = reply.result.content;
      return text(
        !Array.isArray(content) && content.type === 'text' ? content.text : JSON.stringify(content),
      );
    },
  );
  server.registerTool(
    'ask_user',
    {
      description: 'Asks the user `question` and answers with their reply (elicitation).',
      inputSchema: z.object({ question: z.string().min(1) }),
    },
    ({ question }, ctx) => {
      const reply = inputResponse(ctx.mcpReq.inputResponses, 'reply');
      if (reply.kind !== 'elicit') {
        watch(ctx);
        return inputRequired({
          inputRequests: {
            reply: inputRequired.elicit({
              message: question,
              requestedSchema: {
                type: 'object',
                properties: { answer: { type: 'string' } },
                required: ['answer'],
              },
            }),
          },
        });
      }
      count();
      const answer = reply.content?.answer;
      return text(reply.action !== 'accept' ? `(${reply.action})` : typeof answer === 'string' ? answer : '');
    },
  );
  server.registerTool(
    'list_roots',
    { description: 'Asks the client for its roots and lists their URIs.' },
    (ctx) => {
      const reply = inputResponse(ctx.mcpReq.inputResponses, 'roots');
      if (reply.kind !== 'roots') {
        watch(ctx);
        return inputRequired({ inputRequests: { roots: inputRequired.listRoots() } });
      }
      count();
      return text(reply.roots.map((root) => root.uri).join('\n'));
    },
  );
}

function registerResources(
  { server, stats, bumpWatched }: Env,
  addedResources: string[],
  watched: () => number,
): void {
  // SEP-2549 hints (2026-07-28 results only): the counters are the caller's to keep, the watched text anyone's,
  // each for a minute; the template sends none (the SDK says `ttlMs: 0`).
  server.registerResource(
    'stats',
    'emulator://stats',
    {
      description: 'Counters of this process (JSON).',
      mimeType: 'application/json',
      cacheHint: { ttlMs: 60_000, cacheScope: 'private' },
    },
    (uri) => {
      stats.reads++;
      return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(stats) }] };
    },
  );
  server.registerResource(
    'watched',
    'emulator://watched',
    {
      description: 'A text whose version `touch_resource` bumps (subscribe to it).',
      mimeType: 'text/plain',
      cacheHint: { ttlMs: 60_000, cacheScope: 'public' },
    },
    (uri) => {
      stats.reads++;
      return { contents: [{ uri: uri.href, mimeType: 'text/plain', text: `version ${watched()}` }] };
    },
  );
  server.registerResource(
    'quote',
    new ResourceTemplate('quote://{symbol}', {
      list: undefined,
      complete: { symbol: (value) => KNOWN_SYMBOLS.filter((s) => s.startsWith(value.toUpperCase())) },
    }),
    { description: 'The latest quote for a symbol (JSON).', mimeType: 'application/json' },
    (uri, variables) => {
      stats.reads++;
      return {
        contents: [
          {
            uri: uri.href,
            mimeType: 'application/json',
            text: JSON.stringify(quote(String(variables.symbol), stats.calls)),
          },
        ],
      };
    },
  );
  server.registerTool(
    'touch_resource',
    { description: 'Bumps emulator://watched (resources/updated).' },
    async () => {
      const version = bumpWatched();
      await server.server.sendResourceUpdated({ uri: 'emulator://watched' });
      return structured({ uri: 'emulator://watched', version });
    },
  );
  server.registerTool(
    'add_resource',
    {
      description: 'Adds emulator://extra/<name> (the server announces resources/list_changed).',
      inputSchema: z.object({ name: z.string().regex(/^[a-z][a-z0-9_]{0,30}$/) }),
    },
    ({ name }) => {
      if (addedResources.length < MAX_ADDED && !addedResources.includes(name)) addedResources.push(name);
      addExtraResource(server, name);
      return text(`added emulator://extra/${name}`);
    },
  );
}

function registerPrompts(server: McpServer): void {
  server.registerPrompt(
    'quote_brief',
    {
      description: 'Asks for a short brief on one symbol.',
      argsSchema: z.object({
        symbol: completable(z.string().describe('Ticker symbol'), (value) =>
          KNOWN_SYMBOLS.filter((s) => s.startsWith(value.toUpperCase())),
        ),
      }),
    },
    ({ symbol }) => ({
      messages: [
        {
          role: 'user',
          content: { type: 'text', text: `Write a two-line brief on ${symbol.toUpperCase()}.` },
        },
      ],
    }),
  );
  server.registerPrompt('daily_summary', { description: "Summarises today's appointments." }, () => ({
    messages: [{ role: 'user', content: { type: 'text', text: "Summarise today's appointments." } }],
  }));
}

function addEchoTool(server: McpServer, name: string): void {
  try {
    server.registerTool(name, { description: 'echo registered at run time' }, () => text(name));
  } catch {
    // already registered on this connection
  }
}

function addExtraResource(server: McpServer, name: string): void {
  try {
    server.registerResource(
      name,
      `emulator://extra/${name}`,
      { description: 'added at run time' },
      (uri) => ({
        contents: [{ uri: uri.href, text: name }],
      }),
    );
  } catch {
    // already registered on this connection
  }
}

/** Serves the emulator on stdin/stdout until stdin closes (either era). Diagnostics go to stderr (stdout is the protocol). */
export async function runMcpEmulator(options: McpEmulatorOptions = {}): Promise<void> {
  const handle = serveStdio(createMcpEmulator(options));
  // The client closing our stdin is the MCP stdio shutdown signal (spec 2025-11-25 basic/lifecycle#shutdown).
  process.stdin.once('end', () => {
    handle.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
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
