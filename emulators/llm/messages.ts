// Anthropic Messages as the emulator writes them: a `message`, or its SSE events from `message_start` to `message_stop`.
import { anthropicErrorType } from '../../src/entrypoints/llm/messages.js';
import { CONTEXT_TOKENS, namedEvent } from './surface.js';
import type { Surface, SurfaceStream } from './surface.js';

/** Anthropic's error body, `{"type":"error","error":{"type","message"}}`, its type by status as the gateway maps it. */
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
