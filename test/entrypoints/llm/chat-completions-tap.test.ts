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

describe('SSE content tap, line by line', () => {
  /** Every content string the tap reports for `sse`, in order (not joined: empty reports would show). */
  function reports(...pieces: string[]): string[] {
    const seen: string[] = [];
    const tap = chatCompletionsFormat.streamTap((text) => seen.push(text));
    for (const piece of pieces) tap.push(Buffer.from(piece));
    return seen;
  }

  it('reads only data: lines', () => {
    expect(reports('event: {"content":"not data"}\n', 'data: {"content":"yes"}\n')).toEqual(['yes']);
  });

  it('reports each line once, and never an empty or null content', () => {
    expect(
      reports('data: {"a":1}\ndata: {"content":"x"}\ndata: {"content":""}\ndata: {"content":null}\n'),
    ).toEqual(['x']);
  });

  it('allows spaces after the key, and skips a string that does not end on its line', () => {
    expect(reports('data: {"content":  "spaced"}\n')).toEqual(['spaced']);
    expect(reports('data: {"content":"unterminated\ndata: {"content":"next"}\n')).toEqual(['next']);
  });

  it('takes unescaped bytes as they are, and parses only strings with escapes', () => {
    // A raw tab is not valid JSON, but the byte path reports it; an escaped quote needs the parser.
    expect(reports('data: {"content":"a\tb"}\n', 'data: {"content":"say \\"hi\\""}\n')).toEqual([
      'a\tb',
      'say "hi"',
    ]);
  });

  it('drops a partial line longer than 1 MiB instead of carrying it', () => {
    const huge = 'x'.repeat(1024 ** 2 + 10);
    expect(reports(`data: {"content":"${huge}`, '"}\n', 'data: {"content":"after"}\n')).toEqual(['after']);
  });
});

describe('completion content', () => {
  it('is undefined for content that is not a string', () => {
    const body = JSON.stringify({ choices: [{ message: { content: [{ type: 'text', text: 'x' }] } }] });
    expect(completionContent(Buffer.from(body))).toBeUndefined();
  });
});
