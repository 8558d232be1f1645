// `POST /v1/embeddings`: each input through the gateway's cache (exact key, per caller), misses batched into few upstream calls.
import { createHash } from 'node:crypto';
import { argumentsKey } from '../../cache/keys.js';
import type { PeerLock } from '../../cache/peer-lock.js';
import type { CacheStore } from '../../cache/store.js';
import { GatewayError } from '../../errors.js';
import type { Handler, HttpRequest, Reply } from '../../pipeline/types.js';
import { cache } from '../../policies/cache.js';
import type { Endpoint, Exchange } from '../../server/exchange.js';
import type { LlmProviders } from '../../upstreams/llm/providers.js';
import { embeddingBatcher, MODEL_HEADER, TOKENS_HEADER } from './embeddings-batch.js';
import type { EmbeddingItem, EmbeddingItemCall } from './embeddings-batch.js';
import { embeddingIdentity, embeddingsFormat, readEmbeddingRequest } from './embeddings.js';
import { retriedError, upstreamHeaders } from './endpoint.js';

/** The embeddings cache, in the gateway's cache tier. */
export interface EmbeddingsCacheOptions {
  store: CacheStore;
  peerLock: PeerLock | undefined;
  /** How long an embedding is served from the cache, in ms. */
  ttlMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
  /** `principal`: each caller has its own entries; `shared`: every caller may get any caller's. */
  scope: 'principal' | 'shared';
  /** Larger embeddings are not stored. */
  maxEntryBytes: number;
}

export interface EmbeddingsEndpointOptions {
  providers: LlmProviders;
  /** Largest request body, in bytes. */
  maxRequestBytes: number;
  /** Undefined: nothing is cached. */
  cache: EmbeddingsCacheOptions | undefined;
  /** Batching window (0: only a request's own inputs share a call) and most inputs per upstream call. */
  batch: { windowMs: number; maxBatch: number };
  /** Largest upstream reply read, in bytes. */
  maxResponseBytes: number;
}

/** Cache route (and purge prefix): keys are `llm:embeddings|CALL|<hash>`. */
const ROUTE = 'llm:embeddings';
/** Deadline of a stale-while-revalidate background refresh. */
const REFRESH_TIMEOUT_MS = 30_000;
const OBJECT_OPEN = Buffer.from('{"object":"list","data":[');
const CLOSE_ITEM = Buffer.from('}');
/**
 * The endpoint. Each input of a request is one item call through the gateway's one HTTP cache policy
 * (RFC 9111 rules, tiers, coalescing of identical misses, peer locks), seeing it as `POST
 * /embeddings/<model>` keyed by (model, input, dimensions, encoding) and the caller's scope, and the
 * client's own `cache-control` (`no-store` bypasses, `no-cache` refreshes); misses go to the batcher
 * (`embeddingBatcher`), so concurrent single-input requests of one caller for one model become one
 * upstream call with an input array. The reply is assembled in request order, `index` from 0, the
 * provider's `model`, and `usage` counting only the tokens of inputs this request sent upstream (a cache
 * hit costs none). `x-slipstream-cache` is the inputs' common result (`hit`, `miss`, `bypass`…) or
 * `partial`. When one input is refused by the
 * provider, the request gets that refusal (status and body as the provider sent them).
 *
 * The caller's scope is its principal, else a hash of the credential it sent (`Authorization` or
 * `x-api-key`: callers with one key share entries and batches, callers with different keys never do),
 * else the anonymous scope.
 */
export function embeddingsEndpoint(options: EmbeddingsEndpointOptions): Endpoint {
  const { providers } = options;
  const cacheOptions = options.cache;
  const batcher = embeddingBatcher({
    windowMs: options.batch.windowMs,
    maxBatch: options.batch.maxBatch,
    maxResponseBytes: options.maxResponseBytes,
  });
  const item: Handler<EmbeddingItem & HttpRequest> =
    cacheOptions === undefined
      ? batcher
      : cache<EmbeddingItem & HttpRequest>({
          route: ROUTE,
          store: cacheOptions.store,
          peerLock: cacheOptions.peerLock,
          coalesce: true,
          key: { query: '*', headers: [], body: '*', scope: cacheOptions.scope },
          ttlMs: cacheOptions.ttlMs,
          staleWhileRevalidateMs: cacheOptions.staleWhileRevalidateMs,
          staleIfErrorMs: cacheOptions.staleIfErrorMs,
          maxEntryBytes: cacheOptions.maxEntryBytes,
          methods: new Set(['POST']),
          respectCacheControl: true,
          // The scope already holds the caller's credential (see callerScope): nothing to bypass for.
          credentialHeaders: [],
          refreshTimeoutMs: REFRESH_TIMEOUT_MS,
        })(batcher);
  const keyScope = cacheOptions?.scope ?? 'principal';

  return {
    route: 'embeddings',
    async handle(x) {
      const raw = await x.body(options.maxRequestBytes);
      const body = x.parse(raw);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new GatewayError('GW_BAD_REQUEST', 'request body must be a JSON object');
      }
      const request = readEmbeddingRequest(body as Record<string, unknown>);
      const targets = providers.candidates(request.model, embeddingsFormat.providerTypes);
      if (targets.length === 0) {
        throw new GatewayError('GW_LLM_NO_PROVIDER', `no provider serves model "${request.model}"`, {
          data: { model: request.model },
        });
      }
      const scope = callerScope(x);
      const headers = upstreamHeaders(x);
      const cacheControl = x.req.headers['cache-control'];
      const path = `/embeddings/${encodeURIComponent(request.model)}`;
      const replies = await Promise.all(
        request.inputs.map((input) => {
          const call: EmbeddingItemCall = {
            ctx: x.ctx,
            upstream: ROUTE,
            idempotent: true,
            principal: scope,
            signal: x.signal,
            method: 'POST',
            path,
            headers: cacheControl === undefined ? {} : { 'cache-control': cacheControl },
            body: undefined,
            key: argumentsKey(ROUTE, embeddingIdentity(request, input), scope, keyScope),
            request,
            input,
            targets,
            upstreamHeaders: headers,
          };
          return item(call);
        }),
      );
      const refused = replies.find((r) => r.status < 200 || r.status > 299);
      if (refused !== undefined) return refusal(refused);
      return assemble(replies, request.model);
    },
    errorReply: (failure, x) => retriedError(embeddingsFormat.errorBody(failure), failure, x),
  };
}

/**
 * Whose entries and batches a request uses: its principal; else a hash of the credential it sent, so
 * that callers with different keys never share; else undefined (the anonymous scope).
 */
function callerScope(x: Exchange): string | undefined {
  if (x.principal !== undefined && x.principal !== '') return x.principal;
  const credential = x.req.headers.authorization ?? x.req.headers['x-api-key'];
  if (credential === undefined || credential === '') return undefined;
  const text = Array.isArray(credential) ? credential.join(',') : credential;
  return `credential:${createHash('sha256').update(text).digest('base64url')}`;
}

/** A provider's refusal of an input, as the provider sent it. */
function refusal(reply: Reply): Reply {
  const headers = { ...reply.headers };
  delete headers['x-slipstream-cache'];
  delete headers['cache-control'];
  delete headers.age;
  return { status: reply.status, headers, body: reply.body };
}

/** The `list` reply: every input's embedding in order, the model, and the usage this request caused. */
function assemble(replies: readonly Reply[], requested: string): Reply {
  const parts: Buffer[] = [OBJECT_OPEN];
  let tokens = 0;
  let model: string | undefined;
  const results = new Set<string>();
  replies.forEach((reply, index) => {
    const result = reply.headers['x-slipstream-cache'] as string | undefined;
    if (result !== undefined) results.add(result);
    if (result !== 'hit' && result !== 'stale') tokens += Number(reply.headers[TOKENS_HEADER] ?? 0) || 0;
    model ??= reply.headers[MODEL_HEADER] as string | undefined;
    parts.push(Buffer.from(`${index === 0 ? '' : ','}{"object":"embedding","index":${index},"embedding":`));
    parts.push(reply.body as Buffer, CLOSE_ITEM);
  });
  parts.push(
    Buffer.from(
      `],"model":${JSON.stringify(model ?? requested)},"usage":{"prompt_tokens":${tokens},"total_tokens":${tokens}}}`,
    ),
  );
  const body = Buffer.concat(parts);
  const headers: Reply['headers'] = {
    'content-type': 'application/json',
    'content-length': String(body.length),
  };
  // Every input the same way (hit, miss, bypass...), or some of each.
  if (results.size > 0) headers['x-slipstream-cache'] = results.size === 1 ? [...results][0]! : 'partial';
  return { status: 200, headers, body };
}
