// REST tool calls for plain apps: `GET /tools` (catalogue) and `POST /tools/:server/:tool` (JSON arguments → JSON result).
import { GatewayError } from '../errors.js';
import { allowed } from '../server/auth.js';
import type { ReplyCoder } from '../server/compression.js';
import type { Endpoint } from '../server/exchange.js';
import { decodeSegment } from '../server/request.js';
import { serverDownError } from '../upstreams/mcp/outage.js';
import type { ToolRegistry } from '../upstreams/mcp/tool-registry.js';

export interface ToolsEntrypointOptions {
  registry: ToolRegistry;
  /** Largest request body, in bytes; more gets 413 `GW_PAYLOAD_TOO_LARGE`. */
  maxRequestBytes: number;
  /** Compresses replies for clients that accept it (`compression.endpoints`). Default: none. */
  coder?: ReplyCoder;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The `/tools` endpoint. `GET /tools` is the catalogue; `POST /tools/:server/:tool` answers `200` with the
 * `CallToolResult` JSON (`{content, structuredContent?, isError?}`), tool errors (`isError`) included; an
 * unknown server or tool is 404 `GW_TOOL_NOT_FOUND` (503 `GW_MCP_SERVER_DOWN` when the server is configured but
 * down, so its tools are not known yet; told only to callers without tool allowances), arguments failing the tool's input schema 400
 * `GW_TOOL_INVALID_ARGUMENTS`, a body that is not a JSON object 400 `GW_BAD_REQUEST`, an oversized one 413;
 * upstream failures are 5xx.
 */
export function toolsEndpoint(options: ToolsEntrypointOptions): Endpoint {
  const { registry, maxRequestBytes } = options;
  const coder = options.coder;
  /** The catalogue, serialised once per change of the tool set rather than per request. */
  let catalogue: Buffer | undefined;
  registry.onChange(() => (catalogue = undefined));

  /** The tool a `/:server/:tool` path names, when both segments decode and it exists. */
  const toolAt = (rest: string) => {
    const parts = rest.slice(1).split('/');
    if (parts.length !== 2) return undefined;
    const [server, tool] = parts.map(decodeSegment);
    return server === undefined || tool === undefined ? undefined : registry.lookup(server, tool);
  };

  return {
    route: 'tools',
    // One label for every unknown name: a client must not be able to grow the metrics' label set.
    label: (rest) => (rest === '' || rest === '/' ? 'tools' : (toolAt(rest)?.route ?? 'mcp:unknown')),
    async handle(x) {
      if (x.rest === '' || x.rest === '/') {
        if (x.method !== 'GET' && x.method !== 'HEAD') throw notAllowed(x.method, x.path);
        // A key with tool allowances sees only the tools it may call.
        const body =
          x.caller?.allow?.tools === undefined
            ? (catalogue ??= Buffer.from(JSON.stringify({ tools: registry.list().map(describe) })))
            : Buffer.from(
                JSON.stringify({
                  tools: registry
                    .list()
                    .filter((e) => allowed(x.caller, 'tools', e.namespaced))
                    .map(describe),
                }),
              );
        const reply = {
          status: 200,
          headers: { 'content-type': JSON_TYPE, 'content-length': String(body.length) },
          body,
        };
        return coder === undefined
          ? reply
          : coder(reply, { method: x.method, headers: x.req.headers, route: x.ctx.route });
      }
      const parts = x.rest.slice(1).split('/');
      if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
        throw new GatewayError('GW_TOOL_NOT_FOUND', `no tool at ${x.path}; use /tools/{server}/{tool}`);
      }
      const [server, tool] = parts.map(decodeSegment);
      if (server === undefined || tool === undefined) {
        throw new GatewayError('GW_BAD_REQUEST', `the tool path ${x.path} has a malformed %-encoding`);
      }
      if (x.method !== 'POST') throw notAllowed(x.method, x.path);
      const entry = registry.lookup(server, tool);
      // A tool this caller may not use is, to it, a tool that does not exist.
      if (entry === undefined || !allowed(x.caller, 'tools', entry.namespaced)) {
        const down = x.caller?.allow?.tools === undefined ? downServer(registry, server) : undefined;
        if (down !== undefined) throw down;
        throw new GatewayError('GW_TOOL_NOT_FOUND', `no tool "${tool}" on MCP server "${server}"`, {
          data: { server, tool },
        });
      }
      const args = readArguments(await x.body(maxRequestBytes), (body) => x.parse(body));
      const cacheControl = x.req.headers['cache-control'];
      const reply = await registry.invoke(entry, args, {
        ctx: x.ctx,
        principal: x.principal,
        signal: x.signal,
        cacheControl: Array.isArray(cacheControl) ? cacheControl.join(',') : cacheControl,
        // REST has no sessions: a stateful server keeps one process per caller.
        session: `principal:${x.principal ?? ''}`,
      });
      const body = reply.body as Buffer;
      const headers: Record<string, string> = {
        'content-type': JSON_TYPE,
        'content-length': String(body.length),
      };
      const cacheResult = reply.headers['x-slipstream-cache'];
      if (typeof cacheResult === 'string') headers['x-slipstream-cache'] = cacheResult;
      const result = { status: 200, headers, body };
      return coder === undefined
        ? result
        : coder(result, { method: x.method, headers: x.req.headers, route: x.ctx.route });
    },
  };
}

/** The error for a call to `server` while it is down; undefined when it serves or is not configured. */
function downServer(registry: ToolRegistry, server: string) {
  const down = registry.stats().find((stats) => stats.server === server)?.down;
  return down === undefined ? undefined : serverDownError(server, down);
}

/** A catalogue row: the namespaced name, where to POST, and the upstream's own definition. */
function describe(entry: ReturnType<ToolRegistry['list']>[number]) {
  const { tool } = entry;
  return {
    name: entry.namespaced,
    server: entry.server,
    tool: entry.name,
    path: `/tools/${encodeURIComponent(entry.server)}/${encodeURIComponent(entry.name)}`,
    ...(tool.title === undefined ? {} : { title: tool.title }),
    ...(tool.description === undefined ? {} : { description: tool.description }),
    inputSchema: tool.inputSchema,
    ...(tool.outputSchema === undefined ? {} : { outputSchema: tool.outputSchema }),
    ...(tool.annotations === undefined ? {} : { annotations: tool.annotations }),
  };
}

/** The JSON object of tool arguments in a body (an empty body means `{}`). */
function readArguments(body: Buffer, parse: (body: Buffer) => unknown): Record<string, unknown> {
  if (body.length === 0) return {};
  const parsed = parse(body);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new GatewayError('GW_BAD_REQUEST', 'request body must be a JSON object of tool arguments');
  }
  return parsed as Record<string, unknown>;
}

function notAllowed(method: string, path: string): GatewayError {
  return new GatewayError('GW_METHOD_NOT_ALLOWED', `method ${method} is not allowed on ${path}`);
}
