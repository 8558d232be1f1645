// Started stdio pools for upstream tests, from one server's config as a user writes it under `mcp.servers`.
import { pino } from 'pino';
import { mcpSchema } from '../../src/config/mcp-schema.js';
import type { StdioServerConfig } from '../../src/config/mcp-schema.js';
import type { McpUpstream } from '../../src/upstreams/mcp/mcp-upstream.js';
import { stdioPool } from '../../src/upstreams/mcp/stdio-pool.js';

/** Parses `server` as `mcp.servers.<name>`, starts its pool (silent logs) and adds it to `opened` for closing. */
export async function startStdioPool(
  name: string,
  server: Record<string, unknown>,
  opened: McpUpstream[],
): Promise<McpUpstream> {
  const config = mcpSchema.parse({ servers: { [name]: server } }).servers[name] as StdioServerConfig;
  const upstream = stdioPool(name, config, pino({ level: 'silent' }));
  opened.push(upstream);
  await upstream.start();
  return upstream;
}
