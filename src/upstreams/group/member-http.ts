// An HTTP fan-out member: its own pooled endpoint; the message is POSTed as JSON and the answer read whole.
import type { GroupConfig } from '../../config/groups-schema.js';
import type { Reply } from '../../pipeline/types.js';
import { httpUpstream } from '../http.js';
import type { DiscoveredMember } from './discovery.js';
import type { MemberTransport } from './member.js';

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
  const send = async (call: Parameters<MemberTransport['send']>[0]): Promise<Reply> => {
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
