// Transcript tap: pulls `delta.content` out of relayed SSE bytes with a byte scan, never a JSON parse per chunk.

const NEWLINE = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SPACE = 0x20;
const DATA = Buffer.from('data:');
const CONTENT_KEY = Buffer.from('"content":');
/** A line longer than this (an absurd SSE event) is skipped rather than buffered further. */
const MAX_CARRY_BYTES = 1024 ** 2;

/**
 * Scans OpenAI-style SSE bytes as they are relayed and reports each `"content":"..."` string of every
 * `data:` line to `onContent`. Lines split across chunks are carried over (bounded). Content without
 * escapes is decoded straight from the bytes; only strings holding a backslash go through `JSON.parse`.
 * The first `"content"` of a line is the one reported: in a `chat.completion.chunk` that is `delta.content`
 * (tool-call arguments are JSON-escaped strings, so their inner keys never match).
 */
export class SseContentTap {
  private carry: Buffer | undefined;

  constructor(private readonly onContent: (text: string) => void) {}

  /** Feeds relayed bytes. Never throws: a malformed line is skipped. */
  push(chunk: Buffer): void {
    let data = chunk;
    if (this.carry !== undefined) {
      data = Buffer.concat([this.carry, chunk]);
      this.carry = undefined;
    }
    let start = 0;
    for (;;) {
      const newline = data.indexOf(NEWLINE, start);
      if (newline === -1) break;
      if (newline - start > CONTENT_KEY.length + DATA.length) this.line(data, start, newline);
      start = newline + 1;
    }
    if (start < data.length && data.length - start <= MAX_CARRY_BYTES) {
      // A copy: the relayed chunk's memory belongs to the stream.
      this.carry = Buffer.from(data.subarray(start));
    }
  }

  private line(data: Buffer, start: number, end: number): void {
    for (let i = 0; i < DATA.length; i++) if (data[start + i] !== DATA[i]) return;
    const key = data.indexOf(CONTENT_KEY, start + DATA.length);
    if (key === -1 || key >= end) return;
    let open = key + CONTENT_KEY.length;
    while (open < end && data[open] === SPACE) open++;
    if (data[open] !== QUOTE) return; // null or not a string
    let escaped = false;
    let i = open + 1;
    while (i < end) {
      const byte = data[i];
      if (byte === QUOTE) break;
      if (byte === BACKSLASH) {
        escaped = true;
        i += 2;
      } else i++;
    }
    if (i >= end) return;
    if (i === open + 1) return; // ""
    if (!escaped) {
      this.onContent(data.toString('utf8', open + 1, i));
      return;
    }
    try {
      this.onContent(JSON.parse(data.toString('utf8', open, i + 1)) as string);
    } catch {
      // malformed escape: skip the line
    }
  }
}

/**
 * Extracts `choices[0].message.content` from a non-streaming `chat.completion` body (parsed once, after
 * it was relayed). Returns undefined when the body is not one.
 */
export function completionContent(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as {
      choices?: Array<{ message?: { content?: unknown } }>;
    };
    const content = parsed.choices?.[0]?.message?.content;
    return typeof content === 'string' ? content : undefined;
  } catch {
    return undefined;
  }
}
