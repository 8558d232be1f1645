// What every benchmark scenario is: a bounded run that measures a baseline and Slipstream together, with targets.
import type { CurvePoint } from './histogram.js';

/** One issue target, checked against a measured value. */
export interface Target {
  name: string;
  value: number;
  limit: number;
  unit: string;
  /** `<=` means the value must not exceed the limit, `>=` that it must reach it. */
  comparison: '<=' | '>=';
  ok: boolean;
}

/** One before/after figure, measured in the same run. */
export interface Comparison {
  /** What was measured, e.g. "3-symbol request p95". */
  metric: string;
  unit: string;
  before: number;
  after: number;
  /** Which way is an improvement: lower (latency, errors) or higher (throughput). */
  better: 'lower' | 'higher';
  /** The figure is a price, not a gain (the gateway's own overhead): shown as the difference, not a ratio. */
  cost?: boolean;
}

/** What the seed's own authors reported, by hand, for the same system. */
export interface SeedClaim {
  /** The seed file's number, e.g. "003". */
  seed: string;
  /** Their figure before and after, as they wrote it. */
  before: string;
  after: string;
  /** What the figures mean. */
  note: string;
}

/** A latency percentile curve per path, drawn in the HTML report. */
export interface Chart {
  title: string;
  series: Array<{ label: string; curve: CurvePoint[] }>;
}

/** The JSON every scenario writes: its own measurements plus the targets they were checked against. */
export interface ScenarioResult {
  scenario: string;
  durationMs: number;
  targets: Target[];
  /** The headline figures, first one first: the demo's table shows it beside the seed's claim. */
  comparisons: Comparison[];
  seed?: SeedClaim;
  charts: Chart[];
}

export interface ScenarioOptions {
  /** Length of each measured run, in ms. */
  durationMs: number;
  /**
   * Port of the scenario's gateway's admin listener (its dashboard), so that one URL shows every scenario
   * in turn (`slipstream demo`). Default: any free port.
   */
  adminPort?: number;
}

/** A benchmark scenario as `slipstream bench` runs it. */
export interface Scenario<R extends ScenarioResult = ScenarioResult> {
  name: string;
  /** One line: what the scenario compares. */
  description: string;
  run(options: ScenarioOptions): Promise<R>;
  /** The terminal summary: a small before/after table and the targets. */
  format(result: R): string;
}

/** Checks `value` (rounded) against a target. */
export function target(
  name: string,
  value: number,
  comparison: '<=' | '>=',
  limit: number,
  unit: string,
): Target {
  const rounded = Math.round(value);
  return {
    name,
    value: rounded,
    limit,
    unit,
    comparison,
    ok: comparison === '<=' ? rounded <= limit : rounded >= limit,
  };
}

/** Formats a table: a header row of column names, then rows whose first cell is the label. */
export function formatTable(
  columns: readonly string[],
  rows: ReadonlyArray<readonly (string | number)[]>,
): string[] {
  const cell = (value: string | number, i: number) =>
    i === 0 ? String(value).padEnd(30) : String(value).padStart(13);
  return [`  ${['', ...columns].map(cell).join('')}`, ...rows.map((row) => `  ${row.map(cell).join('')}`)];
}

/** The targets as PASS / MISS lines. */
export function formatTargets(targets: readonly Target[]): string[] {
  return targets.map(
    (t) => `  ${t.ok ? 'PASS' : 'MISS'}  ${t.name}: ${t.value} ${t.unit} (target ${t.comparison} ${t.limit})`,
  );
}

/** How many times better `after` is than `before` (2.0 = twice as good), whichever way is better. */
export function improvement(c: Comparison): number {
  if (c.better === 'lower') return c.after === 0 ? Infinity : c.before / c.after;
  return c.before === 0 ? Infinity : c.after / c.before;
}
