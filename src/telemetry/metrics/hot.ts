// Counters and histograms for the per-request and per-chunk paths: a label set is bound once, an update hashes nothing.
import type { Registry } from 'prom-client';

/** One label set of a `HotCounter`. */
export interface CounterCell {
  inc(by?: number): void;
}

/** One label set of a `HotHistogram`. */
export interface HistogramCell {
  observe(value: number): void;
}

interface HotOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
  registers: readonly Registry[];
}

/**
 * One exposed value, as prom-client's registry reads it: `labels` first, then `sharedLabels` (the label set,
 * one object per cell, whose formatted text the registry caches), in the text exposition.
 */
interface Exposed {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName?: string;
  /** Always null: no exemplars (prom-client writes the key on its buckets too). */
  exemplar?: null;
}

interface Snapshot {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: Exposed[];
}

/**
 * A metric that prom-client's registry exposes like its own (same text, same JSON, summed across workers),
 * whose label sets are cells bound once. prom-client's bound children (`labels(...)`) still hash their
 * label object on every `inc` / `observe`: on the proxy path that was 10 us of the 80 us Slipstream adds
 * to a request over the bare Node proxy, and it runs for every streamed LLM chunk too (bench/RESULTS.md,
 * 2026-12-01 evening). `test/telemetry/metrics/hot.test.ts` checks the exposition against prom-client's.
 */
abstract class HotMetric<Cell> {
  abstract readonly type: 'counter' | 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly labelNames: readonly string[];
  private readonly cells = new Map<string, { labels: Record<string, string>; cell: Cell }>();

  constructor(options: HotOptions) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames;
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  /** The cell of one label set, values in `labelNames` order: bind it once, update it many times. */
  labels(...values: string[]): Cell {
    const key = values.join('\0');
    let entry = this.cells.get(key);
    if (entry === undefined) {
      if (values.length !== this.labelNames.length) {
        throw new Error(`${this.name} has labels ${this.labelNames.join(', ')}; got ${values.length} values`);
      }
      const labels = Object.fromEntries(this.labelNames.map((name, at) => [name, values[at]!]));
      entry = { labels, cell: this.newCell() };
      this.cells.set(key, entry);
    }
    return entry.cell;
  }

  /** Forgets one label set (a departed fan-out member's); a cell still bound to it counts unseen. */
  remove(...values: string[]): void {
    this.cells.delete(values.join('\0'));
  }

  /** Every cell back to zero; label sets and bound cells stay valid. */
  reset(): void {
    for (const { cell } of this.cells.values()) this.zero(cell);
  }

  /** The text exposition's view (`Registry.metrics()`). */
  getForPromString(): Promise<Snapshot> {
    const values: Exposed[] = [];
    for (const { labels, cell } of this.cells.values()) this.expose(labels, cell, values);
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    });
  }

  /** The JSON view (`Registry.getMetricsAsJSON()`, worker aggregation): each value's labels in one object. */
  async get(): Promise<Snapshot> {
    const snapshot = await this.getForPromString();
    snapshot.values = snapshot.values.map(({ labels, sharedLabels, ...rest }) => ({
      ...rest,
      labels: { ...labels, ...sharedLabels },
    }));
    return snapshot;
  }

  protected abstract newCell(): Cell;
  protected abstract zero(cell: Cell): void;
  protected abstract expose(labels: Record<string, string>, cell: Cell, into: Exposed[]): void;
}

class Count implements CounterCell {
  value = 0;

  inc(by = 1): void {
    this.value += by;
  }
}

/** A counter (`slipstream_requests_total`...) with bound label sets. */
export class HotCounter extends HotMetric<CounterCell> {
  readonly type = 'counter';

  protected newCell(): Count {
    return new Count();
  }

  protected zero(cell: CounterCell): void {
    (cell as Count).value = 0;
  }

  protected expose(labels: Record<string, string>, cell: CounterCell, into: Exposed[]): void {
    into.push({ labels, value: (cell as Count).value });
  }
}

class Buckets implements HistogramCell {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

/** A histogram (cumulative `le` buckets, `_sum`, `_count`, as prom-client writes them) with bound label sets. */
export class HotHistogram extends HotMetric<HistogramCell> {
  readonly type = 'histogram';
  private readonly buckets: readonly number[];

  constructor(options: HotOptions & { buckets: readonly number[] }) {
    super(options);
    this.buckets = [...options.buckets].sort((a, b) => a - b);
  }

  protected newCell(): Buckets {
    return new Buckets(this.buckets);
  }

  protected zero(cell: HistogramCell): void {
    const b = cell as Buckets;
    b.counts.fill(0);
    b.sum = 0;
    b.count = 0;
  }

  protected expose(labels: Record<string, string>, cell: HistogramCell, into: Exposed[]): void {
    const b = cell as Buckets;
    const bucket = `${this.name}_bucket`;
    let cumulative = 0;
    const sharedLabels = labels;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += b.counts[i]!;
      const le = this.buckets[i]!;
      into.push({ labels: { le }, sharedLabels, value: cumulative, metricName: bucket, exemplar: null });
    }
    into.push({ labels: { le: '+Inf' }, sharedLabels, value: b.count, metricName: bucket, exemplar: null });
    into.push({ labels: {}, sharedLabels, value: b.sum, metricName: `${this.name}_sum` });
    into.push({ labels: {}, sharedLabels, value: b.count, metricName: `${this.name}_count` });
  }
}
