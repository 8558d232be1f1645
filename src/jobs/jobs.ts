// The job service: accepts a request as a job, runs it through its route's stack in the background, keeps its reply.
import { GatewayError, toGatewayError } from '../errors.js';
import { bufferReply } from '../pipeline/buffer.js';
import { discard } from '../pipeline/compose.js';
import { stripHopByHop } from '../pipeline/headers.js';
import type { Handler, Headers } from '../pipeline/types.js';
import { requestContext } from '../server/request.js';
import { events, publish } from '../telemetry/events.js';
import type { JobBackend, JobWorker, RunnableJob } from './backend.js';
import { jobId, ownerOf } from './job.js';
import type { Job, JobOutcome, JobRequest, JobResult } from './job.js';
import type { WebhookSender } from './webhook.js';

/** A route jobs can run on: its name, upstream and whole stack. */
export interface JobRoute {
  readonly name: string;
  readonly upstream: string;
  readonly handler: Handler;
}

export interface JobsOptions {
  backend: JobBackend;
  /** Routes by name (the ones with `async`). */
  routes: ReadonlyMap<string, JobRoute>;
  /** The monitor's path (`/jobs`): a job's `Location` is `<path>/<id>`. */
  path: string;
  /** Jobs running at once in this instance. */
  concurrency: number;
  /** Largest reply kept per job, in bytes. */
  maxResultBytes: number;
  /** Webhooks, when a secret is configured; callbacks must start with one of `allow`. */
  webhooks?: { sender: WebhookSender; allow: readonly string[] };
}

/** What the proxy endpoint submits. */
export interface JobSubmission {
  route: string;
  idempotent: boolean;
  request: JobRequest;
  /** The caller's `x-slipstream-callback`, unchecked. */
  callback: string | undefined;
}

export interface Jobs {
  /** `<path>/<id>`. */
  location(id: string): string;
  /**
   * Accepts a job. Throws `GW_BAD_REQUEST` for a callback that is not allowed (or any callback without a
   * webhook secret), `GW_JOBS_FULL` / `GW_JOBS_UNAVAILABLE` from the backend.
   */
  submit(submission: JobSubmission): Promise<Job>;
  /** The caller's job, or undefined (unknown, expired, or another caller's: never told apart). */
  get(id: string, principal: string | undefined): Promise<Job | undefined>;
  /**
   * Cancels the caller's pending job (`cancelled` true) or deletes its ended one (`cancelled` false);
   * undefined when it is not the caller's.
   */
  cancel(id: string, principal: string | undefined): Promise<{ job: Job; cancelled: boolean } | undefined>;
  /** Jobs running in this instance now. */
  running(): number;
  /** The lifecycle component (start, drain, close within what is left of the grace). */
  readonly component: {
    name: string;
    start(): Promise<void>;
    drain(): void;
    close(graceMs: number): Promise<void>;
  };
}

/**
 * Builds the job service on a backend. A job runs its stored request through the route's stack exactly
 * as the synchronous request would have (cache, coalescing, deadline, retries, breaker), and keeps what
 * that request would have answered: the reply (up to `maxResultBytes`) or the gateway error. When it ends,
 * its webhook (if any) is sent by the instance that ended it.
 */
export function jobService(options: JobsOptions): Jobs {
  const { backend, routes, path } = options;
  const location = (id: string) => `${path}/${id}`;
  // Normalised once ("https://hooks.example.com" → "https://hooks.example.com/"): a bare origin must not
  // let "https://hooks.example.com.evil.test/" through.
  const allow = options.webhooks?.allow.map((prefix) => new URL(prefix).toString());

  const run = async (job: RunnableJob, signal: AbortSignal): Promise<JobOutcome> => {
    const route = routes.get(job.route);
    if (route === undefined) {
      return failed(
        new GatewayError('GW_INTERNAL', `route "${job.route}" is not configured on this gateway`),
      );
    }
    const { request } = job;
    try {
      const reply = await route.handler({
        ctx: requestContext({ 'x-request-id': request.requestId }, route.name),
        upstream: route.upstream,
        method: request.method,
        path: request.path,
        headers: request.headers,
        body: request.body,
        idempotent: job.idempotent,
        principal: request.principal,
        signal,
      });
      const buffered = await bufferReply(reply, options.maxResultBytes);
      if (!buffered.complete) {
        discard(buffered.reply);
        return failed(
          new GatewayError(
            'GW_UPSTREAM_RESPONSE_TOO_LARGE',
            `the job's reply exceeds jobs.maxResultBytes (${options.maxResultBytes} bytes)`,
          ),
        );
      }
      const result: JobResult = {
        status: reply.status,
        headers: kept(reply.headers),
        body: buffered.reply.body ?? Buffer.alloc(0),
      };
      return { status: 'done', result };
    } catch (error) {
      return failed(toGatewayError(signal.aborted ? (signal.reason ?? error) : error));
    }
  };

  const worker: JobWorker = {
    concurrency: options.concurrency,
    run,
    started(job) {
      publish(events.jobStarted, {
        route: job.route,
        attempt: job.attempts,
        queuedMs: (job.startedAt ?? Date.now()) - job.createdAt,
      });
    },
    finished(job) {
      publish(events.jobFinished, {
        route: job.route,
        status: job.status as 'done' | 'failed' | 'cancelled',
        errorCode: job.error?.code,
        durationMs: (job.finishedAt ?? Date.now()) - job.createdAt,
      });
      if (job.status !== 'cancelled') options.webhooks?.sender.deliver(job, location(job.id));
    },
  };

  const mine = (job: Job | undefined, principal: string | undefined) =>
    job !== undefined && job.owner === ownerOf(principal) ? job : undefined;

  return {
    location,
    async submit(submission) {
      const callback = checkedCallback(submission.callback, allow);
      const job = {
        id: jobId(),
        route: submission.route,
        owner: ownerOf(submission.request.principal),
        idempotent: submission.idempotent,
        callback,
        createdAt: Date.now(),
        request: submission.request,
      };
      await backend.submit(job);
      publish(events.jobQueued, { route: job.route });
      return {
        ...job,
        status: 'queued',
        startedAt: undefined,
        finishedAt: undefined,
        attempts: 0,
        request: undefined,
        result: undefined,
        error: undefined,
      };
    },
    get: async (id, principal) => mine(await backend.get(id), principal),
    running: () => backend.running(),
    async cancel(id, principal) {
      if (mine(await backend.get(id), principal) === undefined) return undefined;
      const outcome = await backend.cancel(id);
      if (outcome?.cancelled === true) worker.finished(outcome.job);
      return outcome;
    },
    component: {
      name: 'jobs',
      start: () => backend.start(worker),
      drain: () => backend.drain(),
      async close(graceMs) {
        await backend.close(graceMs);
        await options.webhooks?.sender.close();
      },
    },
  };
}

function failed(error: GatewayError): JobOutcome {
  return { status: 'failed', error: { code: error.code, message: error.message, status: error.status } };
}

/** The reply headers kept with a job: hop-by-hop and per-exchange ones dropped. */
function kept(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const stripped = stripHopByHop(headers);
  delete stripped['x-request-id'];
  for (const name in stripped) {
    const value = stripped[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** A callback URL the gateway may POST to: http(s), under an allowed prefix, and only with a secret. */
function checkedCallback(
  callback: string | undefined,
  allow: readonly string[] | undefined,
): string | undefined {
  if (callback === undefined) return undefined;
  if (allow === undefined) {
    throw new GatewayError('GW_BAD_REQUEST', 'callbacks need jobs.webhooks.secret on this gateway');
  }
  let url: URL;
  try {
    url = new URL(callback);
  } catch {
    throw new GatewayError('GW_BAD_REQUEST', 'x-slipstream-callback is not a URL');
  }
  const text = url.toString();
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    !allow.some((prefix) => text.startsWith(prefix))
  ) {
    throw new GatewayError(
      'GW_BAD_REQUEST',
      'x-slipstream-callback is not under an allowed prefix (jobs.webhooks.allow)',
    );
  }
  return text;
}
