// The `CallToolResult` a tool reply carries: what callers outside the MCP layer read, without loading its SDKs.
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { GatewayError } from '../../errors.js';
import type { Reply } from '../../pipeline/types.js';

/** The `CallToolResult` in a tool reply (parsed again only when it came from a cache). */
export function resultOf(reply: Reply): CallToolResult {
  if (reply.decoded !== undefined) return reply.decoded as CallToolResult;
  const body = reply.body;
  if (!Buffer.isBuffer(body)) throw new GatewayError('GW_INTERNAL', 'tool reply without a buffered body');
  return JSON.parse(body.toString('utf8')) as CallToolResult;
}
