import { describe, expect, it } from 'vitest';
import { chatSurface } from '../../../emulators/llm/chat.js';
import { GatewayError } from '../../../src/errors.js';
import { chatCompletionsFormat } from '../../../src/entrypoints/llm/chat-completions.js';
import { generation, streamed, tapInChunks } from '../../helpers/llm-wire.js';

const pieces = ['say', ' "hi"', '\nand', ' ünï', ' \\ ok'];

describe('the chat completions format', () => {
  it('taps delta content and the final usage chunk, however the stream is chunked', () => {
    const bytes = streamed(chatSurface, 'chatcmpl-1', pieces);
    for (const size of [1, 9, bytes.length]) {
      const { text, tap } = tapInChunks(chatCompletionsFormat.streamTap, bytes, size);
      expect(text).toBe(pieces.join(''));
      expect(tap.usage()).toEqual({ inputTokens: 7, outputTokens: pieces.length });
    }
  });

  it('reads the usage of a stream without extracting any text when no transcript wants it', () => {
    const tap = chatCompletionsFormat.streamTap(undefined);
    tap.push(streamed(chatSurface, 'chatcmpl-1', pieces));
    expect(tap.usage()).toEqual({ inputTokens: 7, outputTokens: pieces.length });
  });

  it('reads no usage from chunks that carry "usage":null, and skips tool-call arguments', () => {
    const sse = [
      'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\\"content\\":\\"no\\"}"}}]}}],"usage":null}',
      'data: {"choices":[{"delta":{"content":"yes"}}],"usage":null}',
      '',
    ].join('\n');
    const { text, tap } = tapInChunks(chatCompletionsFormat.streamTap, Buffer.from(sse), 3);
    expect(text).toBe('yes');
    expect(tap.usage()).toBeUndefined();
  });

  it('taps a stream only when its request asks for usage', () => {
    const read = (extra: Record<string, unknown>) =>
      chatCompletionsFormat.readRequest({ model: 'm', stream: true, messages: [], ...extra }).tapped;
    expect(read({})).toBe(false);
    expect(read({ stream_options: { include_usage: false } })).toBe(false);
    expect(read({ stream_options: { include_usage: true } })).toBe(true);
  });

  it('reads a request and a non-streamed reply', () => {
    expect(
      chatCompletionsFormat.readRequest({
        model: 'fast',
        stream: true,
        metadata: { session_id: 's' },
        messages: [
          { role: 'system', content: 'sys' },
          { role: 'user', content: [{ type: 'text', text: 'hi' }] },
        ],
      }),
    ).toEqual({
      model: 'fast',
      stream: true,
      conversation: 's',
      turn: [
        { role: 'system', content: 'sys' },
        { role: 'user', content: 'hi' },
      ],
      continues: undefined,
      tapped: false,
    });
    const reply = Buffer.from(JSON.stringify(chatSurface.reply(generation('c', pieces), pieces.join(''))));
    expect(chatCompletionsFormat.readReply(reply)).toEqual({
      text: pieces.join(''),
      usage: { inputTokens: 7, outputTokens: pieces.length },
    });
  });

  it('ends a broken stream with an error event holding an OpenAI error object with the GW code', () => {
    const text = chatCompletionsFormat
      .streamError(new GatewayError('GW_UPSTREAM_TIMEOUT', 'idle'))
      .toString();
    expect(text.startsWith('event: error\ndata: ')).toBe(true);
    expect(text.endsWith('}\n\n')).toBe(true);
    expect(JSON.parse(text.slice('event: error\ndata: '.length))).toEqual({
      error: { message: 'idle', type: 'server_error', param: null, code: 'GW_UPSTREAM_TIMEOUT' },
    });
  });
});
