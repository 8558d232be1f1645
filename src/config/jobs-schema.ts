// The async jobs config (zod): where jobs run (in-process or a Redis Streams queue), their bounds, and webhooks.
import { z } from 'zod';
import { duration, size } from './fields.js';

/** `jobs:` — requests answered 202 at once and run in the background (RFC 7240 `Prefer: respond-async`). */
export const jobsSchema = z
  .strictObject({
    /**
     * `memory`: in this process (the default; a job dies with its gateway). `redis`: a Redis Streams queue
     * any replica takes jobs from, surviving restarts (consumer groups; a crashed worker's jobs are claimed).
     */
    store: z.enum(['memory', 'redis']).default('memory'),
    redis: z
      .strictObject({
        /** Default: `cache.redis.url`. */
        url: z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' }).optional(),
        /** Prefix of every key the queue writes. */
        keyPrefix: z.string().default('slipstream:jobs:'),
        /**
         * How long a running job's worker may go without a heartbeat before another replica takes the job
         * over (re-run when the route is idempotent, failed with GW_JOB_INTERRUPTED otherwise).
         */
        lease: duration.default(10_000),
        /** Longest wait for one Redis command. */
        commandTimeout: duration.default(2_000),
      })
      .prefault({}),
    /** Path of the status monitor: `GET /jobs/:id` (status, then the stored reply), `DELETE /jobs/:id` (cancel). */
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9._~/-]*[A-Za-z0-9._~-]$/, 'a path like "/jobs"')
      .default('/jobs'),
    /** Jobs running at once in this instance. */
    concurrency: z.number().int().min(1).max(10_000).default(16),
    /** A finished job's reply is kept this long, then dropped. */
    ttl: duration.default(600_000),
    /** Jobs kept at once (queued, running and finished); more are refused with 503 GW_JOBS_FULL. */
    maxJobs: z.number().int().min(1).max(10_000_000).default(1_000),
    /** Bytes kept at once: request bodies and replies; more are refused with 503 GW_JOBS_FULL. */
    maxBytes: size.default(256 * 1024 ** 2),
    /** Largest reply kept for one job; a bigger one fails the job with GW_UPSTREAM_RESPONSE_TOO_LARGE. */
    maxResultBytes: size.default(8 * 1024 ** 2),
    webhooks: z
      .strictObject({
        /** HMAC-SHA256 key signing every delivery (use ${ENV}); callbacks are refused without one. */
        secret: z.string().min(16, 'a webhook secret must be at least 16 characters').optional(),
        /**
         * URL prefixes a callback may start with (`https://hooks.example.com/`); any other is refused (400),
         * so a client cannot make the gateway POST to an internal address.
         */
        allow: z.array(z.url({ protocol: /^https?$/ })).default([]),
        /** Deliveries tried per job, the first included; retried on 408, 429, 5xx and network errors. */
        attempts: z.number().int().min(1).max(20).default(5),
        /** Backoff: retry n waits a random time in [0, min(maxDelay, baseDelay * 2^(n-1))] (full jitter). */
        baseDelay: duration.default(1_000),
        maxDelay: duration.default(60_000),
        /** Deadline of one delivery attempt. */
        timeout: duration.default(5_000),
        /** Replies up to this size travel in the delivery (base64); larger ones are fetched from the monitor. */
        maxBodyBytes: size.default(1024 ** 2),
      })
      .prefault({}),
  })
  .prefault({});

/** `async:` on a route: `prefer` honours `Prefer: respond-async`; `always` runs every request as a job. */
export const routeAsyncSchema = z.union([z.literal(false), z.enum(['prefer', 'always'])]).default(false);

export type JobsConfig = z.output<typeof jobsSchema>;
