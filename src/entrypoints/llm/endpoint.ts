// One endpoint for every relayed LLM wire format: read the request with the format's adapter, relay it.
import { createHash } from 'node:crypto';
import { GatewayError } from '../../errors.js';
import { stripHopByHop } from '../../pipeline/headers.js';
import type { Headers, Reply } from '../../pipeline/types.js';
import { admitTokens, spendTokens, tokenLimitsOf } from '../../policies/rate-limit.js';
import type { BucketStore } from '../../policies/rate-limit.js';
import { authorize } from '../../server/auth.js';
import type { Endpoint, Exchange } from '../../server/exchange.js';
import { relay } from '../../streams/llm-relay.js';
import type { TranscriptBuffer } from '../../streams/transcript-buffer.js';
import type { LlmProviders } from '../../upstreams/llm/providers.js';
import { rewriteModel } from './rewrite-model.js';
import type { ErrorReply, LlmFormat } from './format.js';
import { pinnedTarget } from './response-owners.js';
import type { ResponseOwners } from './response-owners.js';

export interface LlmEndpointOptions {
  /** Where API keys' token buckets live (`limits.tokensPerMinute` / `tokensPerDay`); none: not enforced. */
  buckets?: BucketStore;
  /** Metrics route label. */
  route: string;
  /** The wire format; a `StreamingFormat` when its replies may stream. */
  format: LlmFormat;
  providers: LlmProviders;
  /** Where conversations are persisted, when `llm.transcripts` is configured. */
  transcripts: TranscriptBuffer | undefined;
  /** Largest request body, in bytes. */
  maxRequestBytes: number;
  /**
   * Who holds which response (Responses): replies' ids are remembered, and a request that continues one
   * goes to its holder. Without it, such a request goes to the model's first target.
   */
  owners?: ResponseOwners;
}

/** The header naming the conversation a request belongs to (else the body's own id, e.g. `metadata.session_id`). */
export const SESSION_HEADER = 'x-slipstream-session';
/** Request headers that stay with the client: credentials, and encodings the transcript tap could not read. */
const CLIENT_ONLY = [
  'authorization',
  'x-api-key',
  'cookie',
  'content-length',
  'accept-encoding',
  SESSION_HEADER,
];

/**
 * The endpoint for one wire format. The hot path: read the (small) request body, parse it once, let the
 * format's adapter read it (model, stream flag, conversation, the new turn), resolve the model to providers
 * that speak this format, rewrite only `model`, and hand the rest to the relay (fallback before the first
 * byte, then chunks relayed byte for byte). A request that continues provider-side state goes to one
 * target only (`pinnedTarget`). Errors are in the format's own shape (`retriedError`).
 */
export function llmEndpoint(options: LlmEndpointOptions): Endpoint {
  const { format, providers, transcripts, owners, buckets } = options;
  return {
    route: options.route,
    async handle(x) {
      const raw = await x.body(options.maxRequestBytes);
      const body = x.parse(raw);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new GatewayError('GW_BAD_REQUEST', 'request body must be a JSON object');
      }
      const parsed = body as Record<string, unknown>;
      const request = format.readRequest(parsed);
      authorize(x.caller, 'models', request.model);
      const targets = providers.candidates(request.model, format.providerTypes);
      if (targets.length === 0) {
        throw new GatewayError('GW_LLM_NO_PROVIDER', `no provider serves model "${request.model}"`, {
          data: { model: request.model },
        });
      }
      // A key's token limits: refused while spent, and every reply's reported usage spends them.
      const tokens =
        buckets === undefined || x.principal === undefined ? undefined : tokenLimitsOf(x.caller?.limits);
      if (tokens !== undefined) await admitTokens(buckets!, x.principal!, tokens, x.ctx.route);
      const sessionId = sessionOf(x, request.conversation);
      const transcript =
        transcripts !== undefined && sessionId !== undefined
          ? transcripts.start(scopedSession(x.principal, sessionId), request.turn)
          : undefined;
      const continues = request.continues;
      const status = await relay({
        res: x.res,
        ctx: x.ctx,
        signal: x.signal,
        principal: x.principal,
        // State one provider holds (a previous response) goes to that provider only, never to a fallback.
        targets: continues === undefined ? targets : [pinnedTarget(targets, owners?.owner(continues))],
        method: 'POST',
        path: format.upstreamPath,
        format,
        headers: upstreamHeaders(x),
        body: (target) => rewriteModel(raw, parsed, request.model, target.model),
        transcript,
        tapped: request.tapped || tokens !== undefined,
        onShutdown: (end) => x.onShutdown(end),
        onReply:
          owners === undefined && tokens === undefined
            ? undefined
            : (target, content) => {
                if (owners !== undefined) {
                  if (content.id !== undefined) owners.remember(content.id, target.provider);
                  // It answered: the state it continued is there.
                  if (continues !== undefined) owners.remember(continues, target.provider);
                }
                const used = (content.usage?.inputTokens ?? 0) + (content.usage?.outputTokens ?? 0);
                if (tokens !== undefined)
                  void spendTokens(buckets!, x.principal!, tokens, used).catch(() => {});
              },
      });
      return { written: true, status };
    },
    errorReply: (failure, x) => retriedError(format.errorBody(failure), failure, x),
  };
}

/**
 * `reply` with `x-should-retry: false` when the gateway already made more than one upstream attempt
 * (retries, fallbacks) and still failed with a server-side error: the openai and Anthropic SDKs obey the
 * header, so their own retries (2 by default) do not multiply the gateway's. A 429 keeps the client's
 * retries (they wait for its `Retry-After`, so they do not pile up within the window).
 */
export function retriedError(reply: ErrorReply, failure: GatewayError, x: Exchange): Reply {
  if (x.ctx.attempts <= 1 || failure.status < 500 || failure.clientFault) return reply;
  return { ...reply, headers: { ...reply.headers, 'x-should-retry': 'false' } };
}

/**
 * The key a conversation is stored under: the caller's identity (hashed, never stored in clear) and
 * the conversation id, so one caller can never read another's transcript by guessing its id.
 * Callers without an identity share one anonymous scope.
 */
export function scopedSession(principal: string | undefined, id: string): string {
  const scope =
    principal === undefined || principal === ''
      ? 'anon'
      : createHash('sha256').update(principal).digest('base64url').slice(0, 22);
  return `${scope}:${id}`;
}

/** The conversation id: the `x-slipstream-session` header, else the one the body carries. */
function sessionOf(x: Exchange, fromBody: string | undefined): string | undefined {
  const header = x.req.headers[SESSION_HEADER];
  if (typeof header === 'string' && header !== '') return header.slice(0, 256);
  return fromBody;
}

/** The client's headers for the provider: credentials, cookies and `x-slipstream-session` stay behind. */
export function upstreamHeaders(x: Exchange): Headers {
  const headers = stripHopByHop(x.req.headers);
  for (const name of CLIENT_ONLY) delete headers[name];
  headers['content-type'] = 'application/json';
  headers['x-request-id'] = x.ctx.id;
  return headers;
}
