// The contract every LLM wire format adapter implements in front of the one format-neutral relay.
import { GatewayError } from '../../errors.js';
import type { ReplyContent, StreamTap, Usage } from '../../streams/llm-relay.js';
import type { TranscriptMessage } from '../../streams/transcript-buffer.js';

export type { ReplyContent, StreamTap, Usage } from '../../streams/llm-relay.js';

/** What a provider speaks: OpenAI's formats (chat completions, Responses, embeddings) or Anthropic's Messages. */
export type ProviderType = 'openai' | 'anthropic';

/** What the relay needs from a client's request, read once from its parsed body. */
export interface LlmRequest {
  /** The `model` the client asked for (routing and aliases are the relay's). */
  model: string;
  stream: boolean;
  /** A conversation id the body itself carries (the `x-slipstream-session` header still wins). */
  conversation: string | undefined;
  /** The new turn's messages, for the transcript (bounded: the newest are kept). */
  turn: TranscriptMessage[];
  /**
   * The id of state one provider holds that the request continues (a Responses `previous_response_id`,
   * else its `conversation`): the request must go to the provider that holds it and never to a fallback,
   * which would not know that state (and would answer as if the conversation were new).
   */
  continues: string | undefined;
  /**
   * Whether a streamed reply reports usage (or anything else the relay reads from it, like a Responses
   * id): it is tapped even without a transcript. False for chat completions streams without
   * `stream_options.include_usage`, so those are relayed without a byte being scanned.
   */
  tapped: boolean;
}

/** The error reply a format's clients understand. */
export interface ErrorReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One wire format: how to read its requests and replies, and how to say "no" in it. Its functions use no `this`. */
export interface LlmFormat {
  readonly name: 'chat-completions' | 'responses' | 'messages' | 'count-tokens' | 'embeddings';
  /** Provider types that accept requests in this format. */
  readonly providerTypes: ReadonlySet<ProviderType>;
  /** Path appended to the provider's base URL (which ends in `/v1`). */
  readonly upstreamPath: string;
  /** Validates a parsed JSON body. Throws GatewayError `GW_BAD_REQUEST` with a precise message. */
  readonly readRequest: (body: Record<string, unknown>) => LlmRequest;
  /** Transcript text, usage and id of a non-streamed reply body; fields undefined when it holds none. */
  readonly readReply: (body: Buffer) => ReplyContent;
  /** The error body this format's clients understand, with the `GW_*` code in it. */
  readonly errorBody: (error: GatewayError) => ErrorReply;
}

/** A format whose replies can stream (all but embeddings and token counts). */
export interface StreamingFormat extends LlmFormat {
  /**
   * A tap for one streamed reply: it reads the usage (and the id, for formats with one), and with
   * `onText` each piece of transcript text (none is extracted without it).
   */
  readonly streamTap: (onText: ((text: string) => void) | undefined) => StreamTap;
  /**
   * The SSE bytes that end a broken stream with this format's own error event. `tap` is the stream's
   * tap when it has one (Responses numbers its error event after the last event it saw).
   */
  readonly streamError: (error: GatewayError, tap?: StreamTap) => Buffer;
}

/** A `GW_BAD_REQUEST` about the request body. */
export function badRequest(message: string): GatewayError {
  return new GatewayError('GW_BAD_REQUEST', message);
}

/** Reads `body.model`: a non-empty string, or GW_BAD_REQUEST. */
export function requireModel(body: Record<string, unknown>): string {
  const { model } = body;
  if (typeof model !== 'string' || model === '') {
    throw badRequest('"model" is required and must be a non-empty string');
  }
  return model;
}

/** Reads `body.stream`: absent or a boolean, or GW_BAD_REQUEST. */
export function readStream(body: Record<string, unknown>): boolean {
  const { stream } = body;
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    throw badRequest('"stream" must be a boolean');
  }
  return stream === true;
}

/** An error reply with `body` as JSON, the error's status and its `Retry-After`. */
export function jsonErrorReply(error: GatewayError, body: unknown): ErrorReply {
  const headers: Record<string, string> = {
    ...error.headers,
    'content-type': 'application/json; charset=utf-8',
  };
  if (error.retryAfterS !== undefined) headers['retry-after'] = String(error.retryAfterS);
  return { status: error.status, headers, body: Buffer.from(JSON.stringify(body)) };
}

/**
 * A `usage` object with `input_tokens` / `output_tokens` (Anthropic Messages and OpenAI Responses) as
 * Usage: a field the provider did not send stays absent; undefined when there is no object at all.
 */
export function inputOutputUsage(usage: unknown): Usage | undefined {
  const u = usage as { input_tokens?: unknown; output_tokens?: unknown } | null | undefined;
  if (u === null || typeof u !== 'object') return undefined;
  return {
    inputTokens: typeof u.input_tokens === 'number' ? u.input_tokens : undefined,
    outputTokens: typeof u.output_tokens === 'number' ? u.output_tokens : undefined,
  };
}
