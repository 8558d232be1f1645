// OpenAI chat completions as the emulator writes them: `chat.completion`, or `chat.completion.chunk` SSE and `[DONE]`.
import { openaiContextLength, openaiError } from './openai-error.js';
import { CONTEXT_TOKENS } from './surface.js';
import type { Generation, Surface, SurfaceStream } from './surface.js';

function usage(gen: Generation) {
  return {
    prompt_tokens: gen.promptTokens,
    completion_tokens: gen.count,
    total_tokens: gen.promptTokens + gen.count,
  };
}

/** `POST /v1/chat/completions`. */
export const chatSurface: Surface = {
  errorBody: (status, message) => openaiError(status, message),
  contextLengthError: (tokens) =>
    openaiError(
      400,
      openaiContextLength(tokens + CONTEXT_TOKENS, CONTEXT_TOKENS),
      'context_length_exceeded',
      'messages',
    ),
  reply: (gen, text) => ({
    id: gen.id,
    object: 'chat.completion',
    created: gen.created,
    model: gen.model,
    choices: [
      { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop', logprobs: null },
    ],
    usage: usage(gen),
  }),
  stream(gen, includeUsage): SurfaceStream {
    const head = `{"id":"${gen.id}","object":"chat.completion.chunk","created":${gen.created},"model":${JSON.stringify(gen.model)},"choices":`;
    const delta = `data: ${head}[{"index":0,"delta":`;
    return {
      head: `${delta}{"role":"assistant","content":""},"finish_reason":null}]}\n\n`,
      headEvents: 1,
      token: (piece) => `${delta}{"content":${JSON.stringify(piece)}},"finish_reason":null}]}\n\n`,
      tail: () =>
        `${delta}{},"finish_reason":"stop"}]}\n\n` +
        (includeUsage ? `data: ${head}[],"usage":${JSON.stringify(usage(gen))}}\n\n` : '') +
        'data: [DONE]\n\n',
      // The usage chunk and `[DONE]` are not counted (the timeline has always ended at the finish chunk).
      tailEvents: 1,
    };
  },
};
