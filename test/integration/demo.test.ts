import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/report.js';
import { chromiumAvailable, launchChromium } from '../helpers/browser.js';
import { runCli } from '../helpers/processes.js';

const haveChromium = chromiumAvailable();

/** The six scenarios the README's results table lists: one per seed, plus the proxy floor. */
const SCENARIOS = ['chat', 'fanout', 'mcp', 'proxy', 'quotes', 'traces'];

// The README's first command, end to end: real emulators, real gateways, no Redis or PostgreSQL.
describe('slipstream demo', () => {
  let dir: string;
  let run: Awaited<ReturnType<typeof runCli>>;
  let report: BenchReport;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-demo-'));
    // Short runs: this proves the demo works end to end, not how fast anything is.
    run = await runCli([
      'demo',
      '--duration',
      '300ms',
      '--html',
      join(dir, 'report.html'),
      '--json',
      join(dir, 'report.json'),
    ]);
    report = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as BenchReport;
  }, 300_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("runs every scenario to completion and prints the before/after table beside the seeds' claims", () => {
    expect(run.code, run.stderr).toBe(0);
    expect(report.results.map((r) => r.scenario).sort()).toEqual(SCENARIOS);
    expect(run.stdout).toContain('Before and after, measured in this run:');
    for (const result of report.results) {
      expect(result.comparisons?.length ?? 0).toBeGreaterThan(0);
      expect(run.stdout).toMatch(new RegExp(`^  ${result.scenario}\\s`, 'm'));
    }
    expect(run.stdout).toMatch(/quotes\s+003\s+1,831 ms -> 31 ms/);
  });

  it.skipIf(!haveChromium)(
    "opens the report offline in Chromium and finds every scenario's chart",
    async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        await page.goto(pathToFileURL(join(dir, 'report.html')).href);
        expect(await page.locator('section[data-scenario]').count()).toBe(SCENARIOS.length);
        for (const result of report.results) {
          const charts = page.locator(`section[data-scenario="${result.scenario}"] svg.chart`);
          expect(await charts.count()).toBe(result.charts?.length ?? 0);
          expect(await charts.count()).toBeGreaterThan(0);
          const box = await charts.first().boundingBox();
          expect(box!.width).toBeGreaterThan(300);
          expect(await charts.first().locator('polyline.series').count()).toBeGreaterThanOrEqual(2);
        }
      } finally {
        await browser.close();
      }
    },
  );
});
