// Latency histograms for benchmarks: HDR histograms in microseconds (0.1% precision), merged across runs.
import { build } from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/** Percentiles reported for every run, in microseconds. */
export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** One point of a percentile curve (for charts): `us` is the latency at `percentile` (0..100). */
export interface CurvePoint {
  percentile: number;
  us: number;
}

/** Percentiles drawn in report charts: dense in the tail, where queueing shows. */
export const CURVE_POINTS = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 99.99, 100];

export interface LatencyHistogram {
  /** Records one latency in microseconds (values below 1 us count as 1 us). */
  record(us: number): void;
  merge(other: LatencyHistogram): void;
  summary(): LatencySummary;
  percentiles(points?: readonly number[]): CurvePoint[];
  /** The underlying HDR histogram (for merging). */
  readonly hdr: Histogram;
}

/** A histogram from 1 us to 1 hour with 3 significant digits (HdrHistogram's 0.1% value precision). */
export function latencyHistogram(): LatencyHistogram {
  const hdr = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
  return {
    hdr,
    record: (us) => hdr.recordValue(Math.max(1, Math.round(us))),
    merge: (other) => hdr.add(other.hdr),
    summary: () => ({
      count: hdr.totalCount,
      min: hdr.totalCount === 0 ? 0 : hdr.minNonZeroValue,
      mean: Math.round(hdr.mean),
      p50: hdr.getValueAtPercentile(50),
      p90: hdr.getValueAtPercentile(90),
      p99: hdr.getValueAtPercentile(99),
      p999: hdr.getValueAtPercentile(99.9),
      max: hdr.maxValue,
    }),
    percentiles: (points = CURVE_POINTS) =>
      points.map((percentile) => ({ percentile, us: hdr.getValueAtPercentile(percentile) })),
  };
}
