// The benchmark report: one self-contained HTML file (inline CSS and SVG, no script, no network) and the summary table.
import type { CurvePoint } from './histogram.js';
import { improvement } from './scenario.js';
import type { Chart, Comparison, ScenarioResult } from './scenario.js';

/** What `bench` and `demo` write as JSON and render as HTML. */
export interface BenchReport {
  date: string;
  node: string;
  /** Git commit of the measured code, when known. */
  commit?: string;
  durationMs: number;
  results: ScenarioResult[];
}

/** The before/after table every run ends with: per scenario, the seed's claim beside the measured figures. */
export function formatSummary(results: readonly ScenarioResult[]): string {
  const rows = results.flatMap((r) => {
    const c = r.comparisons?.[0];
    if (c === undefined) return [];
    const seed = r.seed === undefined ? '-' : `${r.seed.before} -> ${r.seed.after}`;
    return [
      [
        r.scenario,
        r.seed?.seed ?? '-',
        seed,
        c.metric,
        `${figure(c.before, c.unit)} -> ${figure(c.after, c.unit)}`,
        ratio(c),
      ],
    ];
  });
  const headers = ['scenario', 'seed', "seed's own claim", 'measured here', 'before -> after', 'better'];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    `  ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')}`;
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Renders the report as one HTML document that opens offline in any browser. */
export function renderHtmlReport(report: BenchReport): string {
  const sections = report.results.map(renderScenario).join('\n');
  const summaryRows = report.results
    .flatMap((r) =>
      (r.comparisons ?? []).map(
        (c, i) => `<tr>${i === 0 ? `<th rowspan="${r.comparisons.length}">${esc(r.scenario)}</th>` : ''}
<td>${i === 0 && r.seed !== undefined ? `${esc(r.seed.before)} &rarr; ${esc(r.seed.after)}<br><small>seed ${esc(r.seed.seed)}: ${esc(r.seed.note)}</small>` : ''}</td>
<td>${esc(c.metric)}</td><td class="n">${esc(figure(c.before, c.unit))}</td><td class="n">${esc(figure(c.after, c.unit))}</td><td class="n">${esc(ratio(c))}</td></tr>`,
      ),
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Slipstream benchmark report</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d2433; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #d8dde6; }
table { border-collapse: collapse; margin: .8rem 0; width: 100%; }
th, td { border: 1px solid #d8dde6; padding: .35rem .55rem; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
small, .meta { color: #5b6478; } .pass { color: #146c2e; } .miss { color: #b3261e; }
.charts { display: flex; flex-wrap: wrap; gap: 1.2rem; } figure { margin: 0; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
</style>
</head>
<body>
<h1>Slipstream: before and after</h1>
<p class="meta">${esc(report.date)} &middot; Node ${esc(report.node)}${report.commit === undefined ? '' : ` &middot; commit ${esc(report.commit)}`} &middot; each scenario measures its baseline and Slipstream in the same run, on loopback.</p>
<table id="summary">
<thead><tr><th>scenario</th><th>the seed's own claim</th><th>measured</th><th>before</th><th>after</th><th>better</th></tr></thead>
<tbody>
${summaryRows}
</tbody>
</table>
${sections}
</body>
</html>
`;
}

function renderScenario(result: ScenarioResult): string {
  const charts = (result.charts ?? [])
    .map((chart, i) => renderChart(chart, `${result.scenario}-${i}`))
    .join('\n');
  const targets = result.targets
    .map(
      (t) =>
        `<li class="${t.ok ? 'pass' : 'miss'}">${t.ok ? 'PASS' : 'MISS'} ${esc(t.name)}: ${esc(String(t.value))} ${esc(t.unit)} (target ${esc(t.comparison)} ${esc(String(t.limit))})</li>`,
    )
    .join('\n');
  return `<section id="scenario-${esc(result.scenario)}" data-scenario="${esc(result.scenario)}">
<h2>${esc(result.scenario)}</h2>
<div class="charts">
${charts}
</div>
<ul class="targets">
${targets}
</ul>
</section>`;
}

const COLORS = ['#b3261e', '#1f6feb', '#146c2e', '#8250df', '#bf8700'];
const WIDTH = 520;
const HEIGHT = 300;
const PAD = { left: 62, right: 26, top: 26, bottom: 40 };
/** Percentile ticks on the x axis; the axis spreads the tail (x = log10(1 / (1 - p))). */
const X_TICKS = [0, 50, 90, 99, 99.9, 99.99];

/** A percentile curve chart: x is the percentile (tail stretched), y the latency on a log scale. */
function renderChart(chart: Chart, id: string): string {
  const points = chart.series.flatMap((s) => s.curve.map((p) => p.us)).filter((us) => us > 0);
  if (points.length === 0) {
    return `<figure><svg id="chart-${esc(id)}" class="chart empty" role="img" aria-label="${esc(chart.title)}" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" xmlns="http://www.w3.org/2000/svg"><text x="${WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(chart.title)}</text><text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle">no samples in this run</text></svg></figure>`;
  }
  const minUs = Math.max(1, Math.min(...points));
  const maxUs = Math.max(...points);
  const lo = Math.floor(Math.log10(minUs));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(maxUs)));
  const xMax = tailX(99.99);
  const x = (percentile: number) => PAD.left + (tailX(percentile) / xMax) * (WIDTH - PAD.left - PAD.right);
  const y = (us: number) =>
    HEIGHT - PAD.bottom - ((Math.log10(Math.max(us, 1)) - lo) / (hi - lo)) * (HEIGHT - PAD.top - PAD.bottom);
  const yTicks = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  const grid = [
    ...yTicks.map(
      (us) =>
        `<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(us)}" y2="${y(us)}" stroke="#e3e7ee"/><text x="${PAD.left - 6}" y="${y(us) + 4}" text-anchor="end">${esc(latencyLabel(us))}</text>`,
    ),
    ...X_TICKS.map(
      (p) =>
        `<line x1="${x(p)}" x2="${x(p)}" y1="${PAD.top}" y2="${HEIGHT - PAD.bottom}" stroke="#e3e7ee"/><text x="${x(p)}" y="${HEIGHT - PAD.bottom + 15}" text-anchor="middle">p${p}</text>`,
    ),
  ].join('');
  const lines = chart.series
    .map((s, i) => {
      const path = s.curve
        .filter((p) => p.percentile <= 99.99)
        .map((p: CurvePoint) => `${x(p.percentile).toFixed(1)},${y(p.us).toFixed(1)}`)
        .join(' ');
      return `<polyline class="series" data-label="${esc(s.label)}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="2" points="${path}"/>`;
    })
    .join('');
  const legend = chart.series
    .map(
      (s, i) =>
        `<rect x="${PAD.left + 8}" y="${PAD.top + 6 + i * 15}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${PAD.left + 22}" y="${PAD.top + 15 + i * 15}">${esc(s.label)}</text>`,
    )
    .join('');
  return `<figure>
<svg id="chart-${esc(id)}" class="chart" role="img" aria-label="${esc(chart.title)}" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" xmlns="http://www.w3.org/2000/svg">
<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(chart.title)}</text>
${grid}${lines}${legend}
<text x="${(WIDTH + PAD.left) / 2}" y="${HEIGHT - 6}" text-anchor="middle">percentile (latency, log scale)</text>
</svg>
</figure>`;
}

function tailX(percentile: number): number {
  return Math.log10(1 / Math.max(1e-4, 1 - percentile / 100));
}

function latencyLabel(us: number): string {
  if (us >= 1_000_000) return `${us / 1_000_000} s`;
  if (us >= 1_000) return `${us / 1_000} ms`;
  return `${us} us`;
}

/** A figure with its unit, rounded for reading. */
function figure(value: number, unit: string): string {
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toLocaleString('en-US', { maximumFractionDigits: digits })} ${unit}`;
}

function ratio(c: Comparison): string {
  if (c.cost === true) {
    const added = c.after - c.before;
    return `${added >= 0 ? '+' : ''}${figure(added, c.unit)}`;
  }
  const x = improvement(c);
  if (!Number.isFinite(x)) return 'all';
  return x >= 10 ? `${Math.round(x)}x` : `${x.toFixed(1)}x`;
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
