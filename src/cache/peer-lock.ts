// Cross-instance single-flight: a short Redis lock per cache key, so gateways sharing Redis fetch a miss once.
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
  /** Takes the lock for `key`, or learns that another instance holds it. When Redis is down, acts as held. */
  acquire(key: string): Promise<Flight>;
  /**
   * Waits while another instance holds `key`'s lock, looking in the cache now and then; resolves with the
   * entry it stored, or undefined when the lock went away without one (not cacheable, holder crashed),
   * the lock outlived `lockTtlMs`, or `signal` aborted.
   */
  waitForPeer(
    key: string,
    lookup: () => Promise<CacheEntry | undefined>,
    signal: AbortSignal,
  ): Promise<CacheEntry | undefined>;
}

/** Deletes the lock only if this instance still holds it (its token), so an expired lock retaken by a peer survives. */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * A best-effort distributed lock (one Redis, `SET NX PX`), good enough for its job: it only saves
 * upstream calls, so when it fails (Redis down, lock expired mid-fetch) the worst case is a duplicate
 * fetch, never a wrong answer or a stuck request.
 */
export function peerLock(options: PeerLockOptions): PeerLock {
  const { client, timed } = options.connection;
  const prefix = options.keyPrefix ?? 'slipstream:lock:';
  const lockTtlMs = options.lockTtlMs ?? 5_000;
  const firstPollMs = options.pollMs ?? 5;
  const maxPollMs = options.maxPollMs ?? 50;

  return {
    async acquire(key) {
      if (!options.connection.isUp()) return { held: true, release: async () => {} };
      const token = randomBytes(12).toString('base64url');
      let taken: unknown;
      try {
        taken = await timed(
          client.set(prefix + key, token, {
            condition: 'NX',
            expiration: { type: 'PX', value: lockTtlMs },
          }),
        );
      } catch {
        return { held: true, release: async () => {} };
      }
      if (taken === null) return { held: false };
      return {
        held: true,
        release: async () => {
          await timed(client.eval(RELEASE, { keys: [prefix + key], arguments: [token] })).catch(() => {});
        },
      };
    },
    async waitForPeer(key, lookup, signal) {
      const giveUpAt = Date.now() + lockTtlMs;
      let pauseMs = firstPollMs;
      while (!signal.aborted && Date.now() < giveUpAt) {
        await sleep(pauseMs, signal);
        pauseMs = Math.min(maxPollMs, pauseMs * 1.5);
        const entry = await lookup();
        if (entry !== undefined) return entry;
        let locked: number;
        try {
          locked = await timed(client.exists(prefix + key));
        } catch {
          return undefined; // Redis went away: stop waiting on it
        }
        // The holder finished without storing (or crashed and its lock expired): one last look, then fetch.
        if (locked === 0) return lookup();
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
