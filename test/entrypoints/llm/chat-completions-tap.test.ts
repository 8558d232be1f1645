import { describe, expect, it } from 'vitest';
import { chatCompletionsFormat } from '../../../src/entrypoints/llm/chat-completions.js';

const completionContent = (body: Buffer) => chatCompletionsFormat.readReply(body).text;

function chunk(content: string): string {
  return `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"finish_reason":null}]}\n\n`;
}

function collect(pieces: Buffer[]): string {
  const parts: string[] = [];
  const tap = chatCompletionsFormat.streamTap((text) => parts.push(text));
  for (const piece of pieces) tap.push(piece);
  return parts.join('');
}

describe('SSE content tap', () => {
  it('extracts delta content, skipping role chunks, [DONE] and other events', () => {
    const sse =
      'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n' +
      chunk('Hello') +
      chunk(' world') +
      ': keep-alive comment\n\n' +
      'data: {"choices":[{"delta":{"content":null}}]}\n\n' +
      'data: [DONE]\n\n';
    expect(collect([Buffer.from(sse)])).toBe('Hello world');
  });

  it('decodes JSON escapes and multi-byte characters exactly', () => {
    const text = 'say "hi"\n\ttab \\ back \u2603 snow ünï 🎉';
    expect(collect([Buffer.from(chunk(text))])).toBe(text);
  });

  it('reassembles lines and characters split across chunks at every byte offset', () => {
    const sse = Buffer.from(chunk('héllo "q"') + chunk(' wörld 🎉'));
    for (let cut = 1; cut < sse.length; cut++) {
      expect(collect([sse.subarray(0, cut), sse.subarray(cut)])).toBe('héllo "q" wörld 🎉');
    }
  });

  it('accepts a space after the colon, and ignores tool-call arguments', () => {
    const spaced = 'data: {"choices": [{"delta": {"content": "a b"}}]}\n\n';
    const tool =
      'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\\"content\\":\\"no\\"}"}}]}}]}\n\n';
    expect(collect([Buffer.from(spaced + tool)])).toBe('a b');
  });

  it('reads the content of a non-streaming completion', () => {
    const body = { choices: [{ message: { role: 'assistant', content: 'done "ok"' } }] };
    expect(completionContent(Buffer.from(JSON.stringify(body)))).toBe('done "ok"');
    expect(completionContent(Buffer.from('not json'))).toBeUndefined();
  });
});
