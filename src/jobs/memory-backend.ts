// In-process jobs: a bounded FIFO and a map of records, the default backend (a job dies with its gateway).
import { GatewayError } from '../errors.js';
import type { JobBackend, JobBounds, JobWorker, NewJob, RunnableJob } from './backend.js';
import { jobBytes } from './job.js';
import type { Job, JobOutcome } from './job.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export interface MemoryJobsOptions extends JobBounds {
  /** Injectable clock for tests. Default `Date.now`. */
  now?: () => number;
}

/**
 * Jobs in this process. Queued jobs run in submit order, `worker.concurrency` at a time. Records (and their
 * bytes) are bounded by `maxJobs` / `maxBytes`; ended ones are dropped `ttlMs` after they end. A job still
 * running when the shutdown grace ends fails with `GW_JOB_INTERRUPTED` (nothing survives the process:
 * use the Redis backend for that).
 */
export function memoryJobs(options: MemoryJobsOptions): JobBackend {
  const now = options.now ?? Date.now;
  const jobs = new Map<string, { job: Mutable<Job>; bytes: number }>();
  const queue: string[] = [];
  const running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  let bytes = 0;
  let worker: JobWorker | undefined;
  let draining = false;
  let sweeper: NodeJS.Timeout | undefined;

  const sweep = () => {
    const at = now();
    for (const [id, held] of jobs) {
      const { finishedAt } = held.job;
      if (finishedAt !== undefined && finishedAt + options.ttlMs <= at) drop(id);
    }
  };
  const drop = (id: string) => {
    const held = jobs.get(id);
    if (held === undefined) return;
    jobs.delete(id);
    bytes -= held.bytes;
  };
  const resize = (held: { job: Mutable<Job>; bytes: number }) => {
    const next = jobBytes(held.job.request, held.job.result);
    bytes += next - held.bytes;
    held.bytes = next;
  };

  const end = (held: { job: Mutable<Job>; bytes: number }, outcome: JobOutcome) => {
    const job = held.job;
    job.status = outcome.status;
    job.finishedAt = now();
    job.request = undefined;
    if (outcome.status === 'done') job.result = outcome.result;
    else job.error = outcome.error;
    resize(held);
    worker?.finished({ ...job });
  };

  const pump = () => {
    while (worker !== undefined && !draining && running.size < worker.concurrency && queue.length > 0) {
      const id = queue.shift()!;
      const held = jobs.get(id);
      if (held === undefined || held.job.status !== 'queued') continue;
      const job = held.job;
      job.status = 'running';
      job.startedAt = now();
      job.attempts++;
      const controller = new AbortController();
      worker.started({ ...job });
      const run = worker.run({ ...job } as RunnableJob, controller.signal).then((outcome) => {
        running.delete(id);
        // A job cancelled while it ran stays cancelled: its outcome is dropped.
        if (jobs.get(id)?.job.status === 'running') end(held, outcome);
        pump();
      });
      running.set(id, { controller, done: run });
    }
  };

  return {
    async submit(input: NewJob) {
      sweep();
      const job: Mutable<Job> = {
        ...input,
        status: 'queued',
        startedAt: undefined,
        finishedAt: undefined,
        attempts: 0,
        result: undefined,
        error: undefined,
      };
      const size = jobBytes(job.request, undefined);
      if (jobs.size >= options.maxJobs || bytes + size > options.maxBytes) {
        throw new GatewayError('GW_JOBS_FULL', 'the job store is full; try again later', { retryAfterS: 1 });
      }
      jobs.set(job.id, { job, bytes: size });
      bytes += size;
      queue.push(job.id);
      pump();
    },
    async get(id) {
      const held = jobs.get(id);
      if (held === undefined) return undefined;
      const { finishedAt } = held.job;
      if (finishedAt !== undefined && finishedAt + options.ttlMs <= now()) {
        drop(id);
        return undefined;
      }
      return { ...held.job, request: undefined };
    },
    async cancel(id) {
      const held = jobs.get(id);
      if (held === undefined) return undefined;
      const job = held.job;
      if (job.status === 'queued' || job.status === 'running') {
        job.status = 'cancelled';
        job.finishedAt = now();
        job.request = undefined;
        resize(held);
        running.get(id)?.controller.abort(new GatewayError('GW_CLIENT_CLOSED', 'the job was cancelled'));
        return { job: { ...job }, cancelled: true };
      }
      drop(id);
      return { job: { ...job, request: undefined }, cancelled: false };
    },
    async start(w) {
      worker = w;
      sweeper = setInterval(sweep, Math.min(options.ttlMs, 10_000));
      sweeper.unref();
      pump();
    },
    drain() {
      draining = true;
    },
    async close(graceMs) {
      draining = true;
      clearInterval(sweeper);
      const settling = [...running.values()];
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.all(settling.map((r) => r.done)), graceOver]);
      clearTimeout(timer);
      for (const [id, { controller }] of running) {
        const held = jobs.get(id);
        if (held !== undefined && held.job.status === 'running') {
          end(held, {
            status: 'failed',
            error: {
              code: 'GW_JOB_INTERRUPTED',
              message: 'the gateway running the job shut down before it finished',
              status: 503,
            },
          });
        }
        controller.abort(new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down'));
      }
      await Promise.all([...running.values()].map((r) => r.done));
      worker = undefined;
    },
    running: () => running.size,
  };
}
