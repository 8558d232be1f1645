// The targeted `model` rewrite every LLM wire format shares: only that value's bytes change.

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
