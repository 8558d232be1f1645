// How a fan-out member is reached: its own pooled HTTP endpoint, or a tool on one of the gateway's MCP servers.
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { GroupConfig, GroupMemberConfig, McpMemberConfig } from '../config/groups-schema.js';
import { GatewayError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import type { Call, Handler, Reply } from '../pipeline/types.js';
import type { UpstreamConnectionStats } from '../telemetry/metrics.js';
import type { DiscoveredMember } from './discovery.js';
import { httpUpstream } from './http.js';
import { resultOf } from './mcp/tool-registry.js';
import type { ToolRegistry } from './mcp/tool-registry.js';

/** A member's answer as the fan-out reports it. */
export interface MemberAnswer {
  ok: boolean;
  /** The member's HTTP status (HTTP members only). */
  status?: number;
  body: unknown;
  error?: { code: ErrorCode; message: string };
}

/** Where a member lives: its URL, or `mcp:server/tool`. */
export function memberAddress(spec: GroupMemberConfig | DiscoveredMember): string {
  return 'url' in spec ? spec.url : `mcp:${spec.server}/${spec.tool}`;
}

export interface MemberTransport {
  /** Where the member lives (its URL, or `mcp:server/tool`): a member whose address changes is rebuilt. */
  readonly address: string;
  /**
   * Sends the message and resolves with the whole answer (a Buffer body). A call with method `OPTIONS` is
   * a health check that asks the member nothing (warm-up and the half-open probe). Throws GatewayError for
   * failures that are the member's: they count against its breaker, as does a 5xx reply.
   */
  readonly send: Handler;
  /**
   * The message's own fault for this member, found before any call (so it never touches the member's
   * breaker): for a tool, a message that is not an object or that the tool's schema rejects.
   */
  reject?(message: Buffer): MemberAnswer | undefined;
  /** Opens connections ahead of traffic by sending `check` (a health-check call). Never rejects. */
  warm(check: Call): Promise<void>;
  answer(reply: Reply): MemberAnswer;
  /** What is wrong with the member's configuration as far as can be told now (logged at start-up). */
  problem?(): string | undefined;
  /** Pool counters, for HTTP members. */
  stats(): UpstreamConnectionStats | undefined;
  close(): Promise<void>;
}

/**
 * An HTTP member: its own undici pool (kept alive, sized by `pool.connections`), the message POSTed as
 * JSON, the answer read whole (bounded by `maxResponseBytes`) and reported as JSON when it says so.
 */
export function httpMemberTransport(
  upstreamName: string,
  spec: DiscoveredMember,
  config: GroupConfig,
  deadlineMs: number,
): MemberTransport {
  const upstream = httpUpstream(upstreamName, {
    url: spec.url,
    pool: {
      connections: config.pool.connections,
      pipelining: 1,
      keepAlive: config.pool.keepAlive,
      http2: false,
      warm: config.pool.warm,
    },
    timeouts: { connect: config.pool.connect, firstByte: deadlineMs, idle: deadlineMs },
    headers: config.headers,
    maxResponseBytes: config.maxResponseBytes,
  });
  const send: Handler = async (call) => {
    const reply = await upstream.handler(call);
    return { status: reply.status, headers: reply.headers, body: await readAll(reply.body) };
  };
  return {
    address: spec.url,
    send,
    async warm(check) {
      const count = Math.min(config.pool.warm, config.pool.connections);
      await Promise.all(Array.from({ length: count }, () => send(check).catch(() => {})));
    },
    answer(reply) {
      const ok = reply.status >= 200 && reply.status < 300;
      return {
        ok,
        status: reply.status,
        body: decode(reply),
        ...(ok
          ? {}
          : { error: { code: 'GW_UPSTREAM_UNAVAILABLE', message: `member answered ${reply.status}` } }),
      };
    },
    stats: () => upstream.stats(),
    close: () => upstream.close(),
  };
}

/**
 * An MCP tool member: the message object is the tool's arguments, sent over the server's warm pool
 * through the tool's own policies (timeout, retry, cache, breaker) in the gateway's tool registry. A
 * message the tool's schema rejects is the message's fault, reported before any call; a tool that answers
 * `isError` failed with `GW_TOOL_ERROR`, its content reported (an answer, not a breaker failure). The
 * health check readmits the member once its server lists the tool; the next call decides, as an HTTP
 * member's `OPTIONS` answer does. Calls carry no principal: a principal-scoped tool cache is shared by
 * every fan-out.
 */
export function mcpMemberTransport(spec: McpMemberConfig, tools: ToolRegistry): MemberTransport {
  const entry = () => {
    const found = tools.lookup(spec.server, spec.tool);
    if (found === undefined) {
      throw new GatewayError('GW_TOOL_NOT_FOUND', `MCP server "${spec.server}" lists no tool "${spec.tool}"`);
    }
    return found;
  };
  const invalid = (message: string): MemberAnswer => ({
    ok: false,
    body: undefined,
    error: { code: 'GW_TOOL_INVALID_ARGUMENTS', message },
  });
  return {
    address: memberAddress(spec),
    reject(message) {
      const args = argumentsOf(message);
      if (args === undefined) {
        return invalid(`the message must be a JSON object: it is the arguments of tool "${spec.tool}"`);
      }
      const tool = tools.lookup(spec.server, spec.tool);
      const problem = tool?.validate(args);
      return problem === undefined
        ? undefined
        : invalid(`invalid arguments for tool "${spec.tool}": ${problem}`);
    },
    async send(call) {
      const tool = entry();
      if (call.method === 'OPTIONS') return { status: 204, headers: {}, body: Buffer.alloc(0) };
      // `reject` ran first: the message is an object the tool's schema accepts.
      const args = argumentsOf(call.body as Buffer)!;
      return tools.invoke(tool, args, { ctx: call.ctx, principal: undefined, signal: call.signal });
    },
    async warm() {
      // The registry pre-warms the server's pool at start-up; there is nothing to open per member.
    },
    answer(reply) {
      const result = resultOf(reply);
      if (result.isError !== true) return { ok: true, body: result };
      return {
        ok: false,
        body: result,
        error: { code: 'GW_TOOL_ERROR', message: `tool "${spec.tool}" failed: ${firstText(result)}` },
      };
    },
    problem: () =>
      tools.lookup(spec.server, spec.tool) === undefined
        ? `MCP server "${spec.server}" lists no tool "${spec.tool}"`
        : undefined,
    stats: () => undefined,
    close: async () => {},
  };
}

/** The message parsed once per fan-out, however many tool members read it. */
const parsedMessages = new WeakMap<Buffer, Record<string, unknown> | null>();

function argumentsOf(message: Buffer): Record<string, unknown> | undefined {
  let args = parsedMessages.get(message);
  if (args === undefined) {
    let value: unknown;
    try {
      value = JSON.parse(message.toString('utf8'));
    } catch {
      value = undefined;
    }
    args =
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : null;
    parsedMessages.set(message, args);
  }
  return args ?? undefined;
}

/** The start of a tool result's first text item, for an error message. */
function firstText(result: CallToolResult): string {
  const text = result.content.find((c) => c.type === 'text');
  return text === undefined ? '(no text)' : text.text.slice(0, 200);
}

/** Reads a member's answer into memory (its size is bounded by the pool's `maxResponseSize`). */
async function readAll(body: Reply['body']): Promise<Buffer> {
  if (body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A member's body as JSON when it says so (and parses), else as text; nothing for an empty body. */
function decode(reply: Reply): unknown {
  const body = reply.body as Buffer;
  if (body.length === 0) return undefined;
  const text = body.toString('utf8');
  const type = reply.headers['content-type'];
  if (typeof type === 'string' && type.includes('json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}
