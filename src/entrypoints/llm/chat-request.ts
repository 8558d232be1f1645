// Helpers for the chat entrypoint's request side: the targeted `model` rewrite and the turn to persist.
import type { TranscriptMessage } from '../../streams/transcript-buffer.js';

const MODEL_KEY = Buffer.from('"model"');

function skipSpace(raw: Buffer, i: number): number {
  let at = i;
  while (at < raw.length && (raw[at] === 0x20 || raw[at] === 0x0a || raw[at] === 0x0d || raw[at] === 0x09))
    at++;
  return at;
}

/**
 * Returns `raw` with its `"model": "<from>"` value replaced by `to`, every other byte untouched. When the
 * value is not found exactly once in that form (an unusual escape, or a nested `"model"` with the same
 * value), the parsed body is serialised again with the new model instead. `raw` itself when nothing changes.
 */
export function rewriteModel(raw: Buffer, parsed: Record<string, unknown>, from: string, to: string): Buffer {
  if (from === to) return raw;
  const value = Buffer.from(JSON.stringify(from));
  let found = -1;
  let matches = 0;
  for (let at = raw.indexOf(MODEL_KEY); at !== -1; at = raw.indexOf(MODEL_KEY, at + 1)) {
    let i = skipSpace(raw, at + MODEL_KEY.length);
    if (raw[i] !== 0x3a) continue; // ':'
    i = skipSpace(raw, i + 1);
    if (raw.compare(value, 0, value.length, i, i + value.length) === 0) {
      matches++;
      found = i;
    }
  }
  if (matches !== 1) return Buffer.from(JSON.stringify({ ...parsed, model: to }));
  return Buffer.concat([
    raw.subarray(0, found),
    Buffer.from(JSON.stringify(to)),
    raw.subarray(found + value.length),
  ]);
}

/**
 * The request messages to persist: those after the last assistant message (the new turn). A client
 * sends the whole conversation every time, and the earlier turns were stored with their requests.
 */
export function newTurn(messages: unknown): TranscriptMessage[] {
  if (!Array.isArray(messages)) return [];
  let start = 0;
  for (let i = messages.length - 1; i >= 0; i--) {
    if ((messages[i] as { role?: unknown } | null)?.role === 'assistant') {
      start = i + 1;
      break;
    }
  }
  // Bounded: one request must not flood the shared write queue (the newest messages are kept).
  start = Math.max(start, messages.length - MAX_TURN_MESSAGES);
  let budget = MAX_TURN_CHARS;
  const turn: TranscriptMessage[] = [];
  for (const message of messages.slice(start) as unknown[]) {
    const m = (message ?? {}) as { role?: unknown; content?: unknown };
    const content = typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? null);
    budget -= content.length;
    if (budget < 0) break;
    turn.push({ role: typeof m.role === 'string' ? m.role.slice(0, 32) : 'user', content });
  }
  return turn;
}

/** Most messages, and characters, of one request's new turn that are persisted. */
const MAX_TURN_MESSAGES = 64;
const MAX_TURN_CHARS = 1024 ** 2;
