import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latencyHistogram } from '../../src/bench/histogram.js';
import { formatSummary, renderHtmlReport } from '../../src/bench/report.js';
import type { BenchReport } from '../../src/bench/report.js';
import type { ScenarioResult } from '../../src/bench/scenario.js';
import { chromiumAvailable, launchChromium } from '../helpers/browser.js';

const haveChromium = chromiumAvailable();

/** A percentile curve from a real HDR histogram of `samples` latencies around `centerUs`. */
function curve(centerUs: number) {
  const histogram = latencyHistogram();
  for (let i = 1; i <= 1000; i++) histogram.record(centerUs * (0.5 + (i / 1000) ** 4 * 3));
  return histogram.percentiles();
}

function result(name: string, seed: string | undefined, beforeMs: number, afterMs: number): ScenarioResult {
  return {
    scenario: name,
    durationMs: 1000,
    targets: [
      { name: `${name} p95`, value: afterMs, limit: 5, unit: 'ms', comparison: '<=', ok: afterMs <= 5 },
    ],
    comparisons: [{ metric: `${name} p95`, unit: 'ms', before: beforeMs, after: afterMs, better: 'lower' }],
    ...(seed === undefined
      ? {}
      : { seed: { seed, before: '1,831 ms', after: '31 ms', note: 'by hand <script>' } }),
    charts: [
      {
        title: `${name} latency`,
        series: [
          { label: 'before', curve: curve(beforeMs * 1000) },
          { label: 'after', curve: curve(afterMs * 1000) },
        ],
      },
    ],
  };
}

const REPORT: BenchReport = {
  date: '2026-11-23T00:00:00.000Z',
  node: 'v20.20.2',
  commit: 'abc1234',
  durationMs: 1000,
  results: [
    result('quotes', '003', 150, 1.2),
    result('traces', '002', 230, 0.6),
    result('proxy', undefined, 0.1, 0.3),
  ],
};

describe('benchmark report', () => {
  it("puts each scenario's headline beside the seed's own claim in the terminal summary", () => {
    const lines = formatSummary(REPORT.results).split('\n');
    expect(lines[0]).toMatch(/scenario\s+seed\s+seed's own claim\s+measured here\s+before -> after\s+better/);
    expect(lines.find((l) => l.includes('quotes'))).toMatch(
      /003\s+1,831 ms -> 31 ms\s+quotes p95\s+150 ms -> 1.2 ms\s+125x/,
    );
    expect(lines.find((l) => l.includes('proxy'))).toMatch(/0.1 ms -> 0.3 ms\s+0.3x/);
  });

  it('escapes text from results so a label can never inject markup', () => {
    const html = renderHtmlReport(REPORT);
    expect(html).not.toContain('<script>');
    expect(html).toContain('by hand &#60;script&#62;');
  });
});

describe.skipIf(!haveChromium)('benchmark report in headless Chromium', () => {
  let dir: string;
  let file: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-report-'));
    file = join(dir, 'report.html');
    await writeFile(file, renderHtmlReport(REPORT));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("renders every scenario's chart with one curve per path, offline", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on('request', (request) => requests.push(request.url()));
      await page.goto(pathToFileURL(file).href);
      for (const scenario of ['quotes', 'traces', 'proxy']) {
        const chart = page.locator(`section[data-scenario="${scenario}"] svg.chart`);
        expect(await chart.count()).toBe(1);
        const box = await chart.boundingBox();
        expect(box!.width).toBeGreaterThan(300);
        expect(box!.height).toBeGreaterThan(200);
        const lines = chart.locator('polyline.series');
        expect(await lines.count()).toBe(2);
        for (let i = 0; i < 2; i++) {
          const points = (await lines.nth(i).getAttribute('points'))!.split(' ');
          expect(points.length).toBeGreaterThanOrEqual(10);
          expect(points.every((p) => /^\d+(\.\d+)?,\d+(\.\d+)?$/.test(p))).toBe(true);
        }
      }
      expect(await page.locator('#summary tbody tr').count()).toBe(3);
      await page.screenshot({ path: join(dir, 'report.png'), fullPage: true });
      expect(requests.filter((url) => !url.startsWith('file:'))).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
