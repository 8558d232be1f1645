// Parses the human units used in config and on the command line: durations ("250ms", "5s") and sizes ("1mb").

const DURATION = /^(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)$/;
const DURATION_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)$/;
// Binary multiples: "1kb" is 1024 bytes, as most proxies (nginx, Envoy) read it.
const SIZE_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/**
 * Parses a duration like `250ms`, `5s`, `1.5m`, `2h` or `800us` into milliseconds.
 * A bare number is taken as milliseconds. Returns undefined when the text is not a duration.
 */
export function parseDurationMs(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const match = DURATION.exec(value.trim().toLowerCase());
  if (match === null) return undefined;
  return Number(match[1]) * DURATION_MS[match[2]!]!;
}

/**
 * Parses a size like `512b`, `64kb`, `1mb` or `2gb` into bytes (binary multiples).
 * A bare number is taken as bytes. Returns undefined when the text is not a size.
 */
export function parseSizeBytes(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const match = SIZE.exec(value.trim().toLowerCase());
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * SIZE_BYTES[match[2]!]!);
}
