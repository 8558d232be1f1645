// Job webhooks: a signed POST when a job ends (HMAC-SHA256 over a timestamp and the exact body), retried with backoff.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { Agent, request } from 'undici';
import { events, publish } from '../telemetry/events.js';
import { jobView } from './job.js';
import type { Job } from './job.js';

export interface WebhookOptions {
  /** HMAC-SHA256 key. */
  secret: string;
  /** Deliveries per job, the first included. */
  attempts: number;
  /** Full-jitter backoff base and cap, in ms. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Deadline of one attempt, in ms. */
  timeoutMs: number;
  /** A reply up to this many bytes travels in the delivery (base64); larger ones are left to the monitor. */
  maxBodyBytes: number;
  /** Deliveries waiting or in flight at once; more are dropped (and counted). Default 1,000. */
  maxPending?: number;
  /** Injectable random source and clock for tests. */
  random?: () => number;
  now?: () => number;
}

export interface WebhookSender {
  /** Queues the delivery of `job`'s end to its callback; never throws. */
  deliver(job: Job, location: string): void;
  /** Cancels waiting retries, waits for attempts in flight, closes connections. */
  close(): Promise<void>;
}

/** Header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export const SIGNATURE_HEADER = 'x-slipstream-signature';

/**
 * The signature of one delivery: HMAC-SHA256, keyed with the secret, over the ASCII decimal Unix time in
 * seconds, a `.`, and the exact body bytes; hex-encoded. The timestamp is signed so a receiver can refuse
 * a replayed delivery (older than a few minutes) without keeping state.
 */
export function signWebhook(secret: string, timestampS: number, body: Buffer): string {
  return createHmac('sha256', secret).update(`${timestampS}.`).update(body).digest('hex');
}

/**
 * Verifies a delivery as a receiver should: the `v1` signature (constant-time compare) over `t` and the
 * body, and `t` within `toleranceS` of `nowS` (default 300 s) against replays.
 */
export function verifyWebhook(
  secret: string,
  header: string | undefined,
  body: Buffer,
  nowS: number = Math.floor(Date.now() / 1000),
  toleranceS = 300,
): boolean {
  if (header === undefined) return false;
  const parts = new Map(header.split(',').map((p) => p.trim().split('=') as [string, string]));
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1');
  if (!Number.isInteger(t) || v1 === undefined || Math.abs(nowS - t) > toleranceS) return false;
  const expected = Buffer.from(signWebhook(secret, t, body), 'hex');
  const given = Buffer.from(v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Sends job webhooks. The body is JSON: the job's status document (`jobView`) plus, for a done job,
 * `result: { status, headers, body }` (body base64; left out, with `bodyOmitted: true`, beyond
 * `maxBodyBytes`). Headers: `x-slipstream-signature`, `x-slipstream-job` (the id) and
 * `x-slipstream-delivery` (one id per job end, the same on every retry: receivers dedupe on it). A 2xx
 * is delivered; 408, 429, 5xx and network errors are retried with full-jitter backoff, re-signed with a
 * fresh timestamp each time; any other status gives up (the receiver refused it).
 */
export function webhookSender(options: WebhookOptions): WebhookSender {
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const maxPending = options.maxPending ?? 1_000;
  const agent = new Agent({ connections: 16, keepAliveTimeout: 10_000 });
  const timers = new Set<NodeJS.Timeout>();
  const inFlight = new Set<Promise<void>>();
  let pending = 0;
  let closed = false;

  const payload = (job: Job, location: string): Buffer => {
    const view: Record<string, unknown> = jobView(job, location);
    const result = job.result;
    if (result !== undefined) {
      view.result =
        result.body.length <= options.maxBodyBytes
          ? { status: result.status, headers: result.headers, body: result.body.toString('base64') }
          : { status: result.status, headers: result.headers, bodyOmitted: true };
    }
    return Buffer.from(JSON.stringify(view));
  };

  const attempt = async (job: Job, url: string, body: Buffer, delivery: string, n: number): Promise<void> => {
    const t = Math.floor(now() / 1000);
    let status = 0;
    try {
      const response = await request(url, {
        method: 'POST',
        dispatcher: agent,
        headers: {
          'content-type': 'application/json',
          [SIGNATURE_HEADER]: `t=${t},v1=${signWebhook(options.secret, t, body)}`,
          'x-slipstream-job': job.id,
          'x-slipstream-delivery': delivery,
        },
        body,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      status = response.statusCode;
      await response.body.dump();
    } catch {
      status = 0;
    }
    const delivered = status >= 200 && status < 300;
    const retryable = status === 0 || status === 408 || status === 429 || status >= 500;
    const last = n >= options.attempts || closed;
    const outcome = delivered ? 'delivered' : retryable && !last ? 'retrying' : 'failed';
    publish(events.webhookDelivery, { route: job.route, outcome, attempt: n, status });
    if (outcome !== 'retrying') {
      pending--;
      return;
    }
    const delayMs = random() * Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (n - 1));
    const timer = setTimeout(() => {
      timers.delete(timer);
      track(attempt(job, url, body, delivery, n + 1));
    }, delayMs);
    timer.unref();
    timers.add(timer);
  };

  const track = (p: Promise<void>) => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  return {
    deliver(job, location) {
      if (job.callback === undefined) return;
      if (closed || pending >= maxPending) {
        publish(events.webhookDelivery, { route: job.route, outcome: 'dropped', attempt: 0, status: 0 });
        return;
      }
      pending++;
      track(attempt(job, job.callback, payload(job, location), randomUUID(), 1));
    },
    async close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await Promise.all([...inFlight]);
      await agent.close();
    },
  };
}
