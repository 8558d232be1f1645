import { describe, expect, it } from 'vitest';
import type { GatewayError } from '../../src/errors.js';
import { memoryJobs } from '../../src/jobs/memory-backend.js';
import { newJob, recordingWorker } from './helpers.js';

describe('in-process jobs', () => {
  it('runs jobs in submit order, concurrency at a time, and keeps each outcome', async () => {
    const backend = memoryJobs({ maxJobs: 10, maxBytes: 1024 ** 2, ttlMs: 60_000 });
    const w = recordingWorker(2);
    await backend.start(w.worker);
    const jobs = [newJob(), newJob(), newJob()];
    for (const job of jobs) await backend.submit(job);
    expect(w.runs.map((r) => r.id)).toEqual([jobs[0]!.id, jobs[1]!.id]);
    expect((await backend.get(jobs[2]!.id))?.status).toBe('queued');
    w.release(jobs[0]!.id);
    await expect.poll(() => w.runs.length).toBe(3);
    const ended = await backend.get(jobs[0]!.id);
    expect(ended).toMatchObject({ status: 'done', attempts: 1, request: undefined });
    expect(ended?.result?.body.toString()).toBe(`ran ${jobs[0]!.id}`);
    await backend.close(0);
  });

  it('refuses a job past maxJobs or maxBytes with GW_JOBS_FULL, and frees ended ones after the ttl', async () => {
    let now = 1_000_000;
    const backend = memoryJobs({ maxJobs: 2, maxBytes: 20_000, ttlMs: 1_000, now: () => now });
    const w = recordingWorker(5, true);
    await backend.start(w.worker);
    await backend.submit(newJob());
    await backend.submit(newJob());
    const full = await backend.submit(newJob()).catch((e: unknown) => e);
    expect((full as GatewayError).code).toBe('GW_JOBS_FULL');
    expect((full as GatewayError).retryAfterS).toBe(1);
    now += 1_000; // both ended at once, their ttl is over
    await backend.submit(newJob());
    const big = newJob({ request: { ...newJob().request, body: Buffer.alloc(30_000) } });
    expect(((await backend.submit(big).catch((e: unknown) => e)) as GatewayError).code).toBe('GW_JOBS_FULL');
    await backend.close(0);
  });

  it('cancels a queued or running job, aborting the run and keeping it cancelled; deletes an ended one', async () => {
    const backend = memoryJobs({ maxJobs: 10, maxBytes: 1024 ** 2, ttlMs: 60_000 });
    const w = recordingWorker(1);
    await backend.start(w.worker);
    const [running, queued] = [newJob(), newJob()];
    await backend.submit(running);
    await backend.submit(queued);
    expect((await backend.cancel(queued.id))?.cancelled).toBe(true);
    expect((await backend.cancel(running.id))?.job.status).toBe('cancelled');
    await expect.poll(async () => (await backend.get(running.id))?.status).toBe('cancelled');
    expect(w.runs.map((r) => r.id)).toEqual([running.id]); // the cancelled queued job never ran
    expect((await backend.cancel(running.id))?.cancelled).toBe(false);
    expect(await backend.get(running.id)).toBeUndefined();
    await backend.close(0);
  });

  it('fails a job still running when the shutdown grace ends with GW_JOB_INTERRUPTED', async () => {
    const backend = memoryJobs({ maxJobs: 10, maxBytes: 1024 ** 2, ttlMs: 60_000 });
    const w = recordingWorker(1);
    await backend.start(w.worker);
    const job = newJob();
    await backend.submit(job);
    await backend.close(10);
    expect(w.finished.map((j) => [j.status, j.error?.code])).toEqual([['failed', 'GW_JOB_INTERRUPTED']]);
  });
});
