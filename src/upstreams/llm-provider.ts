// LLM providers: one pooled HTTP upstream per provider behind its retry and breaker, and model → provider resolution.
import type { LlmConfig, LlmProviderConfig } from '../config/llm-schema.js';
import type { UpstreamConfig } from '../config/schema.js';
import { compose } from '../pipeline/compose.js';
import type { Handler, Policy } from '../pipeline/types.js';
import { circuitBreaker } from '../policies/circuit-breaker.js';
import { retry } from '../policies/retry.js';
import { RetryBudget } from '../policies/retry-budget.js';
import { httpUpstream } from './http.js';
import type { HttpUpstream } from './http.js';

/** One configured provider: its transport (pool + retry + breaker) and config. */
export interface LlmProvider {
  readonly name: string;
  readonly config: LlmProviderConfig;
  /** Sends a call; resolves at response headers with the body streaming. Throws GatewayError. */
  readonly handler: Handler;
  readonly upstream: HttpUpstream;
}

/** Where a model name leads: a provider and the model id to send it. */
export interface LlmTarget {
  readonly provider: LlmProvider;
  readonly model: string;
  /** `provider/model`, for events and errors. */
  readonly label: string;
}

export interface LlmProviders {
  /** The target for `model` followed by its fallbacks, or an empty list when no provider serves it. */
  candidates(model: string): readonly LlmTarget[];
  /** Model names clients may ask for (aliases), for `GET /v1/models`. */
  models(): ReadonlyArray<{ id: string; provider: string }>;
  /** Opens each provider's `pool.warm` connections. Never throws. */
  warm(): Promise<void>;
  close(): Promise<void>;
}

/** Responses are relayed as streams; this only bounds a runaway one. */
const MAX_RESPONSE_BYTES = 1024 ** 3;

/**
 * Builds every provider from config, once. Each gets an undici Pool sized for concurrent streams (a
 * stream holds its connection for its whole life), a retry policy honouring `Retry-After`, and a
 * consecutive-failure breaker; a 429 does not count against the breaker. Resolution is precomputed:
 * `candidates()` is a Map lookup for aliases.
 */
export function llmProviders(config: LlmConfig): LlmProviders {
  const providers = new Map<string, LlmProvider>();
  for (const [name, p] of Object.entries(config.providers)) providers.set(name, buildProvider(name, p));

  const direct = (model: string): LlmTarget | undefined => {
    for (const provider of providers.values()) {
      const id = provider.config.models[model];
      if (id !== undefined) return { provider, model: id, label: `${provider.name}/${id}` };
    }
    const slash = model.indexOf('/');
    if (slash <= 0) return undefined;
    const provider = providers.get(model.slice(0, slash));
    const id = model.slice(slash + 1);
    return provider === undefined || id === '' ? undefined : { provider, model: id, label: model };
  };
  const resolve = (model: string): LlmTarget[] => {
    const first = direct(model);
    if (first === undefined) return [];
    const list = [first];
    for (const fallback of config.fallbacks[model] ?? []) {
      const target = direct(fallback);
      if (target !== undefined && !list.some((t) => t.label === target.label)) list.push(target);
    }
    return list;
  };
  const table = new Map<string, LlmTarget[]>();
  for (const p of providers.values())
    for (const alias of Object.keys(p.config.models)) table.set(alias, resolve(alias));
  const aliases = [...providers.values()].flatMap((p) =>
    Object.keys(p.config.models).map((id) => ({ id, provider: p.name })),
  );

  return {
    candidates: (model) => table.get(model) ?? resolve(model),
    models: () => aliases,
    async warm() {
      await Promise.all([...providers.values()].map((p) => p.upstream.warm()));
    },
    async close() {
      await Promise.all([...providers.values()].map((p) => p.upstream.close()));
    },
  };
}

function buildProvider(name: string, config: LlmProviderConfig): LlmProvider {
  const headers: Record<string, string> = { ...config.headers };
  if (config.apiKey !== undefined) headers.authorization = `Bearer ${config.apiKey}`;
  const upstreamConfig: UpstreamConfig = {
    url: config.baseUrl,
    pool: {
      connections: config.pool.connections,
      pipelining: 1,
      keepAlive: config.pool.keepAlive,
      http2: config.pool.http2,
      warm: config.pool.warm,
    },
    timeouts: {
      connect: config.timeouts.connect,
      firstByte: config.timeouts.firstByte,
      idle: config.timeouts.idle,
    },
    headers,
    auth: undefined,
    maxResponseBytes: MAX_RESPONSE_BYTES,
  };
  const upstream = httpUpstream(name, upstreamConfig);
  const policies: Policy[] = [];
  const route = `llm:${name}`;
  if (config.retry !== false && config.retry.attempts > 1) {
    policies.push(
      retry({
        route,
        attempts: config.retry.attempts,
        baseDelayMs: config.retry.baseDelay,
        maxDelayMs: config.retry.maxDelay,
        retryOn: config.retry.on,
        budget: new RetryBudget(),
      }),
    );
  }
  if (config.breaker !== false) {
    policies.push(
      circuitBreaker({
        name: route,
        mode: 'consecutive',
        threshold: config.breaker.threshold,
        halfOpenAfterMs: config.breaker.halfOpenAfter,
      }),
    );
  }
  return { name, config, upstream, handler: compose(policies, upstream.handler) };
}
