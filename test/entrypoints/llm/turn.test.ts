import { describe, expect, it } from 'vitest';
import { contentText, newTurn } from '../../../src/entrypoints/llm/turn.js';

describe('the new turn of a conversation', () => {
  it('keeps the messages after the last assistant one, with the system prompt only on the first turn', () => {
    const first = [{ role: 'user', content: 'a' }];
    expect(newTurn(first, 'sys')).toEqual([
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'a' },
    ]);
    const later = [...first, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }];
    expect(newTurn(later, 'sys')).toEqual([{ role: 'user', content: 'c' }]);
  });

  it('joins text blocks and keeps other content as JSON', () => {
    expect(
      contentText([
        { type: 'text', text: 'a' },
        { type: 'input_text', text: 'b' },
      ]),
    ).toBe('ab');
    expect(contentText([{ type: 'image', source: {} }])).toBe('[{"type":"image","source":{}}]');
    expect(contentText(undefined)).toBe('null');
  });

  it('keeps at most 64 messages and 1 MiB of text, the newest first', () => {
    const many = Array.from({ length: 100 }, (_, i) => ({ role: 'user', content: String(i) }));
    const turn = newTurn(many);
    expect(turn).toHaveLength(64);
    expect(turn[0]!.content).toBe('36');
    const big = [
      { role: 'user', content: 'x'.repeat(1024 ** 2) },
      { role: 'user', content: 'y' },
    ];
    expect(newTurn(big)).toHaveLength(1);
  });
});
