// Builds jobs and a recording worker for the job backend tests.
import type { JobWorker, NewJob, RunnableJob } from '../../src/jobs/backend.js';
import type { Job, JobOutcome } from '../../src/jobs/job.js';

let n = 0;

export function newJob(overrides: Partial<NewJob> = {}): NewJob {
  return {
    id: `job-${++n}-${Math.random().toString(36).slice(2)}`,
    route: 'r',
    owner: 'o',
    idempotent: true,
    callback: undefined,
    createdAt: Date.now(),
    request: {
      method: 'GET',
      path: '/x',
      headers: {},
      body: undefined,
      principal: undefined,
      requestId: 'rq',
    },
    ...overrides,
  };
}

/** A worker whose runs wait for `release(id)` (or answer at once with `immediate`); records what it saw. */
export function recordingWorker(concurrency = 2, immediate = false) {
  const runs: RunnableJob[] = [];
  const finished: Job[] = [];
  const pending = new Map<string, (o: JobOutcome) => void>();
  const worker: JobWorker = {
    concurrency,
    run(job, signal) {
      runs.push(job);
      if (immediate) return Promise.resolve(done(job.id));
      return new Promise((resolve) => {
        pending.set(job.id, resolve);
        signal.addEventListener('abort', () =>
          resolve({ status: 'failed', error: { code: 'GW_CLIENT_CLOSED', message: 'aborted', status: 499 } }),
        );
      });
    },
    started() {},
    finished: (job) => finished.push(job),
  };
  return {
    worker,
    runs,
    finished,
    release: (id: string) => pending.get(id)?.(done(id)),
  };
}

function done(id: string): JobOutcome {
  return {
    status: 'done',
    result: { status: 200, headers: { 'content-type': 'text/plain' }, body: Buffer.from(`ran ${id}`) },
  };
}
