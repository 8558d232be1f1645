// The job monitor: `GET <jobs.path>/:id` (status while pending, then the stored reply) and `DELETE` (cancel).
import { GatewayError } from '../errors.js';
import type { Job } from '../jobs/job.js';
import { jobView } from '../jobs/job.js';
import type { Jobs } from '../jobs/jobs.js';
import type { Reply } from '../pipeline/types.js';
import type { ReplyCoder } from '../server/compression.js';
import type { Endpoint } from '../server/exchange.js';
import { decodeSegment } from '../server/request.js';

export interface JobsEndpointOptions {
  jobs: Jobs;
  /** The coder of a job's route (compression, decoding): a stored reply goes out as that route's would. */
  coderOf: (route: string) => ReplyCoder | undefined;
}

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The monitor of RFC 7240 §4.1's `respond-async`. For the caller that made the job (anyone else gets 404
 * `GW_JOB_NOT_FOUND`, as for an unknown or expired id):
 * - queued or running: `202` with the status document and `Retry-After: 1`;
 * - done: the stored reply as the synchronous request would have had it (status, headers, body);
 * - failed: the gateway error it would have had (its status, the GW JSON shape);
 * - cancelled: `200` with the status document.
 * Every answer carries `x-slipstream-job-status`. `DELETE` cancels a pending job (`200`, the document) or
 * deletes an ended one (`204`).
 */
export function jobsEndpoint(options: JobsEndpointOptions): Endpoint {
  const { jobs } = options;
  return {
    route: 'jobs',
    async handle(x) {
      const id = decodeSegment(x.rest.slice(1));
      if (id === undefined || id === '' || id.includes('/')) throw notFound();
      if (x.method === 'DELETE') {
        const outcome = await jobs.cancel(id, x.principal);
        if (outcome === undefined) throw notFound();
        if (outcome.cancelled) return document(outcome.job, jobs.location(id), 200);
        return { status: 204, headers: { 'x-slipstream-job-status': 'deleted' }, body: null };
      }
      if (x.method !== 'GET' && x.method !== 'HEAD') {
        throw new GatewayError('GW_METHOD_NOT_ALLOWED', `use GET or DELETE on ${x.path}`, {
          data: { allow: ['GET', 'HEAD', 'DELETE'] },
        });
      }
      const job = await jobs.get(id, x.principal);
      if (job === undefined) throw notFound();
      switch (job.status) {
        case 'queued':
        case 'running':
          return document(job, jobs.location(job.id), 202);
        case 'cancelled':
          return document(job, jobs.location(job.id), 200);
        case 'failed': {
          const error = job.error!;
          const body = Buffer.from(JSON.stringify({ error: { code: error.code, message: error.message } }));
          return {
            status: error.status,
            headers: {
              'content-type': JSON_TYPE,
              'content-length': String(body.length),
              'x-slipstream-job-status': 'failed',
            },
            body,
          };
        }
        case 'done': {
          const result = job.result!;
          const reply: Reply = {
            status: result.status,
            headers: { ...result.headers, 'x-slipstream-job-status': 'done' },
            body: result.body,
          };
          const coder = options.coderOf(job.route);
          return coder === undefined ? reply : coder(reply, { method: x.method, headers: x.req.headers });
        }
      }
    },
  };
}

function document(job: Job, location: string, status: number): Reply {
  const body = Buffer.from(JSON.stringify({ job: jobView(job, location) }));
  return {
    status,
    headers: {
      'content-type': JSON_TYPE,
      'content-length': String(body.length),
      'cache-control': 'no-store',
      'x-slipstream-job-status': job.status,
      ...(status === 202 ? { 'retry-after': '1', location } : {}),
    },
    body,
  };
}

function notFound(): GatewayError {
  return new GatewayError('GW_JOB_NOT_FOUND', 'no such job');
}
