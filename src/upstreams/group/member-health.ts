// A fan-out member's health: its stack (breaker) from the one builder, probes that readmit it, and warm-ups.
import type { GroupConfig, GroupMemberConfig } from '../../config/groups-schema.js';
import { GatewayError } from '../../errors.js';
import { buildStack } from '../../policies/stack.js';
import type { Call, Handler } from '../../pipeline/types.js';
import type { BreakerState } from '../../telemetry/events.js';
import type { ToolRegistry } from '../mcp/tool-registry.js';
import type { DiscoveredMember } from './discovery.js';
import { httpMemberTransport } from './member-http.js';
import { mcpMemberTransport } from './member-tool.js';
import type { MemberRequest, MemberTransport } from './member.js';

/** One member of a group, as the fan-out sees it. */
export interface Member {
  readonly name: string;
  /** `fanout:<group>/<member>`: the member's upstream and breaker name. */
  readonly upstream: string;
  readonly transport: MemberTransport;
  /** The transport behind the member's stack (its breaker); the reply body is read in full. */
  readonly call: Handler<MemberRequest>;
  /** The breaker's state (`closed` without a breaker): only `closed` members are called. */
  readonly state: BreakerState;
  /**
   * Calls that timed out but are not torn down yet (the abort runs a tick after the reply). A fan-out starting
   * in that gap skips the member, as its breaker is about to decide; without a breaker it is always called.
   */
  tearingDown: number;
  /** The latest warm-up (start-up, discovery or readmission); never rejects. */
  warming: Promise<void>;
  /** Opens connections again (start-up, discovery); sets `warming`. */
  warm(): void;
  close(): Promise<void>;
}

export interface MemberContext {
  group: string;
  config: GroupConfig;
  /** Each member's deadline, in ms. */
  deadlineMs: number;
  /** The gateway's MCP tools, for members that are tools. */
  tools: ToolRegistry | undefined;
}

/** A probe that came too early (the breaker still open) is retried after this. */
const PROBE_RETRY_MS = 50;

/**
 * Builds a member: its transport (an HTTP endpoint or an MCP tool), its stack from `buildStack` (a breaker
 * per member), and the health loop: when the breaker opens, a background health check (`OPTIONS` for HTTP,
 * a live session for a tool) after `halfOpenAfter` may close it again, and a readmitted member opens its
 * connections before real traffic needs them. Throws `GW_CONFIG_INVALID` for a tool member without MCP.
 */
export function createMember(spec: GroupMemberConfig | DiscoveredMember, context: MemberContext): Member {
  const { group, config, deadlineMs } = context;
  const upstream = `fanout:${group}/${spec.name}`;
  let transport: MemberTransport;
  if ('url' in spec) transport = httpMemberTransport(upstream, spec, config, deadlineMs);
  else if (context.tools !== undefined) transport = mcpMemberTransport(spec, context.tools);
  else {
    throw new GatewayError(
      'GW_CONFIG_INVALID',
      `group "${group}": member "${spec.name}" is an MCP tool but the gateway has no mcp servers`,
    );
  }
  // The group's own timer is every member's deadline (settled first, torn down a tick later): no deadline here.
  const stack = buildStack<MemberRequest>({ name: upstream, breaker: config.breaker }, transport.send);
  const breaker = stack.breaker;
  let probeTimer: NodeJS.Timeout | undefined;
  let closed = false;

  /** An `OPTIONS` request to the member: the warm-up and the health probe (not HEAD: undici closes the connection after a HEAD). */
  const optionsCall = (id: string): Call<MemberRequest> => ({
    ctx: { id, route: `fanout:${group}`, startedAt: performance.now(), upstreamMs: 0, attempts: 0 },
    upstream,
    method: 'OPTIONS',
    path: '',
    headers: {},
    body: undefined,
    message: undefined,
    idempotent: true,
    principal: undefined,
    signal: AbortSignal.timeout(deadlineMs),
  });

  const member: Member = {
    name: spec.name,
    upstream,
    transport,
    call: stack.handler,
    get state() {
      return breaker?.state ?? 'closed';
    },
    tearingDown: 0,
    warming: Promise.resolve(),
    warm() {
      member.warming = (async () => {
        await transport.warm(optionsCall('warm'));
        // The pool marks a connection free a tick after its response ends; traffic right after start-up should find it.
        await new Promise((resolve) => setImmediate(resolve));
      })();
    },
    async close() {
      closed = true;
      clearTimeout(probeTimer);
      stopWatching();
      await transport.close();
    },
  };

  const scheduleProbe = (delayMs: number) => {
    clearTimeout(probeTimer);
    if (closed) return;
    probeTimer = setTimeout(probe, delayMs);
    probeTimer.unref();
  };
  /** One `OPTIONS` through the breaker: success closes it (readmission), failure reopens it (next probe later). */
  const probe = () => {
    if (closed || member.state !== 'open') return;
    member.call(optionsCall('probe')).then(
      () => {},
      (error: unknown) => {
        // Fired a hair before the breaker's own clock allowed a probe: try again shortly.
        if (error instanceof GatewayError && error.code === 'GW_BREAKER_OPEN' && member.state === 'open')
          scheduleProbe(PROBE_RETRY_MS);
      },
    );
  };
  let previous: BreakerState = 'closed';
  const stopWatching =
    breaker === undefined || config.breaker === false
      ? () => {}
      : ((halfOpenAfterMs: number) =>
          breaker.onStateChange((state) => {
            if (state === 'open') scheduleProbe(halfOpenAfterMs + 1);
            // Readmitted: open connections again before real traffic needs them.
            else if (state === 'closed' && previous !== 'closed') member.warm();
            previous = state;
          }))(config.breaker.halfOpenAfter);
  return member;
}
