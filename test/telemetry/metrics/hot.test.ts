import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../../../src/telemetry/metrics/hot.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const OBSERVED: Array<[string, string, number]> = [
  ['a', '200', 0.0004],
  ['a', '200', 0.05],
  ['a', '500', 2],
  ['b', '200', 0.01],
  ['a', '200', 0.001],
];

/** The same metrics twice: prom-client's own, and the hot ones, each in a registry of its own. */
function both() {
  const theirs = new Registry();
  const ours = new Registry();
  const options = (registry: Registry) => ({
    help: 'h',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  });
  return {
    theirs,
    ours,
    counters: [
      new Counter({ name: 'x_requests_total', ...options(theirs) }),
      new HotCounter({ name: 'x_requests_total', ...options(ours) }),
    ] as const,
    histograms: [
      new Histogram({ name: 'x_duration_seconds', buckets: BUCKETS, ...options(theirs) }),
      new HotHistogram({ name: 'x_duration_seconds', buckets: BUCKETS, ...options(ours) }),
    ] as const,
  };
}

function record(m: ReturnType<typeof both>): void {
  for (const [route, status, seconds] of OBSERVED) {
    m.counters[0].labels(route, status).inc();
    m.counters[1].labels(route, status).inc();
    m.histograms[0].labels(route, status).observe(seconds);
    m.histograms[1].labels(route, status).observe(seconds);
  }
}

describe('hot metrics', () => {
  it("expose exactly what prom-client's counter and histogram expose, as text and as JSON", async () => {
    const m = both();
    record(m);
    expect(await m.ours.metrics()).toBe(await m.theirs.metrics());
    expect(await m.ours.getMetricsAsJSON()).toEqual(await m.theirs.getMetricsAsJSON());
  });

  it('expose the same OpenMetrics text (counters named with _total there)', async () => {
    const m = both();
    // (prom-client's typings fix a registry's content type at construction; switching it is allowed at run time.)
    m.theirs.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as never);
    m.ours.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as never);
    record(m);
    expect(await m.ours.metrics()).toBe(await m.theirs.metrics());
  });

  it("sum across workers as prom-client's do (cluster aggregation)", async () => {
    const [a, b] = [both(), both()];
    record(a);
    record(b);
    const merged = async (registries: Registry[]) =>
      AggregatorRegistry.aggregate(await Promise.all(registries.map((r) => r.getMetricsAsJSON()))).metrics();
    expect(await merged([a.ours, b.ours])).toBe(await merged([a.theirs, b.theirs]));
  });

  it('keep a bound cell valid across reset, and forget a removed label set', async () => {
    const m = both();
    const cell = m.counters[1].labels('a', '200');
    cell.inc(3);
    m.counters[1].reset();
    cell.inc();
    m.counters[1].labels('b', '500').inc();
    m.counters[1].remove('b', '500');
    const [counter] = (await m.ours.getMetricsAsJSON()).filter((x) => x.name === 'x_requests_total');
    expect(counter!.values).toEqual([{ labels: { route: 'a', status: '200' }, value: 1 }]);
  });

  it('refuse a label set of the wrong size', () => {
    expect(() => both().counters[1].labels('a')).toThrow(/has labels route, status/);
  });
});
