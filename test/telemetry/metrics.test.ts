import { afterEach, describe, expect, it } from 'vitest';
import { events } from '../../src/telemetry/events.js';
import { createMetrics } from '../../src/telemetry/metrics.js';
import type { Metrics } from '../../src/telemetry/metrics.js';
import { makeCall } from '../helpers/calls.js';

let metrics: Metrics | undefined;
afterEach(() => metrics?.close());

describe('metrics subscriber', () => {
  it('turns request, attempt, retry, breaker and bulkhead events into Prometheus series', async () => {
    metrics = createMetrics({ processMetrics: false });
    const call = makeCall({ upstream: 'quotes' });
    events.requestEnd.publish({
      ctx: call.ctx,
      method: 'GET',
      path: '/q',
      status: 200,
      errorCode: undefined,
      durationMs: 12,
    });
    events.requestEnd.publish({
      ctx: call.ctx,
      method: 'GET',
      path: '/q',
      status: 200,
      errorCode: undefined,
      durationMs: 3,
    });
    events.attemptEnd.publish({
      call,
      status: undefined,
      errorCode: 'GW_UPSTREAM_TIMEOUT',
      durationMs: 1000,
    });
    events.retry.publish({ route: 'test', upstream: 'quotes', attempt: 2, delayMs: 5, reason: '503' });
    events.breakerState.publish({ name: 'test', state: 'open' });
    events.bulkheadReject.publish({ route: 'test', reason: 'queue-full' });
    const text = await metrics.render();
    expect(text).toContain('slipstream_requests_total{route="test",method="GET",status="200"} 2');
    expect(text).toContain(
      'slipstream_request_duration_seconds_bucket{le="0.005",route="test",status="200"} 1',
    );
    expect(text).toContain(
      'slipstream_upstream_request_duration_seconds_count{upstream="quotes",status="GW_UPSTREAM_TIMEOUT"} 1',
    );
    expect(text).toContain('slipstream_retries_total{route="test",upstream="quotes",reason="503"} 1');
    expect(text).toContain('slipstream_breaker_state{name="test"} 1');
    expect(text).toContain('slipstream_bulkhead_rejections_total{route="test",reason="queue-full"} 1');
  });

  it('reads upstream connection counts at scrape time', async () => {
    let connected = 3;
    metrics = createMetrics({
      processMetrics: false,
      upstreamStats: () => [{ upstream: 'a', connected, free: 1, pending: 0, queued: 0, running: 2 }],
    });
    expect(await metrics.render()).toContain(
      'slipstream_upstream_connections{upstream="a",state="connected"} 3',
    );
    connected = 5;
    expect(await metrics.render()).toContain(
      'slipstream_upstream_connections{upstream="a",state="connected"} 5',
    );
  });

  it('stops counting after close', async () => {
    metrics = createMetrics({ processMetrics: false });
    metrics.close();
    events.retry.publish({ route: 'closed', upstream: 'u', attempt: 2, delayMs: 1, reason: '503' });
    expect(await metrics.render()).not.toContain('route="closed"');
  });

  it("drops a departed fan-out member's label sets, keeping the others'", async () => {
    metrics = createMetrics({ processMetrics: false });
    for (const member of ['pod-a', 'pod-b']) {
      const upstream = `fanout:team/${member}`;
      events.fanoutMember.publish({ group: 'team', member, outcome: 'answered', durationMs: 5 });
      events.attemptEnd.publish({
        call: makeCall({ upstream }),
        status: 200,
        errorCode: undefined,
        durationMs: 5,
      });
      events.breakerState.publish({ name: upstream, state: 'open' });
    }
    events.fanoutMemberRemoved.publish({ group: 'team', member: 'pod-a', upstream: 'fanout:team/pod-a' });
    const text = await metrics.render();
    expect(text).not.toContain('pod-a');
    expect(text).toMatch(
      /slipstream_fanout_member_outcomes_total\{group="team",member="pod-b",outcome="answered"\} 1/,
    );
    expect(text).toContain('slipstream_breaker_state{name="fanout:team/pod-b"} 1');
    expect(text).toContain('upstream="fanout:team/pod-b"');
  });
});
