// `slipstream mcp-stdio --url ...`: a stdio MCP server for desktop clients, bridged to a gateway's /mcp.
import type { Command } from 'commander';
import { pino } from 'pino';
import { createLogger } from '../telemetry/log.js';
import { EXIT_CONFIG_INVALID } from './config-file.js';
// The bridge and the SDK transports are imported by the action: other commands never load them.

/** Most `--header` options taken (a typo must not build an unbounded header set). */
const MAX_HEADERS = 32;

/** Registers `mcp-stdio`: exit 0 when the client closes stdin, 2 bad flags, 3 server unreachable, 4 auth refused. */
export function registerMcpStdio(program: Command): void {
  program
    .command('mcp-stdio')
    .description(
      'serve MCP over stdio, bridged to a gateway /mcp endpoint over one HTTP session (for desktop clients that speak only stdio)',
    )
    .requiredOption('--url <url>', 'the streamable HTTP MCP endpoint, e.g. http://127.0.0.1:8080/mcp')
    .option(
      '--header <header>',
      "a header sent on every request, 'name: value' (repeatable)",
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .option('--log-level <level>', 'stderr log level', 'warn')
    .action(async (flags: { url: string; header: string[]; logLevel: string }) => {
      let url: URL;
      let headers: Record<string, string>;
      try {
        url = parseUrl(flags.url);
        headers = parseHeaders(flags.header);
      } catch (error) {
        process.stderr.write(`slipstream mcp-stdio: ${(error as Error).message}\n`);
        process.exitCode = EXIT_CONFIG_INVALID;
        return;
      }
      // stdout is the protocol: every log line goes to stderr.
      const logger = createLogger({ level: flags.logLevel, destination: pino.destination(2) });
      const [{ StdioServerTransport }, { runStdioBridge }] = await Promise.all([
        import('@modelcontextprotocol/server/stdio'),
        import('./stdio-bridge.js'),
      ]);
      process.exitCode = await runStdioBridge({ url, headers, local: new StdioServerTransport(), logger });
    });
}

function parseUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`--url ${JSON.stringify(text)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('--url must be http: or https:');
  return url;
}

function parseHeaders(lines: readonly string[]): Record<string, string> {
  if (lines.length > MAX_HEADERS) throw new Error(`at most ${MAX_HEADERS} --header options`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = colon === -1 ? '' : line.slice(0, colon).trim().toLowerCase();
    if (!/^[!#$%&'*+.^`|~\w-]+$/.test(name))
      throw new Error(`--header must be 'name: value' (got a malformed name)`);
    headers[name] = line.slice(colon + 1).trim();
  }
  return headers;
}
