// OpenAI chat completions (`POST /v1/chat/completions`): requests, `chat.completion.chunk` SSE, replies, error shape.
import type { GatewayError } from '../../errors.js';
import { jsonStringAt, parseDataLine, SseDataLines, valueAt } from '../../streams/sse-scan.js';
import { badRequest, readStream, requireModel } from './format.js';
import type { LlmRequest, ReplyContent, StreamingFormat, StreamTap, Usage } from './format.js';
import { openaiErrorObject, openaiErrorReply } from './openai-errors.js';
import { newTurn } from './turn.js';

const CONTENT_KEY = Buffer.from('"content"');
const USAGE_KEY = Buffer.from('"usage"');
const OPEN_BRACE = 0x7b;

/** A chat `usage` object (`prompt_tokens`, `completion_tokens`) as Usage. */
function usageOf(usage: unknown): Usage | undefined {
  const u = usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
  if (u === null || typeof u !== 'object') return undefined;
  return {
    inputTokens: typeof u.prompt_tokens === 'number' ? u.prompt_tokens : undefined,
    outputTokens: typeof u.completion_tokens === 'number' ? u.completion_tokens : undefined,
  };
}

/**
 * Scans `chat.completion.chunk` events: the first `"content"` string of each line is `delta.content`
 * (read only when someone wants the text)
 * (tool-call arguments are JSON-escaped strings, so their inner keys never match); a line whose
 * `usage` is an object (the final chunk with `stream_options.include_usage`; others carry
 * `"usage":null`) is parsed in full for it.
 */
class ChatTap implements StreamTap {
  private seen: Usage | undefined;
  private readonly lines: SseDataLines;

  constructor(onText: ((text: string) => void) | undefined) {
    this.lines = new SseDataLines((data, start, end) => {
      if (onText !== undefined) {
        const text = jsonStringAt(data, valueAt(data, CONTENT_KEY, start, end), end);
        if (text !== undefined && text !== '') onText(text);
      }
      if (data[valueAt(data, USAGE_KEY, start, end)] === OPEN_BRACE) {
        const chunk = parseDataLine(data, start, end) as { usage?: unknown } | undefined;
        this.seen = usageOf(chunk?.usage) ?? this.seen;
      }
    });
  }

  push(chunk: Buffer): void {
    this.lines.push(chunk);
  }

  usage(): Usage | undefined {
    return this.seen;
  }
}

/**
 * The chat completions format. A broken stream ends with `event: error` and an OpenAI error object,
 * which the openai SDK raises as an `APIError` with its message and `code`.
 */
export const chatCompletionsFormat: StreamingFormat = {
  name: 'chat-completions',
  providerTypes: new Set(['openai']),
  upstreamPath: '/chat/completions',

  readRequest(body): LlmRequest {
    const model = requireModel(body);
    const stream = readStream(body);
    if (!Array.isArray(body.messages)) throw badRequest('"messages" must be an array of messages');
    const session = (body.metadata as { session_id?: unknown } | null | undefined)?.session_id;
    return {
      model,
      stream,
      conversation: typeof session === 'string' && session !== '' ? session.slice(0, 256) : undefined,
      turn: newTurn(body.messages),
      continues: undefined,
      tapped: (body.stream_options as { include_usage?: unknown } | null | undefined)?.include_usage === true,
    };
  },

  readReply(body): ReplyContent {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as {
        choices?: Array<{ message?: { content?: unknown } }>;
        usage?: unknown;
      };
      const content = parsed.choices?.[0]?.message?.content;
      return { text: typeof content === 'string' ? content : undefined, usage: usageOf(parsed.usage) };
    } catch {
      return { text: undefined, usage: undefined };
    }
  },

  errorBody: openaiErrorReply,

  streamTap: (onText) => new ChatTap(onText),

  streamError: (error: GatewayError) =>
    Buffer.from(`event: error\ndata: ${JSON.stringify({ error: openaiErrorObject(error) })}\n\n`),
};
