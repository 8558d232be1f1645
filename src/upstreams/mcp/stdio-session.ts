// One supervised stdio MCP child process: spawned and initialized once, then multiplexes many calls.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { StdioServerConfig } from '../../config/mcp-schema.js';
import { GatewayError } from '../../errors.js';
import { NO_SDK_TIMEOUT_MS, upstreamFailure } from './mcp-upstream.js';
import type { ToolCallOptions } from './mcp-upstream.js';

export type SessionState = 'starting' | 'ready' | 'closing' | 'dead';

export interface StdioSessionOptions {
  server: string;
  config: StdioServerConfig;
  /** Child stderr lines are logged here, tagged with the server name and pid. */
  logger: Logger;
  /** The process exited without being asked to (crash, kill -9) or was recycled. */
  onExit: (session: StdioSession) => void;
  onToolsChanged: () => void;
}

/** Longest stderr line kept; the rest of a longer line is dropped (a child must not grow our memory). */
const MAX_STDERR_LINE = 4_096;

/**
 * A child process speaking MCP over stdio (spec 2025-06-18, transports/stdio) through the SDK Client, which
 * multiplexes concurrent requests by JSON-RPC id. `inFlight` drives least-in-flight selection in the pool.
 * Shutdown follows the spec: close stdin, then SIGTERM, then SIGKILL.
 */
export class StdioSession {
  state: SessionState = 'starting';
  inFlight = 0;
  /** Why this session ended, given to calls that were in flight. */
  private failure: GatewayError | undefined;
  private readonly client: Client;
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
    this.client = new Client({ name: 'slipstream', version: '0.1.0' });
    this.client.onclose = () => this.closed();
    this.client.onerror = () => {}; // transport noise; failures reach the calls themselves
    this.client.setNotificationHandler(ToolListChangedNotificationSchema, () => options.onToolsChanged());
    this.pipeStderr();
  }

  /** Pid of the child once spawned (kept after it exits, for logs and events). */
  get pid(): number | undefined {
    return this.transport.pid ?? this.lastPid;
  }

  /** Spawns the process and runs `initialize` (once for the life of the process). */
  async start(timeoutMs: number): Promise<void> {
    try {
      const connecting = this.client.connect(this.transport, { timeout: timeoutMs });
      this.lastPid = this.transport.pid ?? undefined; // spawned synchronously by connect()
      await connecting;
      this.lastPid ??= this.transport.pid ?? undefined;
      if (this.state === 'starting') this.state = 'ready';
    } catch (error) {
      this.kill();
      throw new GatewayError(
        'GW_UPSTREAM_UNAVAILABLE',
        `MCP server "${this.options.server}" did not start: ${String(error)}`,
        { cause: error },
      );
    }
  }

  async listTools(timeoutMs: number): Promise<Tool[]> {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.client.listTools(cursor === undefined ? undefined : { cursor }, {
        timeout: timeoutMs,
      });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined && tools.length < 10_000);
    return tools;
  }

  async callTool(
    name: string,
    args: Record<string, unknown>,
    options: ToolCallOptions,
  ): Promise<CallToolResult> {
    this.inFlight++;
    try {
      return await this.client.request(
        { method: 'tools/call', params: { name, arguments: args } },
        CallToolResultSchema,
        {
          signal: options.signal,
          onprogress: options.onProgress,
          timeout: NO_SDK_TIMEOUT_MS,
        },
      );
    } catch (error) {
      throw this.failure !== undefined && !options.signal.aborted
        ? this.failure
        : upstreamFailure(this.options.server, error, options.signal);
    } finally {
      this.inFlight--;
    }
  }

  /** True when the process answers a ping within `timeoutMs`. */
  async ping(timeoutMs: number): Promise<boolean> {
    try {
      await this.client.ping({ timeout: timeoutMs });
      return true;
    } catch {
      return false;
    }
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
    await this.client.close();
  }

  private closed(): void {
    const unexpected = this.state !== 'closing';
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
