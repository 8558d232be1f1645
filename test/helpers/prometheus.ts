// Reads Prometheus text exposition in tests: samples by name and labels, sums, deltas and histogram bounds.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses `name{a="b"} 1` lines (comments skipped; label values without escaped quotes). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of every `name` sample whose labels include `where`. */
export function sum(samples: readonly Sample[], name: string, where: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);
}

/** `sum(after) - sum(before)`. */
export function delta(
  before: readonly Sample[],
  after: readonly Sample[],
  name: string,
  where: Record<string, string> = {},
): number {
  return sum(after, name, where) - sum(before, name, where);
}

/**
 * Where the `q` quantile of what a histogram observed between two scrapes lies, in ms: above the `le` of the
 * bucket below the one that holds that rank, at most that bucket's `le`. `name` is the histogram's base
 * name (seconds); the `_bucket` samples matching `where` are added up across other labels.
 */
export function quantileBounds(
  before: readonly Sample[],
  after: readonly Sample[],
  name: string,
  where: Record<string, string>,
  q: number,
): { lowerMs: number; upperMs: number; count: number } {
  const bounds = [
    ...new Set(
      after.filter((s) => s.name === `${name}_bucket` && s.labels.le !== undefined).map((s) => s.labels.le!),
    ),
  ]
    .map((le) => ({ le, seconds: le === '+Inf' ? Infinity : Number(le) }))
    .sort((a, b) => a.seconds - b.seconds);
  const cumulative = bounds.map((b) => delta(before, after, `${name}_bucket`, { ...where, le: b.le }));
  const count = cumulative.at(-1) ?? 0;
  const rank = Math.ceil(q * count);
  const at = cumulative.findIndex((c) => c >= rank);
  return {
    lowerMs: at <= 0 ? 0 : bounds[at - 1]!.seconds * 1000,
    upperMs: bounds[at]!.seconds * 1000,
    count,
  };
}
