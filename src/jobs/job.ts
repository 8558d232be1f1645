// What a background job is: the request it replays through its route's stack, its state, and its outcome.
import { createHash, randomBytes } from 'node:crypto';
import type { Headers } from '../pipeline/types.js';

/** queued → running → done | failed; queued or running → cancelled (DELETE). */
export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** The request a job sends through its route's stack, as the proxy endpoint built it. */
export interface JobRequest {
  readonly method: string;
  /** Upstream path with its query (the route's rewrite applied). */
  readonly path: string;
  /** Headers to send (hop-by-hop removed, forwarding headers set, the upstream's Accept-Encoding). */
  readonly headers: Headers;
  /** The request body, stored with the job (bounded by the route's `maxRequestBytes`). */
  readonly body: Buffer | undefined;
  /** The caller's identity as the route's cache scope needs it (never shown). */
  readonly principal: string | undefined;
  /** The request id of the request that made the job. */
  readonly requestId: string;
}

/** A job's stored reply (the reply the synchronous request would have had). */
export interface JobResult {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  readonly body: Buffer;
}

/** A job's failure: the gateway error the synchronous request would have had. */
export interface JobError {
  readonly code: string;
  readonly message: string;
  /** HTTP status of that error. */
  readonly status: number;
}

/** A job as its store holds it. Times are epoch milliseconds. */
export interface Job {
  readonly id: string;
  /** Route name: the worker looks its stack up by it. */
  readonly route: string;
  /** Who may read and cancel it: a hash of the caller's identity (`ownerOf`). */
  readonly owner: string;
  readonly idempotent: boolean;
  /** Webhook URL told when the job ends (already checked against `jobs.webhooks.allow`). */
  readonly callback: string | undefined;
  readonly status: JobStatus;
  readonly createdAt: number;
  readonly startedAt: number | undefined;
  readonly finishedAt: number | undefined;
  /** Times a worker started it (more than 1: re-run after its worker died). */
  readonly attempts: number;
  /** Present while queued or running; dropped once it ends (it may carry the caller's credentials). */
  readonly request: JobRequest | undefined;
  readonly result: JobResult | undefined;
  readonly error: JobError | undefined;
}

/** What a run of a job produced. */
export type JobOutcome = { status: 'done'; result: JobResult } | { status: 'failed'; error: JobError };

/** A fresh job id: 128 random bits (a capability: anonymous jobs are readable by whoever holds it). */
export function jobId(): string {
  return randomBytes(16).toString('base64url');
}

/** The owner key of a caller: hashed, so a store never holds the identity in the clear next to its jobs. */
export function ownerOf(principal: string | undefined): string {
  return createHash('sha256')
    .update(principal === undefined ? '-' : `p:${principal}`)
    .digest('base64url');
}

/** Bytes a job holds in its store (bodies and headers), counted against `jobs.maxBytes`. */
export function jobBytes(request: JobRequest | undefined, result: JobResult | undefined): number {
  let bytes = 256;
  if (request !== undefined) bytes += (request.body?.length ?? 0) + JSON.stringify(request.headers).length;
  if (result !== undefined) bytes += result.body.length + JSON.stringify(result.headers).length;
  return bytes;
}

/** The status document `GET /jobs/:id` answers while a job is pending (and webhooks carry). */
export function jobView(job: Job, location: string): Record<string, unknown> {
  const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());
  return {
    id: job.id,
    status: job.status,
    route: job.route,
    location,
    createdAt: iso(job.createdAt),
    ...(job.startedAt === undefined ? {} : { startedAt: iso(job.startedAt) }),
    ...(job.finishedAt === undefined ? {} : { finishedAt: iso(job.finishedAt) }),
    attempts: job.attempts,
    ...(job.error === undefined ? {} : { error: { code: job.error.code, message: job.error.message } }),
    ...(job.result === undefined ? {} : { result: { status: job.result.status } }),
  };
}
