// OpenAI Responses (`POST /v1/responses`): its request fields, typed SSE events, reply and error shapes.
import type { GatewayError } from '../../errors.js';
import {
  includesIn,
  intAt,
  jsonStringAt,
  parseDataLine,
  SseDataLines,
  valueAt,
} from '../../streams/sse-scan.js';
import { badRequest, inputOutputUsage, readStream, requireModel } from './format.js';
import type { LlmRequest, ReplyContent, StreamingFormat, StreamTap, Usage } from './format.js';
import { openaiErrorReply } from './openai-errors.js';
import { newTurn } from './turn.js';

const TEXT_DELTA = Buffer.from('"response.output_text.delta"');
/** The events that end a response, each carrying the final `response` (with `usage`). */
const FINAL = [
  Buffer.from('"response.completed"'),
  Buffer.from('"response.incomplete"'),
  Buffer.from('"response.failed"'),
];
const CREATED = Buffer.from('"response.created"');
const DELTA_KEY = Buffer.from('"delta"');
const ID_KEY = Buffer.from('"id"');
const SEQUENCE_KEY = Buffer.from('"sequence_number"');

/**
 * Scans a Responses event stream: `response.output_text.delta` text goes to the transcript (when wanted),
 * the response's id is read from `response.created` (its first `"id"` is the response's), the final
 * event's `response.usage` is read (that one line is parsed in full, once per stream), and the last
 * `sequence_number` is remembered so that an error event can follow it.
 */
class ResponsesTap implements StreamTap {
  /** The `sequence_number` an event appended now would carry. */
  nextSequence = 0;
  private seen: Usage | undefined;
  private responseId: string | undefined;
  private readonly lines: SseDataLines;

  constructor(onText: ((text: string) => void) | undefined) {
    this.lines = new SseDataLines((data, start, end) => {
      const sequence = intAt(data, valueAt(data, SEQUENCE_KEY, start, end), end);
      if (sequence !== undefined) this.nextSequence = sequence + 1;
      if (includesIn(data, TEXT_DELTA, start, end)) {
        if (onText === undefined) return;
        const text = jsonStringAt(data, valueAt(data, DELTA_KEY, start, end), end);
        if (text !== undefined && text !== '') onText(text);
        return;
      }
      if (this.responseId === undefined && includesIn(data, CREATED, start, end)) {
        this.responseId = jsonStringAt(data, valueAt(data, ID_KEY, start, end), end);
        return;
      }
      if (FINAL.some((type) => includesIn(data, type, start, end))) {
        const event = parseDataLine(data, start, end) as { response?: { usage?: unknown } } | undefined;
        this.seen = inputOutputUsage(event?.response?.usage) ?? this.seen;
      }
    });
  }

  push(chunk: Buffer): void {
    this.lines.push(chunk);
  }

  usage(): Usage | undefined {
    return this.seen;
  }

  id(): string | undefined {
    return this.responseId;
  }
}

/** An input item as a transcript message: messages keep their role; tool outputs and other items are named by type. */
function asMessage(item: unknown): { role: string; content: unknown } {
  const i = (item ?? {}) as { role?: unknown; content?: unknown; type?: unknown; output?: unknown };
  if (typeof i.role === 'string') return { role: i.role, content: i.content };
  if (i.type === 'function_call_output') return { role: 'tool', content: i.output };
  return { role: typeof i.type === 'string' ? i.type : 'item', content: JSON.stringify(item) };
}

/** The provider-side conversation a request belongs to: `conversation`, an id or `{id}`. */
function providerConversation(body: Record<string, unknown>): string | undefined {
  const { conversation } = body;
  const id =
    typeof conversation === 'string'
      ? conversation
      : (conversation as { id?: unknown } | null | undefined)?.id;
  return typeof id === 'string' && id !== '' ? id.slice(0, 256) : undefined;
}

/** The conversation a transcript is kept under: the provider's `conversation`, else `metadata.session_id`. */
function conversationOf(body: Record<string, unknown>): string | undefined {
  const id = providerConversation(body);
  if (id !== undefined) return id;
  const session = (body.metadata as { session_id?: unknown } | null | undefined)?.session_id;
  return typeof session === 'string' && session !== '' ? session.slice(0, 256) : undefined;
}

/**
 * The Responses format. Streams are typed SSE events (`response.created` … `response.completed`, no
 * `[DONE]`); a broken stream ends with an `error` event (`{"type":"error","code","message","param",
 * "sequence_number"}`), which the openai SDK raises as an `APIError` and the AI SDK reports as a stream
 * error. A `previous_response_id` or `conversation` names state one provider holds (`continues`).
 */
export const responsesFormat: StreamingFormat = {
  name: 'responses',
  providerTypes: new Set(['openai']),
  upstreamPath: '/responses',

  readRequest(body): LlmRequest {
    const model = requireModel(body);
    const stream = readStream(body);
    const { input, previous_response_id: previous, conversation, instructions } = body;
    if (input !== undefined && typeof input !== 'string' && !Array.isArray(input)) {
      throw badRequest('"input" must be a string or an array of input items');
    }
    if (previous !== undefined && previous !== null && (typeof previous !== 'string' || previous === '')) {
      throw badRequest('"previous_response_id" must be a response id');
    }
    const items =
      typeof input === 'string' ? [{ role: 'user', content: input }] : (input ?? []).map(asMessage);
    const continues = typeof previous === 'string' ? previous : providerConversation(body);
    const continued = continues !== undefined || (conversation !== undefined && conversation !== null);
    return {
      model,
      stream,
      conversation: conversationOf(body),
      // A continued response's input is only the new turn; its instructions were stored with the first.
      turn: newTurn(items, continued ? undefined : instructions),
      continues,
      // Its stream always ends with usage; its id and sequence numbers are read besides.
      tapped: true,
    };
  },

  readReply(body): ReplyContent {
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { id?: unknown; output?: unknown; usage?: unknown };
      let text: string | undefined;
      if (Array.isArray(parsed.output)) {
        for (const item of parsed.output as Array<{ type?: unknown; content?: unknown }>) {
          if (item?.type !== 'message' || !Array.isArray(item.content)) continue;
          for (const part of item.content as Array<{ type?: unknown; text?: unknown }>) {
            if (part?.type === 'output_text' && typeof part.text === 'string')
              text = (text ?? '') + part.text;
          }
        }
      }
      const id = typeof parsed.id === 'string' && parsed.id !== '' ? parsed.id : undefined;
      return { text, usage: inputOutputUsage(parsed.usage), ...(id === undefined ? {} : { id }) };
    } catch {
      return { text: undefined, usage: undefined };
    }
  },

  errorBody: openaiErrorReply,

  streamTap: (onText) => new ResponsesTap(onText),

  streamError(error: GatewayError, tap?: StreamTap): Buffer {
    const event = {
      type: 'error',
      sequence_number: tap instanceof ResponsesTap ? tap.nextSequence : 0,
      code: error.code,
      message: error.message,
      param: null,
    };
    return Buffer.from(`event: error\ndata: ${JSON.stringify(event)}\n\n`);
  },
};
