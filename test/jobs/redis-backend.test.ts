import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayError } from '../../src/errors.js';
import type { JobBackend } from '../../src/jobs/backend.js';
import { redisJobs } from '../../src/jobs/redis-backend.js';
import { freePort, REDIS_URL, serviceAvailable } from '../helpers/services.js';
import { newJob, recordingWorker } from './helpers.js';

const redisUp = await serviceAvailable('Redis', REDIS_URL);

describe.skipIf(!redisUp)('jobs on Redis Streams', () => {
  const open: JobBackend[] = [];
  let prefix = '';
  const backend = (overrides: Partial<Parameters<typeof redisJobs>[0]> = {}) => {
    const b = redisJobs({
      url: REDIS_URL,
      keyPrefix: prefix,
      leaseMs: 1_000,
      maxJobs: 100,
      maxBytes: 1024 ** 2,
      ttlMs: 60_000,
      ...overrides,
    });
    open.push(b);
    return b;
  };
  const fresh = () => (prefix = `slipstream-test:${randomBytes(6).toString('hex')}:`);
  afterEach(async () => {
    await Promise.all(open.splice(0).map((b) => b.close(0)));
  });

  it('runs a job on one worker and lets any instance read its outcome', async () => {
    fresh();
    const a = backend();
    const reader = backend();
    const w = recordingWorker(2, true);
    await a.start(w.worker);
    const job = newJob({ request: { ...newJob().request, body: Buffer.from([0, 1, 2, 255]) } });
    await reader.submit(job);
    await expect.poll(async () => (await reader.get(job.id))?.status).toBe('done');
    expect(w.runs[0]?.request.body).toEqual(Buffer.from([0, 1, 2, 255])); // binary-safe
    const ended = await reader.get(job.id);
    expect(ended).toMatchObject({ attempts: 1, request: undefined, result: { status: 200 } });
    expect(ended?.result?.body.toString()).toBe(`ran ${job.id}`);
  });

  it('bounds the jobs every instance holds together with GW_JOBS_FULL', async () => {
    fresh();
    const [a, b] = [backend({ maxJobs: 2 }), backend({ maxJobs: 2 })];
    await a.submit(newJob());
    await b.submit(newJob());
    const full = (await a.submit(newJob()).catch((e: unknown) => e)) as GatewayError;
    expect([full.code, full.status]).toEqual(['GW_JOBS_FULL', 503]);
  });

  it('frees ended jobs once their ttl passed, making room again', async () => {
    fresh();
    const a = backend({ maxJobs: 1, ttlMs: 100 });
    const w = recordingWorker(1, true);
    await a.start(w.worker);
    const first = newJob();
    await a.submit(first);
    await expect.poll(async () => (await a.get(first.id))?.status).toBe('done');
    await expect
      .poll(async () =>
        a.submit(newJob()).then(
          () => 'accepted',
          (e: GatewayError) => e.code,
        ),
      )
      .toBe('accepted');
    expect(await a.get(first.id)).toBeUndefined();
  });

  it('never runs a job cancelled while queued, and aborts one running on another instance', async () => {
    fresh();
    const submitter = backend();
    const queued = newJob();
    await submitter.submit(queued);
    expect((await submitter.cancel(queued.id))?.cancelled).toBe(true);
    const w = recordingWorker(1);
    const worker = backend();
    await worker.start(w.worker);
    const running = newJob();
    await submitter.submit(running);
    await expect.poll(() => w.runs.map((r) => r.id)).toEqual([running.id]);
    expect((await submitter.cancel(running.id))?.job.status).toBe('cancelled');
    await expect.poll(() => worker.running()).toBe(0); // aborted through pub/sub
    expect((await submitter.get(running.id))?.status).toBe('cancelled');
  });

  it('puts an idempotent job back in the queue at shutdown, for another instance to run at once', async () => {
    fresh();
    const first = backend();
    const w1 = recordingWorker(1);
    await first.start(w1.worker);
    const job = newJob();
    await first.submit(job);
    await expect.poll(() => w1.runs.length).toBe(1);
    await first.close(0);
    const second = backend({ leaseMs: 60_000 }); // no lease needs to run out: it was put back
    const w2 = recordingWorker(1, true);
    await second.start(w2.worker);
    await expect.poll(async () => (await second.get(job.id))?.status).toBe('done');
    expect((await second.get(job.id))?.attempts).toBe(2);
  });

  it('refuses a job with GW_JOBS_UNAVAILABLE when Redis cannot be reached', async () => {
    const dead = backend({ url: `redis://127.0.0.1:${await freePort()}` });
    const error = (await dead.submit(newJob()).catch((e: unknown) => e)) as GatewayError;
    expect([error.code, error.status]).toEqual(['GW_JOBS_UNAVAILABLE', 503]);
  });
});
