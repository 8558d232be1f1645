// One fan-out, dispatched: every member called at once, one deadline for all, results as they settle, a summary.
import { setMaxListeners } from 'node:events';
import { MAX_GROUP_MEMBERS } from '../../config/groups-schema.js';
import { GatewayError } from '../../errors.js';
import type { ErrorCode } from '../../errors.js';
import type { RequestContext } from '../../pipeline/types.js';
import { events, publish } from '../../telemetry/events.js';
import type { FanoutOutcome } from '../../telemetry/events.js';
import type { Member } from './member-health.js';

/** One member's entry in a fan-out result. */
export interface MemberResult {
  member: string;
  outcome: FanoutOutcome;
  /** From the start of the fan-out to this member settling, in ms (0 when skipped). */
  latencyMs: number;
  /** The member's HTTP status, when it answered at all. */
  status?: number;
  /** The member's answer: parsed JSON, or text. */
  body?: unknown;
  /** Why the member has no answer (timed out, failed, skipped, cancelled). */
  error?: { code: ErrorCode; message: string };
}

/** What a fan-out came to: counts, who ended how, and each member's latency. */
export interface FanoutSummary {
  group: string;
  members: number;
  answered: number;
  failed: number;
  timedOut: number;
  skipped: number;
  cancelled: number;
  /** With `minResponses`: how many answers were required and whether they came. */
  quorum?: { required: number; met: boolean };
  durationMs: number;
  /** Member names by outcome. */
  outcomes: Record<FanoutOutcome, string[]>;
  /** Each member's latency in ms (skipped members are left out). */
  latencyMs: Record<string, number>;
}

export interface FanoutRequest {
  /** The JSON message, already validated; sent as is to every member. */
  body: Buffer;
  /** The message parsed (when the caller parsed it already); else parsed once here. */
  message?: unknown;
  requestId: string;
  /** Aborts when the client goes away: every member call is cancelled. */
  signal: AbortSignal;
  /** Called as each member settles, in arrival order (skipped members first, at once). */
  onResult?: (result: MemberResult) => void;
  /** This request's own quorum or first-N (instead of the group's); at most one of the two is set. */
  mode?: { minResponses?: number; firstN?: number };
}

export interface DispatchOptions {
  group: string;
  /** Every member's deadline, in ms (one timer serves them all). */
  deadlineMs: number;
  /** Members have breakers: a member cut by the deadline is skipped until its breaker has counted the call. */
  breakers: boolean;
  /** Quorum: settle as soon as this many answered, cancelling the rest. */
  minResponses: number | undefined;
  /** Reply with the first N answers only, cancelling the rest. */
  firstN: number | undefined;
}

/**
 * Sends the message to every target in parallel and resolves when all settled, or as soon as
 * `minResponses` / `firstN` answers are in (the rest are aborted). Results are in member order; every
 * member settles exactly once (answered, failed, timedOut, skipped or cancelled). Never rejects.
 */
export async function dispatch(
  targets: readonly Member[],
  request: FanoutRequest,
  message: unknown,
  options: DispatchOptions,
): Promise<{ results: MemberResult[]; summary: FanoutSummary }> {
  const { minResponses, firstN, group: name, deadlineMs: memberDeadlineMs } = options;
  const enough = minResponses ?? firstN ?? Infinity;
  const started = performance.now();
  const ctx = context(request.requestId, `fanout:${name}`);
  const controller = new AbortController();
  // Every member call listens on this one signal: up to the group limit, that is expected, not a leak.
  setMaxListeners(MAX_GROUP_MEMBERS + 8, controller.signal);
  const timedOut = new GatewayError('GW_UPSTREAM_TIMEOUT', `no answer within ${memberDeadlineMs} ms`);
  const cancelled = new GatewayError('GW_CLIENT_CLOSED', 'cancelled: enough members answered');
  const onClientGone = () =>
    controller.abort(new GatewayError('GW_CLIENT_CLOSED', 'client closed the request'));
  if (request.signal.aborted) onClientGone();
  else request.signal.addEventListener('abort', onClientGone, { once: true });
  const headers = { 'content-type': 'application/json', 'x-request-id': request.requestId };
  const results = new Array<MemberResult>(targets.length);
  /** Members cut by the deadline whose calls are still being torn down. */
  const tornDown = new Set<number>();
  /** Members not settled yet, by index; each settles exactly once. */
  const pending = new Set(targets.keys());
  let answered = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const elapsed = () => Math.round((performance.now() - started) * 100) / 100;

  /**
   * Settles every member still pending (timed out, or cancelled once enough answered) and only then
   * aborts their calls, a tick later: tearing down in-flight requests costs ~1 ms (~10 ms the first
   * time), which the reply need not wait for. Members still see the abort right after the reply.
   */
  const cutPending = (outcome: 'timedOut' | 'cancelled', reason: GatewayError) => {
    for (const index of [...pending]) {
      if (outcome === 'timedOut' && options.breakers) {
        targets[index]!.tearingDown++;
        tornDown.add(index);
      }
      settle(index, {
        member: targets[index]!.name,
        outcome,
        latencyMs: elapsed(),
        error: { code: reason.code, message: reason.message },
      });
    }
    setImmediate(() => controller.abort(reason));
  };

  const settle = (index: number, result: MemberResult) => {
    if (!pending.delete(index)) return;
    results[index] = result;
    publish(events.fanoutMember, {
      group: name,
      member: result.member,
      outcome: result.outcome,
      durationMs: result.latencyMs,
    });
    request.onResult?.(result);
    if (result.outcome === 'answered' && ++answered === enough && pending.size > 0) {
      cutPending('cancelled', cancelled);
    }
    if (pending.size === 0) finish();
  };

  const one = async (member: Member, index: number): Promise<void> => {
    if (member.state !== 'closed' || member.tearingDown > 0) {
      settle(index, {
        member: member.name,
        outcome: 'skipped',
        latencyMs: 0,
        error: { code: 'GW_BREAKER_OPEN', message: 'skipped: the member failed recently (breaker open)' },
      });
      return;
    }
    const rejected = member.transport.reject?.(message);
    if (rejected !== undefined) {
      settle(index, { member: member.name, outcome: 'failed', latencyMs: 0, ...rejected });
      return;
    }
    try {
      const reply = await member.call({
        ctx,
        upstream: member.upstream,
        method: 'POST',
        path: '',
        headers,
        body: request.body,
        message,
        idempotent: false,
        principal: undefined,
        signal: controller.signal,
      });
      const answer = member.transport.answer(reply);
      settle(index, {
        member: member.name,
        outcome: answer.ok ? 'answered' : 'failed',
        latencyMs: elapsed(),
        ...(answer.status === undefined ? {} : { status: answer.status }),
        ...(answer.body === undefined ? {} : { body: answer.body }),
        ...(answer.error === undefined ? {} : { error: answer.error }),
      });
    } catch (error) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : error;
      const failure = reason instanceof GatewayError ? reason : toMemberError(error);
      settle(index, {
        member: member.name,
        outcome: outcomeOf(failure, reason === timedOut),
        latencyMs: failure.code === 'GW_BREAKER_OPEN' ? 0 : elapsed(),
        error: { code: failure.code, message: failure.message },
      });
    } finally {
      // The breaker has counted this call by now: later fan-outs follow its state again.
      if (tornDown.delete(index)) member.tearingDown--;
    }
  };

  // Every member starts now with the same deadline, so one timer serves them all.
  const timer = setTimeout(() => cutPending('timedOut', timedOut), memberDeadlineMs);
  try {
    // `one` never rejects: every outcome is a settled entry.
    targets.forEach((member, index) => void one(member, index));
    await finished;
  } finally {
    clearTimeout(timer);
    request.signal.removeEventListener('abort', onClientGone);
  }
  const summary = summarize(name, results, performance.now() - started, minResponses);
  publish(events.fanoutEnd, {
    group: name,
    durationMs: summary.durationMs,
    answered: summary.answered,
    members: summary.members,
  });
  return { results, summary };
}

function context(id: string, route: string): RequestContext {
  return { id, route, startedAt: performance.now(), upstreamMs: 0, attempts: 0 };
}

function outcomeOf(failure: GatewayError, deadlinePassed: boolean): FanoutOutcome {
  if (deadlinePassed || failure.code === 'GW_UPSTREAM_TIMEOUT') return 'timedOut';
  if (failure.code === 'GW_BREAKER_OPEN') return 'skipped';
  if (failure.code === 'GW_CLIENT_CLOSED') return 'cancelled';
  return 'failed';
}

function toMemberError(error: unknown): GatewayError {
  return error instanceof GatewayError
    ? error
    : new GatewayError('GW_UPSTREAM_UNAVAILABLE', error instanceof Error ? error.message : String(error), {
        cause: error,
      });
}

function summarize(
  group: string,
  results: readonly MemberResult[],
  durationMs: number,
  minResponses: number | undefined,
): FanoutSummary {
  const outcomes: Record<FanoutOutcome, string[]> = {
    answered: [],
    failed: [],
    timedOut: [],
    skipped: [],
    cancelled: [],
  };
  const latencyMs: Record<string, number> = {};
  for (const r of results) {
    outcomes[r.outcome].push(r.member);
    if (r.outcome !== 'skipped') latencyMs[r.member] = r.latencyMs;
  }
  return {
    group,
    members: results.length,
    answered: outcomes.answered.length,
    failed: outcomes.failed.length,
    timedOut: outcomes.timedOut.length,
    skipped: outcomes.skipped.length,
    cancelled: outcomes.cancelled.length,
    ...(minResponses === undefined
      ? {}
      : { quorum: { required: minResponses, met: outcomes.answered.length >= minResponses } }),
    durationMs: Math.round(durationMs * 100) / 100,
    outcomes,
    latencyMs,
  };
}
