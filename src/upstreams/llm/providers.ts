// LLM providers: one pooled HTTP upstream per provider behind its stack, and model → provider resolution.
import type { LlmConfig, LlmProviderConfig } from '../../config/llm-schema.js';
import type { UpstreamConfig } from '../../config/schema.js';
import { buildStack } from '../../policies/stack.js';
import type { Handler } from '../../pipeline/types.js';
import type { UpstreamConnectionStats } from '../../telemetry/metrics.js';
import { httpUpstream } from '../http.js';
import type { HttpUpstream } from '../http.js';

/** One configured provider: its stack (bulkhead, deadline, retry, breaker, pool) and config. */
export interface LlmProvider {
  readonly name: string;
  readonly config: LlmProviderConfig;
  /** Sends a call; resolves at response headers with the body streaming. Throws GatewayError. */
  readonly handler: Handler;
  readonly upstream: HttpUpstream;
}

/** Where a model name leads: a provider, the model id to send it, and the provider's stack. */
export interface LlmTarget {
  /** The provider's name. */
  readonly provider: string;
  readonly model: string;
  /** `provider/model`, for events and errors. */
  readonly label: string;
  readonly handler: Handler;
  /** The provider's idle deadline between chunks, in ms. */
  readonly idleMs: number;
  /** The provider's whole config. */
  readonly config: LlmProviderConfig;
}

export interface LlmProviders {
  /**
   * The target for `model` followed by its fallbacks, keeping only providers whose `type` is in `types`
   * (those that speak the request's wire format); an empty list when none serves it.
   */
  candidates(model: string, types: ReadonlySet<string>): readonly LlmTarget[];
  /**
   * One target per provider whose `type` is in `types`, in config order, for requests that name no model
   * (`GET /v1/responses/:id`): `model` is `''`, `label` the provider's name.
   */
  providerTargets(types: ReadonlySet<string>): readonly LlmTarget[];
  /** Model names clients may ask for (aliases), for `GET /v1/models`. */
  models(): ReadonlyArray<{ id: string; provider: string }>;
  /** Opens each provider's `pool.warm` connections. Never throws. */
  start(): Promise<void>;
  /** Pool counters of every provider (for the connections gauge). */
  stats(): UpstreamConnectionStats[];
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

  const target = (provider: LlmProvider, model: string, label: string): LlmTarget => ({
    provider: provider.name,
    model,
    label,
    handler: provider.handler,
    idleMs: provider.config.timeouts.idle,
    config: provider.config,
  });
  // Model names come from clients: only own keys count ("constructor" is no model).
  const direct = (model: string): LlmTarget | undefined => {
    for (const provider of providers.values()) {
      if (Object.hasOwn(provider.config.models, model)) {
        const id = provider.config.models[model]!;
        return target(provider, id, `${provider.name}/${id}`);
      }
    }
    const slash = model.indexOf('/');
    if (slash <= 0) return undefined;
    const provider = providers.get(model.slice(0, slash));
    const id = model.slice(slash + 1);
    return provider === undefined || id === '' ? undefined : target(provider, id, model);
  };
  const resolve = (model: string): LlmTarget[] => {
    const first = direct(model);
    if (first === undefined) return [];
    const list = [first];
    for (const fallback of Object.hasOwn(config.fallbacks, model) ? config.fallbacks[model]! : []) {
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

  const everyProvider = [...providers.values()].map((p) => target(p, '', p.name));

  return {
    providerTargets: (types) => everyProvider.filter((t) => types.has(t.config.type)),
    candidates(model, types) {
      const list = table.get(model) ?? resolve(model);
      // The common case (every target speaks the format) allocates nothing.
      return list.every((t) => types.has(t.config.type))
        ? list
        : list.filter((t) => types.has(t.config.type));
    },
    models: () => aliases,
    async start() {
      await Promise.all([...providers.values()].map((p) => p.upstream.warm()));
    },
    stats: () => [...providers.values()].map((p) => p.upstream.stats()),
    async close() {
      await Promise.all([...providers.values()].map((p) => p.upstream.close()));
    },
  };
}

function buildProvider(name: string, config: LlmProviderConfig): LlmProvider {
  const headers: Record<string, string> = { ...config.headers };
  // Each API's own credential header: OpenAI's bearer token, Anthropic's `x-api-key`.
  if (config.apiKey !== undefined) {
    if (config.type === 'anthropic') headers['x-api-key'] = config.apiKey;
    else headers.authorization = `Bearer ${config.apiKey}`;
  }
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
  const { handler } = buildStack(
    {
      name: `llm:${name}`,
      // The whole request, stream included: the deadline stays armed until the body ends.
      timeoutMs: config.timeouts.total,
      bulkhead: config.bulkhead,
      retry: config.retry,
      breaker: config.breaker,
    },
    upstream.handler,
  );
  return { name, config, upstream, handler };
}
