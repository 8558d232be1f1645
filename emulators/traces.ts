// Seed 002's upstream: an experiment tracker's trace API with a slow search, a flaky get-by-id and large spans.
import { delay, startJsonServer } from './json-server.js';
import type { JsonResponse, RunningJsonServer } from './json-server.js';
import { parseLatency } from './latency.js';

export interface TracesEmulatorOptions {
  host?: string;
  port?: number;
  /** Latency of a search. Default `uniform:150ms-240ms` (the seed's 15-24 s, scaled down 100x). */
  searchLatency?: string;
  /** Latency of a get-by-id (and of a batch get). Default `20ms`. */
  getLatency?: string;
  /** Fraction of get-by-id calls that fail with 503 (0..1). Default 0.3. */
  getErrors?: number;
  /** Size of one trace's span payload in bytes. Default 20,000. */
  spanBytes?: number;
  /** Traces in the store. Default 50. */
  traces?: number;
  random?: () => number;
}

/**
 * `POST /search-traces` (`{"experiment_id","filter","max_results"}`) answers trace summaries after a slow
 * search; `GET /traces/:id` answers one trace with its spans, failing with 503 at `getErrors`;
 * `POST /traces/batch` (`{"ids":[...]}`) answers an object keyed by id in one call. Counters:
 * `searches`, `gets`, `getErrors`, `batches`.
 */
export async function startTracesEmulator(options: TracesEmulatorOptions = {}): Promise<RunningJsonServer> {
  const searchLatency = parseLatency(options.searchLatency ?? 'uniform:150ms-240ms');
  const getLatency = parseLatency(options.getLatency ?? '20ms');
  const random = options.random ?? Math.random;
  const getErrors = options.getErrors ?? 0.3;
  const count = options.traces ?? 50;
  const spanBytes = Math.max(0, (options.spanBytes ?? 20_000) - 200);
  const texts = new Map<string, string>();
  const spanText = (id: string) => {
    let text = texts.get(id);
    if (text === undefined) texts.set(id, (text = llmText(id, spanBytes)));
    return text;
  };
  const counters = { searches: 0, gets: 0, getErrors: 0, batches: 0 };
  const ids = Array.from({ length: count }, (_, i) => `tr-${String(i).padStart(4, '0')}`);
  const trace = (id: string) => ({
    trace_id: id,
    status: 'OK',
    spans: [{ name: 'llm.call', attributes: { 'llm.model': 'emulated', payload: spanText(id) } }],
  });

  return startJsonServer({
    host: options.host,
    port: options.port,
    maxBodyBytes: 64 * 1024,
    stats: () => ({ ...counters }),
    reset: () => Object.assign(counters, { searches: 0, gets: 0, getErrors: 0, batches: 0 }),
    async handle(request, signal): Promise<JsonResponse> {
      const byId = /^\/traces\/([^/]+)$/.exec(request.path);
      if (request.method === 'POST' && request.path === '/search-traces') {
        counters.searches++;
        await delay(searchLatency(random), signal);
        const body = (request.body ?? {}) as { max_results?: unknown };
        const max =
          typeof body.max_results === 'number' ? Math.max(1, Math.min(count, body.max_results)) : 10;
        return {
          status: 200,
          body: {
            traces: ids.slice(0, max).map((id) => ({ trace_id: id, status: 'OK' })),
            search: counters.searches,
          },
        };
      }
      if (request.method === 'POST' && request.path === '/traces/batch') {
        counters.batches++;
        await delay(getLatency(random), signal);
        const wanted = (request.body as { ids?: unknown } | undefined)?.ids;
        if (!Array.isArray(wanted)) return { status: 400, body: { error: 'send {"ids": [...]}' } };
        const known = wanted.filter((id): id is string => typeof id === 'string' && ids.includes(id));
        return { status: 200, body: Object.fromEntries(known.map((id) => [id, trace(id)])) };
      }
      if (request.method === 'GET' && byId) {
        counters.gets++;
        await delay(getLatency(random), signal);
        if (random() < getErrors) {
          counters.getErrors++;
          return { status: 503, body: { error: 'tracking server busy' } };
        }
        const id = decodeURIComponent(byId[1]!);
        return ids.includes(id)
          ? { status: 200, body: trace(id) }
          : { status: 404, body: { error: `no trace ${id}` } };
      }
      return { status: 404, body: { error: `no endpoint ${request.method} ${request.path}` } };
    },
  });
}

const WORDS = (
  'the model returned a summary of the quarterly report with revenue growth margin forecast customer ' +
  'churn retention cohort analysis token usage latency prompt completion tool call arguments result ' +
  'error retry timeout cache hit miss vector embedding similarity score document chunk context window'
).split(' ');

/**
 * Text like an LLM span's prompt and completion, `bytes` long: words and numbers drawn from a generator
 * seeded by the trace id, so each trace differs (a compressor cannot just point back at the previous
 * trace) and every run serves the same bytes. It compresses about as well as real JSON traces (5-8x with
 * gzip), unlike a repeated character.
 */
function llmText(seed: string, bytes: number): string {
  let state = 0;
  for (const c of seed) state = (state * 31 + c.charCodeAt(0)) >>> 0;
  const next = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const parts: string[] = [];
  let length = 0;
  while (length < bytes) {
    const word =
      next() < 0.15 ? String(Math.floor(next() * 100_000)) : WORDS[Math.floor(next() * WORDS.length)]!;
    parts.push(word);
    length += word.length + 1;
  }
  return parts.join(' ').slice(0, bytes);
}
