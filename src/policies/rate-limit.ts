// Rate limits: token buckets per principal and per client address, in memory or cluster-wide on Redis.
import { createHash } from 'node:crypto';
import type { RedisConnection } from '../cache/redis-connection.js';
import { GatewayError } from '../errors.js';
import type { RateLimitSpec } from '../config/policy-schema.js';
import type { AnyPolicy } from '../pipeline/types.js';
import { events, publish } from '../telemetry/events.js';

/** A token bucket: `rate` per second on average, up to `burst` at once. */
export interface Bucket {
  readonly rate: number;
  readonly burst: number;
}

/** A configured bucket (`burst` defaulting to one second of `rate`). */
export function bucketOf(
  config: { rate: number; burst?: number | undefined } | undefined,
): Bucket | undefined {
  return config === undefined
    ? undefined
    : { rate: config.rate, burst: config.burst ?? Math.max(1, Math.ceil(config.rate)) };
}

/** What taking from a bucket came to. */
export interface Taken {
  readonly ok: boolean;
  /** Tokens left after this take. */
  readonly remaining: number;
  /** When the taken amount would be there again, in ms (0 when `ok`). */
  readonly retryAfterMs: number;
  /** When the bucket is full again, in ms. */
  readonly resetMs: number;
}

/** Where buckets live. `take` never rejects: a store that cannot answer decides locally. */
export interface BucketStore {
  /**
   * Takes `cost` tokens when the bucket has them; with `force`, takes them anyway (the bucket may go below
   * zero: usage reported after the fact, which later takes then wait out).
   */
  take(key: string, bucket: Bucket, cost: number, force?: boolean): Promise<Taken>;
  /** Gives back `cost` tokens (never past the burst): a request that was refused downstream. */
  close(): Promise<void>;
}

export interface MemoryBucketsOptions {
  /** Most buckets kept; the least recently used goes first past it. Default 100,000. */
  maxKeys?: number;
  /** Injectable clock (ms). Default `performance.now`. */
  now?: () => number;
}

/** Buckets in this process: a Map in recency order, bounded by `maxKeys`. */
export function memoryBuckets(options: MemoryBucketsOptions = {}): BucketStore {
  const maxKeys = options.maxKeys ?? 100_000;
  const now = options.now ?? (() => performance.now());
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    async take(key, bucket, cost, force = false) {
      const at = now();
      const previous = buckets.get(key);
      let tokens = bucket.burst;
      if (previous !== undefined) {
        buckets.delete(key);
        tokens = Math.min(bucket.burst, previous.tokens + ((at - previous.at) * bucket.rate) / 1000);
      } else if (buckets.size >= maxKeys) {
        buckets.delete(buckets.keys().next().value!);
      }
      const ok = force || tokens >= cost;
      if (ok) tokens -= cost;
      buckets.set(key, { tokens, at });
      return {
        ok,
        remaining: Math.floor(tokens),
        retryAfterMs: ok ? 0 : ((cost - tokens) * 1000) / bucket.rate,
        resetMs: ((bucket.burst - tokens) * 1000) / bucket.rate,
      };
    },
    async close() {
      buckets.clear();
    },
  };
}

/**
 * A token bucket in Redis, taken atomically (one script; Redis's own clock, so every instance agrees).
 * Returns the tokens left and, when refused, the wait in ms.
 */
const TAKE_SCRIPT = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local force = ARGV[4] == '1'
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then tokens = burst else tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
local ok = 0
if force or tokens >= cost then tokens = tokens - cost ok = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return { ok, tostring(tokens) }
`;

export interface RedisBucketsOptions {
  connection: RedisConnection;
  keyPrefix: string;
  /** Used while Redis is down or slow: requests are limited per process, never failed. */
  fallback: BucketStore;
}

/**
 * Buckets shared by every instance through Redis. While Redis is down or slower than its command timeout,
 * the fallback (per process) decides, with one warning per outage (`rateLimitStore` events), and never
 * fails a request because Redis is away.
 */
export function redisBuckets(options: RedisBucketsOptions): BucketStore {
  const { connection, keyPrefix, fallback } = options;
  let local = false;
  const switchTo = (toLocal: boolean, error?: unknown) => {
    if (local === toLocal) return;
    local = toLocal;
    publish(events.rateLimitStore, { shared: !toLocal, error });
  };
  return {
    async take(key, bucket, cost, force = false) {
      if (!connection.isUp()) {
        switchTo(true);
        return fallback.take(key, bucket, cost, force);
      }
      try {
        const reply = (await connection.timed(
          connection.client.eval(TAKE_SCRIPT, {
            keys: [keyPrefix + key],
            arguments: [String(bucket.rate), String(bucket.burst), String(cost), force ? '1' : '0'],
          }),
        )) as [number, string];
        switchTo(false);
        const tokens = Number(reply[1]);
        const ok = reply[0] === 1;
        return {
          ok,
          remaining: Math.floor(tokens),
          retryAfterMs: ok ? 0 : ((cost - tokens) * 1000) / bucket.rate,
          resetMs: ((bucket.burst - tokens) * 1000) / bucket.rate,
        };
      } catch (error) {
        switchTo(true, error);
        return fallback.take(key, bucket, cost, force);
      }
    },
    close: () => fallback.close(),
  };
}

/** The request limits one request is checked against. */
export interface Admission {
  /** Where the limit applies: a route label, for events and messages. */
  readonly route: string;
  /** The verified principal, or undefined for an anonymous caller. */
  readonly principal: string | undefined;
  /** The client's address. */
  readonly ip: string | undefined;
  /** The principal's own bucket (its key's limits), else the default per-principal one. */
  readonly perPrincipal: Bucket | undefined;
  readonly perIp: Bucket | undefined;
}

/**
 * Takes one token from the caller's buckets (per principal, then per address), or throws 429
 * `GW_RATE_LIMITED` with `Retry-After` and the `RateLimit-Limit` / `-Remaining` / `-Reset` fields
 * (draft-ietf-httpapi-ratelimit-headers). Buckets are keyed by a hash of the principal, never its text.
 */
export async function admit(store: BucketStore, admission: Admission, cost = 1): Promise<void> {
  if (admission.perPrincipal !== undefined && admission.principal !== undefined) {
    const taken = await store.take(`p:${hashed(admission.principal)}`, admission.perPrincipal, cost);
    if (!taken.ok) throw refused(admission, 'principal', admission.perPrincipal, taken);
  }
  if (admission.perIp !== undefined && admission.ip !== undefined) {
    const taken = await store.take(`ip:${admission.ip}`, admission.perIp, cost);
    if (!taken.ok) throw refused(admission, 'ip', admission.perIp, taken);
  }
}

/** An API key's LLM token limits (`auth.apiKeys.keys[].limits`), as buckets. */
export interface TokenLimits {
  readonly perMinute?: Bucket;
  readonly perDay?: Bucket;
}

/** The token buckets of a key's `tokensPerMinute` / `tokensPerDay`, or undefined when it has neither. */
export function tokenLimitsOf(
  limits: { tokensPerMinute?: number | undefined; tokensPerDay?: number | undefined } | undefined,
): TokenLimits | undefined {
  if (limits?.tokensPerMinute === undefined && limits?.tokensPerDay === undefined) return undefined;
  return {
    ...(limits.tokensPerMinute === undefined
      ? {}
      : { perMinute: { rate: limits.tokensPerMinute / 60, burst: limits.tokensPerMinute } }),
    ...(limits.tokensPerDay === undefined
      ? {}
      : { perDay: { rate: limits.tokensPerDay / 86_400, burst: limits.tokensPerDay } }),
  };
}

/**
 * Refuses an LLM request with 429 `GW_RATE_LIMITED` while the caller's token buckets are empty (spent by
 * the usage of earlier replies); `spend` then takes what a reply's usage reports. Tokens are only known
 * once a reply reports them, so a request is admitted on a positive balance and may take it below zero.
 */
export async function admitTokens(
  store: BucketStore,
  principal: string,
  limits: TokenLimits,
  route: string,
): Promise<void> {
  for (const [name, bucket] of [
    ['tpm', limits.perMinute],
    ['tpd', limits.perDay],
  ] as const) {
    if (bucket === undefined) continue;
    const taken = await store.take(`${name}:${hashed(principal)}`, bucket, 0);
    if (taken.remaining <= 0) {
      const wait = (Math.max(1, -taken.remaining + 1) * 1000) / bucket.rate;
      throw refused(
        { route, principal, ip: undefined, perPrincipal: bucket, perIp: undefined },
        'principal',
        bucket,
        {
          ok: false,
          remaining: 0,
          retryAfterMs: wait,
          resetMs: taken.resetMs,
        },
      );
    }
  }
}

/** Takes `tokens` (a reply's reported usage) from the caller's token buckets, whatever their balance. */
export async function spendTokens(
  store: BucketStore,
  principal: string,
  limits: TokenLimits,
  tokens: number,
): Promise<void> {
  if (tokens <= 0) return;
  if (limits.perMinute !== undefined)
    await store.take(`tpm:${hashed(principal)}`, limits.perMinute, tokens, true);
  if (limits.perDay !== undefined) await store.take(`tpd:${hashed(principal)}`, limits.perDay, tokens, true);
}

export interface RateLimitOptions {
  /** Route label, for events. */
  route: string;
  store: BucketStore;
  /** This stack's own limit per principal (anonymous callers share one bucket per address). */
  perPrincipal?: Bucket;
  perIp?: Bucket;
}

/**
 * A route's, tool's or provider's own rate limit, as a policy at the front of its stack: every call takes
 * a token before the cache is even asked (a hit still counts). Reads the call's principal and its
 * context's client address.
 */
export function rateLimit(options: RateLimitOptions): AnyPolicy {
  return (next) => async (call) => {
    await admit(options.store, {
      route: options.route,
      principal: call.principal,
      ip: call.ctx.clientIp,
      perPrincipal: options.perPrincipal,
      perIp: options.perIp,
    });
    return next(call);
  };
}

/** A route's or tool's own `rateLimit` as the stack builder takes it (nothing when unset). */
export function rateLimitOf(
  config: RateLimitSpec | undefined,
  store: BucketStore,
): { rateLimit?: { store: BucketStore; perPrincipal?: Bucket; perIp?: Bucket } } {
  if (config === undefined) return {};
  const perPrincipal = bucketOf(config.perPrincipal);
  const perIp = bucketOf(config.perIp);
  return {
    rateLimit: {
      store,
      ...(perPrincipal === undefined ? {} : { perPrincipal }),
      ...(perIp === undefined ? {} : { perIp }),
    },
  };
}

function refused(
  admission: Admission,
  scope: 'principal' | 'ip',
  bucket: Bucket,
  taken: Taken,
): GatewayError {
  const retryAfterS = Math.max(1, Math.ceil(taken.retryAfterMs / 1000));
  publish(events.rateLimitReject, {
    route: admission.route,
    scope,
    ...(admission.principal === undefined ? {} : { principal: hashed(admission.principal) }),
  });
  return new GatewayError(
    'GW_RATE_LIMITED',
    `rate limit exceeded (${bucket.rate}/s per ${scope}); retry later`,
    {
      retryAfterS,
      headers: {
        'ratelimit-limit': String(bucket.burst),
        'ratelimit-remaining': String(Math.max(0, taken.remaining)),
        'ratelimit-reset': String(Math.max(1, Math.ceil(taken.resetMs / 1000))),
      },
    },
  );
}

function hashed(principal: string): string {
  return createHash('sha256').update(principal).digest('base64url').slice(0, 16);
}
