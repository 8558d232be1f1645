// One supervised node-redis connection for the cache tier: binary-safe, fail-fast while down, reconnecting.
import type * as Redis from 'redis';
import { optionalDependency } from '../optional-dependency.js';
import { events, publish } from '../telemetry/events.js';

const redis = optionalDependency<typeof Redis>('redis');

export interface RedisConnectionOptions {
  /** `redis://host:port/db`. */
  url: string;
  /** Longest wait for one command; a slower Redis counts as down for that command. Default 250 ms. */
  commandTimeoutMs?: number;
  /** TCP connect timeout. Default 1,000 ms. */
  connectTimeoutMs?: number;
  /** Longest pause between reconnect attempts (backoff doubles from 50 ms up to this). Default 2,000 ms. */
  maxReconnectDelayMs?: number;
}

/**
 * Consecutive reply timeouts after which Redis counts as down (stalled) until a PING answers; a command
 * left unanswered for this many timeouts counts the same (other commands fail fast meanwhile, so they
 * cannot add up to it).
 */
const STALL_AFTER = 3;
const PROBE_EVERY_MS = 500;

function open(options: RedisConnectionOptions) {
  const maxDelay = options.maxReconnectDelayMs ?? 2_000;
  const { createClient, RESP_TYPES } = redis();
  /** Replies as Buffers, so cached bodies stay byte-exact (binary-safe). */
  const BINARY = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;
  return createClient({
    url: options.url,
    // While Redis is down, commands fail at once instead of queueing: a cache must never make a request wait.
    disableOfflineQueue: true,
    commandsQueueMaxLength: 10_000,
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 1_000,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay),
    },
    commandOptions: { timeout: options.commandTimeoutMs ?? 250, typeMapping: BINARY },
  });
}

export type RedisClient = ReturnType<typeof open>;

/** A connection and its health, as the cache stores, the peer lock and the purge bus share it. */
export interface RedisConnection {
  readonly client: RedisClient;
  readonly url: string;
  /**
   * True while connected, ready and answering: false while a command has waited longer than the
   * command timeout without a reply (Redis answers in order, so nothing sent after it could be answered
   * sooner), and while stalled.
   */
  isUp(): boolean;
  /** A second connection for SUBSCRIBE (a subscribed connection can run nothing else). */
  duplicate(): RedisClient;
  /**
   * Runs one command with the command timeout covering the wait for its reply (node-redis's own timeout
   * stops at the write). While an earlier command is overdue it rejects at once: a request never pays
   * the timeout twice for one frozen Redis. Consecutive timeouts mark the connection stalled (down)
   * until a PING answers. A command that timed out still runs if Redis answers later (see `peerLock`).
   */
  timed: <T>(command: Promise<T>) => Promise<T>;
  /** Waits up to `timeoutMs` for the first connection; resolves false (never throws) when Redis is not there. */
  ready(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Connects to Redis in the background and keeps reconnecting with capped exponential backoff.
 * Publishes `events.cacheTier` on every change between up and down (the log and metrics subscribe),
 * so a dead Redis shows once as a warning and once as a recovery, not once per request.
 */
export function redisConnection(options: RedisConnectionOptions): RedisConnection {
  const client = open(options);
  const target = redactUrl(options.url);
  const timeoutMs = options.commandTimeoutMs ?? 250;
  let connected = false;
  /** Set after STALL_AFTER consecutive reply timeouts: the socket is open but Redis does not answer. */
  let stalled = false;
  let timeouts = 0;
  /** Commands past the timeout whose reply has not come yet: while any is, nothing else can be answered. */
  let overdue = 0;
  let overdueCheck: NodeJS.Timeout | undefined;
  let probe: NodeJS.Timeout | undefined;
  let reported = false;
  const report = (error?: unknown) => {
    const up = connected && !stalled;
    if (up === reported) return;
    reported = up;
    publish(events.cacheTier, { tier: 'redis', target, up, error });
  };
  client.on('ready', () => {
    connected = true;
    report();
  });
  client.on('end', () => {
    connected = false;
    report();
  });
  // node-redis emits 'error' for every failed (re)connect; an unheard 'error' would crash the process.
  client.on('error', (error: unknown) => {
    connected = false;
    report(error);
  });
  const stall = () => {
    stalled = true;
    report(new Error(`no reply within ${timeoutMs} ms, ${STALL_AFTER} times in a row`));
    // PING until Redis answers again; the probe is the only traffic while stalled.
    const ping = () => {
      probe = undefined;
      timed(client.ping()).then(
        () => {
          stalled = false;
          timeouts = 0;
          report();
        },
        () => {
          if (stalled) probe = setTimeout(ping, PROBE_EVERY_MS).unref();
        },
      );
    };
    probe = setTimeout(ping, PROBE_EVERY_MS).unref();
  };
  const timed = <T>(command: Promise<T>): Promise<T> => {
    if (overdue > 0) {
      command.catch(() => {});
      return Promise.reject(new Error(`Redis has left a command unanswered for over ${timeoutMs} ms`));
    }
    return new Promise<T>((resolve, reject) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        if (overdue++ === 0) {
          overdueCheck = setTimeout(
            () => {
              if (overdue > 0 && !stalled) stall();
            },
            (STALL_AFTER - 1) * timeoutMs,
          ).unref();
        }
        if (++timeouts >= STALL_AFTER && !stalled) stall();
        reject(new Error(`Redis did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      // A reply (or failure) that comes after the timeout is dropped; it only says Redis answers again.
      command.then(
        (value) => {
          if (late) overdue--;
          else {
            clearTimeout(timer);
            timeouts = 0;
            resolve(value);
          }
        },
        (error: unknown) => {
          if (late) overdue--;
          else {
            clearTimeout(timer);
            reject(error);
          }
        },
      );
    });
  };
  const connecting = client.connect().then(
    () => true,
    () => false,
  );
  return {
    client,
    url: options.url,
    isUp: () => connected && !stalled && overdue === 0 && client.isReady,
    timed,
    duplicate: () => {
      const copy = client.duplicate();
      copy.on('error', () => {}); // the copy reconnects by itself; the main client reports health
      return copy;
    },
    async ready(timeoutMs) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      });
      try {
        return await Promise.race([connecting, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async close() {
      clearTimeout(probe);
      clearTimeout(overdueCheck);
      if (client.isOpen) client.destroy();
      await connecting;
    },
  };
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'redis://(invalid url)';
  }
}
