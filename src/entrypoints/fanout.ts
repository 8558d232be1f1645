// Fan-out entrypoint: POST /fanout/<group> sends one JSON message to every member; results streamed or aggregated.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MAX_GROUP_MEMBERS } from '../config/groups-schema.js';
import type { GroupConfig } from '../config/groups-schema.js';
import { GatewayError } from '../errors.js';
import { events, publish } from '../telemetry/events.js';
import type { FanoutGroup, FanoutRequest, MemberResult } from '../upstreams/group.js';
import type { ProxyHandler as RawHandler } from './proxy.js';
import { writeError } from './reply-error.js';
import { decodeSegment, parseJson, readBody, requestContext } from './request.js';

export interface FanoutEntrypointOptions {
  groups: ReadonlyMap<string, { group: FanoutGroup; config: GroupConfig }>;
  /** True once shutdown began: new requests get 503 GW_SHUTTING_DOWN. */
  isDraining: () => boolean;
}

const PREFIX = '/fanout/';
/** How results are written: one JSON document, NDJSON lines, or Server-Sent Events. */
type Format = 'json' | 'ndjson' | 'sse';

/**
 * Builds the raw `node:http` handler for `POST /fanout/<group>` (it claims every path under `/fanout/`).
 * The body must be JSON, at most the group's `maxRequestBytes` (413 beyond, 400 when it does not parse).
 * `Accept: application/x-ndjson` streams one `{"type":"result",...}` line per member the moment it settles,
 * then a `{"type":"summary",...}` line; `Accept: text/event-stream` sends the same as `result` and `summary`
 * events; anything else gets `{"group","results":[...member order],"summary"}` once all are in. Member
 * failures are entries, never the request's status. Unknown group: 404 `GW_GROUP_NOT_FOUND`. The group's
 * `timeout` bounds the whole exchange, body upload and reply writing included. `?minResponses=N` or
 * `?firstN=N` sets this request's quorum or first-N instead of the group's.
 */
export function createFanoutHandler(options: FanoutEntrypointOptions): RawHandler {
  return (req, res) => {
    const url = req.url ?? '/';
    if (!url.startsWith(PREFIX)) return false;
    handle(req, res, url).catch((error: unknown) => {
      if (!res.destroyed) writeError(res, error);
    });
    return true;
  };

  async function handle(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    const name = decodeSegment(path.slice(PREFIX.length));
    const entry = name === undefined ? undefined : options.groups.get(name);
    const method = req.method ?? 'GET';
    const ctx = requestContext(req.headers, entry === undefined ? 'fanout' : `fanout:${name}`);
    publish(events.requestStart, { ctx, method, path, headers: req.headers });
    let status = 0;
    let errorCode: GatewayError['code'] | undefined;
    const clientGone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished)
        clientGone.abort(new GatewayError('GW_CLIENT_CLOSED', 'client closed the request'));
    });
    let deadline: NodeJS.Timeout | undefined;
    try {
      if (options.isDraining()) {
        res.shouldKeepAlive = false;
        throw new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down');
      }
      if (entry === undefined) {
        const known = [...options.groups.keys()].join(', ') || 'none';
        throw new GatewayError(
          'GW_GROUP_NOT_FOUND',
          `no fan-out group "${name ?? path.slice(PREFIX.length)}" (known: ${known})`,
        );
      }
      if (method !== 'POST') {
        throw new GatewayError('GW_METHOD_NOT_ALLOWED', `use POST to fan out to group "${name}"`);
      }
      const { group, config } = entry;
      // One deadline for the whole exchange: a slow upload or a stalled reader is cut, not waited on.
      deadline = setTimeout(() => {
        if (!res.writableEnded) res.destroy();
      }, config.timeout);
      const mode = modeOf(queryAt === -1 ? '' : url.slice(queryAt + 1));
      const body = await readJson(req, config.maxRequestBytes);
      const format = formatOf(req.headers.accept);
      if (format === 'json') {
        const { results, summary } = await group.fanout({
          body,
          requestId: ctx.id,
          signal: clientGone.signal,
          mode,
        });
        status = 200;
        const text = JSON.stringify({ group: name, results, summary });
        res.writeHead(200, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(text),
          'x-request-id': ctx.id,
        });
        res.end(text);
        return;
      }
      // Stream: headers go out before any member answers so the first result is not held back.
      let started = false;
      const open = () => {
        if (started) return;
        started = true;
        status = 200;
        res.writeHead(200, {
          'content-type': format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson',
          'cache-control': 'no-cache',
          'x-request-id': ctx.id,
        });
      };
      const frame = format === 'sse' ? sseFrame : ndjsonFrame;
      // Opened lazily so that "no members" can still be a plain JSON error.
      const { summary } = await group.fanout({
        body,
        requestId: ctx.id,
        signal: clientGone.signal,
        mode,
        onResult: (result: MemberResult) => {
          open();
          if (!res.destroyed) res.write(frame('result', result));
        },
      });
      open();
      res.end(frame('summary', summary));
    } catch (error) {
      // An unread request body would poison a kept-alive connection: close it after this reply.
      if (!req.readableEnded) res.shouldKeepAlive = false;
      if (res.destroyed) {
        status = 499;
        errorCode = 'GW_CLIENT_CLOSED';
      } else {
        const failure = writeError(res, error, ctx.id);
        status = failure.status;
        errorCode = failure.code;
      }
    } finally {
      clearTimeout(deadline);
      publish(events.requestEnd, {
        ctx,
        method,
        path,
        status,
        errorCode,
        durationMs: performance.now() - ctx.startedAt,
      });
    }
  }
}

function ndjsonFrame(type: 'result' | 'summary', data: object): string {
  return `${JSON.stringify({ type, ...data })}\n`;
}

function sseFrame(type: 'result' | 'summary', data: object): string {
  return `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * `?minResponses=N` or `?firstN=N`: this request's own quorum or first-N, overriding the group's (other
 * parameters are ignored). Throws `GW_BAD_REQUEST` for a value that is not 1..256, or for both at once.
 */
function modeOf(query: string): FanoutRequest['mode'] {
  if (query === '') return undefined;
  const params = new URLSearchParams(query);
  const count = (key: 'minResponses' | 'firstN') => {
    const text = params.get(key);
    if (text === null) return undefined;
    const n = /^[1-9][0-9]{0,2}$/.test(text) ? Number(text) : NaN;
    if (!(n <= MAX_GROUP_MEMBERS)) {
      throw new GatewayError(
        'GW_BAD_REQUEST',
        `${key} must be a whole number from 1 to ${MAX_GROUP_MEMBERS}`,
      );
    }
    return n;
  };
  const minResponses = count('minResponses');
  const firstN = count('firstN');
  if (minResponses !== undefined && firstN !== undefined) {
    throw new GatewayError('GW_BAD_REQUEST', 'use minResponses or firstN, not both');
  }
  if (minResponses !== undefined) return { minResponses };
  return firstN === undefined ? undefined : { firstN };
}

function formatOf(accept: string | undefined): Format {
  if (accept === undefined) return 'json';
  if (accept.includes('application/x-ndjson')) return 'ndjson';
  if (accept.includes('text/event-stream')) return 'sse';
  return 'json';
}

/** Reads the body, at most `limit` bytes (413 beyond), and checks it is JSON (400 otherwise). */
async function readJson(req: IncomingMessage, limit: number): Promise<Buffer> {
  const body = await readBody(req, limit);
  if (body.length === 0) throw new GatewayError('GW_BAD_REQUEST', 'a JSON message body is required');
  parseJson(body);
  return body;
}
