// Anthropic Messages as the emulator writes them: a `message`, or its SSE events from `message_start` to `message_stop`.
import { CONTEXT_TOKENS, namedEvent } from './surface.js';
import type { Surface, SurfaceStream } from './surface.js';

/**
 * Anthropic's `error.type` for a status (https://docs.claude.com/en/api/errors): 400 invalid_request_error
 * (also used for other 4xx), 401 authentication_error, 402 billing_error, 403 permission_error,
 * 404 not_found_error, 413 request_too_large, 429 rate_limit_error, 500 api_error, 529 overloaded_error.
 */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 504:
      return 'timeout_error';
    case 529:
      return 'overloaded_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** Anthropic's error body: `{"type":"error","error":{"type","message"}}`. */
export function anthropicError(status: number, message: string): unknown {
  return { type: 'error', error: { type: anthropicErrorType(status), message } };
}

/** `POST /v1/messages`. */
export const messagesSurface: Surface = {
  errorBody: anthropicError,
  contextLengthError: (tokens) =>
    anthropicError(400, `prompt is too long: ${tokens + CONTEXT_TOKENS} tokens > ${CONTEXT_TOKENS} maximum`),
  reply: (gen, text) => ({
    id: gen.id,
    type: 'message',
    role: 'assistant',
    model: gen.model,
    content: [{ type: 'text', text }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: gen.promptTokens, output_tokens: gen.count },
  }),
  stream(gen): SurfaceStream {
    const start = {
      type: 'message_start',
      message: {
        id: gen.id,
        type: 'message',
        role: 'assistant',
        model: gen.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        // As the real API does, message_start reports the input and a first output token;
        // message_delta carries the cumulative output count.
        usage: { input_tokens: gen.promptTokens, output_tokens: 1 },
      },
    };
    const head =
      namedEvent('message_start', JSON.stringify(start)) +
      namedEvent(
        'content_block_start',
        '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
      ) +
      namedEvent('ping', '{"type": "ping"}');
    const deltaHead =
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":';
    return {
      head,
      headEvents: 3,
      token: (piece) => `${deltaHead}${JSON.stringify(piece)}}}\n\n`,
      tail: () =>
        namedEvent('content_block_stop', '{"type":"content_block_stop","index":0}') +
        namedEvent(
          'message_delta',
          `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":${gen.count}}}`,
        ) +
        namedEvent('message_stop', '{"type":"message_stop"}'),
      tailEvents: 3,
    };
  },
};
