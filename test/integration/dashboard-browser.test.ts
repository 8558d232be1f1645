import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool, request } from 'undici';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpEmulator } from '../../emulators/http-upstream.js';
import type { RunningEmulator } from '../../emulators/http-upstream.js';
import { startLlmEmulator } from '../../emulators/llm.js';
import type { RunningLlmEmulator } from '../../emulators/llm.js';
import { startQuotesEmulator } from '../../emulators/quotes.js';
import type { RunningJsonServer } from '../../emulators/json-server.js';
import { startSpecialists } from '../../emulators/specialists.js';
import type { RunningSpecialists } from '../../emulators/specialists.js';
import { events } from '../../src/telemetry/events.js';
import { chromiumAvailable, launchChromium } from '../helpers/browser.js';
import { call, emulatorServer, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { delta, parseMetrics, quantileBounds, sum } from '../helpers/prometheus.js';
import type { Sample } from '../helpers/prometheus.js';
import { freePort } from '../helpers/services.js';

const haveChromium = chromiumAvailable();
/** `SLIPSTREAM_WRITE_SCREENSHOT=1` writes the README's screenshot; otherwise it goes to a temporary folder. */
const README_SCREENSHOT = fileURLToPath(new URL('../../docs/dashboard.png', import.meta.url));

/** Every table of the page, read in one go (one frame's rendering): rows by their data attributes, cells by key. */
type Tables = Record<
  string,
  Array<{ data: Record<string, string>; cells: Record<string, string | undefined> }>
>;

async function readTables(page: Page): Promise<Tables> {
  return page.evaluate(() => {
    // Runs in the page (the test's tsconfig has no DOM types).
    const doc = (globalThis as any).document;
    const tables: Record<string, unknown[]> = {};
    for (const table of doc.querySelectorAll('table[id]')) {
      tables[table.id] = [...table.querySelectorAll('tbody tr:not(.empty)')].map((tr: any) => ({
        data: { ...tr.dataset },
        cells: Object.fromEntries(
          [...tr.querySelectorAll('td')].map((td: any) => [td.dataset.k, td.dataset.v]),
        ),
      }));
    }
    return tables as Tables;
  });
}

/** The cell `key` of the row of `table` whose data attributes include `where`, as a number. */
function cell(tables: Tables, table: string, where: Record<string, string>, key: string): number {
  const row = tables[table]?.find((r) => Object.entries(where).every(([k, v]) => r.data[k] === v));
  if (row === undefined) throw new Error(`no row ${JSON.stringify(where)} in #${table}`);
  return Number(row.cells[key]);
}

const frames = (page: Page) => page.locator('#frames').getAttribute('data-v').then(Number);

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  call(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

// The dashboard, end to end: a real gateway in front of real emulators (HTTP, quotes, an MCP stdio pool, an
// LLM, specialists), a small bounded load, and Chromium reading the page; every panel against /metrics.
describe.skipIf(!haveChromium)('the live dashboard in Chromium', () => {
  let api: RunningEmulator;
  let slow: RunningEmulator;
  let quotes: RunningJsonServer;
  let llm: RunningLlmEmulator;
  let team: RunningSpecialists;
  let gw: RunningGateway;
  let browser: Browser;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'slipstream-dashboard-'));
    api = await startHttpEmulator({ latency: '2ms' });
    slow = await startHttpEmulator({ latency: '600ms' });
    quotes = await startQuotesEmulator({ latency: '20ms' });
    llm = await startLlmEmulator({ tokens: 8, gap: '2ms' });
    team = await startSpecialists({ members: 3, latency: '5ms', hung: 1 });
    const down = `http://127.0.0.1:${await freePort()}`;
    gw = await startGateway(`
upstreams:
  api: { url: "${api.url}" }
  slow: { url: "${slow.url}" }
  down: { url: "${down}", pool: { warm: 0 } }
  quotes: { url: "${quotes.url}" }
routes:
  - { name: api, match: { prefix: /api }, upstream: api }
  - name: cached
    match: { prefix: /cached }
    upstream: api
    cache: { ttl: 1s, staleWhileRevalidate: 30s, scope: shared }
  - { name: together, match: { prefix: /together }, upstream: slow, coalesce: true }
  - name: narrow
    match: { prefix: /narrow }
    upstream: slow
    bulkhead: { maxConcurrent: 1, queue: 0 }
  - name: broken
    match: { prefix: /broken }
    upstream: down
    retry: { attempts: 1 }
    breaker: { threshold: 2, halfOpenAfter: 10m }
  - name: quote
    match: { prefix: /quote }
    upstream: quotes
    batch: { item: /quote/:symbol, bulk: { path: "/quotes?symbols={ids}" }, items: quotes, key: symbol, window: 20ms }
mcp:
  servers:
    tools: ${emulatorServer({ pool: '{ min: 2, max: 2 }' })}
llm:
  providers:
    llm: { baseUrl: "${llm.url}/v1", models: { m: emu-small } }
  transcripts:
    store: sqlite
    sqlite: { path: "${join(dir, 'transcripts.db')}" }
    interval: 50ms
groups:
  team:
    members: [${team.members.map((m) => `{ name: ${m.name}, url: "${m.url}" }`).join(', ')}]
    memberTimeout: 300ms
    breaker: { threshold: 1, halfOpenAfter: 10m }
`);
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close();
    await Promise.all([api?.close(), slow?.close(), quotes?.close(), llm?.close(), team?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('shows live per-route, cache, resilience, MCP, LLM and fan-out panels that match /metrics, fetching nothing else', async () => {
    const metrics = async () => parseMetrics(String((await call(`${gw.adminUrl}/metrics`)).body));
    const requested: string[] = [];
    const problems: string[] = [];
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('request', (r) => requested.push(r.url()));
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    page.on('pageerror', (e) => problems.push(e.message));

    // Nothing runs between this scrape and the page's first frame, so what the page counts is the delta.
    const before = await metrics();
    await page.goto(`${gw.adminUrl}/dashboard`);
    await expect
      .poll(() => page.locator('#status').getAttribute('data-state'), { timeout: 20_000 })
      .toBe('live');

    // ---- a small bounded load
    for (let i = 0; i < 30; i++) expect((await call(`${gw.url}/api/items/${i % 3}`)).status).toBe(200);
    const cached = [await call(`${gw.url}/cached/a`), await call(`${gw.url}/cached/a`)];
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // past the 1 s TTL: served stale
    cached.push(await call(`${gw.url}/cached/a`));
    expect(cached.map((r) => r.headers['x-slipstream-cache'])).toEqual(['miss', 'hit', 'stale']);
    // Five identical calls at once to a 600 ms upstream: one goes upstream, four wait for it. The
    // connections are opened first, so the calls leave together.
    const pool = new Pool(gw.url, { connections: 8 });
    const at = (path: string) =>
      pool.request({ path, method: 'GET' }).then(async (r) => (await r.body.dump(), r.statusCode));
    await Promise.all(Array.from({ length: 8 }, () => at('/__warm')));
    expect(await Promise.all(Array.from({ length: 5 }, () => at('/together/x')))).toEqual([
      200, 200, 200, 200, 200,
    ]);
    // One slot, no queue: of four at once, three are turned away.
    expect((await Promise.all(Array.from({ length: 4 }, () => at('/narrow/x')))).sort()).toEqual([
      200, 503, 503, 503,
    ]);
    // Six single quotes at once go upstream as bulk calls.
    expect(await Promise.all(['A', 'B', 'C', 'D', 'E', 'F'].map((s) => at(`/quote/${s}`)))).toEqual([
      200, 200, 200, 200, 200, 200,
    ]);
    await pool.close();
    // A dead upstream: two failures open the breaker, the third call fails fast.
    for (let i = 0; i < 3; i++) await call(`${gw.url}/broken/x`);
    for (let i = 0; i < 4; i++) {
      expect((await post(`${gw.url}/tools/tools/echo`, { text: `hi ${i}` })).status).toBe(200);
    }
    expect((await post(`${gw.url}/tools/tools/crash`, {})).status).toBe(502);
    const initialize = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    };
    for (let i = 0; i < 2; i++) {
      const opened = await post(`${gw.url}/mcp`, initialize, {
        accept: 'application/json, text/event-stream',
      });
      expect(opened.headers['mcp-session-id']).toEqual(expect.any(String));
    }
    for (let i = 0; i < 5; i++) {
      const reply = await post(
        `${gw.url}/v1/chat/completions`,
        { model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] },
        { 'x-slipstream-session': `s-${i}` },
      );
      expect(reply.status).toBe(200);
    }
    for (let i = 0; i < 2; i++)
      expect((await post(`${gw.url}/fanout/team`, { message: 'standup' })).status).toBe(200);
    // Rate limits are the lead's policy in another branch; until it lands, publish exactly what it will.
    events.rateLimitReject.publish({ route: 'api', scope: 'principal', principal: sha256('alice') });
    events.rateLimitReject.publish({ route: 'api', scope: 'principal', principal: sha256('alice') });
    events.rateLimitReject.publish({ route: 'api', scope: 'ip' });

    // ---- held open while the page looks: two slow streams and one slow tool call
    const slowStream = () =>
      request(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-emulate-tokens': '20', 'x-emulate-gap': '300ms' },
        body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'slow' }] }),
      }).then((r) => r.body.text());
    const held = [slowStream(), slowStream(), post(`${gw.url}/tools/tools/sleep`, { ms: 5_000 })];
    await expect
      .poll(
        async () => {
          const t = await readTables(page);
          return [
            cell(t, 'llm-providers', { provider: 'llm' }, 'openStreams'),
            cell(t, 'mcp-servers', { server: 'tools' }, 'inFlight'),
          ];
        },
        { timeout: 20_000 },
      )
      .toEqual([2, 1]);
    // The screenshot for people to look at (the README's, with SLIPSTREAM_WRITE_SCREENSHOT=1), while busy.
    const shot =
      process.env.SLIPSTREAM_WRITE_SCREENSHOT === '1' ? README_SCREENSHOT : join(dir, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    const png = await readFile(shot);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(20_000);
    const running = await metrics();
    expect(sum(running, 'slipstream_upstream_connections', { upstream: 'llm', state: 'running' })).toBe(2);
    await Promise.all(held);

    // ---- quiet now: two more frames, then the page and /metrics must agree
    const seen = await frames(page);
    await expect.poll(() => frames(page), { timeout: 20_000 }).toBeGreaterThanOrEqual(seen + 2);
    const t = await readTables(page);
    const after: Sample[] = await metrics();
    const d = (name: string, where: Record<string, string> = {}) => delta(before, after, name, where);

    // Traffic: requests per route, errors by code (as the statuses /metrics counts them), latency.
    for (const route of [
      'api',
      'cached',
      'together',
      'narrow',
      'broken',
      'quote',
      'mcp:tools__echo',
      'chat',
      'fanout:team',
    ]) {
      expect(cell(t, 'routes', { route }, 'requests'), route).toBe(d('slipstream_requests_total', { route }));
      expect(cell(t, 'routes', { route }, 'requests'), route).toBeGreaterThan(0);
    }
    expect(cell(t, 'routes', { route: 'api' }, 'requests')).toBe(30);
    expect(cell(t, 'errors', { route: 'broken', code: 'GW_UPSTREAM_UNAVAILABLE' }, 'count')).toBe(
      d('slipstream_requests_total', { route: 'broken', status: '502' }),
    );
    expect(cell(t, 'errors', { route: 'broken', code: 'GW_BREAKER_OPEN' }, 'count')).toBe(
      d('slipstream_requests_total', { route: 'broken', status: '503' }),
    );
    expect(cell(t, 'errors', { route: 'narrow', code: 'GW_BULKHEAD_FULL' }, 'count')).toBe(3);
    expect(d('slipstream_requests_total', { route: 'narrow', status: '503' })).toBe(3);
    for (const [route, q, key] of [
      ['api', 0.5, 'p50'],
      ['api', 0.99, 'p99'],
      ['together', 0.5, 'p50'],
    ] as const) {
      const shown = cell(t, 'routes', { route }, key);
      const bounds = quantileBounds(before, after, 'slipstream_request_duration_seconds', { route }, q);
      expect(shown, `${route} ${key}`).toBeGreaterThan(bounds.lowerMs);
      expect(shown, `${route} ${key}`).toBeLessThanOrEqual(bounds.upperMs * 1.05);
    }

    // Cache, coalescing, batching.
    for (const result of ['hit', 'stale', 'miss']) {
      expect(cell(t, 'cache-routes', { route: 'cached' }, result), result).toBe(
        d('slipstream_cache_requests_total', { route: 'cached', result }),
      );
    }
    expect(cell(t, 'cache-routes', { route: 'cached' }, 'stale')).toBeGreaterThanOrEqual(1);
    expect(cell(t, 'cache-routes', { route: 'together' }, 'coalesced')).toBe(
      d('slipstream_coalesced_waiters_total', { route: 'together' }),
    );
    expect(cell(t, 'cache-routes', { route: 'together' }, 'coalesced')).toBe(4);
    expect(cell(t, 'cache-routes', { route: 'quote' }, 'batchedCalls')).toBe(
      d('slipstream_batched_calls_total', { route: 'quote' }),
    );
    expect(cell(t, 'cache-routes', { route: 'quote' }, 'bulkCalls')).toBe(
      d('slipstream_batch_items_count', { route: 'quote' }),
    );

    // Breakers (state, time in state), bulkhead and rate-limit rejections.
    const hung = team.members.at(-1)!.name;
    for (const name of ['broken', `fanout:team/${hung}`]) {
      const row = t.breakers!.find((r) => r.data.name === name)!;
      expect(row.cells.state, name).toBe('open');
      expect(sum(after, 'slipstream_breaker_state', { name })).toBe(1);
      expect(Number(row.cells.transitions)).toBe(
        sum(after, 'slipstream_breaker_transitions_total', { name }),
      );
    }
    const openFor = cell(t, 'breakers', { name: 'broken' }, 'for');
    await expect
      .poll(async () => cell(await readTables(page), 'breakers', { name: 'broken' }, 'for'))
      .toBeGreaterThan(openFor);
    expect(cell(t, 'bulkheads', { route: 'narrow' }, 'queueFull')).toBe(
      d('slipstream_bulkhead_rejections_total', { route: 'narrow', reason: 'queue-full' }),
    );
    expect(cell(t, 'rate-limits', { route: 'api' }, 'principal')).toBe(2);
    expect(cell(t, 'rate-limits', { route: 'api' }, 'ip')).toBe(1);
    expect(cell(t, 'rate-limited', { principal: sha256('alice').slice(0, 12) }, 'rejections')).toBe(2);

    // MCP: the pool (processes back to two after the crash), its restarts and why, the sessions.
    const started = sum(after, 'slipstream_mcp_processes_total', { server: 'tools', event: 'started' });
    const exited = sum(after, 'slipstream_mcp_processes_total', { server: 'tools', event: 'exited' });
    expect(cell(t, 'mcp-servers', { server: 'tools' }, 'processes')).toBe(started - exited);
    expect(cell(t, 'mcp-servers', { server: 'tools' }, 'restarts')).toBe(exited);
    expect(exited).toBe(1);
    expect(t['mcp-servers']![0]!.cells.lastExit).toMatch(/^exited unexpectedly after \d+\.\d s$/);
    expect(cell(t, 'mcp-servers', { server: 'tools' }, 'inFlight')).toBe(0);
    expect(cell(t, 'mcp-sessions', { era: '2025 (sessions)' }, 'sessions')).toBe(2);

    // LLM: streams, chunks, time to first byte, the transcript writer.
    expect(cell(t, 'llm-providers', { provider: 'llm' }, 'complete')).toBe(
      d('slipstream_llm_streams_total', { provider: 'llm', outcome: 'complete' }),
    );
    expect(cell(t, 'llm-providers', { provider: 'llm' }, 'complete')).toBe(7);
    expect(cell(t, 'llm-providers', { provider: 'llm' }, 'chunks')).toBe(
      d('slipstream_llm_chunks_total', { provider: 'llm' }),
    );
    expect(cell(t, 'llm-providers', { provider: 'llm' }, 'openStreams')).toBe(0);
    const ttfb = quantileBounds(before, after, 'slipstream_llm_first_byte_seconds', { provider: 'llm' }, 0.5);
    expect(cell(t, 'llm-providers', { provider: 'llm' }, 'ttfbP50')).toBeGreaterThan(ttfb.lowerMs);
    expect(cell(t, 'llm-providers', { provider: 'llm' }, 'ttfbP50')).toBeLessThanOrEqual(ttfb.upperMs * 1.05);
    const transcripts = t.transcripts![0]!.cells;
    expect(Number(transcripts.rowsWritten)).toBe(sum(after, 'slipstream_transcript_rows_written_total'));
    expect(Number(transcripts.rowsWritten)).toBeGreaterThan(0);
    expect(Number(transcripts.queueDepth)).toBe(sum(after, 'slipstream_transcript_queue_depth'));
    expect(Number(transcripts.storeErrors)).toBe(sum(after, 'slipstream_transcript_store_errors_total'));

    // Fan-out: every member, how each ended, and its latency.
    for (const member of team.members.map((m) => m.name)) {
      for (const [key, outcome] of [
        ['answered', 'answered'],
        ['timedOut', 'timedOut'],
        ['skipped', 'skipped'],
      ] as const) {
        expect(cell(t, 'fanout-members', { group: 'team', member }, key), `${member} ${outcome}`).toBe(
          d('slipstream_fanout_member_outcomes_total', { group: 'team', member, outcome }),
        );
      }
    }
    expect(cell(t, 'fanout-members', { group: 'team', member: hung }, 'timedOut')).toBe(1);
    expect(cell(t, 'fanout-members', { group: 'team', member: hung }, 'skipped')).toBe(1);
    const first = team.members[0]!.name;
    const memberP50 = quantileBounds(
      before,
      after,
      'slipstream_fanout_member_duration_seconds',
      { group: 'team', member: first },
      0.5,
    );
    expect(cell(t, 'fanout-members', { group: 'team', member: first }, 'p50')).toBeGreaterThan(
      memberP50.lowerMs,
    );
    expect(cell(t, 'fanout-members', { group: 'team', member: first }, 'p50')).toBeLessThanOrEqual(
      memberP50.upperMs * 1.05,
    );

    // Charts drew lines, the page fetched nothing but itself and its feed, and nothing complained.
    for (const chart of [
      'chart-rate',
      'chart-p50',
      'chart-p99',
      'chart-errors',
      'chart-ttfb',
      'chart-chunks',
    ]) {
      expect(await page.locator(`#${chart} canvas`).count(), chart).toBe(1);
    }
    expect(new Set(requested)).toEqual(
      new Set([`${gw.adminUrl}/dashboard`, `${gw.adminUrl}/dashboard/events`]),
    );
    expect(problems).toEqual([]);

    await page.close();
  }, 180_000);
});
