// The `groups:` config key (zod): fan-out groups of agents, their members or discovery, deadlines, quorum and health.
import { z } from 'zod';
import { duration, httpUrl, name, size } from './fields.js';
import { breakerSchema } from './policy-schema.js';

/** Most members a group holds, static plus discovered: bounds pools, breakers and metric labels. */
export const MAX_GROUP_MEMBERS = 256;

/** An HTTP member: the message is POSTed to `url` as JSON. */
const httpMember = z.strictObject({ name, url: httpUrl });

/**
 * An MCP tool member: the message (a JSON object) is the arguments of `tool` on the gateway's MCP server
 * `server` (a key of `mcp.servers`), called over its warm pool with that tool's own policies.
 */
const mcpMember = z.strictObject({ name, server: name, tool: z.string().min(1).max(128) });

const member = z.union([httpMember, mcpMember]);

const discovery = z.strictObject({
  /** `GET` returns `{"members":[{"name","url"}]}` or a bare array of them. */
  url: httpUrl,
  /** The list is used this long, then refreshed in the background (requests never wait for a refresh). */
  ttl: duration.default(60_000),
  /** Deadline of one discovery request. */
  refreshTimeout: duration.default(2_000),
});

/** A member's breaker opens at its first failure; while open the member is skipped, then a background probe may readmit it. */
const breaker = breakerSchema({ threshold: 1, halfOpenAfterMs: 5_000 });

const pool = z.strictObject({
  /** Max TCP connections per member: size it for peak concurrent fan-outs. */
  connections: z.number().int().min(1).max(1_000).default(32),
  /** Connections opened at start-up and when a member is readmitted. */
  warm: z.number().int().min(0).max(100).default(1),
  /** Idle keep-alive connections are closed after this. */
  keepAlive: duration.default(30_000),
  /** TCP connect timeout. */
  connect: duration.default(500),
});

const group = z
  .strictObject({
    /** Static members: HTTP endpoints (`{name, url}`) and MCP tools (`{name, server, tool}`). */
    members: z.array(member).max(MAX_GROUP_MEMBERS).default([]),
    /** Where to list members; merged with `members` (a static member wins on a name clash). */
    discovery: discovery.optional(),
    /** Deadline for each member's answer. */
    memberTimeout: duration.default(2_000),
    /** Deadline for the whole fan-out, including writing the reply. */
    timeout: duration.default(5_000),
    /** Quorum: reply as soon as this many members answered, cancelling the rest; the summary says if it was met. */
    minResponses: z.number().int().min(1).optional(),
    /** Reply with the first N answers only, cancelling the rest. */
    firstN: z.number().int().min(1).optional(),
    /** A breaker per member; `false` turns it off (every member is always called). */
    breaker: breaker.default(breaker.parse({})),
    pool: pool.prefault({}),
    /** Headers sent to every member; use ${ENV} for secrets. */
    headers: z
      .record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid header name'), z.string())
      .default({}),
    /** Largest message accepted; bigger ones get 413 GW_PAYLOAD_TOO_LARGE. */
    maxRequestBytes: size.default(256 * 1024),
    /** Largest answer read from one member; a bigger one is that member's error. */
    maxResponseBytes: size.default(1024 ** 2),
  })
  .superRefine((g, ctx) => {
    if (g.members.length === 0 && g.discovery === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['members'],
        message: 'a group needs members, discovery or both',
      });
    }
    const seen = new Set<string>();
    g.members.forEach((m, i) => {
      if (seen.has(m.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['members', i, 'name'],
          message: `duplicate member "${m.name}"`,
        });
      }
      seen.add(m.name);
    });
    if (g.minResponses !== undefined && g.firstN !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['firstN'], message: 'use minResponses or firstN, not both' });
    }
  });

/** `groups:` — group name -> group. Each is served at `POST /fanout/<name>`. */
export const groupsSchema = z.record(name, group);

export type GroupConfig = z.output<typeof group>;
export type GroupMemberConfig = z.output<typeof member>;
export type McpMemberConfig = z.output<typeof mcpMember>;
