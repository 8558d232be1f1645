// Fan-out groups: one message sent to every member in parallel, one deadline, partial results as they come.
import type { Logger } from 'pino';
import { MAX_GROUP_MEMBERS } from '../../config/groups-schema.js';
import type { GroupConfig, GroupMemberConfig } from '../../config/groups-schema.js';
import { GatewayError } from '../../errors.js';
import { events, publish } from '../../telemetry/events.js';
import type { UpstreamConnectionStats } from '../../telemetry/metrics.js';
import type { ToolRegistry } from '../mcp/tool-registry.js';
import { discovery } from './discovery.js';
import type { DiscoveredMember, Discovery } from './discovery.js';
import { createMember } from './member-health.js';
import type { Member } from './member-health.js';
import { dispatch } from './dispatch.js';
import type { FanoutRequest, FanoutSummary, MemberResult } from './dispatch.js';
import { memberAddress } from './member.js';

export type { FanoutRequest, FanoutSummary, MemberResult };

export interface FanoutGroup {
  readonly name: string;
  /** Loads discovery (once, bounded by its refresh timeout) and warms every member's pool. Never throws. */
  start(): Promise<void>;
  /**
   * Sends the message to every admitted member in parallel and resolves when all settled, or as soon as
   * `minResponses` / `firstN` answers are in (the request's, else the group's; the rest are aborted).
   * Results are in member order.
   * Throws `GW_UPSTREAM_UNAVAILABLE` only when the group has no members at all.
   */
  fanout(request: FanoutRequest): Promise<{ results: MemberResult[]; summary: FanoutSummary }>;
  /** Pool counters of every member (for the connections gauge). */
  stats(): UpstreamConnectionStats[];
  /** The current members' names, in member order (static ones, then discovered ones). */
  members(): string[];
  close(): Promise<void>;
}

export interface GroupOptions {
  /** Logs discovery failures and member list changes. */
  logger?: Logger;
  /** The gateway's MCP tools, for members that are tools (`{name, server, tool}`). */
  tools?: ToolRegistry;
}

/**
 * Builds a group. Each member is an HTTP endpoint (one undici pool per member, kept alive, warmed at start-up
 * and on readmission) or a tool on one of the gateway's MCP servers (see `group-member.ts`), behind its own
 * consecutive-failure breaker. A member whose breaker opens is skipped at once by every fan-out (reported
 * `skipped`); a background health check (`OPTIONS` for HTTP, a live session for a tool) after
 * `halfOpenAfter` readmits it, so a hung member costs one deadline, then nothing.
 * With `discovery`, the member list is loaded at start-up and refreshed in the background when older than its TTL.
 */
export function fanoutGroup(name: string, config: GroupConfig, options: GroupOptions = {}): FanoutGroup {
  const memberDeadlineMs = Math.min(config.memberTimeout, config.timeout);
  let members: Member[] = [];
  let closed = false;

  const memberContext = { group: name, config, deadlineMs: memberDeadlineMs, tools: options.tools };
  const closeMember = async (member: Member) => {
    publish(events.fanoutMemberRemoved, { group: name, member: member.name, upstream: member.upstream });
    await member.close();
  };

  /** Static members first (they win a name clash), then discovered ones, up to the group limit. */
  const setMembers = (discovered: readonly DiscoveredMember[]) => {
    if (closed) return;
    const wanted = new Map<string, GroupMemberConfig | DiscoveredMember>();
    for (const m of [...config.members, ...discovered]) {
      if (!wanted.has(m.name) && wanted.size < MAX_GROUP_MEMBERS) wanted.set(m.name, m);
    }
    const current = new Map(members.map((m) => [m.name, m]));
    const next: Member[] = [];
    const added: string[] = [];
    for (const spec of wanted.values()) {
      const existing = current.get(spec.name);
      if (existing !== undefined && existing.transport.address === memberAddress(spec)) {
        next.push(existing);
        current.delete(spec.name);
      } else {
        const member = createMember(spec, memberContext);
        member.warm();
        next.push(member);
        added.push(spec.name);
      }
    }
    members = next;
    const removed = [...current.values()];
    for (const member of removed) void closeMember(member).catch(() => {});
    if (added.length > 0 || removed.length > 0) {
      options.logger?.info(
        { group: name, added, removed: removed.map((m) => m.name), members: next.length },
        'fan-out group members changed',
      );
    }
  };

  members = config.members.map((spec) => createMember(spec, memberContext));
  const source: Discovery | undefined =
    config.discovery === undefined
      ? undefined
      : discovery({
          group: name,
          url: config.discovery.url,
          ttlMs: config.discovery.ttl,
          refreshTimeoutMs: config.discovery.refreshTimeout,
          maxMembers: MAX_GROUP_MEMBERS,
          onList: setMembers,
          onError: (error) =>
            options.logger?.warn(
              { group: name, err: error, members: members.length },
              'discovery refresh failed; keeping the last good member list',
            ),
        });

  const currentMembers = async (): Promise<Member[]> => {
    const waiting = source?.ensure();
    if (waiting !== undefined) await waiting;
    if (members.length === 0) {
      throw new GatewayError(
        'GW_UPSTREAM_UNAVAILABLE',
        `group "${name}" has no members` +
          (source?.loaded === false ? ' (discovery has not answered yet)' : ''),
      );
    }
    return members;
  };

  return {
    name,
    async start() {
      for (const member of members) {
        const problem = member.transport.problem?.();
        if (problem !== undefined) options.logger?.warn({ group: name, member: member.name }, problem);
      }
      // Static members warm while discovery loads; discovered ones are warmed as they are added.
      for (const member of members) member.warm();
      if (source !== undefined) await source.load().catch(() => {});
      // A hung member must not hold start-up: wait for connections about as long as connecting may take.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(members.map((m) => m.warming)),
        new Promise((resolve) => (timer = setTimeout(resolve, config.pool.connect))),
      ]);
      clearTimeout(timer);
    },

    async fanout(request) {
      const targets = await currentMembers();
      const message = 'message' in request ? request.message : parseMessage(request.body);
      return dispatch(targets, request, message, {
        group: name,
        deadlineMs: memberDeadlineMs,
        breakers: config.breaker !== false,
        minResponses: request.mode === undefined ? config.minResponses : request.mode.minResponses,
        firstN: request.mode === undefined ? config.firstN : request.mode.firstN,
      });
    },

    stats: () => members.flatMap((m) => m.transport.stats() ?? []),
    members: () => members.map((m) => m.name),

    async close() {
      closed = true;
      await source?.close();
      await Promise.all(members.map(closeMember));
    },
  };
}

/** The message as a value, for members that read it so (tools); undefined when it is not JSON. */
function parseMessage(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
