// Cache-Control parsing (RFC 9111 §5.2): directive names lower-cased, delta-seconds checked rather than guessed.

/**
 * A directive's argument: `true` when it has none, a number for valid delta-seconds, otherwise the
 * argument as sent (a quoted `"3600"`, `-1`, a field-name list such as `no-cache="Set-Cookie"`).
 */
export type DirectiveValue = true | number | string;

/** Directives present in a Cache-Control header. */
export type CacheDirectives = ReadonlyMap<string, DirectiveValue>;

const EMPTY: CacheDirectives = new Map();

/** RFC 9111 §1.2.2: delta-seconds beyond what can be represented count as 2^31. */
const MAX_DELTA_SECONDS = 2 ** 31;

/**
 * Parses `Cache-Control` (several header lines count as one comma-joined list). Commas inside quoted
 * strings do not split. A directive repeated with different arguments keeps neither: its value becomes
 * the joined text, which is not valid delta-seconds, so a conflicting `max-age` counts as invalid
 * (RFC 9111 §4.2.1 allows "considered stale" for conflicts).
 */
export function parseCacheControl(value: string | string[] | undefined): CacheDirectives {
  if (value === undefined || value.length === 0) return EMPTY;
  const text = Array.isArray(value) ? value.join(',') : value;
  const directives = new Map<string, DirectiveValue>();
  for (const part of splitList(text)) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    const raw = eq === -1 ? undefined : part.slice(eq + 1).trim();
    const parsed: DirectiveValue =
      raw === undefined ? true : /^\d+$/.test(raw) ? Math.min(Number(raw), MAX_DELTA_SECONDS) : raw;
    const previous = directives.get(name);
    directives.set(
      name,
      previous === undefined || previous === parsed ? parsed : `${String(previous)},${raw}`,
    );
  }
  return directives;
}

/**
 * A delta-seconds directive in milliseconds: undefined when absent, NaN when present but not valid
 * delta-seconds (no argument, a quoted or negative number, a conflicting repeat).
 */
export function directiveMs(directives: CacheDirectives, name: string): number | undefined {
  const value = directives.get(name);
  if (value === undefined) return undefined;
  return typeof value === 'number' ? value * 1000 : NaN;
}

/** Splits a comma-separated list at commas outside quoted strings (RFC 9110 §5.6.1, §5.6.4). */
function splitList(text: string): string[] {
  if (!text.includes('"')) return text.split(',');
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === ',' && !quoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
