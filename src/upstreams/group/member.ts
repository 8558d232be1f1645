// What a fan-out member is to its group: a transport (HTTP endpoint or MCP tool) and the answer it gives.
import type { GroupMemberConfig } from '../../config/groups-schema.js';
import type { ErrorCode } from '../../errors.js';
import type { Call, Handler, HttpRequest, Reply } from '../../pipeline/types.js';
import type { UpstreamConnectionStats } from '../../telemetry/metrics.js';
import type { DiscoveredMember } from './discovery.js';

/**
 * A member call's payload: the fan-out message as the bytes HTTP members POST, and parsed once per fan-out
 * for the members that read it as a value (a tool's arguments). `OPTIONS` calls are health checks.
 */
export interface MemberRequest extends HttpRequest {
  readonly message: unknown;
}

/** A member's answer as the fan-out reports it. */
export interface MemberAnswer {
  ok: boolean;
  /** The member's HTTP status (HTTP members only). */
  status?: number;
  body: unknown;
  error?: { code: ErrorCode; message: string };
}

/** Where a member lives: its URL, or `mcp:server/tool`. */
export function memberAddress(spec: GroupMemberConfig | DiscoveredMember): string {
  return 'url' in spec ? spec.url : `mcp:${spec.server}/${spec.tool}`;
}

export interface MemberTransport {
  /** Where the member lives (its URL, or `mcp:server/tool`): a member whose address changes is rebuilt. */
  readonly address: string;
  /**
   * Sends the message and resolves with the whole answer (a Buffer body). A call with method `OPTIONS` is
   * a health check that asks the member nothing (warm-up and the half-open probe). Throws GatewayError for
   * failures that are the member's: they count against its breaker, as does a 5xx reply.
   */
  readonly send: Handler<MemberRequest>;
  /**
   * The message's own fault for this member, found before any call (so it never touches the member's
   * breaker): for a tool, a message that is not an object or that the tool's schema rejects.
   */
  reject?(message: unknown): MemberAnswer | undefined;
  /** Opens connections ahead of traffic by sending `check` (a health-check call). Never rejects. */
  warm(check: Call<MemberRequest>): Promise<void>;
  answer(reply: Reply): MemberAnswer;
  /** What is wrong with the member's configuration as far as can be told now (logged at start-up). */
  problem?(): string | undefined;
  /** Pool counters, for HTTP members. */
  stats(): UpstreamConnectionStats | undefined;
  close(): Promise<void>;
}
