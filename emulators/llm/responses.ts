// OpenAI Responses as the emulator writes them: a `response` object, or its typed SSE events ending with `response.completed`.
import { openaiContextLength, openaiError } from './openai-error.js';
import { CONTEXT_TOKENS, namedEvent } from './surface.js';
import type { Generation, Surface, SurfaceStream } from './surface.js';

function usage(gen: Generation) {
  return {
    input_tokens: gen.promptTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: gen.count,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: gen.promptTokens + gen.count,
  };
}

/** The output message's id: `resp_X_N` → `msg_X_N`. */
function messageId(gen: Generation): string {
  return `msg_${gen.id.slice('resp_'.length)}`;
}

function outputText(text: string) {
  return { type: 'output_text', text, annotations: [], logprobs: [] };
}

function message(gen: Generation, status: 'in_progress' | 'completed', content: unknown[]) {
  return { id: messageId(gen), type: 'message', status, role: 'assistant', content };
}

/** The `response` resource in `status`, with its output so far. */
function response(gen: Generation, status: 'in_progress' | 'completed', output: unknown[], done: boolean) {
  const body = gen.body;
  return {
    id: gen.id,
    object: 'response',
    created_at: gen.created,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: gen.model,
    output,
    parallel_tool_calls: true,
    previous_response_id: body.previous_response_id ?? null,
    store: body.store !== false,
    temperature: 1,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: 1,
    truncation: 'disabled',
    usage: done ? usage(gen) : null,
    user: null,
    metadata: body.metadata ?? {},
  };
}

/** `POST /v1/responses`; the non-streamed reply is also what `GET /v1/responses/:id` returns. */
export const responsesSurface: Surface = {
  errorBody: (status, message) => openaiError(status, message),
  contextLengthError: (tokens) =>
    openaiError(
      400,
      openaiContextLength(tokens + CONTEXT_TOKENS, CONTEXT_TOKENS),
      'context_length_exceeded',
      'input',
    ),
  reply: (gen, text) => response(gen, 'completed', [message(gen, 'completed', [outputText(text)])], true),
  stream(gen): SurfaceStream {
    let sequence = 0;
    // Each event carries its type twice (the SSE name and `type`) and a rising `sequence_number`.
    const event = (type: string, fields: Record<string, unknown>) =>
      namedEvent(type, JSON.stringify({ type, sequence_number: sequence++, ...fields }));
    const item = messageId(gen);
    const at = { item_id: item, output_index: 0, content_index: 0 };
    const head =
      event('response.created', { response: response(gen, 'in_progress', [], false) }) +
      event('response.in_progress', { response: response(gen, 'in_progress', [], false) }) +
      event('response.output_item.added', { output_index: 0, item: message(gen, 'in_progress', []) }) +
      event('response.content_part.added', { ...at, part: outputText('') });
    const deltaHead = `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":`;
    const deltaAt = `,"item_id":"${item}","output_index":0,"content_index":0,"delta":`;
    return {
      head,
      headEvents: 4,
      token: (piece) => `${deltaHead}${sequence++}${deltaAt}${JSON.stringify(piece)},"logprobs":[]}\n\n`,
      tail: (text) => {
        const done = message(gen, 'completed', [outputText(text)]);
        return (
          event('response.output_text.done', { ...at, text, logprobs: [] }) +
          event('response.content_part.done', { ...at, part: outputText(text) }) +
          event('response.output_item.done', { output_index: 0, item: done }) +
          event('response.completed', { response: response(gen, 'completed', [done], true) })
        );
      },
      tailEvents: 4,
    };
  },
};
