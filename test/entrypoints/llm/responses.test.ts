import { describe, expect, it } from 'vitest';
import { responsesSurface } from '../../../emulators/llm/responses.js';
import { GatewayError } from '../../../src/errors.js';
import { responsesFormat } from '../../../src/entrypoints/llm/responses.js';
import { generation, streamed, tapInChunks } from '../../helpers/llm-wire.js';

const pieces = ['Hel', 'lo "wo', 'rld"\n', ' ünï ', '\\ok'];

describe('the Responses format', () => {
  it('taps output_text deltas and the final usage from a stream, however it is chunked', () => {
    const bytes = streamed(responsesSurface, 'resp_a_1', pieces);
    for (const size of [1, 3, 17, bytes.length]) {
      const { text, tap } = tapInChunks(responsesFormat.streamTap, bytes, size);
      expect(text).toBe(pieces.join(''));
      expect(tap.usage()).toEqual({ inputTokens: 7, outputTokens: pieces.length });
    }
  });

  it("reads the response's id from response.created, and usage without extracting text when none is wanted", () => {
    const bytes = streamed(responsesSurface, 'resp_a_9', pieces);
    for (const size of [1, 7, bytes.length]) {
      const { tap } = tapInChunks(responsesFormat.streamTap, bytes, size);
      expect(tap.id?.()).toBe('resp_a_9');
    }
    const quiet = responsesFormat.streamTap(undefined);
    quiet.push(bytes);
    expect(quiet.usage()).toEqual({ inputTokens: 7, outputTokens: pieces.length });
    expect(quiet.id?.()).toBe('resp_a_9');
  });

  it('ignores other delta events and reads events written with spaces after colons', () => {
    const sse = [
      'event: response.function_call_arguments.delta',
      'data: {"type": "response.function_call_arguments.delta", "delta": "{\\"a\\":1}"}',
      '',
      'event: response.output_text.delta',
      'data: {"type": "response.output_text.delta", "sequence_number": 5, "delta": "hi"}',
      '',
      '',
    ].join('\n');
    const { text, tap } = tapInChunks(responsesFormat.streamTap, Buffer.from(sse), 4);
    expect(text).toBe('hi');
    expect(tap.usage()).toBeUndefined();
    const end = responsesFormat.streamError(new GatewayError('GW_UPSTREAM_TIMEOUT', 'idle'), tap).toString();
    expect(JSON.parse(end.split('data: ')[1]!)).toMatchObject({ type: 'error', sequence_number: 6 });
  });

  it('ends a broken stream with an error event numbered after the last event, carrying the GW code', () => {
    const bytes = streamed(responsesSurface, 'resp_a_2', ['a', 'b']);
    const { tap } = tapInChunks(responsesFormat.streamTap, bytes, 64);
    const error = new GatewayError('GW_UPSTREAM_TIMEOUT', 'openai/gpt: no chunk for 30000 ms');
    const text = responsesFormat.streamError(error, tap).toString();
    expect(text.startsWith('event: error\ndata: ')).toBe(true);
    expect(text.endsWith('\n\n')).toBe(true);
    expect(JSON.parse(text.slice('event: error\ndata: '.length))).toEqual({
      type: 'error',
      sequence_number: 4 + 2 + 4,
      code: 'GW_UPSTREAM_TIMEOUT',
      message: 'openai/gpt: no chunk for 30000 ms',
      param: null,
    });
  });

  it('reads the text, usage and id of a non-streamed response', () => {
    const body = Buffer.from(
      JSON.stringify(responsesSurface.reply(generation('resp_a_3', pieces), pieces.join(''))),
    );
    expect(responsesFormat.readReply(body)).toEqual({
      text: pieces.join(''),
      usage: { inputTokens: 7, outputTokens: pieces.length },
      id: 'resp_a_3',
    });
    expect(responsesFormat.readReply(Buffer.from('not json'))).toEqual({ text: undefined, usage: undefined });
  });

  it('reads model, stream, the new turn with instructions, and the conversation from a request', () => {
    const request = responsesFormat.readRequest({
      model: 'gpt',
      stream: true,
      instructions: 'be brief',
      metadata: { session_id: 's1' },
      input: [
        { role: 'user', content: 'one' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'two' }] },
        { role: 'user', content: [{ type: 'input_text', text: 'three' }] },
        { type: 'function_call_output', call_id: 'c', output: '42' },
      ],
    });
    expect(request).toEqual({
      model: 'gpt',
      stream: true,
      conversation: 's1',
      turn: [
        { role: 'user', content: 'three' },
        { role: 'tool', content: '42' },
      ],
      continues: undefined,
      tapped: true,
    });
    const first = responsesFormat.readRequest({ model: 'gpt', input: 'hi', instructions: 'be brief' });
    expect(first.turn).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
    ]);
  });

  it('names the provider-side state a request continues, and takes the conversation id from it', () => {
    const chained = responsesFormat.readRequest({
      model: 'gpt',
      input: 'more',
      previous_response_id: 'resp_1',
    });
    expect(chained).toMatchObject({ continues: 'resp_1', turn: [{ role: 'user', content: 'more' }] });
    const conversation = responsesFormat.readRequest({
      model: 'gpt',
      input: 'x',
      conversation: { id: 'conv_9' },
    });
    expect(conversation).toMatchObject({ continues: 'conv_9', conversation: 'conv_9' });
  });

  it('refuses a body without a model, a non-boolean stream, or a malformed input with GW_BAD_REQUEST', () => {
    const bad = [
      { input: 'x' },
      { model: 'gpt', stream: 'yes' },
      { model: 'gpt', input: 5 },
      { model: 'gpt', previous_response_id: 3 },
    ];
    for (const body of bad) {
      expect(() => responsesFormat.readRequest(body)).toThrow(
        expect.objectContaining({ code: 'GW_BAD_REQUEST' }) as Error,
      );
    }
  });

  it('answers errors in OpenAI shape with the GW code, its status and Retry-After', () => {
    const reply = responsesFormat.errorBody(
      new GatewayError('GW_UPSTREAM_RATE_LIMITED', 'openai/gpt answered 429: slow down', { retryAfterS: 3 }),
    );
    expect(reply.status).toBe(429);
    expect(reply.headers['retry-after']).toBe('3');
    expect(JSON.parse(reply.body.toString())).toEqual({
      error: {
        message: 'openai/gpt answered 429: slow down',
        type: 'rate_limit_error',
        param: null,
        code: 'GW_UPSTREAM_RATE_LIMITED',
      },
    });
  });
});
