// Byte-level SSE scanning shared by every wire format's stream tap: `data:` lines and JSON values, no parse per chunk.

const NEWLINE = 0x0a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SPACE = 0x20;
const COLON = 0x3a;
const DATA = Buffer.from('data:');
/** A line longer than this (an absurd SSE event) is skipped rather than buffered further. */
const MAX_CARRY_BYTES = 1024 ** 2;

/**
 * Splits relayed SSE bytes into lines and hands every `data:` line to `onData` as `(bytes, start, end)`
 * (`start` just after `data:`, `end` at the newline; a trailing `\r` is left to the reader). A line split
 * across chunks is carried over, up to 1 MiB; a longer one is skipped. Never throws.
 */
export class SseDataLines {
  private carry: Buffer | undefined;

  constructor(private readonly onData: (data: Buffer, start: number, end: number) => void) {}

  /** Feeds relayed bytes. */
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
      if (isData(data, start, newline)) this.onData(data, start + DATA.length, newline);
      start = newline + 1;
    }
    if (start < data.length && data.length - start <= MAX_CARRY_BYTES) {
      // A copy: the relayed chunk's memory belongs to the stream.
      this.carry = Buffer.from(data.subarray(start));
    }
  }
}

function isData(data: Buffer, start: number, end: number): boolean {
  if (end - start < DATA.length) return false;
  for (let i = 0; i < DATA.length; i++) if (data[start + i] !== DATA[i]) return false;
  return true;
}

/** True when `needle` occurs in `data[start, end)`. */
export function includesIn(data: Buffer, needle: Buffer, start: number, end: number): boolean {
  const at = data.indexOf(needle, start);
  return at !== -1 && at + needle.length <= end;
}

/**
 * The index of the value of the first `"key":` (given as the bytes `"key"`) in `data[start, end)`,
 * spaces skipped; -1 when absent. The first occurrence is the one meant: keys inside JSON strings have
 * escaped quotes, so they never match.
 */
export function valueAt(data: Buffer, key: Buffer, start: number, end: number): number {
  for (let at = data.indexOf(key, start); at !== -1 && at < end; at = data.indexOf(key, at + 1)) {
    let i = at + key.length;
    while (i < end && data[i] === SPACE) i++;
    if (data[i] !== COLON) continue;
    i++;
    while (i < end && data[i] === SPACE) i++;
    return i < end ? i : -1;
  }
  return -1;
}

/**
 * Decodes the JSON string whose opening quote is at `open`, ending before `end`. Strings without
 * escapes are decoded straight from the bytes; only those holding a backslash go through `JSON.parse`.
 * Undefined when there is no string there or it is malformed or cut.
 */
export function jsonStringAt(data: Buffer, open: number, end: number): string | undefined {
  if (open < 0 || data[open] !== QUOTE) return undefined;
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
  if (i >= end) return undefined;
  if (!escaped) return data.toString('utf8', open + 1, i);
  try {
    return JSON.parse(data.toString('utf8', open, i + 1)) as string;
  } catch {
    return undefined;
  }
}

/** Decodes the non-negative integer at `at` (before `end`); undefined when there is none. */
export function intAt(data: Buffer, at: number, end: number): number | undefined {
  if (at < 0) return undefined;
  let value = 0;
  let i = at;
  for (; i < end; i++) {
    const byte = data[i]!;
    if (byte < 0x30 || byte > 0x39) break;
    value = value * 10 + (byte - 0x30);
  }
  return i === at ? undefined : value;
}

/** Parses the JSON of a whole `data:` line (for the rare events read in full, like a final usage). */
export function parseDataLine(data: Buffer, start: number, end: number): unknown {
  try {
    return JSON.parse(data.toString('utf8', start, end));
  } catch {
    return undefined;
  }
}
