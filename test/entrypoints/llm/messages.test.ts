import { describe, expect, it } from 'vitest';
import { messagesSurface } from '../../../emulators/llm/messages.js';
import { GatewayError } from '../../../src/errors.js';
import {
  anthropicErrorType,
  countTokensFormat,
  messagesFormat,
} from '../../../src/entrypoints/llm/messages.js';
import { generation, streamed, tapInChunks } from '../../helpers/llm-wire.js';

const pieces = ['Hi', ' "there"', '\n\\', ' ✓'];

describe('the Messages format', () => {
  it('taps text deltas and the usage of message_start and message_delta, however the stream is chunked', () => {
    const bytes = streamed(messagesSurface, 'msg_1', pieces);
    for (const size of [1, 5, 64, bytes.length]) {
      const { text, tap } = tapInChunks(messagesFormat.streamTap, bytes, size);
      expect(text).toBe(pieces.join(''));
      expect(tap.usage()).toEqual({ inputTokens: 7, outputTokens: pieces.length });
    }
  });

  it('reads the usage of a stream without extracting any text when no transcript wants it', () => {
    const tap = messagesFormat.streamTap(undefined);
    tap.push(streamed(messagesSurface, 'msg_1', pieces));
    expect(tap.usage()).toEqual({ inputTokens: 7, outputTokens: pieces.length });
  });

  it('leaves thinking and tool-input deltas out of the transcript', () => {
    const sse = [
      'event: content_block_delta',
      'data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}',
      '',
      'event: content_block_delta',
      'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"text\\": \\"no\\"}"}}',
      '',
      'event: content_block_delta',
      'data: {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "yes"}}',
      '',
      '',
    ].join('\n');
    expect(tapInChunks(messagesFormat.streamTap, Buffer.from(sse), 7).text).toBe('yes');
  });

  it('ends a broken stream with a named error event in Anthropic shape carrying the GW code', () => {
    const text = messagesFormat
      .streamError(new GatewayError('GW_UPSTREAM_UNAVAILABLE', 'anthropic/claude: the stream broke'))
      .toString();
    expect(text.startsWith('event: error\ndata: ')).toBe(true);
    expect(JSON.parse(text.slice('event: error\ndata: '.length))).toEqual({
      type: 'error',
      error: {
        type: 'api_error',
        message: 'anthropic/claude: the stream broke',
        code: 'GW_UPSTREAM_UNAVAILABLE',
      },
    });
  });

  it('answers errors with the Anthropic type for their status', () => {
    const limited = messagesFormat.errorBody(
      new GatewayError('GW_UPSTREAM_RATE_LIMITED', 'slow down', { retryAfterS: 2 }),
    );
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('2');
    expect(JSON.parse(limited.body.toString()).error).toMatchObject({
      type: 'rate_limit_error',
      code: 'GW_UPSTREAM_RATE_LIMITED',
    });
    const cases: Array<[number, string]> = [
      [400, 'invalid_request_error'],
      [401, 'authentication_error'],
      [404, 'not_found_error'],
      [413, 'request_too_large'],
      [422, 'invalid_request_error'],
      [500, 'api_error'],
      [502, 'api_error'],
      [503, 'overloaded_error'],
      [504, 'timeout_error'],
      [529, 'overloaded_error'],
    ];
    for (const [status, type] of cases) expect(anthropicErrorType(status)).toBe(type);
  });

  it('reads the text and usage of a non-streamed message', () => {
    const body = Buffer.from(
      JSON.stringify(messagesSurface.reply(generation('msg_2', pieces), pieces.join(''))),
    );
    expect(messagesFormat.readReply(body)).toEqual({
      text: pieces.join(''),
      usage: { inputTokens: 7, outputTokens: pieces.length },
    });
  });

  it('reads the new turn with the system prompt on the first turn only', () => {
    const first = messagesFormat.readRequest({
      model: 'claude',
      max_tokens: 10,
      system: [{ type: 'text', text: 'be brief' }],
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(first).toEqual({
      model: 'claude',
      stream: false,
      conversation: undefined,
      turn: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
      continues: undefined,
      tapped: true,
    });
    const later = messagesFormat.readRequest({
      model: 'claude',
      stream: true,
      system: 'be brief',
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'hello' },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: '42' }] },
      ],
    });
    expect(later.turn).toEqual([
      { role: 'user', content: '[{"type":"tool_result","tool_use_id":"t","content":"42"}]' },
    ]);
  });

  it('refuses a body without messages, and reads count_tokens requests and replies', () => {
    expect(() => messagesFormat.readRequest({ model: 'claude' })).toThrow(
      expect.objectContaining({ code: 'GW_BAD_REQUEST' }) as Error,
    );
    expect(countTokensFormat.readRequest({ model: 'claude', messages: [] })).toMatchObject({
      stream: false,
      turn: [],
    });
    expect(countTokensFormat.readReply(Buffer.from('{"input_tokens":12}'))).toEqual({
      text: undefined,
      usage: { inputTokens: 12 },
    });
  });
});
