import { Pool } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { call, startGateway } from '../helpers/gateway.js';
import type { RunningGateway } from '../helpers/gateway.js';
import { emulatorStats, spawnCli, stopAll } from '../helpers/processes.js';
import type { CliProcess } from '../helpers/processes.js';

interface QuoteStats {
  singleCalls: number;
  bulkCalls: number;
}

describe('batching single-symbol quotes into bulk calls (quotes emulator)', () => {
  let quotes: CliProcess;
  let gw: RunningGateway;

  beforeAll(async () => {
    quotes = await spawnCli(['emulate', 'quotes', '--latency', '30ms']);
    gw = await startGateway(`
upstreams:
  quotes: { url: ${quotes.url} }
routes:
  - name: quote
    match: { prefix: /quote }
    upstream: quotes
    batch:
      item: /quote/:symbol
      bulk: { path: "/quotes?symbols={ids}" }
      items: quotes
      key: symbol
      # Wide enough that requests sent together share a window even on a loaded 2-core machine.
      window: 50ms
  - name: cached-quote
    match: { prefix: /cached/quote }
    rewrite: /quote
    upstream: quotes
    cache: { ttl: 10s, scope: shared }
    batch:
      item: /quote/:symbol
      bulk: { path: "/quotes?symbols={ids}" }
      items: quotes
      key: symbol
`);
  });
  afterAll(async () => {
    await gw?.close();
    await stopAll();
  });
  beforeEach(() => call(`${quotes.url}/__emulator/reset`, { method: 'POST' }));

  it('turns 50 concurrent single-symbol requests into at most 3 bulk calls, each caller getting its own symbol', async () => {
    // An app holds kept-alive connections: open all 50 first, so the requests leave together.
    const pool = new Pool(gw.url, { connections: 50 });
    await Promise.all(
      Array.from({ length: 50 }, () =>
        pool.request({ path: '/__warm', method: 'GET' }).then((r) => r.body.dump()),
      ),
    );
    await call(`${quotes.url}/__emulator/reset`, { method: 'POST' });
    const symbols = Array.from({ length: 50 }, (_, i) => `SYM${i}`);
    const replies = await Promise.all(
      symbols.map(async (s) => {
        const response = await pool.request({ path: `/quote/${s}`, method: 'GET' });
        return { status: response.statusCode, body: (await response.body.json()) as { symbol: string } };
      }),
    );
    await pool.close();
    replies.forEach((reply, i) => {
      expect(reply.status).toBe(200);
      expect(reply.body.symbol).toBe(symbols[i]);
    });
    const stats = await emulatorStats<QuoteStats>(quotes.url);
    expect(stats.singleCalls).toBe(0);
    expect(stats.bulkCalls).toBeGreaterThanOrEqual(1);
    expect(stats.bulkCalls).toBeLessThanOrEqual(3);
    const metrics = (await call(`${gw.adminUrl}/metrics`)).body as string;
    expect(metrics).toContain(`slipstream_batched_calls_total{route="quote"} 50`);
    expect(metrics).toMatch(
      new RegExp(`slipstream_batch_items_count\\{route="quote"\\} ${stats.bulkCalls}\\b`),
    );
  });

  it('answers an unknown symbol with 404 GW_ITEM_NOT_FOUND while its batch-mates get their quotes', async () => {
    // Two kept-alive connections, so both requests leave together and land in one batch.
    const pool = new Pool(gw.url, { connections: 2 });
    await Promise.all(
      [1, 2].map(() => pool.request({ path: '/__warm', method: 'GET' }).then((r) => r.body.dump())),
    );
    const get = async (symbol: string) => {
      const response = await pool.request({ path: `/quote/${symbol}`, method: 'GET' });
      return { status: response.statusCode, body: (await response.body.json()) as any };
    };
    const [good, bad] = await Promise.all([get('AAPL'), get('NOPE')]);
    await pool.close();
    expect([good.status, good.body.symbol]).toEqual([200, 'AAPL']);
    expect([bad.status, bad.body.error.code]).toEqual([404, 'GW_ITEM_NOT_FOUND']);
    expect(await emulatorStats<QuoteStats>(quotes.url)).toMatchObject({ singleCalls: 0, bulkCalls: 1 });
  });

  it('caches each symbol on its own, so a repeat costs no upstream call', async () => {
    await Promise.all(['A', 'B', 'C'].map((s) => call(`${gw.url}/cached/quote/${s}`)));
    const filled = await emulatorStats<QuoteStats>(quotes.url);
    expect(filled.singleCalls).toBe(0);
    const again = await Promise.all(['C', 'A', 'B'].map((s) => call(`${gw.url}/cached/quote/${s}`)));
    expect(again.map((r) => [r.body.symbol, r.headers['x-slipstream-cache']])).toEqual([
      ['C', 'hit'],
      ['A', 'hit'],
      ['B', 'hit'],
    ]);
    expect((await emulatorStats<QuoteStats>(quotes.url)).bulkCalls).toBe(filled.bulkCalls);
  });
});
