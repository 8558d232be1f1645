// One supervised stdio MCP child process: spawned and connected once, then multiplexes many calls.
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import type { CallToolResult, PriorDiscovery } from '@modelcontextprotocol/client';
import type { Logger } from 'pino';
import type { StdioServerConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { McpClient, declaredCapabilities } from './mcp-client.js';
import { tuneStdioTransport } from './stdio-framing.js';
import type { LoadedList, LoadedLists } from './mcp-client.js';
import type { McpListKind, McpRequestOptions, McpServerInfo } from './mcp-upstream.js';

export type SessionState = 'starting' | 'ready' | 'closing' | 'dead';

export interface StdioSessionOptions {
  server: string;
  config: StdioServerConfig;
  /** The pool's era verdict from an earlier process: this one skips the probe. */
  prior?: PriorDiscovery;
  /** Child stderr lines are logged here, tagged with the server name and pid. */
  logger: Logger;
  /** The process exited without being asked to (crash, kill -9) or was recycled. */
  onExit: (session: StdioSession) => void;
  onListChanged: (session: StdioSession, kind: McpListKind) => void;
  onResourceUpdated: (uri: string) => void;
}

/** Longest stderr line kept; the rest of a longer line is dropped (a child must not grow our memory). */
const MAX_STDERR_LINE = 4_096;

/**
 * A child process speaking MCP over stdio (spec 2025-11-25 basic/transports#stdio) through the v2 SDK
 * Client, which multiplexes concurrent requests by JSON-RPC id, in whichever era the pool settled on.
 * `inFlight` drives least-in-flight selection in the pool. Shutdown follows the spec: close stdin, then
 * SIGTERM, then SIGKILL.
 */
export class StdioSession {
  state: SessionState = 'starting';
  /** Why this session ended, given to calls that were in flight. */
  private failure: GatewayError | undefined;
  private readonly mcp: McpClient;
  private readonly transport: StdioClientTransport;
  private lastPid: number | undefined;

  constructor(private readonly options: StdioSessionOptions) {
    const { config } = options;
    this.transport = new StdioClientTransport({
      command: config.command,
      args: config.args,
      env: config.env, // added to the SDK's minimal inherited environment (HOME, PATH, ...)
      cwd: config.cwd,
      stderr: 'pipe',
    });
    tuneStdioTransport(this.transport);
    const log = options.logger.child({ mcpServer: options.server });
    this.mcp = new McpClient({
      server: options.server,
      era: config.era,
      prior: options.prior,
      declared: declaredCapabilities(config.clientCapabilities),
      onListChanged: (kind) => options.onListChanged(this, kind),
      onResourceUpdated: options.onResourceUpdated,
      onUnattributedLog: (params) => log.debug({ pid: this.pid, mcpLog: params }, 'MCP server log line'),
    });
    this.mcp.client.onclose = () => this.closed();
    this.pipeStderr();
  }

  /** Pid of the child once spawned (kept after it exits, for logs and events). */
  get pid(): number | undefined {
    return this.transport.pid ?? this.lastPid;
  }

  get inFlight(): number {
    return this.mcp.inFlight;
  }

  /** An attributed (interactive) call runs or waits here: the pool sends other such calls elsewhere. */
  get busyAttributed(): boolean {
    return this.mcp.busyAttributed;
  }

  needsTurn(options: McpRequestOptions): boolean {
    return this.mcp.needsTurn(options);
  }

  /** Spawns the process and opens the MCP connection (once for its life); resolves with the era verdict. */
  async start(timeoutMs: number): Promise<PriorDiscovery> {
    try {
      const connecting = this.mcp.connect(this.transport, timeoutMs);
      this.lastPid = this.transport.pid ?? undefined;
      const verdict = await connecting;
      this.lastPid ??= this.transport.pid ?? undefined;
      if (this.state === 'starting') this.state = 'ready';
      return verdict;
    } catch (error) {
      this.kill();
      const exited = error instanceof SdkError && error.code === SdkErrorCode.ConnectionClosed;
      const cause = exited
        ? new Error('the process exited before it answered initialize', { cause: error })
        : error;
      throw new GatewayError(
        'GW_UPSTREAM_UNAVAILABLE',
        `MCP server "${this.options.server}" did not start: ${String(cause)}`,
        { cause },
      );
    }
  }

  info(): McpServerInfo {
    return this.mcp.info();
  }

  loadLists(timeoutMs: number): Promise<LoadedLists> {
    return this.mcp.loadLists(timeoutMs);
  }

  loadList(kind: McpListKind, timeoutMs: number): Promise<LoadedList> {
    return this.mcp.loadList(kind, timeoutMs);
  }

  listen(resourceUris: readonly string[]): Promise<void> {
    return this.mcp.listen(resourceUris);
  }

  async callTool(
    name: string,
    args: Record<string, unknown>,
    options: McpRequestOptions,
  ): Promise<CallToolResult> {
    return (await this.request('tools/call', { name, arguments: args }, options)) as CallToolResult;
  }

  async request(
    method: string,
    params: Record<string, unknown> | undefined,
    options: McpRequestOptions,
  ): Promise<Record<string, unknown>> {
    try {
      return await this.mcp.request(method, params, options);
    } catch (error) {
      // A call lost to this process's death reports why it died (crash, recycle, shutdown).
      throw this.failure !== undefined && !options.signal.aborted ? this.failure : error;
    }
  }

  /** True when the process answers a ping (`server/discover` on 2026-07-28) within `timeoutMs`. */
  ping(timeoutMs: number): Promise<boolean> {
    return this.mcp.ping(timeoutMs);
  }

  /** Kills a process that stopped answering (SIGKILL: a stopped or spinning process ignores SIGTERM). */
  recycle(reason: string): void {
    if (this.state === 'dead' || this.state === 'closing') return;
    this.failure = new GatewayError(
      'GW_MCP_SERVER_CRASHED',
      `MCP server "${this.options.server}" was recycled: ${reason}`,
    );
    this.kill();
  }

  /** Graceful stop: stdin closed, SIGTERM after 2 s, SIGKILL 2 s later (the SDK transport's sequence). */
  async close(): Promise<void> {
    if (this.state === 'dead') return;
    this.state = 'closing';
    this.failure ??= new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
    await this.mcp.close();
  }

  private closed(): void {
    // A process that dies while starting makes `start()` fail: that is its one report, not an exit.
    const unexpected = this.state === 'ready';
    this.failure ??= new GatewayError(
      'GW_MCP_SERVER_CRASHED',
      `MCP server "${this.options.server}" (pid ${this.pid ?? '?'}) exited during the call`,
    );
    this.state = 'dead';
    if (unexpected) this.options.onExit(this);
  }

  private kill(): void {
    const pid = this.transport.pid; // only a live child: a stale pid may belong to another process by now
    if (pid === null) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  private pipeStderr(): void {
    const stderr = this.transport.stderr;
    if (stderr === null) return;
    const log = this.options.logger.child({ mcpServer: this.options.server });
    let partial = '';
    stderr.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = (lines.pop() ?? '').slice(0, MAX_STDERR_LINE);
      for (const line of lines) {
        if (line.length > 0) log.info({ pid: this.pid }, line.slice(0, MAX_STDERR_LINE));
      }
    });
  }
}
