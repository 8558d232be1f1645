// Fan-out entrypoint: POST /fanout/<group> sends one JSON message to every member; results streamed or aggregated.
import { MAX_GROUP_MEMBERS } from '../config/groups-schema.js';
import type { GroupConfig } from '../config/groups-schema.js';
import { GatewayError } from '../errors.js';
import type { ReplyCoder } from '../server/compression.js';
import { written } from '../server/exchange.js';
import { authorize } from '../server/auth.js';
import type { Endpoint, Exchange } from '../server/exchange.js';
import { decodeSegment } from '../server/request.js';
import type { FanoutGroup, FanoutRequest, MemberResult } from '../upstreams/group/fanout.js';

export interface FanoutEntrypointOptions {
  groups: ReadonlyMap<string, { group: FanoutGroup; config: GroupConfig }>;
  /** Compresses the aggregated JSON reply for clients that accept it (`compression.endpoints`). Default: none. */
  coder?: ReplyCoder;
}

/** How results are written: one JSON document, NDJSON lines, or Server-Sent Events. */
type Format = 'json' | 'ndjson' | 'sse';

/**
 * The endpoint for `POST /fanout/<group>` (it claims every path under `/fanout`). The body must be JSON,
 * at most the group's `maxRequestBytes` (413 beyond, 400 when it does not parse).
 * `Accept: application/x-ndjson` streams one `{"type":"result",...}` line per member the moment it settles,
 * then a `{"type":"summary",...}` line; `Accept: text/event-stream` sends the same as `result` and `summary`
 * events; anything else gets `{"group","results":[...member order],"summary"}` once all are in. Member
 * failures are entries, never the request's status. Unknown group: 404 `GW_GROUP_NOT_FOUND`. The group's
 * `timeout` bounds the whole exchange, body upload and reply writing included. `?minResponses=N` or
 * `?firstN=N` sets this request's quorum or first-N instead of the group's.
 */
export function fanoutEndpoint(options: FanoutEntrypointOptions): Endpoint {
  const find = (rest: string) => {
    const name = decodeSegment(rest.slice(1));
    return name === undefined ? undefined : options.groups.get(name);
  };
  return {
    route: 'fanout',
    label: (rest) => (find(rest) === undefined ? 'fanout' : `fanout:${find(rest)!.group.name}`),
    handle: (x) => handle(x, find(x.rest)),
  };

  async function handle(x: Exchange, entry: ReturnType<typeof find>) {
    const { res } = x;
    if (entry === undefined) {
      const known = [...options.groups.keys()].join(', ') || 'none';
      throw new GatewayError(
        'GW_GROUP_NOT_FOUND',
        `no fan-out group "${decodeSegment(x.rest.slice(1)) ?? x.rest.slice(1)}" (known: ${known})`,
      );
    }
    const { group, config } = entry;
    authorize(x.caller, 'groups', group.name);
    if (x.method !== 'POST') {
      throw new GatewayError('GW_METHOD_NOT_ALLOWED', `use POST to fan out to group "${group.name}"`);
    }
    // One deadline for the whole exchange: a slow upload or a stalled reader is cut, not waited on.
    const deadline = setTimeout(() => {
      if (!res.writableEnded) res.destroy();
    }, config.timeout);
    try {
      const mode = modeOf(x.query.slice(1));
      const body = await x.body(config.maxRequestBytes);
      if (body.length === 0) throw new GatewayError('GW_BAD_REQUEST', 'a JSON message body is required');
      const message = x.parse(body);
      const format = formatOf(x.req.headers.accept);
      const request = { body, message, requestId: x.ctx.id, signal: x.signal, mode };
      if (format === 'json') {
        const { results, summary } = await group.fanout(request);
        const text = Buffer.from(JSON.stringify({ group: group.name, results, summary }));
        const reply = {
          status: 200,
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'content-length': String(text.length),
          },
          body: text,
        };
        return options.coder === undefined
          ? reply
          : await options.coder(reply, { method: x.method, headers: x.req.headers, route: x.ctx.route });
      }
      // Stream: headers go out before any member answers so the first result is not held back; opened
      // lazily so that "no members" can still be a plain JSON error.
      const open = () => {
        if (res.headersSent) return;
        res.writeHead(200, {
          'content-type': format === 'sse' ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson',
          'cache-control': 'no-cache',
          'x-request-id': x.ctx.id,
        });
      };
      const frame = format === 'sse' ? sseFrame : ndjsonFrame;
      const { summary } = await group.fanout({
        ...request,
        onResult: (result: MemberResult) => {
          open();
          if (!res.destroyed) res.write(frame('result', result));
        },
      });
      open();
      res.end(frame('summary', summary));
      return written(res);
    } finally {
      clearTimeout(deadline);
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
