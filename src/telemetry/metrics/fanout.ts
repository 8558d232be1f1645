// Fan-out metrics: each member's outcome and latency, each group's completion time, discovery loads.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type {
  DiscoveryRefreshEvent,
  FanoutEndEvent,
  FanoutMemberEvent,
  FanoutMemberRemovedEvent,
} from '../events.js';
import { LATENCY_BUCKETS } from './subscription.js';
import type { Subscription } from './subscription.js';

/** Registers the fan-out metrics; a member that leaves its group takes its label sets with it. */
export function fanoutMetrics(registry: Registry): Subscription[] {
  const registers = [registry];
  const memberDuration = new Histogram({
    name: 'slipstream_fanout_member_duration_seconds',
    help: 'Fan-out: time from the start of a fan-out to each member settling, by outcome (skipped members not observed).',
    labelNames: ['group', 'member', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const memberOutcomes = new Counter({
    name: 'slipstream_fanout_member_outcomes_total',
    help: 'Fan-out member results: answered, failed, timedOut, skipped (breaker open) or cancelled (quorum met).',
    labelNames: ['group', 'member', 'outcome'] as const,
    registers,
  });
  const fanoutDuration = new Histogram({
    name: 'slipstream_fanout_duration_seconds',
    help: 'Fan-out completion time per group (all members settled, or enough answered).',
    labelNames: ['group'] as const,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const discoveryRefreshes = new Counter({
    name: 'slipstream_discovery_refreshes_total',
    help: 'Fan-out group discovery loads; a failed one keeps the last good member list.',
    labelNames: ['group', 'ok'] as const,
    registers,
  });
  const discoveryMembers = new Gauge({
    name: 'slipstream_discovery_members',
    help: 'Members listed by the last successful discovery load of each group.',
    labelNames: ['group'] as const,
    registers,
  });
  const memberChildren = new Map<string, { count: Counter; duration: Histogram }>();
  return [
    [
      events.fanoutMember,
      (message) => {
        const e = message as FanoutMemberEvent;
        const key = `${e.group}\0${e.member}\0${e.outcome}`;
        let child = memberChildren.get(key);
        if (child === undefined) {
          child = {
            count: memberOutcomes.labels(e.group, e.member, e.outcome) as unknown as Counter,
            duration: memberDuration.labels(e.group, e.member, e.outcome) as unknown as Histogram,
          };
          memberChildren.set(key, child);
        }
        child.count.inc();
        if (e.outcome !== 'skipped') child.duration.observe(e.durationMs / 1000);
      },
    ],
    [
      events.fanoutMemberRemoved,
      (message) => {
        const e = message as FanoutMemberRemovedEvent;
        const memberKey = `${e.group}\0${e.member}\0`;
        for (const key of [...memberChildren.keys()]) {
          if (!key.startsWith(memberKey)) continue;
          const outcome = key.slice(memberKey.length);
          memberOutcomes.remove(e.group, e.member, outcome);
          memberDuration.remove(e.group, e.member, outcome);
          memberChildren.delete(key);
        }
      },
    ],
    [
      events.fanoutEnd,
      (message) => {
        const e = message as FanoutEndEvent;
        fanoutDuration.observe({ group: e.group }, e.durationMs / 1000);
      },
    ],
    [
      events.discoveryRefresh,
      (message) => {
        const e = message as DiscoveryRefreshEvent;
        discoveryRefreshes.inc({ group: e.group, ok: String(e.ok) });
        if (e.ok) discoveryMembers.set({ group: e.group }, e.members);
      },
    ],
  ];
}
