// Cross-instance single-flight: a short Redis lock per cache key, owned by a token, so gateways sharing Redis fetch a miss once.
import { randomBytes } from 'node:crypto';
import type { RedisConnection } from './redis-connection.js';
import type { CacheEntry } from './store.js';

export interface PeerLockOptions {
  connection: RedisConnection;
  /** Prefix of the lock keys. Default `slipstream:lock:`. */
  keyPrefix?: string;
  /**
   * How long a lock lives when its holder never releases it (a crashed instance). Waiters give up and
   * fetch for themselves after this. Default 5,000 ms.
   */
  lockTtlMs?: number;
  /** First pause between a waiter's looks at the cache; it grows 1.5x per look up to `maxPollMs`. Default 5 ms. */
  pollMs?: number;
  /** Default 50 ms. */
  maxPollMs?: number;
}

/** The outcome of trying to become the one instance that fetches a key. */
export type Flight = { held: true; release(): Promise<void> } | { held: false };

export interface PeerLock {
  /**
   * Takes the lock for `key`, or learns that another instance holds it. When Redis is down or does not
   * answer within its command timeout, acts as held (the caller fetches alone). Releasing never waits
   * for Redis.
   */
  acquire(key: string): Promise<Flight>;
  /**
   * Waits while another instance holds `key`'s lock, looking in the cache now and then; resolves with the
   * entry it stored, or undefined as soon as the holder is known to be gone: its lock was released
   * without an entry (not cacheable, fetch failed) or now belongs to another owner (it expired), Redis
   * stopped answering, the lock outlived `lockTtlMs`, or `signal` aborted.
   */
  waitForPeer(
    key: string,
    lookup: () => Promise<CacheEntry | undefined>,
    signal: AbortSignal,
  ): Promise<CacheEntry | undefined>;
}

/**
 * The fencing check: deletes the lock only while it still carries the caller's token, so a lock that
 * expired and was retaken by a peer survives its former owner's release.
 */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/** Releases that failed with the connection, retried once it is ready again; beyond this, the lock TTL clears them. */
const MAX_PENDING_RELEASES = 1_000;

const ALONE: Flight = { held: true, release: async () => {} };

/**
 * A best-effort distributed lock (one Redis, `SET NX PX` with a random owner token), good enough for its
 * job: it only saves upstream calls, so when it fails (Redis down or frozen, lock expired mid-fetch) the
 * worst case is a duplicate fetch, never a wrong answer or a stuck request.
 *
 * A `SET NX` whose reply did not come within the command timeout may still run when Redis answers again
 * (a frozen, then resumed Redis runs every command it had received): that would leave a lock nobody
 * holds, and every request for the key would wait for its TTL. So a timed-out acquisition is released
 * (delete-if-token-matches) the moment its late reply says it was taken; a release that failed with the
 * connection is retried when the connection is ready again.
 */
export function peerLock(options: PeerLockOptions): PeerLock {
  const { connection } = options;
  const { client, timed } = connection;
  const prefix = options.keyPrefix ?? 'slipstream:lock:';
  const lockTtlMs = options.lockTtlMs ?? 5_000;
  const firstPollMs = options.pollMs ?? 5;
  const maxPollMs = options.maxPollMs ?? 50;
  /** Lock key → token whose release failed with the connection. */
  const pendingReleases = new Map<string, string>();

  /** Sends the release and returns at once: the caller's reply does not wait for Redis. */
  const release = (lockKey: string, token: string): void => {
    client.eval(RELEASE, { keys: [lockKey], arguments: [token] }).catch(() => {
      if (pendingReleases.size < MAX_PENDING_RELEASES) pendingReleases.set(lockKey, token);
    });
  };
  client.on('ready', () => {
    const pending = [...pendingReleases];
    pendingReleases.clear();
    for (const [lockKey, token] of pending) release(lockKey, token);
  });

  return {
    async acquire(key) {
      if (!connection.isUp()) return ALONE;
      const lockKey = prefix + key;
      const token = randomBytes(16).toString('base64url');
      const set = client.set(lockKey, token, {
        condition: 'NX',
        expiration: { type: 'PX', value: lockTtlMs },
      });
      let taken: unknown;
      try {
        taken = await timed(set);
      } catch {
        // No answer in time. Redis may still run the SET: when its reply says so, the lock is released.
        set.then(
          (reply) => {
            if (reply !== null) release(lockKey, token);
          },
          () => release(lockKey, token), // unknown whether it ran: releasing is harmless either way
        );
        return ALONE;
      }
      if (taken === null) return { held: false };
      return {
        held: true,
        release: async () => release(lockKey, token),
      };
    },
    async waitForPeer(key, lookup, signal) {
      const lockKey = prefix + key;
      const giveUpAt = Date.now() + lockTtlMs;
      let pauseMs = firstPollMs;
      /** The token of the holder this waiter waits for, from its first look at the lock. */
      let holder: string | undefined;
      while (!signal.aborted && Date.now() < giveUpAt) {
        await sleep(pauseMs, signal);
        pauseMs = Math.min(maxPollMs, pauseMs * 1.5);
        const entry = await lookup();
        if (entry !== undefined) return entry;
        if (!connection.isUp()) return undefined; // Redis is not answering: stop waiting on it
        let owner: Buffer | string | null;
        try {
          owner = await timed(client.get(lockKey));
        } catch {
          return undefined;
        }
        // Released without storing (or expired): one last look, then fetch.
        if (owner === null) return lookup();
        const token = owner.toString();
        holder ??= token;
        // Another owner: the holder waited for is gone (its lock expired), so do not wait on its successor.
        if (token !== holder) return undefined;
      }
      return undefined;
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
