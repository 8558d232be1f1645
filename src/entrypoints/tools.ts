// REST tool calls for plain apps: `GET /tools` (catalogue) and `POST /tools/:server/:tool` (JSON arguments → JSON result).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../errors.js';
import { events, publish } from '../telemetry/events.js';
import type { ToolRegistry } from '../upstreams/mcp/tool-registry.js';
import { writeError } from './reply-error.js';
import { decodeSegment, parseJson, readBody, requestContext } from './request.js';
import type { ProxyHandler as RawHandler } from './proxy.js';

export interface ToolsEntrypointOptions {
  registry: ToolRegistry;
  /** Header whose value identifies the caller (lower-case); cached results are scoped by it. */
  principalHeader: string;
  /** Largest request body, in bytes; more gets 413 `GW_PAYLOAD_TOO_LARGE`. */
  maxRequestBytes: number;
  /** True once shutdown began. */
  isDraining: () => boolean;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Builds the raw handler for `/tools`. A tool result is answered `200` with the `CallToolResult` JSON
 * (`{content, structuredContent?, isError?}`), tool errors (`isError`) included; an unknown server or tool is
 * 404 `GW_TOOL_NOT_FOUND`, arguments failing the tool's input schema 400 `GW_TOOL_INVALID_ARGUMENTS`, a body
 * that is not a JSON object 400 `GW_BAD_REQUEST`, an oversized one 413; upstream failures are 5xx.
 */
export function createToolsHandler(options: ToolsEntrypointOptions): RawHandler {
  const { registry, principalHeader, maxRequestBytes } = options;
  /** The catalogue, serialised once per change of the tool set rather than per request. */
  let catalogue: string | undefined;
  registry.onChange(() => (catalogue = undefined));
  return (req, res) => {
    const url = req.url ?? '/';
    if (url !== '/tools' && !url.startsWith('/tools/') && !url.startsWith('/tools?')) return false;
    const path = url.split('?', 1)[0]!;
    handle(path, req, res).catch((error: unknown) => writeError(res, error));
    return true;
  };

  async function handle(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    if (path === '/tools' || path === '/tools/') {
      if (method !== 'GET' && method !== 'HEAD') throw notAllowed(method, path);
      const body = (catalogue ??= JSON.stringify({ tools: registry.list().map(describe) }));
      res.writeHead(200, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(body) }).end(body);
      return;
    }
    const parts = path.slice('/tools/'.length).split('/');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new GatewayError('GW_TOOL_NOT_FOUND', `no tool at ${path}; use /tools/{server}/{tool}`);
    }
    const [server, tool] = parts.map(decodeSegment);
    if (server === undefined || tool === undefined) {
      throw new GatewayError('GW_BAD_REQUEST', `the tool path ${path} has a malformed %-encoding`);
    }
    const entry = registry.lookup(server, tool);
    // One label for every unknown name: a client must not be able to grow the metrics' label set.
    const ctx = requestContext(req.headers, entry?.route ?? 'mcp:unknown');
    publish(events.requestStart, { ctx, method, path, headers: req.headers });
    let status = 0;
    let errorCode: GatewayError['code'] | undefined;
    try {
      if (options.isDraining()) throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
      if (method !== 'POST') throw notAllowed(method, path);
      if (entry === undefined) {
        throw new GatewayError('GW_TOOL_NOT_FOUND', `no tool "${tool}" on MCP server "${server}"`, {
          data: { server, tool },
        });
      }
      const args = await readArguments(req, maxRequestBytes);
      // REST has no sessions: a stateful server keeps one process per caller.
      const principal = headerValue(req.headers[principalHeader]);
      const clientGone = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished)
          clientGone.abort(new GatewayError('GW_CLIENT_CLOSED', 'client closed the request'));
      });
      const reply = await registry.invoke(entry, args, {
        ctx,
        principal,
        signal: clientGone.signal,
        cacheControl: headerValue(req.headers['cache-control']),
        session: `principal:${principal ?? ''}`,
      });
      const body = reply.body as Buffer;
      const headers: Record<string, string | number> = {
        'content-type': JSON_TYPE,
        'content-length': body.length,
        'x-request-id': ctx.id,
      };
      const cacheResult = reply.headers['x-slipstream-cache'];
      if (typeof cacheResult === 'string') headers['x-slipstream-cache'] = cacheResult;
      status = 200;
      res.writeHead(200, headers).end(body);
    } catch (error) {
      if (!req.readableEnded) res.shouldKeepAlive = false;
      const failure = writeError(res, error, ctx.id);
      status = failure.status;
      errorCode = failure.code;
    } finally {
      const durationMs = performance.now() - ctx.startedAt;
      publish(events.requestEnd, { ctx, method, path, status, errorCode, durationMs });
    }
  }
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

/** Reads a JSON object body (empty means `{}`), bounded by `limit` bytes. */
async function readArguments(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const body = await readBody(req, limit);
  if (body.length === 0) return {};
  const parsed = parseJson(body);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new GatewayError('GW_BAD_REQUEST', 'request body must be a JSON object of tool arguments');
  }
  return parsed as Record<string, unknown>;
}

function notAllowed(method: string, path: string): GatewayError {
  return new GatewayError('GW_METHOD_NOT_ALLOWED', `method ${method} is not allowed on ${path}`);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(',') : value;
}
