// One /metrics for every worker: counters and histograms summed (monotonic across restarts), gauges per worker.
import { AggregatorRegistry } from 'prom-client';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { MetricsSnapshot } from './messages.js';

/**
 * Merges the workers' registries into one exposition, using prom-client's `AggregatorRegistry.aggregate`
 * for the arithmetic:
 *
 * - **counters and histograms are summed** over workers (what `rate()` and `histogram_quantile()` want);
 * - **gauges keep one series per worker**, labelled `worker="n"`: a gauge is one process's state (event
 *   loop lag, heap, a breaker's state, its pool's connections), and a sum of those means nothing; PromQL's
 *   `sum without (worker)` adds the ones that do add up (requests in flight, cache entries).
 *
 * A worker that exits takes its counts with it, so a plain sum would fall, and Prometheus would read the
 * fall as a counter reset and invent a spike. Instead the last snapshot seen from a retired worker is
 * folded into a running total of the departed, added to every later scrape: summed counters never go
 * down (only the increments since a crashed worker's last scrape are lost, as in a single process that
 * crashes). A worker that does not answer a scrape in time is represented by its last snapshot.
 *
 * Not `AggregatorRegistry.clusterMetrics()`: it fails the whole scrape when one worker does not answer within
 * 5 s, sums every gauge (or takes one by a fixed rule) with no way to name the worker, and answers from
 * the global registry unless told otherwise.
 */
export class ClusterMetrics {
  private readonly latest = new Map<string, MetricsSnapshot>();
  private departed: MetricsSnapshot = [];

  /** Records the latest snapshot of the worker labelled `worker`. */
  update(worker: string, snapshot: MetricsSnapshot): void {
    this.latest.set(worker, snapshot);
  }

  /** The worker is gone: its counters and histograms join the departed's totals; its gauges go with it. */
  async retire(worker: string): Promise<void> {
    const last = this.latest.get(worker);
    this.latest.delete(worker);
    if (last === undefined) return;
    const summed = last.filter(isSummed);
    if (summed.length === 0) return;
    this.departed = await AggregatorRegistry.aggregate([this.departed, summed]).getMetricsAsJSON();
  }

  /** The merged registry's text exposition, with `extra` (the supervisor's own metrics) appended. */
  async render(extra: MetricsSnapshot = []): Promise<string> {
    const parts: MetricsSnapshot[] = [this.departed, extra];
    for (const [worker, snapshot] of this.latest) parts.push(snapshot.map((m) => perWorker(m, worker)));
    return AggregatorRegistry.aggregate(parts).metrics();
  }
}

type Metric = MetricObjectWithValues<MetricValue<string>>;

function isSummed(metric: Metric): boolean {
  // prom-client's typings declare `type` as a numeric enum; at run time it is the exposition's type name.
  const type = metric.type as unknown as string;
  return type === 'counter' || type === 'histogram';
}

/** Sums stay as they are (aggregator forced to `sum`); anything else gets its worker's label. */
function perWorker(metric: Metric, worker: string): Metric {
  if (isSummed(metric)) return { ...metric, aggregator: 'sum' };
  return {
    ...metric,
    // Series are distinct per worker now, so summing each with itself keeps its value whatever the
    // metric's own aggregator was (prom-client's default metrics use `average`, `first`, `omit`...).
    aggregator: 'sum',
    values: metric.values.map((v) => ({ ...v, labels: { ...v.labels, worker } })),
  };
}
