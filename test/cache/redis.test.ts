import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryCache } from '../../src/cache/memory.js';
import { peerLock } from '../../src/cache/peer-lock.js';
import { redisCache } from '../../src/cache/redis.js';
import { redisConnection } from '../../src/cache/redis-connection.js';
import type { RedisConnection } from '../../src/cache/redis-connection.js';
import type { CacheEntry } from '../../src/cache/store.js';
import { tieredCache } from '../../src/cache/tiered.js';
import { events } from '../../src/telemetry/events.js';
import { subscribeRequestLog } from '../../src/telemetry/log.js';
import { REDIS_URL, serviceAvailable, startPrivateRedis } from '../helpers/services.js';
import type { PrivateRedis } from '../helpers/services.js';

const up = await serviceAvailable('Redis', REDIS_URL);

function entry(body: Buffer, ttlMs = 10_000): CacheEntry {
  const now = Date.now();
  return {
    status: 200,
    headers: { 'content-type': 'application/octet-stream', 'x-multi': ['a', 'b'] },
    body,
    storedAt: now,
    freshUntil: now + ttlMs,
    staleUntil: now + ttlMs,
    errorUntil: now + ttlMs,
  };
}

/** True when the Redis on `port` answers PING within `timeoutMs` (a raw socket: no client library's queueing). */
function answersPing(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.on('data', (chunk: Buffer) => done(chunk.toString().startsWith('+PONG')));
    socket.write('PING\r\n');
  });
}

describe.skipIf(!up)('redis cache store (real Redis)', () => {
  let connection: RedisConnection;
  // A prefix per run, so parallel runs and leftovers never collide.
  const keyPrefix = `slipstream-test:${randomBytes(6).toString('hex')}:`;

  beforeAll(async () => {
    connection = redisConnection({ url: REDIS_URL });
    expect(await connection.ready(5_000)).toBe(true);
  });
  afterAll(async () => {
    await redisCache({ connection, keyPrefix }).purge('');
    await connection.close();
  });

  it('returns every byte of a binary body and the headers as stored', async () => {
    const store = redisCache({ connection, keyPrefix });
    const body = randomBytes(64 * 1024); // every byte value, invalid UTF-8 included
    await store.set('bin', entry(body));
    const back = await store.get('bin');
    expect(back?.body.equals(body)).toBe(true);
    expect(back?.headers).toEqual({ 'content-type': 'application/octet-stream', 'x-multi': ['a', 'b'] });
  });

  it("sets the key's expiry in Redis at the entry's last useful moment", async () => {
    const store = redisCache({ connection, keyPrefix });
    await store.set('ttl', entry(Buffer.from('x'), 3_000));
    const pttl = await connection.client.pTTL(`${keyPrefix}ttl`);
    expect(pttl).toBeGreaterThan(2_000);
    expect(pttl).toBeLessThanOrEqual(3_000);
  });

  it('purges by prefix, taking glob characters in keys literally', async () => {
    const store = redisCache({ connection, keyPrefix });
    await store.set('r*|GET /a', entry(Buffer.from('1')));
    await store.set('r*|GET /b', entry(Buffer.from('2')));
    await store.set('rX|GET /a', entry(Buffer.from('3')));
    expect(await store.purge('r*|')).toBe(2);
    expect(await store.get('rX|GET /a')).toBeDefined();
  });

  it('lets one of many contenders hold a lock, and tells the others when its entry appears', async () => {
    const lock = peerLock({ connection, keyPrefix: `${keyPrefix}lock:`, lockTtlMs: 2_000 });
    const store = redisCache({ connection, keyPrefix });
    const flights = await Promise.all(Array.from({ length: 20 }, () => lock.acquire('k')));
    expect(flights.filter((f) => f.held)).toHaveLength(1);
    const waiting = lock.waitForPeer('k', () => store.get('k'), new AbortController().signal);
    await store.set('k', entry(Buffer.from('from the holder')));
    const holder = flights.find((f) => f.held)!;
    if (holder.held) await holder.release();
    expect((await waiting)?.body.toString()).toBe('from the holder');
    expect((await lock.acquire('k')).held).toBe(true);
  });

  it('stops a waiter once the holder releases without storing anything', async () => {
    const lock = peerLock({ connection, keyPrefix: `${keyPrefix}lock:`, lockTtlMs: 5_000 });
    const holder = await lock.acquire('nothing');
    expect(holder.held).toBe(true);
    const started = Date.now();
    const waiting = lock.waitForPeer('nothing', async () => undefined, new AbortController().signal);
    setTimeout(() => void (holder.held && holder.release()), 50);
    expect(await waiting).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(2_000); // well before the 5 s lock TTL
  });
});

describe.skipIf(!up)('tiered cache store with Redis going away (private redis-server)', () => {
  let redis: PrivateRedis;
  let connection: RedisConnection;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    connection = redisConnection({ url: redis.url, maxReconnectDelayMs: 100 });
    expect(await connection.ready(5_000)).toBe(true);
  });
  afterAll(async () => {
    await connection?.close();
    await redis?.kill();
  });

  const waitFor = async (condition: () => boolean) => {
    for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(condition()).toBe(true);
  };

  it('serves from memory while Redis is down, and writes to Redis again once it is back', async () => {
    const l1 = memoryCache({ maxTtlMs: 60_000 });
    const l2 = redisCache({ connection });
    const store = tieredCache({ l1, l2, connection });
    await store.set('before', entry(Buffer.from('b')));
    expect((await l2.get('before'))?.body.toString()).toBe('b');

    await redis.kill();
    await waitFor(() => !connection.isUp());
    // Nothing throws or waits while Redis is gone: memory alone answers.
    await store.set('during', entry(Buffer.from('d')));
    expect((await store.get('during'))?.body.toString()).toBe('d');
    expect((await store.get('before'))?.body.toString()).toBe('b');
    expect(await store.get('missing')).toBeUndefined();

    await redis.restart();
    await waitFor(() => connection.isUp());
    await store.set('after', entry(Buffer.from('a')));
    expect((await l2.get('after'))?.body.toString()).toBe('a');
  });

  it('logs one warning when Redis dies, however many requests it misses, and one line when it is back', async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const stopLog = subscribeRequestLog(pino({ level: 'info' }, sink), { sampleRate: 0 });
    // A Redis of its own: every connection publishes its own up/down, and this one has one connection.
    const dying = await startPrivateRedis();
    const own = redisConnection({ url: dying.url, maxReconnectDelayMs: 100 });
    try {
      expect(await own.ready(5_000)).toBe(true);
      const store = tieredCache({ l1: memoryCache(), l2: redisCache({ connection: own }), connection: own });
      await expect.poll(() => lines.length).toBe(1); // "cache tier is back" on first connect
      lines.length = 0;
      await dying.kill();
      await waitFor(() => !own.isUp());
      // 50 requests' worth of cache traffic while Redis is gone, spread over several reconnect attempts.
      for (let i = 0; i < 50; i++) {
        await store.set(`dead-${i}`, entry(Buffer.from('x')));
        expect((await store.get(`dead-${i}`))?.body.toString()).toBe('x');
        expect(await store.get(`absent-${i}`)).toBeUndefined();
        if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await dying.restart();
      await waitFor(() => own.isUp());
      await expect.poll(() => lines.some((l) => /cache tier is back/.test(l.msg))).toBe(true);
      const warnings = lines.filter((l) => l.level === 40);
      expect(warnings.map((l) => l.msg)).toEqual([
        'cache tier is down: serving from memory alone until it returns',
      ]);
      expect(lines.filter((l) => /cache tier is back/.test(l.msg))).toHaveLength(1);
    } finally {
      stopLog();
      await own.close();
      await dying.kill();
    }
  });

  it('answers within the command timeout while Redis is stuck, then stops asking it until it answers again', async () => {
    const failures: string[] = [];
    const onError = (message: unknown) => failures.push((message as { operation: string }).operation);
    events.cacheTierError.subscribe(onError);
    const slow = redisConnection({ url: redis.url, commandTimeoutMs: 150 });
    try {
      expect(await slow.ready(5_000)).toBe(true);
      const store = tieredCache({
        l1: memoryCache(),
        l2: redisCache({ connection: slow }),
        connection: slow,
      });
      let stallOver = false;
      const stuck = promisify(execFile)('redis-cli', [
        '-p',
        String(redis.port),
        'DEBUG',
        'SLEEP',
        '2',
      ]).finally(() => (stallOver = true));
      await expect.poll(() => answersPing(redis.port, 100)).toBe(false); // the stall has begun
      for (let i = 0; i < 3; i++) {
        expect(await store.get(`stuck-${i}`)).toBeUndefined();
        expect(stallOver).toBe(false); // answered by the 150 ms timeout, while Redis still stalls
      }
      expect(failures).toEqual(['get', 'get', 'get']);
      expect(slow.isUp()).toBe(false); // three timeouts in a row: stalled
      expect(await store.get('while-stalled')).toBeUndefined();
      await stuck;
      // Memory alone answered it: a command sent to the stalled Redis would have timed out and failed.
      expect(failures).toEqual(['get', 'get', 'get']);
      await waitFor(() => slow.isUp()); // a PING answered
    } finally {
      events.cacheTierError.unsubscribe(onError);
      await slow.close();
    }
  });

  it('keeps an L1 copy no longer than its L1 TTL, then reads the shared tier again', async () => {
    let now = Date.now();
    const l1 = memoryCache({ maxTtlMs: 1_000, now: () => now });
    const l2 = redisCache({ connection });
    const store = tieredCache({ l1, l2, connection });
    await store.set('k', entry(Buffer.from('v1'), 60_000));
    await l2.set('k', entry(Buffer.from('v2'), 60_000)); // another instance refreshed the shared entry
    expect((await store.get('k'))?.body.toString()).toBe('v1');
    now += 1_001;
    expect((await store.get('k'))?.body.toString()).toBe('v2');
  });
});
