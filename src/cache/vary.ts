// Secondary cache keys from Vary (RFC 9111 §4.1): which request headers select a stored variant.
import { createHash } from 'node:crypto';
import type { Headers } from '../pipeline/types.js';

/**
 * Request headers whose values are comma-separated lists in which whitespace outside quoted strings is
 * only optional whitespace (RFC 9110 §12.5): removing it never changes what they mean.
 */
const LISTS = new Set(['accept', 'accept-charset', 'accept-encoding', 'accept-language']);
/** Of those, the ones that are case-insensitive outside quoted strings (codings, charsets, language tags). */
const CASE_INSENSITIVE = new Set(['accept-charset', 'accept-encoding', 'accept-language']);

/**
 * The request headers a response varies on, lower-cased, sorted and without repeats; `'*'` when any
 * member of any `Vary` line is `*` (the response can never be reused, §4.1); undefined without `Vary`.
 */
export function varyNames(vary: string | string[] | undefined): readonly string[] | '*' | undefined {
  if (vary === undefined) return undefined;
  const names = new Set<string>();
  for (const line of Array.isArray(vary) ? vary : [vary]) {
    for (const member of line.split(',')) {
      const name = member.trim().toLowerCase();
      if (name === '*') return '*';
      if (name !== '') names.add(name);
    }
  }
  return names.size === 0 ? undefined : [...names].sort();
}

/**
 * A request header's value normalised so that values with the same meaning compare equal (§4.1): the
 * Accept-* lists lose optional whitespace and empty members (order kept: `fr, en` is not `en, fr`), and
 * the case-insensitive ones are lower-cased outside quoted strings; other headers are only trimmed.
 * An absent header is `null`, which matches only another absent header.
 */
export function normalizeField(name: string, value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.map((v) => v.trim()).join(', ') : value.trim();
  return LISTS.has(name) ? normalizeList(text, CASE_INSENSITIVE.has(name)) : text;
}

/** The key of the variant a request selects among a primary key's variants: `<primary>.<hash>`. */
export function variantKey(primary: string, names: readonly string[], headers: Headers): string {
  const values = names.map((name) => normalizeField(name, headers[name]));
  return `${primary}.${createHash('sha256')
    .update(JSON.stringify([names, values]))
    .digest('base64url')}`;
}

/** Whether two requests select the same variant of a response that varies on `names`. */
export function sameVariant(names: readonly string[], a: Headers, b: Headers): boolean {
  return names.every((name) => normalizeField(name, a[name]) === normalizeField(name, b[name]));
}

function normalizeList(text: string, foldCase: boolean): string {
  let out = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      out += c;
      if (c === '\\' && i + 1 < text.length) out += text[++i];
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
      out += c;
    } else if (c === ',') {
      if (out !== '' && !out.endsWith(',')) out += c; // empty list members carry nothing
    } else if (c !== ' ' && c !== '\t') {
      out += foldCase ? c.toLowerCase() : c;
    }
  }
  return out.endsWith(',') ? out.slice(0, -1) : out;
}
