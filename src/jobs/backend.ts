// The job backend interface: where jobs are kept and how workers get them. Memory and Redis Streams implement it.
import type { Job, JobOutcome, JobRequest } from './job.js';

/** A job as it is submitted: queued, with its request. */
export type NewJob = Pick<Job, 'id' | 'route' | 'owner' | 'idempotent' | 'callback' | 'createdAt'> & {
  readonly request: JobRequest;
};

/** A job handed to a worker: running, request included. */
export type RunnableJob = Job & { readonly request: JobRequest };

/** What a backend calls back into: the job runner and the observers of a job's life. */
export interface JobWorker {
  /** Jobs this instance runs at once. */
  readonly concurrency: number;
  /** Runs one job through its route's stack; never rejects (a failure is an outcome). */
  run(job: RunnableJob, signal: AbortSignal): Promise<JobOutcome>;
  /** A job started here (`attempts` counts the starts, re-runs included). */
  started(job: Job): void;
  /** A job ended (done, failed, interrupted), seen by the instance that ended it: webhooks, metrics. */
  finished(job: Job): void;
}

/** Bounds a backend enforces at submit. */
export interface JobBounds {
  maxJobs: number;
  maxBytes: number;
  /** How long a finished job is kept, in ms. */
  ttlMs: number;
}

/**
 * Where jobs live and how they reach workers. Two implementations: `memoryJobs` (in-process; a job dies
 * with its gateway) and `redisJobs` (Redis Streams: any replica takes a job, a crashed worker's jobs are
 * claimed by another, state survives restarts).
 *
 * The extension point for another queue (NATS JetStream, say): a work stream with one durable consumer
 * shared by every replica (`submit` publishes, workers pull, `AckWait` + redelivery for a crashed worker,
 * heartbeats as `+WPI` in-progress acks) and a KV bucket for the job records, whose compare-and-set on the
 * revision does what the Redis backend's Lua scripts do: only a worker whose lease expired loses a job,
 * only the lease holder's outcome is stored, and a cancelled job stays cancelled.
 */
export interface JobBackend {
  /**
   * Stores and queues a job. Throws `GW_JOBS_FULL` (with `Retry-After`) when the bounds are reached and
   * `GW_JOBS_UNAVAILABLE` when the store cannot be reached: the job was not accepted.
   */
  submit(job: NewJob): Promise<void>;
  /** The job (without its request), or undefined when unknown or expired. */
  get(id: string): Promise<Job | undefined>;
  /**
   * Cancels a queued or running job (a running one is aborted wherever it runs): `cancelled` true, the job
   * as it is now; or deletes an ended one: `cancelled` false, the job as it was. Undefined when unknown.
   */
  cancel(id: string): Promise<{ job: Job; cancelled: boolean } | undefined>;
  /** Starts handing jobs to `worker`. */
  start(worker: JobWorker): Promise<void>;
  /** Stops taking new jobs (the shutdown's first step); running ones go on. */
  drain(): void;
  /**
   * Waits up to `graceMs` for running jobs, then interrupts the rest: a job of an idempotent route is put
   * back in the queue (another replica, or this one restarted, runs it again), any other fails with
   * `GW_JOB_INTERRUPTED`. Then closes.
   */
  close(graceMs: number): Promise<void>;
  /** Jobs running in this instance. */
  running(): number;
}
