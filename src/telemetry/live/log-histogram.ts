// A bounded latency histogram on logarithmic buckets 5 % wide: percentiles without keeping any sample.

/** Each bucket's upper bound is this many times the one before it: a percentile is read within 5 %. */
const GROWTH = 1.05;
const LOG_GROWTH = Math.log(GROWTH);
/** Smallest bound, in ms (1 us): everything faster shares the first bucket. */
const MIN_MS = 0.001;
/** Largest bound, in ms (10 min): everything slower shares the last bucket. */
const MAX_MS = 600_000;
/** Buckets from MIN_MS to MAX_MS: about 420, so one histogram never holds more entries than that. */
const BUCKETS = Math.ceil(Math.log(MAX_MS / MIN_MS) / LOG_GROWTH) + 1;

/** The p50 and p99 of what was recorded, in ms, and how many values that was. */
export interface Percentiles {
  p50: number;
  p99: number;
  n: number;
}

/** The bucket of `ms`: the first whose upper bound is at least `ms`. */
export function bucketOf(ms: number): number {
  return ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH - 1e-9));
}

/**
 * Counts values (ms) in buckets whose bounds grow by 5 %, as HDR histograms do with a coarser precision: a
 * percentile is the upper bound of the bucket holding that rank, so it lies between the true value and
 * 5 % above it. Memory is fixed: one 32-bit count per bucket (about 1.7 KB).
 */
export class LogHistogram {
  private readonly counts = new Uint32Array(BUCKETS);
  private total = 0;

  /** Values recorded since the last reset. */
  get count(): number {
    return this.total;
  }

  record(ms: number): void {
    this.add(bucketOf(ms));
  }

  /** Records a value by its bucket (`bucketOf`), for callers that put one value in several histograms. */
  add(bucket: number): void {
    this.counts[bucket]!++;
    this.total++;
  }

  /** p50 and p99 by nearest rank, or undefined when nothing was recorded. */
  percentiles(): Percentiles | undefined {
    if (this.total === 0) return undefined;
    const ranks = [Math.ceil(0.5 * this.total), Math.ceil(0.99 * this.total)];
    const found: number[] = [];
    let seen = 0;
    for (let index = 0; index < BUCKETS && found.length < ranks.length; index++) {
      seen += this.counts[index]!;
      while (found.length < ranks.length && seen >= ranks[found.length]!) found.push(bound(index));
    }
    return { p50: found[0]!, p99: found[1]!, n: this.total };
  }

  reset(): void {
    if (this.total === 0) return;
    this.counts.fill(0);
    this.total = 0;
  }
}

/** The upper bound of bucket `index`, in ms, rounded to 4 significant digits for the wire. */
function bound(index: number): number {
  return Number((MIN_MS * GROWTH ** index).toPrecision(4));
}
