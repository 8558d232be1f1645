// An MCP tool as a fan-out member: the message is the tool's arguments, sent over the server's warm pool.
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { McpMemberConfig } from '../../config/groups-schema.js';
import { GatewayError } from '../../errors.js';
import { resultOf } from '../mcp/tool-result.js';
import type { ToolRegistry } from '../mcp/tool-registry.js';
import { memberAddress } from './member.js';
import type { MemberAnswer, MemberTransport } from './member.js';

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
      if (!isObject(message)) {
        return invalid(`the message must be a JSON object: it is the arguments of tool "${spec.tool}"`);
      }
      const problem = tools.lookup(spec.server, spec.tool)?.validate(message);
      return problem === undefined
        ? undefined
        : invalid(`invalid arguments for tool "${spec.tool}": ${problem}`);
    },
    async send(call) {
      const tool = entry();
      if (call.method === 'OPTIONS') return { status: 204, headers: {}, body: Buffer.alloc(0) };
      // `reject` ran first: the message is an object the tool's schema accepts.
      const args = call.message as Record<string, unknown>;
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

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The start of a tool result's first text item, for an error message. */
function firstText(result: CallToolResult): string {
  const text = result.content.find((c) => c.type === 'text');
  return text === undefined ? '(no text)' : text.text.slice(0, 200);
}
