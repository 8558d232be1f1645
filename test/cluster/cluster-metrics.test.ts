import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ClusterMetrics } from '../../src/cluster/cluster-metrics.js';

/** One worker's registry, shaped like the gateway's: a counter, a histogram and gauges. */
function workerRegistry() {
  const registry = new Registry();
  const registers = [registry];
  const requests = new Counter({ name: 'req_total', help: 'h', labelNames: ['route'] as const, registers });
  const duration = new Histogram({ name: 'dur_seconds', help: 'h', buckets: [0.1, 1], registers });
  const inFlight = new Gauge({ name: 'in_flight', help: 'h', registers });
  // prom-client's own default metrics set aggregators like these on their gauges.
  const lag = new Gauge({ name: 'lag_seconds', help: 'h', aggregator: 'average', registers });
  const version = new Gauge({ name: 'version_info', help: 'h', aggregator: 'omit', registers });
  return { registry, requests, duration, inFlight, lag, version };
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('cluster metrics', () => {
  it('sums counters and histograms over workers and keeps one series per worker for each gauge', async () => {
    const [a, b] = [workerRegistry(), workerRegistry()];
    a.requests.inc({ route: 'emu' }, 3);
    b.requests.inc({ route: 'emu' }, 4);
    a.duration.observe(0.05);
    b.duration.observe(0.5);
    a.inFlight.set(2);
    b.inFlight.set(5);
    a.lag.set(0.01);
    b.lag.set(0.03);
    a.version.set(1);
    b.version.set(1);
    const merged = new ClusterMetrics();
    merged.update('1', await a.registry.getMetricsAsJSON());
    merged.update('2', await b.registry.getMetricsAsJSON());

    const text = await merged.render();
    expect(value(text, 'req_total{route="emu"}')).toBe(7);
    expect(value(text, 'dur_seconds_count')).toBe(2);
    expect(value(text, 'dur_seconds_bucket{le="0.1"}')).toBe(1);
    expect(value(text, 'dur_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(value(text, 'in_flight{worker="1"}')).toBe(2);
    expect(value(text, 'in_flight{worker="2"}')).toBe(5);
    expect(value(text, 'lag_seconds{worker="1"}')).toBe(0.01);
    expect(value(text, 'lag_seconds{worker="2"}')).toBe(0.03);
    expect(value(text, 'version_info{worker="2"}')).toBe(1);
    expect(text).not.toMatch(/^req_total\{[^}]*worker=/m);
  });

  it("never lets a summed counter go down when a worker is replaced, and drops the gone worker's gauges", async () => {
    const merged = new ClusterMetrics();
    const first = workerRegistry();
    const other = workerRegistry();
    first.requests.inc({ route: 'emu' }, 10);
    first.inFlight.set(3);
    other.requests.inc({ route: 'emu' }, 5);
    merged.update('1', await first.registry.getMetricsAsJSON());
    merged.update('2', await other.registry.getMetricsAsJSON());
    expect(value(await merged.render(), 'req_total{route="emu"}')).toBe(15);

    await merged.retire('1');
    const afterExit = await merged.render();
    expect(value(afterExit, 'req_total{route="emu"}')).toBe(15);
    expect(value(afterExit, 'in_flight{worker="1"}')).toBeUndefined();

    const replacement = workerRegistry();
    replacement.requests.inc({ route: 'emu' }, 1);
    merged.update('1', await replacement.registry.getMetricsAsJSON());
    expect(value(await merged.render(), 'req_total{route="emu"}')).toBe(16);

    await merged.retire('1');
    await merged.retire('2');
    expect(value(await merged.render(), 'req_total{route="emu"}')).toBe(16);
  });

  it("appends the supervisor's own metrics as they are", async () => {
    const own = new Registry();
    new Gauge({ name: 'worker_up', help: 'h', labelNames: ['worker'] as const, registers: [own] }).set(
      { worker: '1' },
      1,
    );
    const text = await new ClusterMetrics().render(await own.getMetricsAsJSON());
    expect(value(text, 'worker_up{worker="1"}')).toBe(1);
  });
});
