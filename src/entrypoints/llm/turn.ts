// The new turn of a conversation, for the transcript: the messages a client sent after the last assistant reply.
import type { TranscriptMessage } from '../../streams/transcript-buffer.js';

/** Most messages, and characters, of one request's new turn that are persisted. */
const MAX_TURN_MESSAGES = 64;
const MAX_TURN_CHARS = 1024 ** 2;
/** Content block types whose `text` is the message's text (chat, Responses, Messages). */
const TEXT_BLOCKS = new Set(['text', 'input_text', 'output_text']);

/**
 * A message's content as transcript text: a string as it is; a list of text blocks (`text`,
 * `input_text`, `output_text`) joined; anything else (images, tool results) as its JSON.
 */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content) && content.length > 0) {
    let text = '';
    for (const block of content as unknown[]) {
      const b = block as { type?: unknown; text?: unknown } | null;
      if (
        b === null ||
        typeof b !== 'object' ||
        !TEXT_BLOCKS.has(b.type as string) ||
        typeof b.text !== 'string'
      ) {
        return JSON.stringify(content);
      }
      text += b.text;
    }
    return text;
  }
  return JSON.stringify(content ?? null);
}

/**
 * The messages to persist: those after the last `assistant` one (the new turn: a client sends the
 * whole conversation every time, and the earlier turns were stored with their requests). `system`,
 * when given (Messages `system`, Responses `instructions`), leads the turn only when the turn is the
 * conversation's start. Bounded: at most 64 messages and 1 MiB of text, the newest kept, so that one
 * request cannot flood the shared write queue.
 */
export function newTurn(messages: readonly unknown[], system?: unknown): TranscriptMessage[] {
  let start = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    if ((messages[i] as { role?: unknown } | null)?.role === 'assistant') {
      start = i + 1;
      break;
    }
  }
  // The system prompt belongs to a turn that opens the conversation, and only if every message fits.
  const opening = start === 0;
  start = Math.max(start, messages.length - MAX_TURN_MESSAGES);
  // From the newest back, so that the newest messages are the ones kept within the budget.
  const turn: TranscriptMessage[] = [];
  let budget = MAX_TURN_CHARS;
  for (let i = messages.length - 1; i >= start; i--) {
    const m = (messages[i] ?? {}) as { role?: unknown; content?: unknown };
    const content = contentText(m.content);
    budget -= content.length;
    if (budget < 0) break;
    turn.push({ role: typeof m.role === 'string' ? m.role.slice(0, 32) : 'user', content });
  }
  if (opening && start === 0 && turn.length === messages.length && system !== undefined && system !== null) {
    const content = contentText(system);
    if (budget - content.length >= 0) turn.push({ role: 'system', content });
  }
  turn.reverse();
  return turn;
}
