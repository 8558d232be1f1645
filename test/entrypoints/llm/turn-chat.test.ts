import { describe, expect, it } from 'vitest';
import { newTurn } from '../../../src/entrypoints/llm/turn.js';

describe('the new turn of a chat request', () => {
  it('is the messages after the last assistant message', () => {
    const turn = newTurn([
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'c' },
      { role: 'tool', content: { x: 1 } },
    ]);
    expect(turn).toEqual([
      { role: 'user', content: 'c' },
      { role: 'tool', content: '{"x":1}' },
    ]);
  });

  it('is bounded, so one request cannot flood the shared transcript queue', () => {
    const many = Array.from({ length: 100_000 }, () => ({}));
    expect(newTurn(many)).toHaveLength(64);
    const huge = [
      { role: 'user', content: 'x'.repeat(700_000) },
      { role: 'user', content: 'y'.repeat(700_000) },
    ];
    // The newest message within the budget is the one kept (the old helper kept the oldest, against its own comment).
    expect(newTurn(huge).map((m) => m.content[0])).toEqual(['y']);
  });
});
