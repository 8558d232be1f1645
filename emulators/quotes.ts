// Seed 003's upstream: a market-quote API with a slow per-symbol endpoint and a bulk endpoint at the cost of one call.
import { delay, startJsonServer } from './json-server.js';
import type { JsonResponse, RunningJsonServer } from './json-server.js';
import { parseLatency } from './latency.js';

export interface QuotesEmulatorOptions {
  host?: string;
  port?: number;
  /** Latency of one call, single or bulk (see `parseLatency`). Default `uniform:300ms-600ms`, as in the seed. */
  latency?: string;
  /** Symbols that do not exist (404 alone, left out of bulk answers). Default `["NOPE"]`. */
  unknown?: readonly string[];
  /** Most symbols per bulk call. Default 200. */
  maxBulk?: number;
  random?: () => number;
}

/** A symbol looks like a ticker: 1-10 capitals, digits, dots or dashes. */
const TICKER = /^[A-Z][A-Z0-9.-]{0,9}$/;

/**
 * `GET /quote/:symbol` answers one quote after one latency sample; `GET /quotes?symbols=A,B,C` answers
 * `{"quotes":[...]}` for all of them after one sample too (unknown symbols left out). Each quote carries
 * `n`, the number of the call that produced it, so a test can tell a cached quote from a fresh one.
 * Counters: `singleCalls`, `bulkCalls`, `symbolsServed`, `inFlight`, `maxInFlight`.
 */
export async function startQuotesEmulator(options: QuotesEmulatorOptions = {}): Promise<RunningJsonServer> {
  const latency = parseLatency(options.latency ?? 'uniform:300ms-600ms');
  const random = options.random ?? Math.random;
  const unknown = new Set(options.unknown ?? ['NOPE']);
  const maxBulk = options.maxBulk ?? 200;
  const counters = { singleCalls: 0, bulkCalls: 0, symbolsServed: 0, inFlight: 0, maxInFlight: 0 };
  const quote = (symbol: string, n: number) => {
    let hash = 0;
    for (const c of symbol) hash = (hash * 31 + c.charCodeAt(0)) % 100_000;
    return { symbol, price: Math.round(10_000 + hash) / 100, currency: 'USD', n };
  };
  const known = (symbol: string) => TICKER.test(symbol) && !unknown.has(symbol);

  return startJsonServer({
    host: options.host,
    port: options.port,
    stats: () => ({ ...counters }),
    reset: () => Object.assign(counters, { singleCalls: 0, bulkCalls: 0, symbolsServed: 0, maxInFlight: 0 }),
    async handle(request, signal): Promise<JsonResponse> {
      const single = /^\/quote\/([^/]+)$/.exec(request.path);
      const bulk = request.path === '/quotes';
      if (request.method !== 'GET' || (!single && !bulk)) {
        return { status: 404, body: { error: `no endpoint ${request.method} ${request.path}` } };
      }
      const n = single ? ++counters.singleCalls : ++counters.bulkCalls;
      counters.inFlight++;
      counters.maxInFlight = Math.max(counters.maxInFlight, counters.inFlight);
      try {
        await delay(latency(random), signal);
        if (single) {
          const symbol = decodeURIComponent(single[1]!);
          if (!known(symbol)) return { status: 404, body: { error: `unknown symbol ${symbol}` } };
          counters.symbolsServed++;
          return { status: 200, body: quote(symbol, n) };
        }
        const symbols = (request.query.get('symbols') ?? '').split(',').filter((s) => s !== '');
        if (symbols.length === 0 || symbols.length > maxBulk) {
          return { status: 400, body: { error: `ask for 1 to ${maxBulk} symbols` } };
        }
        const quotes = symbols.filter(known).map((s) => quote(s, n));
        counters.symbolsServed += quotes.length;
        return { status: 200, body: { quotes } };
      } finally {
        counters.inFlight--;
      }
    },
  });
}
