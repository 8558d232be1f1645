// Cache-Control parsing (RFC 9111 §5.2): directive names lower-cased, delta-seconds as numbers.

/** Directives present in a Cache-Control header; value is `true` for flags, a number for delta-seconds. */
export type CacheDirectives = ReadonlyMap<string, number | true>;

const EMPTY: CacheDirectives = new Map();

/** Parses `Cache-Control` (or several, comma-joined). Unknown directives are kept; malformed numbers are ignored. */
export function parseCacheControl(value: string | string[] | undefined): CacheDirectives {
  if (value === undefined || value.length === 0) return EMPTY;
  const text = Array.isArray(value) ? value.join(',') : value;
  const directives = new Map<string, number | true>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    if (eq === -1) directives.set(name, true);
    else {
      const seconds = Number(
        part
          .slice(eq + 1)
          .trim()
          .replace(/^"|"$/g, ''),
      );
      directives.set(name, Number.isInteger(seconds) && seconds >= 0 ? seconds : true);
    }
  }
  return directives;
}
