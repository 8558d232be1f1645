import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/bench/report.js';
import { chromiumAvailable, launchChromium } from '../helpers/browser.js';
import { call } from '../helpers/gateway.js';
import { runCli } from '../helpers/processes.js';

const haveChromium = chromiumAvailable();

/** The six scenarios the README's results table lists: one per seed, plus the proxy floor. */
const SCENARIOS = ['chat', 'fanout', 'mcp', 'proxy', 'quotes', 'traces'];
/** Resolves once `condition` holds (checked every 200 ms); rejects after `timeoutMs`. */
async function until(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

// The README's first command, end to end: real emulators, real gateways, no Redis or PostgreSQL.
describe('slipstream demo', () => {
  let dir: string;
  let run: Awaited<ReturnType<typeof runCli>>;
  let report: BenchReport;
  /** What a browser on the printed dashboard URL saw while the demo ran. */
  const watched = { url: '', page: 0, feeds: 0 };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-demo-'));
    // Short runs: this proves the demo works end to end, not how fast anything is.
    const running = runCli(
      ['demo', '--duration', '300ms', '--html', join(dir, 'report.html'), '--json', join(dir, 'report.json')],
      {},
      (stdout) => {
        watched.url ||=
          /Live dashboard while the demo runs: (http:\/\/127\.0\.0\.1:\d+\/dashboard)/.exec(stdout)?.[1] ??
          '';
      },
    );
    let browser: Browser | undefined;
    try {
      await until(async () => watched.url !== '', 60_000);
      // Once a scenario's gateway is up, the page loads and stays open while the demo goes on.
      await until(
        () =>
          call(watched.url).then(
            (r) => r.status === 200,
            () => false,
          ),
        120_000,
      );
      watched.page = 200;
      if (haveChromium) {
        browser = await launchChromium();
        const page = await browser.newPage();
        page.on('response', (r) => {
          if (r.url().endsWith('/dashboard/events') && r.status() === 200) watched.feeds++;
        });
        await page.goto(watched.url);
      }
      run = await running;
    } finally {
      await browser?.close();
      run ??= await running;
    }
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

  it('prints the live dashboard URL while it runs, and the page there follows each scenario’s gateway in turn', () => {
    expect(watched.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/dashboard$/);
    expect(run.stdout.indexOf('Live dashboard')).toBeLessThan(run.stdout.indexOf('Before and after'));
    expect(watched.page).toBe(200);
    // One feed per scenario gateway the open page reached: it reconnected after the first one stopped.
    if (haveChromium) expect(watched.feeds).toBeGreaterThanOrEqual(2);
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
