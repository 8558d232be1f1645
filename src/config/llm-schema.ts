// The `llm:` config key (zod): OpenAI and Anthropic providers, model aliases, fallbacks and transcript storage.
import { z } from 'zod';
import { duration, headerMap, httpUrl, name, size } from './fields.js';
import { breakerSchema, bulkheadSchema, cacheFields, retrySchema } from './policy-schema.js';

/**
 * A provider's defaults: two attempts before the first byte, a breaker after five failures in a row, and a
 * bulkhead that only caps runaway concurrency (a stream holds its slot for its whole life).
 */
const retry = retrySchema({
  attempts: 2,
  baseDelayMs: 100,
  maxDelayMs: 2_000,
  on: [429, 500, 502, 503, 504],
});
const breaker = breakerSchema({ threshold: 5, halfOpenAfterMs: 10_000 });
const bulkhead = bulkheadSchema({ maxConcurrent: 10_000, queue: 1_000, queueTimeoutMs: 5_000 });

/**
 * A client-keyed map without a prototype: a model named `constructor` or `__proto__` finds nothing
 * in it instead of an Object.prototype member.
 */
function ownOnly<T>(record: Record<string, T>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, record);
}

const provider = z.strictObject({
  /**
   * What the provider speaks: `openai` (chat completions, Responses, embeddings: OpenAI and every
   * OpenAI-compatible server) or `anthropic` (Messages and count_tokens): the formats it accepts.
   */
  type: z.enum(['openai', 'anthropic']).default('openai'),
  /** The provider's API base, e.g. `https://api.openai.com/v1`; requests go to `{baseUrl}/chat/completions`, `{baseUrl}/messages`… */
  baseUrl: httpUrl,
  /** The provider's key, sent its type's way (`openai`: `Authorization: Bearer`; `anthropic`: `x-api-key`); use `${ENV}`. */
  apiKey: z.string().min(1).optional(),
  /** Static headers added to every request (they win over the client's). */
  headers: headerMap.default({}),
  /** Model names clients may ask for → the provider's model id. `provider/model` always works too. */
  models: z.record(z.string().min(1), z.string().min(1)).default({}).transform(ownOnly),
  pool: z
    .strictObject({
      /** Max connections: size it for peak concurrent streams (a stream holds its connection throughout). */
      connections: z.number().int().min(1).max(100_000).default(1_024),
      /** Keep-alive for idle connections. */
      keepAlive: duration.default(30_000),
      /** Negotiate HTTP/2 via ALPN (many streams on one connection). */
      http2: z.boolean().default(false),
      /** Connections opened at start-up so the first streams skip the handshake. */
      warm: z.number().int().min(0).max(1_000).default(2),
    })
    .prefault({}),
  timeouts: z
    .strictObject({
      connect: duration.default(2_000),
      /** Time to the provider's response headers. */
      firstByte: duration.default(30_000),
      /** Longest silence between chunks (the first chunk included). */
      idle: duration.default(30_000),
      /** Whole request, stream included. */
      total: duration.default(600_000),
    })
    .prefault({}),
  /** Retries before the first byte on connection failures and these statuses, honouring `Retry-After`. */
  retry: retry.default(retry.parse({})),
  /** Failures (5xx, timeouts, connection errors; not 429) that open this provider's breaker. */
  breaker: breaker.default(breaker.parse({})),
  /** Streams in flight at once on this provider; more wait (bounded), then fail with GW_BULKHEAD_FULL. */
  bulkhead: bulkhead.default(bulkhead.parse({})),
});

const transcripts = z.strictObject({
  store: z.enum(['sqlite', 'postgres']).default('sqlite'),
  sqlite: z.strictObject({ path: z.string().min(1).default('slipstream-transcripts.db') }).prefault({}),
  postgres: z
    .strictObject({
      url: z.string().min(1).optional(),
      /** Table names are `{tablePrefix}messages`; letters, digits and "_" only. */
      tablePrefix: z
        .string()
        .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'letters, digits and "_" only')
        .default('slipstream_'),
      connections: z.number().int().min(1).max(100).default(4),
      /**
       * Longest wait for one statement (server `statement_timeout`; the client gives up 250 ms later),
       * for a connection, and for a pooled connection: a hung database fails the batch, which is retried.
       */
      queryTimeout: duration
        .pipe(
          z
            .number()
            .min(
              100,
              'at least 100ms: 0 would turn the timeouts off, a hung database would stop every write',
            ),
        )
        .default(5_000),
    })
    .prefault({}),
  /** Buffered deltas are written at least this often. */
  interval: duration.default(200),
  /** ...or as soon as a stream has buffered this many characters. */
  minChars: z.number().int().min(1).default(1_024),
  /** false: store only the final message (nothing while it streams). */
  persistDeltas: z.boolean().default(true),
  /** Rows waiting for a failing store; beyond it the oldest are dropped (and counted). */
  maxQueue: z.number().int().min(100).default(50_000),
  /** ...and at most this many characters of content (the whole queue); the oldest rows go first. */
  maxQueueChars: z
    .number()
    .int()
    .min(1_024)
    .default(64 * 1024 ** 2),
  retention: z
    .strictObject({
      /** Messages older than this are deleted. */
      maxAge: duration.default(30 * 24 * 3_600_000),
      maxMessagesPerSession: z.number().int().min(1).default(1_000),
      maxSessions: z.number().int().min(1).default(100_000),
      cleanupInterval: duration.default(300_000),
    })
    .prefault({}),
});

/**
 * `llm.embeddings`: the exact-key cache of single embeddings (in the gateway's cache tier) and the batching
 * of concurrent inputs into one upstream call. `false` turns either off.
 */
const embeddings = z.strictObject({
  cache: z
    .union([
      z.literal(false),
      z.strictObject({
        ...cacheFields,
        /** How long an embedding is served from the cache (a model's embeddings do not change). */
        ttl: duration.default(3_600_000),
      }),
    ])
    .prefault({}),
  batch: z
    .union([
      z.literal(false),
      z.strictObject({
        /** How long the first input of a batch waits for others (one caller, one model). */
        window: duration.default(5),
        /** Most distinct inputs per upstream call (OpenAI accepts 2,048). */
        maxBatch: z.number().int().min(1).max(2_048).default(256),
      }),
    ])
    .prefault({}),
  /** Largest embeddings reply read from a provider. */
  maxResponseBytes: size.default(64 * 1024 ** 2),
});

/**
 * The `llm:` key: `POST /v1/chat/completions`, `/v1/responses` (+ `GET /v1/responses/:id`),
 * `/v1/messages`, `/v1/messages/count_tokens`, `/v1/embeddings`, `GET /v1/models[/:id]`,
 * `GET /v1/sessions/:id`.
 */
export const llmSchema = z
  .strictObject({
    providers: z.record(name, provider),
    /** Model → other models (aliases or `provider/model`) tried in order, only before the first byte. */
    fallbacks: z.record(z.string(), z.array(z.string()).min(1)).default({}).transform(ownOnly),
    maxRequestBytes: size.default(4 * 1024 ** 2),
    /** Persist conversations that carry `x-slipstream-session` or `metadata.session_id`. */
    transcripts: transcripts.optional(),
    embeddings: embeddings.prefault({}),
  })
  .superRefine((llm, ctx) => {
    const owners = new Map<string, string>();
    for (const [providerName, p] of Object.entries(llm.providers)) {
      for (const alias of Object.keys(p.models)) {
        const owner = owners.get(alias);
        if (owner !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['providers', providerName, 'models', alias],
            message: `model "${alias}" is already served by provider "${owner}"`,
          });
        }
        owners.set(alias, providerName);
      }
    }
    const known = (model: string) => {
      if (owners.has(model)) return true;
      const slash = model.indexOf('/');
      return slash > 0 && Object.hasOwn(llm.providers, model.slice(0, slash));
    };
    for (const [model, list] of Object.entries(llm.fallbacks)) {
      if (!known(model)) {
        ctx.addIssue({ code: 'custom', path: ['fallbacks', model], message: `unknown model "${model}"` });
      }
      list.forEach((fallback, i) => {
        if (!known(fallback)) {
          ctx.addIssue({
            code: 'custom',
            path: ['fallbacks', model, i],
            message: `unknown model "${fallback}" (use an alias or "provider/model")`,
          });
        }
      });
    }
    const t = llm.transcripts;
    if (t?.store === 'postgres' && t.postgres.url === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['transcripts', 'postgres', 'url'],
        message: 'store "postgres" needs transcripts.postgres.url',
      });
    }
  });

export type LlmConfig = z.output<typeof llmSchema>;
export type LlmProviderConfig = LlmConfig['providers'][string];
export type TranscriptsConfig = NonNullable<LlmConfig['transcripts']>;
