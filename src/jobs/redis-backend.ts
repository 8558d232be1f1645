// Jobs on Redis Streams: one stream, one consumer group for every replica, leases and Lua-guarded transitions, claims for crashed workers.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type * as Redis from 'redis';
import { GatewayError } from '../errors.js';
import { optionalDependency } from '../optional-dependency.js';
import type { JobBackend, JobBounds, JobWorker, NewJob, RunnableJob } from './backend.js';
import { jobBytes } from './job.js';
import type { Job, JobError, JobOutcome, JobRequest, JobStatus } from './job.js';

export interface RedisJobsOptions extends JobBounds {
  /** `redis://host:port/db`. */
  url: string;
  /** Prefix of every key and channel. Default `slipstream:jobs:`. */
  keyPrefix?: string;
  /**
   * A running job's lease, in ms: its worker renews it (and its stream entry's idle time) every third of
   * it; a job whose lease ran out is taken over by the next replica that claims it. Default 10,000.
   */
  leaseMs?: number;
  /** Longest wait for one command (a blocking read excepted). Default 2,000 ms. */
  commandTimeoutMs?: number;
  /** This worker's consumer name. Default `<host>-<pid>-<random>`. */
  consumer?: string;
}

const redis = optionalDependency<typeof Redis>('redis');
const GROUP = 'workers';
/** A ended job's record outlives its ttl by this much, in case the sweep never comes (no more submits). */
const SAFETY_MS = 60_000;
/** Pause after a failed loop round (Redis down): the loops go on when it is back. */
const RETRY_MS = 500;
/** How long one blocking read waits for new entries. */
const BLOCK_MS = 1_000;

/**
 * Stores a job and queues it, unless the bounds are reached; first frees ended jobs whose ttl passed (at
 * most 100: record, index entry, size). KEYS: record, live, sizes, bytes, stream. ARGV: id, now, maxJobs,
 * maxBytes, size, record key prefix, then the record's field/value pairs.
 */
const SUBMIT = `for _, old in ipairs(redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[2], 'limit', 0, 100)) do
  redis.call('decrby', KEYS[4], tonumber(redis.call('hget', KEYS[3], old) or '0'))
  redis.call('hdel', KEYS[3], old)
  redis.call('del', ARGV[6] .. old)
  redis.call('zrem', KEYS[2], old)
end
if redis.call('zcard', KEYS[2]) >= tonumber(ARGV[3]) then return 'full' end
if tonumber(redis.call('get', KEYS[4]) or '0') + tonumber(ARGV[5]) > tonumber(ARGV[4]) then return 'full' end
redis.call('hset', KEYS[1], unpack(ARGV, 7))
redis.call('zadd', KEYS[2], '+inf', ARGV[1])
redis.call('hset', KEYS[3], ARGV[1], ARGV[5])
redis.call('incrby', KEYS[4], ARGV[5])
redis.call('xadd', KEYS[5], '*', 'id', ARGV[1])
return 'ok'`;

/**
 * Ends a job: stores its outcome, drops its request, starts its ttl. Shared by FINISH, START (an
 * interrupted job) and CANCEL. Expects locals: rec (record key), now, ttl, id, size (new size).
 */
const END = `redis.call('hdel', rec, 'req', 'reqBody', 'lease')
redis.call('hset', rec, 'finishedAt', now)
redis.call('pexpire', rec, ttl + ${SAFETY_MS})
redis.call('zadd', KEYS[2], now + ttl, id)
local old = tonumber(redis.call('hget', KEYS[3], id) or '0')
redis.call('hset', KEYS[3], id, size)
redis.call('incrby', KEYS[4], size - old)`;

/**
 * Takes a job for this worker: a queued one; a running one whose lease ran out (its worker died) is
 * run again when its route is idempotent, failed with GW_JOB_INTERRUPTED otherwise. KEYS: record, live,
 * sizes, bytes. ARGV: worker, now, lease ms, ttl ms, error JSON, ended size.
 * Returns run | rerun | busy (a live worker holds it) | interrupted | skip (ended, cancelled or gone).
 */
const START = `local rec, now, ttl, id = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[4]), redis.call('hget', KEYS[1], 'id')
local status = redis.call('hget', rec, 'status')
if not status then return 'skip' end
local verdict = 'run'
if status == 'running' then
  if tonumber(redis.call('hget', rec, 'lease') or '0') > now then return 'busy' end
  if redis.call('hget', rec, 'idempotent') ~= '1' then
    local size = tonumber(ARGV[6])
    redis.call('hset', rec, 'status', 'failed', 'error', ARGV[5])
    ${END}
    return 'interrupted'
  end
  verdict = 'rerun'
elseif status ~= 'queued' then
  return 'skip'
end
redis.call('hset', rec, 'status', 'running', 'worker', ARGV[1], 'lease', now + tonumber(ARGV[3]), 'startedAt', now)
redis.call('hincrby', rec, 'attempts', 1)
return verdict`;

/**
 * Stores a job's outcome, only while this worker still holds it. KEYS: record, live, sizes, bytes.
 * ARGV: worker, now, ttl ms, size, then the outcome's field/value pairs. Returns ok, or the status the
 * job has (cancelled, or running under another worker after this one lost its lease).
 */
const FINISH = `local rec, now, ttl, id, size = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), redis.call('hget', KEYS[1], 'id'), tonumber(ARGV[4])
local status = redis.call('hget', rec, 'status')
if status ~= 'running' or redis.call('hget', rec, 'worker') ~= ARGV[1] then return status or 'gone' end
redis.call('hset', rec, unpack(ARGV, 5))
${END}
return 'ok'`;

/** Renews this worker's lease. KEYS: record. ARGV: worker, lease end. */
const RENEW = `if redis.call('hget', KEYS[1], 'worker') == ARGV[1] and redis.call('hget', KEYS[1], 'status') == 'running' then
  redis.call('hset', KEYS[1], 'lease', ARGV[2]) return 1 end return 0`;

/** Puts a job this worker holds back in the queue (shutdown). KEYS: record, stream. ARGV: worker, id. */
const REQUEUE = `if redis.call('hget', KEYS[1], 'worker') ~= ARGV[1] or redis.call('hget', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('hset', KEYS[1], 'status', 'queued')
redis.call('hdel', KEYS[1], 'worker', 'lease')
redis.call('xadd', KEYS[2], '*', 'id', ARGV[2])
return 1`;

/**
 * Cancels a pending job (and tells its worker) or deletes an ended one. KEYS: record, live, sizes, bytes.
 * ARGV: now, ttl ms, cancel channel, size once cancelled. Returns cancelled | deleted | gone.
 */
const CANCEL = `local rec, now, ttl, id, size = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), redis.call('hget', KEYS[1], 'id'), tonumber(ARGV[4])
local status = redis.call('hget', rec, 'status')
if not status then return 'gone' end
if status == 'queued' or status == 'running' then
  redis.call('hset', rec, 'status', 'cancelled')
  ${END}
  redis.call('publish', ARGV[3], id)
  return 'cancelled'
end
redis.call('del', rec)
redis.call('zrem', KEYS[2], id)
redis.call('decrby', KEYS[4], tonumber(redis.call('hget', KEYS[3], id) or '0'))
redis.call('hdel', KEYS[3], id)
return 'deleted'`;

interface Running {
  controller: AbortController;
  entry: string;
  idempotent: boolean;
  done: Promise<void>;
}

/**
 * Jobs on one Redis stream read by one consumer group shared by every replica: an entry goes to exactly
 * one consumer (XREADGROUP `>`). The job's record (a hash) carries its state, changed only by Lua scripts,
 * so transitions are atomic: a worker starts a job only if it is queued, or running under a lease that
 * ran out; it stores an outcome only while it still holds the job; a cancelled job stays cancelled.
 * A worker renews its lease and resets its entries' idle time (XCLAIM) every third of the lease; entries
 * of a worker that stopped (killed, frozen, partitioned) go idle, and after a lease XAUTOCLAIM hands them
 * to another worker, which re-runs the job (idempotent routes) or fails it with `GW_JOB_INTERRUPTED`.
 * Two live replicas never run one job at once; a killed one's job is never lost. Ended jobs are counted
 * in a sorted set by expiry and freed by a sweep at each submit, so `maxJobs` and `maxBytes` hold across
 * the cluster. Needs Redis 6.2+ (XAUTOCLAIM), one Redis (not Cluster: the scripts touch derived keys).
 */
export function redisJobs(options: RedisJobsOptions): JobBackend {
  const prefix = options.keyPrefix ?? 'slipstream:jobs:';
  const leaseMs = options.leaseMs ?? 10_000;
  const me = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const keys = {
    stream: `${prefix}queue`,
    live: `${prefix}live`,
    sizes: `${prefix}sizes`,
    bytes: `${prefix}bytes`,
    cancel: `${prefix}cancel`,
    record: (id: string) => `${prefix}job:${id}`,
  };
  const { createClient, RESP_TYPES } = redis();
  /** Replies as Buffers: job bodies stay byte-exact. */
  const BINARY = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;
  const client = createClient({
    url: options.url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 2_000,
      reconnectStrategy: (n: number) => Math.min(50 * 2 ** Math.min(n, 10), 2_000),
    },
    commandOptions: { timeout: options.commandTimeoutMs ?? 2_000, typeMapping: BINARY },
  });
  client.on('error', () => {}); // reconnects by itself; commands fail meanwhile
  // Blocking reads wait BLOCK_MS on a connection of their own; cancels arrive on a subscribed one.
  const reader = client.duplicate({ commandOptions: { typeMapping: BINARY } });
  reader.on('error', () => {});
  const subscriber = client.duplicate();
  subscriber.on('error', () => {});
  const connected = Promise.all([client.connect(), reader.connect(), subscriber.connect()]).then(
    () => true,
    () => false,
  );

  const running = new Map<string, Running>();
  let worker: JobWorker | undefined;
  let draining = false;
  let closed = false;
  const timers: NodeJS.Timeout[] = [];
  let loop: Promise<void> = Promise.resolve();
  /** Wakes the reader when a slot frees. */
  let wake: (() => void) | undefined;

  const recordKeys = (id: string) => [keys.record(id), keys.live, keys.sizes, keys.bytes];
  const evalScript = async (
    script: string,
    keyList: string[],
    args: Array<string | Buffer>,
  ): Promise<string> => {
    const reply = (await client.eval(script, { keys: keyList, arguments: args })) as Buffer | number | null;
    return String(reply);
  };
  const unavailable = (error: unknown) =>
    new GatewayError('GW_JOBS_UNAVAILABLE', 'the job queue (Redis) cannot be reached', { cause: error });

  const read = async (id: string): Promise<(Job & { request: JobRequest | undefined }) | undefined> => {
    const raw = (await client.hGetAll(keys.record(id))) as unknown as Record<string, Buffer>;
    if (raw.status === undefined) return undefined;
    return decodeJob(raw);
  };

  const ack = async (entry: string) => {
    await client.sendCommand(['XACK', keys.stream, GROUP, entry]);
    await client.sendCommand(['XDEL', keys.stream, entry]);
  };

  const interruptedError = (reason: string): string =>
    JSON.stringify({ code: 'GW_JOB_INTERRUPTED', message: reason, status: 503 } satisfies JobError);

  /** One stream entry given to this worker (new, or claimed from a stopped one). */
  const handle = async (entry: string, id: string): Promise<void> => {
    if (worker === undefined) return;
    const endedSize = String(jobBytes(undefined, undefined));
    const verdict = await evalScript(START, recordKeys(id), [
      me,
      String(Date.now()),
      String(leaseMs),
      String(options.ttlMs),
      interruptedError(
        'the gateway running the job stopped before it finished; the route is not idempotent, so it was not run again',
      ),
      endedSize,
    ]);
    if (verdict === 'busy') return;
    if (verdict === 'skip') {
      await ack(entry);
      return;
    }
    if (verdict === 'interrupted') {
      await ack(entry);
      const ended = await read(id);
      if (ended !== undefined) worker.finished(ended);
      return;
    }
    const job = await read(id);
    if (job?.request === undefined) {
      await ack(entry);
      return;
    }
    const controller = new AbortController();
    const done = run({ ...job, request: job.request }, entry, controller);
    running.set(id, { controller, entry, idempotent: job.idempotent, done });
  };

  const run = async (job: RunnableJob, entry: string, controller: AbortController): Promise<void> => {
    const w = worker!;
    try {
      w.started(job);
      const outcome = await w.run(job, controller.signal);
      if (controller.signal.aborted && closed) return; // close() decides what becomes of it
      await finish(job.id, entry, outcome);
    } catch {
      // Redis failed while storing the outcome: the entry stays pending; once the lease runs out another
      // worker takes the job (re-run, or failed as interrupted).
    } finally {
      running.delete(job.id);
      wake?.();
    }
  };

  const finish = async (id: string, entry: string, outcome: JobOutcome): Promise<void> => {
    const fields: Array<string | Buffer> = ['status', outcome.status];
    let size = jobBytes(undefined, undefined);
    if (outcome.status === 'done') {
      const { status, headers, body } = outcome.result;
      fields.push('res', JSON.stringify({ status, headers }), 'resBody', body);
      size = jobBytes(undefined, outcome.result);
    } else {
      fields.push('error', JSON.stringify(outcome.error));
    }
    const result = await evalScript(FINISH, recordKeys(id), [
      me,
      String(Date.now()),
      String(options.ttlMs),
      String(size),
      ...fields,
    ]);
    // Another worker runs it now (this one lost its lease): its entry is that worker's to acknowledge.
    if (result === 'running') return;
    await ack(entry);
    if (result !== 'ok') return;
    const ended = await read(id);
    if (ended !== undefined) worker?.finished(ended);
  };

  const free = () => (worker === undefined ? 0 : Math.max(0, worker.concurrency - running.size));

  /** Reads new entries while there are free slots. */
  const readLoop = async () => {
    while (!draining) {
      if (free() === 0) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      try {
        const reply = await reader.sendCommand<unknown>([
          'XREADGROUP',
          'GROUP',
          GROUP,
          me,
          'COUNT',
          String(free()),
          'BLOCK',
          String(BLOCK_MS),
          'STREAMS',
          keys.stream,
          '>',
        ]);
        for (const [entry, fields] of streamEntries(reply))
          await handle(String(entry), fieldOf(fields, 'id'));
      } catch {
        if (draining) break;
        await ensureGroup(); // a Redis that was down at start (or flushed) has no group yet
        await pause(RETRY_MS);
      }
    }
  };

  const ensureGroup = async () => {
    try {
      await client.sendCommand(['XGROUP', 'CREATE', keys.stream, GROUP, '0', 'MKSTREAM']);
    } catch {
      // BUSYGROUP (it exists), or Redis is down and the caller retries
    }
  };

  const onCancel = (id: string) =>
    running.get(id)?.controller.abort(new GatewayError('GW_CLIENT_CLOSED', 'the job was cancelled'));
  const subscribe = () => {
    subscriber.subscribe(keys.cancel, onCancel).catch(() => subscriber.once('ready', subscribe));
  };

  /** Takes over entries idle for a whole lease: their worker stopped. */
  const claim = async () => {
    if (draining || free() === 0) return;
    let cursor = '0-0';
    do {
      const reply = await client.sendCommand<[Buffer, Array<[Buffer, Buffer[]] | null>, Buffer[]]>([
        'XAUTOCLAIM',
        keys.stream,
        GROUP,
        me,
        String(leaseMs),
        cursor,
        'COUNT',
        String(Math.max(1, free())),
      ]);
      cursor = String(reply[0]);
      for (const message of reply[1]) {
        if (message === null) continue;
        const [entry, fields] = message;
        if (running.has(fieldOf(fields, 'id'))) continue;
        await handle(String(entry), fieldOf(fields, 'id'));
      }
    } while (cursor !== '0-0' && free() > 0 && !draining);
  };

  /** Renews the leases of this worker's jobs and resets their entries' idle time. */
  const heartbeat = async () => {
    const until = String(Date.now() + leaseMs);
    for (const [id, r] of running) {
      await evalScript(RENEW, [keys.record(id)], [me, until]);
      await client.sendCommand(['XCLAIM', keys.stream, GROUP, me, '0', r.entry, 'JUSTID']);
    }
  };

  /** Runs `task` every `ms`, never two rounds at once (a slow Redis would stack them up). */
  const every = (ms: number, task: () => Promise<void>) => {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void task()
        .catch(() => {})
        .finally(() => (busy = false));
    }, ms);
    timer.unref();
    timers.push(timer);
  };

  return {
    async submit(job: NewJob) {
      await Promise.race([connected, pause(options.commandTimeoutMs ?? 2_000)]);
      if (!client.isReady) throw unavailable(undefined);
      const size = jobBytes(job.request, undefined);
      const { request } = job;
      const fields: Array<string | Buffer> = [
        'id',
        job.id,
        'status',
        'queued',
        'owner',
        job.owner,
        'route',
        job.route,
        'idempotent',
        job.idempotent ? '1' : '0',
        'createdAt',
        String(job.createdAt),
        'attempts',
        '0',
        'req',
        JSON.stringify({
          method: request.method,
          path: request.path,
          headers: request.headers,
          principal: request.principal ?? null,
          requestId: request.requestId,
        }),
      ];
      if (request.body !== undefined) fields.push('reqBody', request.body);
      if (job.callback !== undefined) fields.push('callback', job.callback);
      let verdict: string;
      try {
        verdict = await evalScript(
          SUBMIT,
          [keys.record(job.id), keys.live, keys.sizes, keys.bytes, keys.stream],
          [
            job.id,
            String(job.createdAt),
            String(options.maxJobs),
            String(options.maxBytes),
            String(size),
            `${prefix}job:`,
            ...fields,
          ],
        );
      } catch (error) {
        throw unavailable(error);
      }
      if (verdict === 'full') {
        throw new GatewayError('GW_JOBS_FULL', 'the job store is full; try again later', { retryAfterS: 1 });
      }
    },
    async get(id) {
      try {
        const job = await read(id);
        return job === undefined ? undefined : { ...job, request: undefined };
      } catch (error) {
        throw unavailable(error);
      }
    },
    async cancel(id) {
      try {
        const before = await read(id);
        if (before === undefined) return undefined;
        const verdict = await evalScript(CANCEL, recordKeys(id), [
          String(Date.now()),
          String(options.ttlMs),
          keys.cancel,
          String(jobBytes(undefined, undefined)),
        ]);
        if (verdict === 'gone') return undefined;
        if (verdict === 'deleted') return { job: { ...before, request: undefined }, cancelled: false };
        const after = await read(id);
        return after === undefined ? undefined : { job: { ...after, request: undefined }, cancelled: true };
      } catch (error) {
        throw unavailable(error);
      }
    },
    async start(w) {
      worker = w;
      // A Redis that is down never blocks start-up: the loops retry until it is back.
      await Promise.race([connected, pause(1_000)]);
      await ensureGroup();
      subscribe();
      every(leaseMs / 3, heartbeat);
      every(leaseMs / 2, claim);
      loop = readLoop();
      void claim().catch(() => {});
    },
    drain() {
      draining = true;
      wake?.();
    },
    async close(graceMs) {
      draining = true;
      wake?.();
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([Promise.all([...running.values()].map((r) => r.done)), graceOver]);
      clearTimeout(timer);
      closed = true;
      for (const t of timers) clearInterval(t);
      // What still runs: an idempotent job goes back in the queue for another replica (or this one,
      // restarted); any other fails, its outcome upstream unknown.
      for (const [id, r] of [...running]) {
        r.controller.abort(new GatewayError('GW_SHUTTING_DOWN', 'the gateway is shutting down'));
        try {
          if (r.idempotent) {
            if ((await evalScript(REQUEUE, [keys.record(id), keys.stream], [me, id])) === '1')
              await ack(r.entry);
          } else {
            await finish(id, r.entry, {
              status: 'failed',
              error: JSON.parse(
                interruptedError('the gateway running the job shut down before it finished'),
              ) as JobError,
            });
          }
        } catch {
          // Redis is gone too: the lease runs out and another worker takes the job.
        }
      }
      await Promise.all([...running.values()].map((r) => r.done));
      if (reader.isOpen) reader.destroy(); // ends a blocking read at once
      await loop;
      for (const c of [client, subscriber]) if (c.isOpen) c.destroy();
    },
    running: () => running.size,
  };
}

/**
 * The entries of an XREADGROUP reply: RESP2 gives `[[stream, entries]]`, RESP3 a map `{ stream: entries }`
 * (node-redis passes either through `sendCommand`).
 */
function streamEntries(reply: unknown): Array<[Buffer, Buffer[]]> {
  if (reply === null || reply === undefined) return [];
  const perStream = Array.isArray(reply)
    ? (reply as Array<[Buffer, Array<[Buffer, Buffer[]]>]>).map(([, entries]) => entries)
    : Object.values(reply as Record<string, Array<[Buffer, Buffer[]]>>);
  return perStream.flat();
}

function fieldOf(fields: Buffer[], name: string): string {
  for (let i = 0; i < fields.length; i += 2) if (String(fields[i]) === name) return String(fields[i + 1]);
  return '';
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** A record hash (Buffers, as stored) as a Job. */
function decodeJob(raw: Record<string, Buffer>): Job & { request: JobRequest | undefined } {
  const text = (name: string) => (raw[name] === undefined ? undefined : raw[name].toString());
  const num = (name: string) => (raw[name] === undefined ? undefined : Number(raw[name].toString()));
  const req = text('req');
  const res = text('res');
  const error = text('error');
  const parsedReq =
    req === undefined
      ? undefined
      : (JSON.parse(req) as Omit<JobRequest, 'body' | 'principal'> & { principal: string | null });
  const parsedRes =
    res === undefined
      ? undefined
      : (JSON.parse(res) as { status: number; headers: Record<string, string | string[]> });
  return {
    id: text('id')!,
    route: text('route')!,
    owner: text('owner')!,
    idempotent: text('idempotent') === '1',
    callback: text('callback'),
    status: text('status') as JobStatus,
    createdAt: num('createdAt')!,
    startedAt: num('startedAt'),
    finishedAt: num('finishedAt'),
    attempts: num('attempts') ?? 0,
    request:
      parsedReq === undefined
        ? undefined
        : { ...parsedReq, principal: parsedReq.principal ?? undefined, body: raw.reqBody },
    result: parsedRes === undefined ? undefined : { ...parsedRes, body: raw.resBody ?? Buffer.alloc(0) },
    error: error === undefined ? undefined : (JSON.parse(error) as JobError),
  };
}
