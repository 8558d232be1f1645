import { getEventListeners } from 'node:events';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { GatewayError } from '../../src/errors.js';
import type { Call, Reply } from '../../src/pipeline/types.js';
import { batch, compileItemPattern } from '../../src/policies/batch.js';
import type { BatchOptions } from '../../src/policies/batch.js';
import { makeCall } from '../helpers/calls.js';
import { recordEvents } from '../helpers/events.js';
import { events } from '../../src/telemetry/events.js';

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

describe('batch policy, edges', () => {
  /** A handler answering every bulk call with `body` (and `status`), recording the calls. */
  function fixed(body: string, status = 200, headers: Reply['headers'] = {}) {
    const calls: Call[] = [];
    const handler = async (call: Call): Promise<Reply> => {
      calls.push(call);
      return { status, headers, body: Buffer.from(body) };
    };
    return { calls, handler };
  }
  const settle = (promises: Array<Promise<Reply>>) =>
    Promise.allSettled(promises).then((results) =>
      results.map((r) => (r.status === 'fulfilled' ? r.value.status : (r.reason as GatewayError))),
    );

  it('asks again for an item asked before: nothing is cached between batches', async () => {
    const up = quotes({ A: 1 });
    const handler = batch(options())(up.handler);
    await handler(makeCall({ path: '/quote/A' }));
    await handler(makeCall({ path: '/quote/A' }));
    expect(up.calls).toHaveLength(2);
  });

  it('finds the id in a path with a query string', async () => {
    const up = quotes({ A: 1 });
    const reply = await batch(options())(up.handler)(makeCall({ path: '/quote/A?fresh=1' }));
    expect(json(reply)).toEqual({ symbol: 'A', price: 1 });
  });

  it('publishes each bulk call with its callers and distinct items', async () => {
    const sent = recordEvents(events.batch);
    const handler = batch(options())(quotes({ A: 1, B: 2 }).handler);
    await Promise.all(['A', 'A', 'B'].map((id) => handler(makeCall({ path: `/quote/${id}` }))));
    expect(sent).toEqual([{ route: 'quotes', callers: 3, items: 2 }]);
  });

  it('aborts the bulk call once every caller of the batch has left', async () => {
    let bulk: Call | undefined;
    const handler = batch(options())(
      (call) =>
        new Promise<Reply>((_resolve, reject) => {
          bulk = call;
          call.signal.addEventListener('abort', () => reject(call.signal.reason as Error));
        }),
    );
    const callers = [new AbortController(), new AbortController()];
    const pending = callers.map((c, i) => handler(makeCall({ path: `/quote/S${i}`, signal: c.signal })));
    await expect.poll(() => bulk).toBeDefined();
    callers[0]!.abort(new Error('first left'));
    expect(bulk!.signal.aborted).toBe(false);
    callers[1]!.abort(new Error('second left'));
    expect(bulk!.signal.reason).toMatchObject({
      code: 'GW_CLIENT_CLOSED',
      message: 'every caller of the batch left',
    });
    await Promise.allSettled(pending);
  });

  it('fails every caller with a clear error when the bulk response is too large, not JSON, or the wrong shape', async () => {
    const tooLarge = 'bulk response exceeds 10 bytes';
    const streamed = await settle(
      ['A', 'B'].map((id) =>
        batch(options({ maxResponseBytes: 10 }))(async () => ({
          status: 200,
          headers: {},
          body: Readable.from([Buffer.from('{"quotes":[{"symbol":"A"},{"symbol":"B"}]}')]),
        }))(makeCall({ path: `/quote/${id}` })),
      ),
    );
    expect(streamed).toEqual([
      expect.objectContaining({ code: 'GW_UPSTREAM_RESPONSE_TOO_LARGE', message: tooLarge }),
      expect.objectContaining({ code: 'GW_UPSTREAM_RESPONSE_TOO_LARGE', message: tooLarge }),
    ]);
    const cases: Array<[BatchOptions, string, string, string]> = [
      [options(), 'not json', 'GW_UPSTREAM_PROTOCOL', 'the bulk response is not JSON'],
      [options(), '{"quotes":5}', 'GW_UPSTREAM_PROTOCOL', 'the bulk response has no array at "quotes"'],
      [
        options({ items: '', key: undefined }),
        '[1]',
        'GW_UPSTREAM_PROTOCOL',
        'the bulk response has no object at ""',
      ],
    ];
    for (const [config, body, code, message] of cases) {
      const handler = batch(config)(fixed(body).handler);
      const results = await settle(['A', 'B'].map((id) => handler(makeCall({ path: `/quote/${id}` }))));
      expect(results, message).toEqual([
        expect.objectContaining({ code, message }),
        expect.objectContaining({ code, message }),
      ]);
    }
  });

  it('names the missing item in its 404', async () => {
    const handler = batch(options())(quotes({}).handler);
    await expect(handler(makeCall({ path: '/quote/ZZ' }))).rejects.toMatchObject({
      code: 'GW_ITEM_NOT_FOUND',
      message: 'the bulk response has no item "ZZ"',
      data: { id: 'ZZ' },
    });
  });

  it("gives each item JSON headers, and the bulk reply's cache-control only when it has one", async () => {
    const withNone = await batch(options())(fixed('{"quotes":[{"symbol":"A"}]}').handler)(
      makeCall({ path: '/quote/A' }),
    );
    expect(withNone.headers).toStrictEqual({ 'content-type': 'application/json' });
  });

  it('treats every 2xx bulk status as an answer, and relays the others with their body', async () => {
    const ok = await batch(options())(fixed('{"quotes":[{"symbol":"A"}]}', 299).handler)(
      makeCall({ path: '/quote/A' }),
    );
    expect([ok.status, json(ok)]).toEqual([200, { symbol: 'A' }]);
    const failed = await batch(options())(fixed('{"quotes":[{"symbol":"A"}]}', 500).handler)(
      makeCall({ path: '/quote/A' }),
    );
    expect([failed.status, json(failed)]).toEqual([500, { quotes: [{ symbol: 'A' }] }]);
  });

  it('matches numeric ids, and items that are not objects are skipped', async () => {
    const handler = batch(options())(fixed('{"quotes":[null,"x",{"symbol":7,"p":1}]}').handler);
    expect(json(await handler(makeCall({ path: '/quote/7' })))).toEqual({ symbol: 7, p: 1 });
  });

  it("builds the bulk call from the first caller's headers, minus its own length and cache-control, asking for an identity body", async () => {
    const get = fixed('{"quotes":[]}');
    const headers = { authorization: 'k', 'content-length': '0', 'cache-control': 'no-cache' };
    await settle([batch(options())(get.handler)(makeCall({ path: '/quote/A', headers }))]);
    expect(get.calls[0]!.headers).toStrictEqual({ authorization: 'k', 'accept-encoding': 'identity' });
    const post = fixed('{}');
    const postOptions = options({
      bulk: { method: 'POST', path: '/bulk', separator: ',', bodyField: 'ids' },
      items: '',
      key: undefined,
    });
    await settle([batch(postOptions)(post.handler)(makeCall({ path: '/quote/A', headers }))]);
    const bulk = post.calls[0]!;
    expect(bulk.headers).toStrictEqual({
      authorization: 'k',
      'accept-encoding': 'identity',
      'content-type': 'application/json',
      'content-length': String((bulk.body as Buffer).length),
    });
    expect(bulk.idempotent).toBe(true);
  });
});

describe('batch policy, cleanup and shapes', () => {
  it('leaves no listener on the callers signals once the batch is done', async () => {
    const signal = new AbortController().signal;
    await batch(options())(quotes({ A: 1 }).handler)(makeCall({ path: '/quote/A', signal }));
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('answers 404 for an id missing from a bulk response keyed by id', async () => {
    const handler = batch(options({ items: '', key: undefined }))(async () => ({
      status: 200,
      headers: {},
      body: Buffer.from('{"A":{"p":1}}'),
    }));
    const a = handler(makeCall({ path: '/quote/A' }));
    const b = handler(makeCall({ path: '/quote/B' }));
    expect(json(await a)).toEqual({ p: 1 });
    await expect(b).rejects.toMatchObject({ code: 'GW_ITEM_NOT_FOUND' });
  });
});

describe('item patterns', () => {
  it('captures the decoded id and rejects other shapes', () => {
    const match = compileItemPattern('/quote/:symbol');
    expect(match('/quote/')).toBeUndefined();
    expect(match('/quote/BRK%2EB')).toBe('BRK.B');
    expect(match('/quote/')).toBeUndefined();
    expect(match('/quote/A/B')).toBeUndefined();
    expect(match('/quotes/A')).toBeUndefined();
  });
});
