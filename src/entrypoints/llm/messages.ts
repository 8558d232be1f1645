// Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`): requests, SSE events, replies, error shape.
import type { GatewayError } from '../../errors.js';
import { includesIn, jsonStringAt, parseDataLine, SseDataLines, valueAt } from '../../streams/sse-scan.js';
import { badRequest, inputOutputUsage, jsonErrorReply, readStream, requireModel } from './format.js';
import type {
  ErrorReply,
  LlmFormat,
  LlmRequest,
  ReplyContent,
  StreamingFormat,
  StreamTap,
  Usage,
} from './format.js';
import { newTurn } from './turn.js';

const TEXT_DELTA = Buffer.from('"text_delta"');
const TEXT_KEY = Buffer.from('"text"');
const MESSAGE_START = Buffer.from('"message_start"');
const MESSAGE_DELTA = Buffer.from('"message_delta"');

/**
 * Anthropic's `error.type` for a status (https://docs.claude.com/en/api/errors): 400
 * invalid_request_error (also any other 4xx), 401 authentication_error, 402 billing_error,
 * 403 permission_error, 404 not_found_error, 413 request_too_large, 429 rate_limit_error, 500 api_error
 * (any other 5xx), 529 overloaded_error; the gateway's own 503 (breaker open, no capacity) is an
 * overload too, and 504 a timeout_error.
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
    case 503:
    case 529:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** `{"type":"error","error":{"type","message","code"}}`: Anthropic's shape, `code` the `GW_*` code. */
function errorObject(error: GatewayError) {
  return {
    type: 'error',
    error: {
      type: anthropicErrorType(error.status),
      message: error.message,
      code: error.code,
      ...(error.data === undefined ? {} : { data: error.data }),
    },
  };
}

/** The error reply Anthropic clients read: its status, `Retry-After` when it has one, Anthropic's body. */
function anthropicErrorReply(error: GatewayError): ErrorReply {
  return jsonErrorReply(error, errorObject(error));
}

/**
 * Scans a Messages event stream: `text_delta` text goes to the transcript (thinking and tool-input
 * deltas do not); usage is read from `message_start` (input) and `message_delta` (the cumulative
 * output, and input when the provider repeats it), each parsed in full once.
 */
class MessagesTap implements StreamTap {
  private input: number | undefined;
  private output: number | undefined;
  private readonly lines: SseDataLines;

  constructor(onText: ((text: string) => void) | undefined) {
    this.lines = new SseDataLines((data, start, end) => {
      if (includesIn(data, TEXT_DELTA, start, end)) {
        if (onText === undefined) return;
        const text = jsonStringAt(data, valueAt(data, TEXT_KEY, start, end), end);
        if (text !== undefined && text !== '') onText(text);
        return;
      }
      const isStart = includesIn(data, MESSAGE_START, start, end);
      if (!isStart && !includesIn(data, MESSAGE_DELTA, start, end)) return;
      const event = parseDataLine(data, start, end) as
        { usage?: unknown; message?: { usage?: unknown } } | undefined;
      const usage = inputOutputUsage(isStart ? event?.message?.usage : event?.usage);
      this.input = usage?.inputTokens ?? this.input;
      this.output = usage?.outputTokens ?? this.output;
    });
  }

  push(chunk: Buffer): void {
    this.lines.push(chunk);
  }

  usage(): Usage | undefined {
    return this.input === undefined && this.output === undefined
      ? undefined
      : { inputTokens: this.input, outputTokens: this.output };
  }
}

/**
 * The Messages format. Every SSE event is named (`event: message_start` …); the Anthropic SDK skips
 * unnamed ones, so a broken stream ends with `event: error` and Anthropic's error body, which the SDK
 * raises as an `APIError` of that `type`. Requests carry no conversation id of their own (`metadata`
 * holds only `user_id`): transcripts need the `x-slipstream-session` header.
 */
export const messagesFormat: StreamingFormat = {
  name: 'messages',
  providerTypes: new Set(['anthropic']),
  upstreamPath: '/messages',

  readRequest(body): LlmRequest {
    const model = requireModel(body);
    const stream = readStream(body);
    if (!Array.isArray(body.messages)) throw badRequest('"messages" must be an array of messages');
    return {
      model,
      stream,
      conversation: undefined,
      turn: newTurn(body.messages, body.system),
      continues: undefined,
      tapped: true,
    };
  },

  readReply(body): ReplyContent {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { content?: unknown; usage?: unknown };
      let text: string | undefined;
      if (Array.isArray(parsed.content)) {
        for (const block of parsed.content as Array<{ type?: unknown; text?: unknown }>) {
          if (block?.type === 'text' && typeof block.text === 'string') text = (text ?? '') + block.text;
        }
      }
      return { text, usage: inputOutputUsage(parsed.usage) };
    } catch {
      return { text: undefined, usage: undefined };
    }
  },

  errorBody: anthropicErrorReply,

  streamTap: (onText) => new MessagesTap(onText),

  streamError: (error) => Buffer.from(`event: error\ndata: ${JSON.stringify(errorObject(error))}\n\n`),
};

/**
 * `POST /v1/messages/count_tokens` (Claude Code calls it before requests): relayed to an Anthropic
 * provider as it is; never streamed, never transcribed; its `input_tokens` is the usage.
 */
export const countTokensFormat: LlmFormat = {
  name: 'count-tokens',
  providerTypes: messagesFormat.providerTypes,
  upstreamPath: '/messages/count_tokens',

  readRequest(body): LlmRequest {
    const model = requireModel(body);
    if (!Array.isArray(body.messages)) throw badRequest('"messages" must be an array of messages');
    return { model, stream: false, conversation: undefined, turn: [], continues: undefined, tapped: true };
  },

  readReply(body): ReplyContent {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { input_tokens?: unknown };
      return {
        text: undefined,
        usage: typeof parsed.input_tokens === 'number' ? { inputTokens: parsed.input_tokens } : undefined,
      };
    } catch {
      return { text: undefined, usage: undefined };
    }
  },

  errorBody: anthropicErrorReply,
};
