import { describe, expect, it } from 'vitest';
import { LogHistogram } from '../../../src/telemetry/live/log-histogram.js';

describe('LogHistogram', () => {
  it('reads p50 and p99 by nearest rank, at most 5 % above the true value and never below it', () => {
    const h = new LogHistogram();
    // 1..1000 ms: the true p50 is 500 ms, the true p99 990 ms.
    for (let ms = 1; ms <= 1000; ms++) h.record(ms);
    const p = h.percentiles()!;
    expect(p.n).toBe(1000);
    expect(p.p50).toBeGreaterThanOrEqual(500 * 0.9995);
    expect(p.p50).toBeLessThanOrEqual(500 * 1.05);
    expect(p.p99).toBeGreaterThanOrEqual(990 * 0.9995);
    expect(p.p99).toBeLessThanOrEqual(990 * 1.05);
  });

  it('keeps a lone slow outlier out of the median and inside the p99 of a small sample', () => {
    const h = new LogHistogram();
    for (let i = 0; i < 99; i++) h.record(2);
    h.record(4_000);
    const p = h.percentiles()!;
    expect(p.p50).toBeLessThanOrEqual(2.1);
    expect(p.p99).toBeLessThanOrEqual(2.1);
    h.record(4_000);
    expect(h.percentiles()!.p99).toBeGreaterThan(3_800);
  });

  it('puts values beyond its range in its first and last buckets instead of growing', () => {
    const h = new LogHistogram();
    h.record(0);
    h.record(1e-6);
    h.record(1e9);
    const p = h.percentiles()!;
    expect(p.p50).toBeLessThanOrEqual(0.001);
    expect(p.p99).toBeLessThanOrEqual(600_000 * 1.05);
    expect(p.p99).toBeGreaterThanOrEqual(600_000 * 0.9995);
  });

  it('has no percentiles when empty, and none again after a reset', () => {
    const h = new LogHistogram();
    expect(h.percentiles()).toBeUndefined();
    h.record(3);
    expect(h.count).toBe(1);
    h.reset();
    expect(h.count).toBe(0);
    expect(h.percentiles()).toBeUndefined();
  });
});
