// Benchmark `mcp`: a tool call straight over stdio (the floors, one per era), through /mcp, through REST, and spawn-per-call (seed 000).
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioClientTransportV2 } from '@modelcontextprotocol/client/stdio';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Agent, fetch as undiciFetch } from 'undici';
import { startGatewayChild } from '../child.js';
import type { ChildHandle } from '../child.js';
import { assertLoopback, httpTask } from '../http-task.js';
import { measureInterleaved, runLoad } from '../load.js';
import type { LoadMode, LoadResult, Task } from '../load.js';
import { formatTable, formatTargets, target } from '../scenario.js';
import type { Scenario, ScenarioOptions, ScenarioResult } from '../scenario.js';

/**
 * The ways to make the call. The server speaks both eras; the gateway's pools are pinned, `emu` to
 * 2025-11-25 (the era of the v1 SDK floor, and of every figure before the v2 SDK) and `emu26` to 2026-07-28,
 * so each path is compared with the floor of its own upstream era.
 */
export interface McpPaths<T> {
  /** v1 SDK client straight to a warm stdio process (2025-11-25): the floor. */
  stdio: T;
  /** v2 SDK client pinned to 2026-07-28 straight to a warm stdio process: the floor of that era. */
  stdio2026: T;
  /** SDK client (streamable HTTP) through Slipstream's /mcp. */
  mcp: T;
  /** Plain JSON-RPC `tools/call` POSTs on the same /mcp session: Slipstream's cost without the SDK client's. */
  mcpRaw: T;
  /** Plain 2026-07-28 stateless `tools/call` POSTs to /mcp (no session: `_meta` envelope and headers). */
  mcpModern: T;
  /** Plain HTTP `POST /tools/emu/echo` through Slipstream. */
  rest: T;
  /** The same REST call to the pool that speaks 2026-07-28 upstream (`POST /tools/emu26/echo`). */
  rest2026: T;
  /**
   * `mcpRaw`'s calls on the same session sent to a second replica, which forwards each to the session's
   * owner (docs/deploy.md): the cost of the forwarding hop.
   */
  mcpForwarded: T;
}

export interface McpBenchResult extends ScenarioResult {
  scenario: 'mcp';
  /** Processes in the gateway's pool, and in the floor's set of direct clients. */
  poolSize: number;
  concurrency: number;
  latency: McpPaths<LoadResult> & {
    mcpAddedP50Us: number;
    mcpRawAddedP50Us: number;
    mcpModernAddedP50Us: number;
    restAddedP50Us: number;
    /** `rest2026` p50 over the 2026-07-28 floor's. */
    rest2026AddedP50Us: number;
    /** `mcpForwarded` p50 over `mcpRaw` p50: what the hop through a second replica multiplies. */
    forwardedP50Ratio: number;
  };
  throughput: McpPaths<LoadResult>;
  /** Seed 000's pattern: spawn the server, initialize, call, exit; a few calls only. */
  spawnPerCall: LoadResult;
  /** Spawn-per-call p50 over the /mcp p50. */
  speedupOverSpawn: number;
}

const POOL_SIZE = 4;
const CONCURRENCY = 16;
const SPAWN_CALLS = 20;
const TARGETS = { addedP50Us: 300, callsPerS: 3_000, speedup: 100 };

/** A loopback port free right now: the two replicas name each other before either starts. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** How to run the emulator: compiled JS when running compiled, else the TypeScript file through tsx. */
function emulatorCommand(): { command: string; args: string[] } {
  const compiled = fileURLToPath(import.meta.url).endsWith('.js');
  const file = fileURLToPath(
    new URL(`../../../emulators/mcp-server.${compiled ? 'js' : 'ts'}`, import.meta.url),
  );
  return { command: process.execPath, args: compiled ? [file] : ['--import', 'tsx', file] };
}

async function stdioClient(): Promise<Client> {
  const { command, args } = emulatorCommand();
  const client = new Client({ name: 'bench', version: '1.0.0' });
  await client.connect(new StdioClientTransport({ command, args, stderr: 'ignore' }));
  return client;
}

/** A v2 SDK client pinned to 2026-07-28 on its own emulator process. */
async function stdioClient2026(): Promise<ClientV2> {
  const { command, args } = emulatorCommand();
  const client = new ClientV2(
    { name: 'bench', version: '1.0.0' },
    { versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  await client.connect(new StdioClientTransportV2({ command, args, stderr: 'ignore' }));
  return client;
}

/** One `echo` call on one client: the v1 and v2 SDK clients take their options in different places. */
type EchoCall = (name: string, signal: AbortSignal) => Promise<Record<string, unknown>>;

const v1Echo =
  (client: Client): EchoCall =>
  (name, signal) =>
    client.callTool({ name, arguments: { text: 'ping' } }, undefined, { signal });

const v2Echo =
  (client: ClientV2): EchoCall =>
  (name, signal) =>
    client.callTool({ name, arguments: { text: 'ping' } }, { signal });

/** A task calling `echo` on the given clients in turn; a protocol error or an isError result fails it. */
function callTask(calls: readonly EchoCall[], name: string): Task {
  let i = 0;
  return async (signal) => {
    const result = await calls[i++ % calls.length]!(name, signal);
    return result.isError === true ? { ok: false, code: 'TOOL_ERROR' } : { ok: true };
  };
}

/**
 * Starts a gateway (one stdio pool of 4 emulator processes) and, for the floor, 4 emulator processes driven
 * straight by SDK clients; then measures the zero-latency `echo` tool at concurrency 1 (latency, in two
 * interleaved halves per path, keeping the better) and concurrency 16 (throughput) on the floor, /mcp and
 * REST paths, and finally seed 000's spawn-per-call pattern for at most 20 calls.
 */
export async function runMcpBench(options: ScenarioOptions): Promise<McpBenchResult> {
  const { durationMs } = options;
  const children: ChildHandle[] = [];
  const clients: Array<{ close(): Promise<void> }> = [];
  const closers: Array<() => Promise<void>> = [];
  try {
    const { command, args } = emulatorCommand();
    // Two replicas naming each other: the gateway under test, and one that only forwards to it (its own
    // pool of one process serves nothing here).
    const ports = [await freePort(), await freePort()];
    const secret = randomBytes(24).toString('hex');
    const server = (era: string, pool: number) => `
      type: stdio
      command: ${JSON.stringify(command)}
      args: ${JSON.stringify(args)}
      era: "${era}"
      pool: { min: ${pool}, max: ${pool} }`;
    const replica = (port: number, pool: number) => `server:
  listen: "127.0.0.1:${port}"
  advertise: "127.0.0.1:${port}"
  replicas: ${JSON.stringify(ports.map((p) => `127.0.0.1:${p}`))}
  limits: { maxConnectionsPerIp: 1000000 }
upstreams: {}
mcp:
  sessionSecret: "${secret}"
  servers:
    emu:${server('2025-11-25', pool)}
    emu26:${server('2026-07-28', pool)}
`;
    const [gateway, forwarder] = await Promise.all([
      startGatewayChild(replica(ports[0]!, POOL_SIZE), { adminPort: options.adminPort }),
      startGatewayChild(replica(ports[1]!, 1)),
    ]);
    children.push(gateway, forwarder);
    assertLoopback(gateway.url);

    const direct = await Promise.all(Array.from({ length: POOL_SIZE }, stdioClient));
    clients.push(...direct);
    const direct2026 = await Promise.all(Array.from({ length: POOL_SIZE }, stdioClient2026));
    clients.push(...direct2026);
    // The SDK client on undici's fetch with its own keep-alive Agent: Node 20's global fetch costs ~1 ms
    // more per call on this machine, all of it client-side (measured while building this scenario).
    // The transport hands its one long-lived AbortSignal to every fetch, and undici's fetch removes its
    // listener from that signal only when the Request is garbage-collected: thousands pile up and every
    // call then pays for walking them. A POST's reply is read whole, so only the long-lived GET stream
    // needs the signal (closing the transport ends it).
    const agent = new Agent({ connections: CONCURRENCY });
    closers.push(() => agent.close());
    const viaMcp = new Client({ name: 'bench', version: '1.0.0' });
    const mcpTransport = new StreamableHTTPClientTransport(new URL(`${gateway.url}/mcp`), {
      fetch: (input, init) => {
        const { signal, ...rest } = init ?? {};
        const keep = rest.method === 'GET' ? { signal } : {};
        return undiciFetch(input, { ...rest, ...keep, dispatcher: agent } as never);
      },
    });
    await viaMcp.connect(mcpTransport);
    clients.push(viaMcp);
    let rpcId = 1_000_000;
    /** Plain JSON-RPC `tools/call` POSTs on /mcp with these headers; `meta` goes into the params. */
    const jsonRpcCalls = (
      connections: number,
      headers: Record<string, string>,
      meta = '',
      url = gateway.url,
    ) => {
      const http = httpTask(
        url,
        () => ({
          method: 'POST',
          path: '/mcp',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            ...headers,
          },
          body: `{"jsonrpc":"2.0","id":${rpcId++},"method":"tools/call","params":{"name":"emu__echo","arguments":{"text":"ping"}${meta}}}`,
        }),
        { connections },
      );
      closers.push(() => http.close());
      return http.task;
    };
    const mcpRaw = (connections: number, url = gateway.url) =>
      jsonRpcCalls(connections, { 'mcp-session-id': mcpTransport.sessionId ?? '' }, '', url);
    // Spec 2026-07-28 basic/transports: each request stands alone, its protocol version and client facts
    // in `_meta`, its method and name repeated in headers.
    const envelope =
      ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1.0.0"}}';
    const mcpModern = (connections: number) =>
      jsonRpcCalls(
        connections,
        { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'emu__echo' },
        envelope,
      );
    const rest = (connections: number, server = 'emu') => {
      const http = httpTask(
        gateway.url,
        {
          method: 'POST',
          path: `/tools/${server}/echo`,
          headers: { 'content-type': 'application/json' },
          body: '{"text":"ping"}',
        },
        { connections },
      );
      closers.push(() => http.close());
      return http.task;
    };
    const tasks = (connections: number): McpPaths<Task> => ({
      stdio: callTask(direct.map(v1Echo), 'echo'),
      stdio2026: callTask(direct2026.map(v2Echo), 'echo'),
      mcp: callTask([v1Echo(viaMcp)], 'emu__echo'),
      mcpRaw: mcpRaw(connections),
      mcpModern: mcpModern(connections),
      rest: rest(connections),
      rest2026: rest(connections, 'emu26'),
      mcpForwarded: mcpRaw(connections, forwarder.url),
    });

    const measure = (task: Task, mode: LoadMode, ms: number) =>
      runLoad({ task, mode, durationMs: ms, warmupMs: Math.min(1_000, ms / 4) });
    const measureAll = (mode: LoadMode, paths: McpPaths<Task>): Promise<McpPaths<LoadResult>> =>
      measureInterleaved(
        {
          stdio: (ms) => measure(paths.stdio, mode, ms),
          stdio2026: (ms) => measure(paths.stdio2026, mode, ms),
          mcp: (ms) => measure(paths.mcp, mode, ms),
          mcpRaw: (ms) => measure(paths.mcpRaw, mode, ms),
          mcpModern: (ms) => measure(paths.mcpModern, mode, ms),
          rest: (ms) => measure(paths.rest, mode, ms),
          rest2026: (ms) => measure(paths.rest2026, mode, ms),
          mcpForwarded: (ms) => measure(paths.mcpForwarded, mode, ms),
        },
        durationMs,
      );

    const latency = await measureAll({ kind: 'closed', concurrency: 1 }, tasks(1));
    const throughput = await measureAll({ kind: 'closed', concurrency: CONCURRENCY }, tasks(CONCURRENCY));

    const spawnTask: Task = async () => {
      const client = await stdioClient();
      try {
        await client.callTool({ name: 'echo', arguments: { text: 'ping' } });
      } finally {
        await client.close();
      }
    };
    const spawnPerCall = await runLoad({
      task: spawnTask,
      mode: { kind: 'closed', concurrency: 1 },
      durationMs: Math.max(durationMs, 2_000),
      maxRequests: SPAWN_CALLS,
    });

    const p50 = (r: LoadResult) => r.latencyUs.p50;
    const mcpAddedP50Us = p50(latency.mcp) - p50(latency.stdio);
    const restAddedP50Us = p50(latency.rest) - p50(latency.stdio);
    const rest2026AddedP50Us = p50(latency.rest2026) - p50(latency.stdio2026);
    const mcpRawAddedP50Us = p50(latency.mcpRaw) - p50(latency.stdio);
    const mcpModernAddedP50Us = p50(latency.mcpModern) - p50(latency.stdio);
    const speedupOverSpawn = p50(spawnPerCall) / Math.max(1, p50(latency.mcp));
    const forwardedP50Ratio =
      Math.round((p50(latency.mcpForwarded) / Math.max(1, p50(latency.mcpRaw))) * 100) / 100;
    return {
      scenario: 'mcp',
      durationMs,
      poolSize: POOL_SIZE,
      concurrency: CONCURRENCY,
      latency: {
        ...latency,
        mcpAddedP50Us,
        mcpRawAddedP50Us,
        mcpModernAddedP50Us,
        restAddedP50Us,
        rest2026AddedP50Us,
        forwardedP50Ratio,
      },
      throughput,
      spawnPerCall,
      speedupOverSpawn: Math.round(speedupOverSpawn * 10) / 10,
      seed: {
        seed: '000',
        before: 'an MCP subprocess started per call',
        after: 'keep-alive, async, fewer restarts (advice)',
        note: 'the seed lists fixes without figures',
      },
      comparisons: [
        {
          metric: 'tool call p50: spawn per call vs a warm pool through /mcp',
          unit: 'ms',
          before: p50(spawnPerCall) / 1000,
          after: p50(latency.mcp) / 1000,
          better: 'lower',
        },
      ],
      charts: [
        {
          title: 'tool call latency at concurrency 1',
          series: [
            { label: 'spawn per call (seed 000)', curve: spawnPerCall.curve },
            { label: 'SDK client over stdio (floor)', curve: latency.stdio.curve },
            { label: 'SDK client through /mcp', curve: latency.mcp.curve },
            { label: 'REST through Slipstream', curve: latency.rest.curve },
          ],
        },
      ],
      targets: [
        target(
          '/mcp added p50 over the stdio floor at concurrency 1',
          mcpAddedP50Us,
          '<=',
          TARGETS.addedP50Us,
          'us',
        ),
        target(
          '/mcp (plain JSON-RPC client) added p50 over the stdio floor at concurrency 1',
          mcpRawAddedP50Us,
          '<=',
          TARGETS.addedP50Us,
          'us',
        ),
        target(
          'REST added p50 over the stdio floor at concurrency 1',
          restAddedP50Us,
          '<=',
          TARGETS.addedP50Us,
          'us',
        ),
        target(
          `/mcp throughput at concurrency ${CONCURRENCY}, ${POOL_SIZE}-process pool`,
          throughput.mcp.throughputPerS,
          '>=',
          TARGETS.callsPerS,
          'calls/s',
        ),
        target(
          `/mcp (plain JSON-RPC client) throughput at concurrency ${CONCURRENCY}, ${POOL_SIZE}-process pool`,
          throughput.mcpRaw.throughputPerS,
          '>=',
          TARGETS.callsPerS,
          'calls/s',
        ),
        target(
          `REST throughput at concurrency ${CONCURRENCY}, ${POOL_SIZE}-process pool`,
          throughput.rest.throughputPerS,
          '>=',
          TARGETS.callsPerS,
          'calls/s',
        ),
        target('/mcp p50 speed-up over spawn-per-call', speedupOverSpawn, '>=', TARGETS.speedup, 'x'),
      ],
    };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await Promise.all(closers.map((close) => close()));
    await Promise.all(children.map((c) => c.stop()));
  }
}

/** `slipstream bench mcp`. */
export const mcpScenario: Scenario<McpBenchResult> = {
  name: 'mcp',
  description:
    'seed 000: MCP tool calls over a warm stdio pool (/mcp, REST) vs stdio direct and spawn-per-call',
  run: runMcpBench,
  format(r) {
    const row = (label: string, paths: McpPaths<LoadResult>, pick: (x: LoadResult) => number) => [
      label,
      pick(paths.stdio),
      pick(paths.mcp),
      pick(paths.mcpRaw),
      pick(paths.mcpModern),
      pick(paths.rest),
      pick(paths.mcpForwarded),
      pick(paths.stdio2026),
      pick(paths.rest2026),
    ];
    return [
      `mcp (seed 000): echo tool, ${r.poolSize}-process pools; spawn-per-call p50 ${(r.spawnPerCall.latencyUs.p50 / 1000).toFixed(1)} ms`,
      '  floor: the v1 SDK client straight over stdio; /mcp SDK: the same client through /mcp; raw: plain',
      '  JSON-RPC POSTs on a session (/mcp 2026: stateless, with the 2026-07-28 envelope); via B: through a',
      "  second replica. The first six reach a 2025-11-25 upstream (the floor's era); the last two a",
      '  2026-07-28 upstream, beside a v2 SDK client straight over stdio in that era.',
      ...formatTable(
        ['floor', '/mcp SDK', '/mcp raw', '/mcp 2026', 'REST', 'via B', 'floor 2026', 'REST 2026'],
        [
          row('p50 us at concurrency 1', r.latency, (x) => x.latencyUs.p50),
          row('p99 us at concurrency 1', r.latency, (x) => x.latencyUs.p99),
          row(`calls/s at concurrency ${r.concurrency}`, r.throughput, (x) => x.throughputPerS),
        ],
      ),
      `  added p50: /mcp +${r.latency.mcpAddedP50Us} us (SDK client), +${r.latency.mcpRawAddedP50Us} us (plain JSON-RPC), +${r.latency.mcpModernAddedP50Us} us (2026-07-28 stateless); REST +${r.latency.restAddedP50Us} us; REST to a 2026-07-28 upstream +${r.latency.rest2026AddedP50Us} us over its floor`,
      `  /mcp (SDK client) is ${r.speedupOverSpawn}x faster than spawn-per-call`,
      `  a session's call through another replica (forwarded to the owner): ${r.latency.forwardedP50Ratio}x the p50 of the same call on the owner`,
      ...formatTargets(r.targets),
    ].join('\n');
  },
};
