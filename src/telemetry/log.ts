// Logging: pino with secrets redacted, and a subscriber that logs sampled, slow and failed requests.
import type { Channel } from 'node:diagnostics_channel';
import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';
import { events } from './events.js';
import type {
  BreakerStateEvent,
  CacheTierErrorEvent,
  CacheTierEvent,
  RateLimitStoreEvent,
  RequestEndEvent,
  RetryBudgetExhaustedEvent,
  TokenRefreshEvent,
} from './events.js';

export type { Logger };

/** Keys whose values never reach a log line, wherever they appear (two levels deep, and under headers). */
const SECRET_KEYS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'apiKey',
  'api_key',
  'clientSecret',
  'client_secret',
  'password',
  'token',
  'access_token',
  'secret',
];
const REDACT_PATHS = SECRET_KEYS.flatMap((key) => {
  const k = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `["${key}"]`;
  const dot = k.startsWith('[') ? '' : '.';
  return [
    k,
    `*${dot}${k}`,
    `*.*${dot}${k}`,
    `headers${dot}${k}`,
    `req.headers${dot}${k}`,
    `*.headers${dot}${k}`,
  ];
});

export interface LoggerOptions {
  /** pino level. Default `info`. */
  level?: string;
  /** Where lines go. Default stdout. */
  destination?: DestinationStream;
}

/** A pino logger that censors credentials (`[redacted]`) under any of the usual secret-bearing keys. */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: 'slipstream' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    options.destination,
  );
}

export interface RequestLogOptions {
  /** Fraction of requests logged at info (0..1). Default 0.01. */
  sampleRate?: number;
  /** Requests slower than this (ms) are logged at warn whatever the sampling. Default 1000. */
  slowMs?: number;
  /** Injectable for tests. Default `Math.random`. */
  random?: () => number;
}

/** Warnings that could repeat per request are logged at most this often per key. */
const RATE_LIMIT_MS = 1000;

/**
 * Logs request-end events: a sample at info, every slow request and every 5xx at warn. Also logs breaker
 * state changes, retry-budget exhaustion (at most once a second per route) and failed token refreshes.
 * Returns the unsubscribe function.
 */
export function subscribeRequestLog(logger: Logger, options: RequestLogOptions = {}): () => void {
  const sampleRate = options.sampleRate ?? 0.01;
  const slowMs = options.slowMs ?? 1000;
  const random = options.random ?? Math.random;
  const lastWarned = new Map<string, number>();

  const subscriptions: Array<[Channel, (message: unknown) => void]> = [
    [
      events.requestEnd,
      (message) => {
        const e = message as RequestEndEvent;
        const slow = e.durationMs > slowMs;
        const failed = e.status >= 500;
        if (!slow && !failed && !(sampleRate > 0 && random() < sampleRate)) return;
        const fields = {
          id: e.ctx.id,
          route: e.ctx.route,
          method: e.method,
          path: e.path,
          status: e.status,
          errorCode: e.errorCode,
          durationMs: round(e.durationMs),
          upstreamMs: round(e.ctx.upstreamMs),
          attempts: e.ctx.attempts,
        };
        if (slow) logger.warn(fields, 'slow request');
        else if (failed) logger.warn(fields, 'request failed');
        else logger.info(fields, 'request');
      },
    ],
    [
      events.breakerState,
      (message) => {
        const e = message as BreakerStateEvent;
        if (e.state === 'open') logger.warn({ breaker: e.name }, 'circuit breaker opened');
        else logger.info({ breaker: e.name, state: e.state }, 'circuit breaker state');
      },
    ],
    [
      events.retryBudgetExhausted,
      (message) => {
        const e = message as RetryBudgetExhaustedEvent;
        const now = Date.now();
        if (now - (lastWarned.get(e.route) ?? 0) < RATE_LIMIT_MS) return;
        lastWarned.set(e.route, now);
        logger.warn({ route: e.route, upstream: e.upstream }, 'retry budget exhausted: retries suppressed');
      },
    ],
    [
      events.tokenRefresh,
      (message) => {
        const e = message as TokenRefreshEvent;
        if (!e.ok) logger.error({ upstream: e.upstream, trigger: e.trigger }, 'OAuth2 token request failed');
      },
    ],
    [
      events.cacheTier,
      (message) => {
        const e = message as CacheTierEvent;
        const fields = { tier: e.tier, target: e.target, reason: errorText(e.error) };
        if (e.up) logger.info(fields, 'cache tier is back: using memory and Redis');
        else logger.warn(fields, 'cache tier is down: serving from memory alone until it returns');
      },
    ],
    [
      events.rateLimitStore,
      (message) => {
        const e = message as RateLimitStoreEvent;
        if (e.shared) logger.info('rate limits are cluster-wide again (Redis is back)');
        else
          logger.warn(
            { reason: errorText(e.error) },
            'Redis is away: rate limits apply per process until it returns',
          );
      },
    ],
    [
      events.cacheTierError,
      (message) => {
        const e = message as CacheTierErrorEvent;
        const key = `tier:${e.tier}:${e.operation}`;
        const now = Date.now();
        if (now - (lastWarned.get(key) ?? 0) < RATE_LIMIT_MS) return;
        lastWarned.set(key, now);
        logger.warn(
          { tier: e.tier, operation: e.operation, reason: errorText(e.error) },
          'cache tier operation failed',
        );
      },
    ],
  ];
  for (const [channel, handler] of subscriptions) channel.subscribe(handler);
  return () => {
    for (const [channel, handler] of subscriptions) channel.unsubscribe(handler);
  };
}

function errorText(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  return error instanceof Error ? error.message : JSON.stringify(error);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
