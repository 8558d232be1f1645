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
import { makeEntry } from '../helpers/entries.js';
import { REDIS_URL, serviceAvailable, startPrivateRedis } from '../helpers/services.js';
import type { PrivateRedis } from '../helpers/services.js';

const up = await serviceAvailable('Redis', REDIS_URL);

/**
 * Resolves once the Redis on `port` stops answering: a raw `PING` gets no reply within 100 ms (the reply it
 * gets later is dropped with its socket). Redis answers a PING in well under a millisecond when awake.
 */
async function untilAsleep(port: number, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const socket = connect(port, '127.0.0.1');
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 100);
      socket.once('data', () => {
        clearTimeout(timer);
        resolve(true);
      });
      socket.once('error', () => {
        clearTimeout(timer);
        resolve(true);
      });
      socket.write('PING\r\n');
    });
    socket.destroy();
    if (!answered) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`Redis on port ${port} never went to sleep`);
}

function entry(body: Buffer, ttlMs = 10_000, overrides: Partial<CacheEntry> = {}): CacheEntry {
  return makeEntry(Date.now(), ttlMs, {
    headers: { 'content-type': 'application/octet-stream', 'x-multi': ['a', 'b'] },
    body,
    ...overrides,
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

  it('keeps the age, revalidation deadline, must-revalidate flag and Vary names of an entry', async () => {
    const store = redisCache({ connection, keyPrefix });
    const now = Date.now();
    const stored = entry(Buffer.from('m'), 1_000, {
      initialAgeMs: 120_000,
      keepUntil: now + 5_000,
      mustRevalidate: true,
      vary: ['accept-language'],
    });
    await store.set('meta', stored);
    const back = await store.get('meta');
    expect(back).toMatchObject({
      initialAgeMs: 120_000,
      keepUntil: stored.keepUntil,
      mustRevalidate: true,
      vary: ['accept-language'],
    });
    const pttl = await connection.client.pTTL(`${keyPrefix}meta`);
    expect(pttl).toBeGreaterThan(4_000); // kept to keepUntil, past its freshness
  });

  it('invalidates whole key groups through their index, variants included, and nothing else', async () => {
    const indexPrefix = `${keyPrefix}index:`;
    const store = redisCache({ connection, keyPrefix, indexPrefix });
    const keys = ['w|GET /a|x', 'w|GET /a|y', 'w|GET /a|y.v1', 'w|HEAD /a|x', 'w|GET /ab|x'];
    for (const key of keys) await store.set(key, entry(Buffer.from(key)));
    expect(await connection.client.pTTL(`${indexPrefix}w|GET /a|`)).toBeGreaterThan(9_000);
    expect(await store.invalidate(['w|GET /a|', 'w|HEAD /a|', 'w|GET /none|'])).toBe(4);
    for (const key of keys.slice(0, 4)) expect(await store.get(key)).toBeUndefined();
    expect((await store.get('w|GET /ab|x'))?.body.toString()).toBe('w|GET /ab|x');
    expect(await connection.client.exists(`${indexPrefix}w|GET /a|`)).toBe(0);
  });

  it('keeps a group index alive as long as its longest-lived entry', async () => {
    const indexPrefix = `${keyPrefix}index:`;
    const store = redisCache({ connection, keyPrefix, indexPrefix });
    await store.set('l|GET /a|long', entry(Buffer.from('l'), 60_000));
    await store.set('l|GET /a|short', entry(Buffer.from('s'), 2_000));
    expect(await connection.client.pTTL(`${indexPrefix}l|GET /a|`)).toBeGreaterThan(50_000);
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

  it("reads a peer's newer entry past this instance's memory copy with getShared, and keeps it", async () => {
    const shared = redisCache({ connection, keyPrefix });
    const mine = tieredCache({ l1: memoryCache(), l2: shared, connection });
    const peer = tieredCache({ l1: memoryCache(), l2: shared, connection });
    await mine.set('refreshed', entry(Buffer.from('old')));
    await peer.set('refreshed', entry(Buffer.from('new')));
    expect((await mine.get('refreshed'))?.body.toString()).toBe('old'); // the memory copy answers get
    expect((await mine.getShared!('refreshed'))?.body.toString()).toBe('new');
    expect((await mine.get('refreshed'))?.body.toString()).toBe('new'); // and replaced it
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

  it('answers within the command timeout while Redis is stuck, then uses memory alone until Redis answers again', async () => {
    const failures: string[] = [];
    const onError = (message: unknown) => failures.push((message as { operation: string }).operation);
    events.cacheTierError.subscribe(onError);
    const slow = redisConnection({ url: redis.url, commandTimeoutMs: 300 });
    let stuck: Promise<unknown> | undefined;
    try {
      expect(await slow.ready(5_000)).toBe(true);
      const store = tieredCache({
        l1: memoryCache(),
        l2: redisCache({ connection: slow }),
        connection: slow,
      });
      stuck = promisify(execFile)('redis-cli', ['-p', String(redis.port), 'DEBUG', 'SLEEP', '2']);
      // Not a fixed pause: on a loaded machine redis-cli may need longer than that to send its command.
      await untilAsleep(redis.port);
      const started = Date.now();
      expect(await store.get('stuck-0')).toBeUndefined();
      expect(Date.now() - started).toBeLessThan(1_000); // the 300 ms timeout, not Redis's 2 s stall
      // Redis answers in order: nothing sent after an overdue command can be answered sooner.
      expect(slow.isUp()).toBe(false);
      for (let i = 1; i < 3; i++) {
        const again = Date.now();
        expect(await store.get(`stuck-${i}`)).toBeUndefined();
        expect(Date.now() - again).toBeLessThan(150); // memory alone: the stall is not paid twice
      }
      expect(failures).toEqual(['get']);
      await stuck;
      await waitFor(() => slow.isUp()); // the late reply came
    } finally {
      await stuck?.catch(() => {}); // the next test needs this Redis awake
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

describe.skipIf(!up)('peer lock on a Redis that freezes (private redis-server, SIGSTOP / SIGCONT)', () => {
  let redis: PrivateRedis;
  let connection: RedisConnection;
  const run = execFileText;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    connection = redisConnection({ url: redis.url, commandTimeoutMs: 200 });
    expect(await connection.ready(5_000)).toBe(true);
  });
  afterAll(async () => {
    redis?.thaw();
    await connection?.close();
    await redis?.kill();
  });

  const lockValue = (key: string) => run('redis-cli', ['-p', String(redis.port), 'GET', `lock:${key}`]);

  it('releases a lock whose acquisition timed out as soon as Redis runs it', async () => {
    const lock = peerLock({ connection, keyPrefix: 'lock:', lockTtlMs: 60_000 });
    redis.freeze();
    let flight: Awaited<ReturnType<typeof lock.acquire>>;
    try {
      flight = await lock.acquire('frozen');
    } finally {
      redis.thaw();
    }
    expect(flight.held).toBe(true); // no answer in time: the caller fetches alone
    // The SET ran when Redis resumed; the lock it left is deleted at once, not after its 60 s TTL.
    await expect.poll(() => lockValue('frozen'), { timeout: 5_000 }).toBe('');
    await expect.poll(() => connection.isUp(), { timeout: 5_000 }).toBe(true);
    expect((await lock.acquire('frozen')).held).toBe(true);
  });

  it('fails fast after one timeout while Redis is frozen (a request never pays it twice), and reports Redis down', async () => {
    await expect.poll(() => connection.isUp(), { timeout: 5_000 }).toBe(true);
    const tier: boolean[] = [];
    const onTier = (message: unknown) => tier.push((message as { up: boolean }).up);
    events.cacheTier.subscribe(onTier);
    redis.freeze();
    try {
      const first = performance.now();
      await expect(connection.timed(connection.client.get('a'))).rejects.toThrow(/within 200 ms/);
      expect(performance.now() - first).toBeGreaterThanOrEqual(190);
      const second = performance.now();
      await expect(connection.timed(connection.client.get('b'))).rejects.toThrow(/unanswered/);
      expect(performance.now() - second).toBeLessThan(100);
      expect(connection.isUp()).toBe(false);
      // One command unanswered for three timeouts counts as three timeouts: Redis is reported down.
      await expect.poll(() => tier, { timeout: 5_000 }).toEqual([false]);
    } finally {
      redis.thaw();
    }
    await expect.poll(() => connection.isUp(), { timeout: 5_000 }).toBe(true);
    expect(tier).toEqual([false, true]);
    events.cacheTier.unsubscribe(onTier);
  });

  it('stops a waiter as soon as the lock passes to another owner (the holder it waited for is gone)', async () => {
    await expect.poll(() => connection.isUp(), { timeout: 5_000 }).toBe(true);
    const lock = peerLock({ connection, keyPrefix: 'lock:', lockTtlMs: 30_000 });
    await run('redis-cli', ['-p', String(redis.port), 'SET', 'lock:moved', 'first-owner', 'PX', '30000']);
    let settled = false;
    const waiting = lock
      .waitForPeer('moved', async () => undefined, new AbortController().signal)
      .finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(settled).toBe(false); // the first owner is still fetching: wait
    // Its lock expired and another instance took the key: the first owner will store nothing.
    await run('redis-cli', ['-p', String(redis.port), 'SET', 'lock:moved', 'second-owner', 'PX', '30000']);
    await expect.poll(() => settled, { timeout: 5_000 }).toBe(true);
    expect(await waiting).toBeUndefined();
  });
});

/** Runs a command (a real client of its own, such as redis-cli) and resolves with its trimmed stdout. */
async function execFileText(command: string, args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(command, args);
  return stdout.trim();
}
