// OpenAI chat completions (`POST /v1/chat/completions`): the wire-format adapter in front of the LLM relay.
import { createHash } from 'node:crypto';
import { GatewayError } from '../../errors.js';
import type { GatewayError as Failure } from '../../errors.js';
import { stripHopByHop } from '../../pipeline/headers.js';
import type { Headers } from '../../pipeline/types.js';
import type { Endpoint, Exchange } from '../../server/exchange.js';
import { relay } from '../../streams/llm-relay.js';
import type { RelayFormat } from '../../streams/llm-relay.js';
import { completionContent, SseContentTap } from '../../streams/sse-tap.js';
import type { TranscriptBuffer } from '../../streams/transcript-buffer.js';
import type { LlmProviders } from '../../upstreams/llm/providers.js';
import { newTurn, rewriteModel } from './chat-request.js';

export interface ChatCompletionsOptions {
  providers: LlmProviders;
  /** Where conversations are persisted, when `llm.transcripts` is configured. */
  transcripts: TranscriptBuffer | undefined;
  /** Largest request body, in bytes. */
  maxRequestBytes: number;
}

/** The header naming the conversation a request belongs to (else `metadata.session_id`). */
export const SESSION_HEADER = 'x-slipstream-session';
/** Request headers that stay with the client: credentials, and encodings the transcript tap could not read. */
const CLIENT_ONLY = ['authorization', 'cookie', 'content-length', 'accept-encoding', SESSION_HEADER];

/** OpenAI chat completions as the relay sees it: SSE `delta.content` for transcripts, `event: error` on failure. */
export const chatCompletionsFormat: RelayFormat = {
  upstreamPath: '/chat/completions',
  streamTap: (onText) => new SseContentTap(onText),
  replyText: completionContent,
  streamError: (failure: Failure) => `event: error\ndata: ${JSON.stringify(failure.toJSON())}\n\n`,
};

/**
 * The endpoint. The hot path: read the (small) request body, parse it once, resolve the model, rewrite
 * only `model`, hand the rest to the relay (fallback before the first byte, then chunks relayed byte for
 * byte). A client that goes away aborts the upstream request at once.
 */
export function chatCompletionsEndpoint(options: ChatCompletionsOptions): Endpoint {
  const { providers, transcripts } = options;
  return {
    route: 'chat',
    async handle(x) {
      const raw = await x.body(options.maxRequestBytes);
      const body = parseBody(x.parse(raw));
      const model = body.model as string;
      const targets = providers.candidates(model);
      if (targets.length === 0) {
        throw new GatewayError('GW_LLM_NO_PROVIDER', `no provider serves model "${model}"`, {
          data: { model },
        });
      }
      const sessionId = sessionOf(x, body);
      const transcript =
        transcripts !== undefined && sessionId !== undefined
          ? transcripts.start(scopedSession(x.principal, sessionId), newTurn(body.messages))
          : undefined;
      const status = await relay({
        res: x.res,
        ctx: x.ctx,
        signal: x.signal,
        targets,
        format: chatCompletionsFormat,
        headers: upstreamHeaders(x),
        body: (target) => rewriteModel(raw, body, model, target.model),
        transcript,
        onShutdown: (end) => x.onShutdown(end),
      });
      return { written: true, status };
    },
  };
}

function parseBody(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new GatewayError('GW_BAD_REQUEST', 'request body must be a JSON object');
  }
  const record = body as Record<string, unknown>;
  if (typeof record.model !== 'string' || record.model === '') {
    throw new GatewayError('GW_BAD_REQUEST', '"model" is required');
  }
  return record;
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

/** The conversation id: the `x-slipstream-session` header, else `metadata.session_id`. */
function sessionOf(x: Exchange, body: Record<string, unknown>): string | undefined {
  const header = x.req.headers[SESSION_HEADER];
  if (typeof header === 'string' && header !== '') return header.slice(0, 256);
  const id = (body.metadata as { session_id?: unknown } | undefined)?.session_id;
  return typeof id === 'string' && id !== '' ? id.slice(0, 256) : undefined;
}

function upstreamHeaders(x: Exchange): Headers {
  const headers = stripHopByHop(x.req.headers);
  for (const name of CLIENT_ONLY) delete headers[name];
  headers['content-type'] = 'application/json';
  headers['x-request-id'] = x.ctx.id;
  return headers;
}
