// Background job metrics: queued, running, ended by status, queue wait and total latency, webhook deliveries.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { events } from '../events.js';
import type { JobFinishedEvent, JobQueuedEvent, JobStartedEvent, WebhookDeliveryEvent } from '../events.js';
import { LATENCY_BUCKETS } from './subscription.js';
import type { Subscription } from './subscription.js';

/** Job latencies run from milliseconds to many minutes (a report, a batch sync). */
const JOB_BUCKETS = [...LATENCY_BUCKETS, 60, 120, 300, 600, 1800];

/** Registers the job metrics; `running` is read at scrape time (jobs running in this instance). */
export function jobMetrics(registry: Registry, running: (() => number) | undefined): Subscription[] {
  const registers = [registry];
  const queued = new Counter({
    name: 'slipstream_jobs_queued_total',
    help: 'Jobs accepted (202) and queued, by route.',
    labelNames: ['route'] as const,
    registers,
  });
  const started = new Counter({
    name: 'slipstream_jobs_started_total',
    help: 'Job runs started in this instance; rerun="true" for a job taken over from a worker that stopped.',
    labelNames: ['route', 'rerun'] as const,
    registers,
  });
  new Gauge({
    name: 'slipstream_jobs_running',
    help: 'Jobs running in this instance now.',
    registers,
    collect() {
      if (running !== undefined) this.set(running());
    },
  });
  const finished = new Counter({
    name: 'slipstream_jobs_finished_total',
    help: 'Jobs ended, by status (done, failed, cancelled) and error code (failed jobs).',
    labelNames: ['route', 'status', 'code'] as const,
    registers,
  });
  const wait = new Histogram({
    name: 'slipstream_job_queue_seconds',
    help: 'Time from a job being accepted to a worker starting it.',
    labelNames: ['route'] as const,
    buckets: JOB_BUCKETS,
    registers,
  });
  const latency = new Histogram({
    name: 'slipstream_job_duration_seconds',
    help: 'Time from a job being accepted to its end (queue wait included).',
    labelNames: ['route', 'status'] as const,
    buckets: JOB_BUCKETS,
    registers,
  });
  const webhooks = new Counter({
    name: 'slipstream_webhook_deliveries_total',
    help: 'Job webhook delivery attempts: delivered, retrying, failed (given up), dropped (too many pending).',
    labelNames: ['route', 'outcome'] as const,
    registers,
  });
  return [
    [events.jobQueued, (m) => queued.inc({ route: (m as JobQueuedEvent).route })],
    [
      events.jobStarted,
      (m) => {
        const e = m as JobStartedEvent;
        started.inc({ route: e.route, rerun: String(e.attempt > 1) });
        wait.observe({ route: e.route }, Math.max(0, e.queuedMs) / 1000);
      },
    ],
    [
      events.jobFinished,
      (m) => {
        const e = m as JobFinishedEvent;
        finished.inc({ route: e.route, status: e.status, code: e.errorCode ?? '' });
        latency.observe({ route: e.route, status: e.status }, Math.max(0, e.durationMs) / 1000);
      },
    ],
    [
      events.webhookDelivery,
      (m) => {
        const e = m as WebhookDeliveryEvent;
        webhooks.inc({ route: e.route, outcome: e.outcome });
      },
    ],
  ];
}
