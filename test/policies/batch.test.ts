import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { batch, compileItemPattern } from '../../src/policies/batch.js';
import type { BatchOptions } from '../../src/policies/batch.js';
import { makeCall } from '../helpers/calls.js';

/** A bulk upstream: answers `/quotes?symbols=A,B` with the known symbols' quotes, and records each call. */
function quotes(known: Record<string, number>, status = 200) {
  const calls: Call[] = [];
  const handler = async (call: Call): Promise<Reply> => {
    calls.push(call);
    const url = new URL(call.path, 'http://x');
    const asked =
      call.method === 'POST'
        ? (JSON.parse((call.body as Buffer).toString()) as { ids: string[] }).ids
        : (url.searchParams.get('symbols') ?? '').split(',');
    const items = asked.filter((s) => s in known).map((symbol) => ({ symbol, price: known[symbol] }));
    return {
      status,
      headers: { 'content-type': 'application/json', 'cache-control': 'max-age=5' },
      body: Buffer.from(JSON.stringify({ quotes: items })),
    };
  };
  return { calls, handler };
}

function options(overrides: Partial<BatchOptions> = {}): BatchOptions {
  return {
    route: 'quotes',
    item: '/quote/:symbol',
    bulk: { method: 'GET', path: '/quotes?symbols={ids}', separator: ',', bodyField: 'ids' },
    items: 'quotes',
    key: 'symbol',
    windowMs: 5,
    maxBatch: 100,
    maxResponseBytes: 1024 * 1024,
    ...overrides,
  };
}

const json = (reply: Reply) => JSON.parse((reply.body as Buffer).toString()) as unknown;

describe('batch policy', () => {
  it('sends 50 concurrent single-item calls as one bulk call, each caller getting its own item', async () => {
    const known = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`S${i}`, i]));
    const up = quotes(known);
    const handler = batch(options())(up.handler);
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => handler(makeCall({ path: `/quote/S${i}` }))),
    );
    expect(up.calls).toHaveLength(1);
    expect(up.calls[0]!.path.split('=')[1]!.split(',')).toHaveLength(50);
    replies.forEach((reply, i) => {
      expect(reply.status).toBe(200);
      expect(json(reply)).toEqual({ symbol: `S${i}`, price: i });
      expect(reply.headers['cache-control']).toBe('max-age=5');
    });
  });

  it('splits a batch larger than maxBatch into several bulk calls', async () => {
    const known = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`S${i}`, i]));
    const up = quotes(known);
    const handler = batch(options({ maxBatch: 20 }))(up.handler);
    await Promise.all(Array.from({ length: 50 }, (_, i) => handler(makeCall({ path: `/quote/S${i}` }))));
    expect(up.calls).toHaveLength(3);
  });

  it('answers a missing item with 404 GW_ITEM_NOT_FOUND for that caller alone', async () => {
    const up = quotes({ AAPL: 1 });
    const handler = batch(options())(up.handler);
    const [found, missing] = await Promise.allSettled([
      handler(makeCall({ path: '/quote/AAPL' })),
      handler(makeCall({ path: '/quote/NOPE' })),
    ]);
    expect(found.status).toBe('fulfilled');
    expect(missing.status).toBe('rejected');
    const error = (missing as PromiseRejectedResult).reason as GatewayError;
    expect([error.code, error.status]).toEqual(['GW_ITEM_NOT_FOUND', 404]);
  });

  it('asks once for an item several callers want, and gives each of them the item', async () => {
    const up = quotes({ AAPL: 1, MSFT: 2 });
    const handler = batch(options())(up.handler);
    const replies = await Promise.all(
      ['AAPL', 'AAPL', 'MSFT', 'AAPL'].map((s) => handler(makeCall({ path: `/quote/${s}` }))),
    );
    expect(up.calls[0]!.path).toBe('/quotes?symbols=AAPL,MSFT');
    expect(replies.map((r) => (json(r) as { symbol: string }).symbol)).toEqual([
      'AAPL',
      'AAPL',
      'MSFT',
      'AAPL',
    ]);
  });

  it('never puts callers with different principals in one bulk call', async () => {
    const up = quotes({ AAPL: 1, MSFT: 2 });
    const handler = batch(options())(up.handler);
    await Promise.all([
      handler(makeCall({ path: '/quote/AAPL', principal: 'alice', headers: { authorization: 'alice' } })),
      handler(makeCall({ path: '/quote/MSFT', principal: 'bob', headers: { authorization: 'bob' } })),
    ]);
    expect(up.calls.map((c) => c.headers.authorization).sort()).toEqual(['alice', 'bob']);
  });

  it('relays a failed bulk status to every caller of the batch', async () => {
    const up = quotes({ AAPL: 1 }, 503);
    const handler = batch(options())(up.handler);
    const replies = await Promise.all([
      handler(makeCall({ path: '/quote/AAPL' })),
      handler(makeCall({ path: '/quote/MSFT' })),
    ]);
    expect(replies.map((r) => r.status)).toEqual([503, 503]);
  });

  it('fails every caller with the transport error when the bulk call throws', async () => {
    const handler = batch(options())(async () => {
      throw new GatewayError('GW_UPSTREAM_TIMEOUT', 'too slow');
    });
    const results = await Promise.allSettled([
      handler(makeCall({ path: '/quote/A' })),
      handler(makeCall({ path: '/quote/B' })),
    ]);
    expect(results.map((r) => (r as PromiseRejectedResult).reason.code)).toEqual([
      'GW_UPSTREAM_TIMEOUT',
      'GW_UPSTREAM_TIMEOUT',
    ]);
  });

  it('posts the ids as JSON when the bulk call is a POST, and reads items keyed by id', async () => {
    const calls: Call[] = [];
    const handler = batch(
      options({
        bulk: { method: 'POST', path: '/traces/batch', separator: ',', bodyField: 'ids' },
        items: '',
        key: undefined,
      }),
    )(async (call) => {
      calls.push(call);
      return { status: 200, headers: {}, body: Buffer.from('{"t1":{"spans":1},"t2":{"spans":2}}') };
    });
    const replies = await Promise.all(['t1', 't2'].map((id) => handler(makeCall({ path: `/quote/${id}` }))));
    expect(calls).toHaveLength(1);
    expect([calls[0]!.method, JSON.parse((calls[0]!.body as Buffer).toString())]).toEqual([
      'POST',
      { ids: ['t1', 't2'] },
    ]);
    expect(replies.map(json)).toEqual([{ spans: 1 }, { spans: 2 }]);
  });

  it('passes through calls that are not single-item GETs', async () => {
    const up = quotes({});
    const handler = batch(options())(up.handler);
    await handler(makeCall({ path: '/quotes?symbols=A' }));
    await handler(makeCall({ path: '/quote/A', method: 'DELETE' }));
    expect(up.calls.map((c) => c.path)).toEqual(['/quotes?symbols=A', '/quote/A']);
  });

  it('lets a caller who hangs up leave without failing the others', async () => {
    const up = quotes({ A: 1, B: 2 });
    const handler = batch(options())(up.handler);
    const gone = new AbortController();
    const leaving = handler(makeCall({ path: '/quote/A', signal: gone.signal }));
    const staying = handler(makeCall({ path: '/quote/B' }));
    gone.abort(new GatewayError('GW_CLIENT_CLOSED', 'bye'));
    await expect(leaving).rejects.toThrow('bye');
    expect(json(await staying)).toEqual({ symbol: 'B', price: 2 });
  });
});

describe('item patterns', () => {
  it('captures the decoded id and rejects other shapes', () => {
    const match = compileItemPattern('/quote/:symbol');
    expect(match('/quote/BRK%2EB')).toBe('BRK.B');
    expect(match('/quote/')).toBeUndefined();
    expect(match('/quote/A/B')).toBeUndefined();
    expect(match('/quotes/A')).toBeUndefined();
  });
});
