// OpenAI embeddings as the emulator makes them: a deterministic unit vector per input text, as floats or base64.

/** FNV-1a (32-bit) of a string's UTF-16 code units: the seed of its vector. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * The emulator's embedding of `text`: `dimensions` float32 values (a mulberry32 sequence seeded by the
 * text's hash, normalised to length 1). The same text always gives the same vector and different texts
 * differ, so a test can tell whose vector a caller got.
 */
export function embeddingOf(text: string, dimensions: number): number[] {
  let state = fnv1a(text);
  const values = new Array<number>(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    const value = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1;
    values[i] = value;
    norm += value * value;
  }
  const scale = norm === 0 ? 1 : 1 / Math.sqrt(norm);
  // Rounded to float32, so float and base64 replies carry the very same numbers.
  for (let i = 0; i < dimensions; i++) values[i] = Math.fround(values[i]! * scale);
  return values;
}

/**
 * The inputs of an embeddings request as texts: a string, an array of strings, or token arrays (each
 * array's JSON text stands for it). Returns a message saying what is wrong otherwise.
 */
export function embeddingInputs(input: unknown): string[] | string {
  if (typeof input === 'string') return [input];
  if (!Array.isArray(input)) return "'input' is a required property and must be a string or an array";
  if (input.length === 0) return "'input' must not be empty";
  if (input.every((item) => typeof item === 'number')) return [JSON.stringify(input)];
  const texts: string[] = [];
  for (const item of input as unknown[]) {
    if (typeof item === 'string') texts.push(item);
    else if (Array.isArray(item) && item.every((token) => typeof token === 'number')) {
      texts.push(JSON.stringify(item));
    } else return `'input' items must be strings or arrays of token ids`;
  }
  return texts;
}

/** The `list` reply for `texts`: floats, or little-endian float32 bytes in base64. */
export function embeddingsReply(
  texts: readonly string[],
  model: string,
  dimensions: number,
  base64: boolean,
): unknown {
  let tokens = 0;
  const data = texts.map((text, index) => {
    tokens += Math.max(1, Math.ceil(text.length / 4));
    const vector = embeddingOf(text, dimensions);
    const embedding = base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
    return { object: 'embedding', index, embedding };
  });
  return { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
}
